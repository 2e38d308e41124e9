"""`ysh ui` serves the Dagster UI with the platform's asset graph, and Dagster keeps its
runs, events and schedules in the warehouse (schema ``dagster``) unless SQLite is asked for."""

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import httpx
import psycopg
import pytest
import yaml

from ysh import dagster_instance
from ysh.services.postgres import free_port
from ysh.settings import get_settings

pytestmark = pytest.mark.integration

QUERY = "{ assetNodes { assetKey { path } groupName hasAssetChecks } }"
DAGSTER_VARIABLES = ("DAGSTER_HOME", dagster_instance.PASSWORD_VARIABLE)


@pytest.fixture()
def dagster_env(monkeypatch):
    """`prepare` sets DAGSTER_HOME and the password in os.environ: put them back after."""
    saved = {k: os.environ.get(k) for k in DAGSTER_VARIABLES}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture()
def home(tmp_path, monkeypatch, dagster_env):
    monkeypatch.setenv("YSH_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def dagster_table(dsn: str, table: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{dagster_instance.SCHEMA}.{table}",)).fetchone()[0]


def test_ui_serves_the_catalog_asset_graph(tmp_path, warehouse):
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k not in DAGSTER_VARIABLES},
           "YSH_HOME": str(tmp_path / "home"), "YSH_POSTGRES_DSN": warehouse.dsn,
           "YSH_POSTGRES_SCHEMA": warehouse.schema}
    log = (tmp_path / "ui.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "ui", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        nodes = None
        while time.monotonic() < deadline and nodes is None:
            assert proc.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=10)
                data = reply.json().get("data") or {}
                if data.get("assetNodes"):
                    nodes = data["assetNodes"]
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        assert nodes is not None, (tmp_path / "ui.log").read_text()[-3000:]
        catalog = {"/".join(n["assetKey"]["path"]): n for n in nodes if n["groupName"] == "catalog"}
        assert {"catalog_raw", "catalog_normalized", "catalog_products"} <= set(catalog)
        assert catalog["catalog_normalized"]["hasAssetChecks"]
        # the UI's instance keeps its storage in the warehouse, and its file holds no password
        text = (tmp_path / "home" / "dagster" / "dagster.yaml").read_text()
        assert "postgres" in yaml.safe_load(text)["storage"]
        assert pg_password(warehouse.dsn) not in text
        assert dagster_table(warehouse.dsn, "runs") and dagster_table(warehouse.dsn, "event_logs")
        assert not list((tmp_path / "home" / "dagster").rglob("*.db"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def pg_password(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn)["password"]


@dg.asset
def solar_noon():
    return 12


def test_a_dagster_run_is_recorded_in_the_warehouse(home, warehouse_env):
    env = dagster_instance.prepare(get_settings())
    text = (home / "dagster" / "dagster.yaml").read_text()
    assert pg_password(warehouse_env.dsn) not in text
    assert yaml.safe_load(text)["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": dagster_instance.PASSWORD_VARIABLE}
    assert env[dagster_instance.PASSWORD_VARIABLE] == pg_password(warehouse_env.dsn)
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([solar_noon], instance=instance)
    assert result.success
    with psycopg.connect(warehouse_env.dsn) as conn:
        status = conn.execute("SELECT status FROM dagster.runs WHERE run_id = %s", (result.run_id,)).fetchone()
        materialized = conn.execute(
            "SELECT count(*) FROM dagster.event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'"
            " AND asset_key LIKE %s", (result.run_id, '%solar_noon%')).fetchone()[0]
    assert status == ("SUCCESS",)
    assert materialized == 1
    assert not list((home / "dagster").rglob("*.db"))  # nothing went to SQLite


def test_sqlite_only_when_asked(home):
    dagster_instance.prepare(get_settings(), storage="sqlite")
    assert "storage" not in yaml.safe_load((home / "dagster" / "dagster.yaml").read_text())
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([solar_noon], instance=instance).success
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"


def test_the_storage_section_names_the_server_and_hides_the_password():
    storage = dagster_instance.postgres_storage(
        "postgresql://dagster:s3cr%40t@db.internal:6432/warehouse?sslmode=require", schema="dagster")
    assert storage == {"postgres_db": {
        "username": "dagster", "hostname": "db.internal", "db_name": "warehouse", "port": 6432,
        "params": {"sslmode": "require", "options": "-csearch_path=dagster"}, "scheme": "postgresql+psycopg2",
        "password": {"env": "DAGSTER_PG_PASSWORD"}}}
    socket = dagster_instance.postgres_storage("host=/run/postgresql user=ysh dbname=ysh")["postgres_db"]
    assert socket["hostname"] == "" and socket["params"]["host"] == "/run/postgresql"
    assert "password" not in socket
