"""Foundation: settings, the embedded PostgreSQL manager, the services commands."""

import psycopg
import pytest
from typer.testing import CliRunner

from ysh.services.postgres import EmbeddedPostgres, EmbeddedPostgresError, free_port
from ysh.settings import Settings


def test_settings_read_the_ysh_prefix_and_hide_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("YSH_POSTGRES_DSN", "host=db.internal user=ysh password=s3cr3t")
    monkeypatch.setenv("YSH_HOME", str(tmp_path))
    settings = Settings()
    assert not settings.uses_embedded_postgres
    assert "s3cr3t" not in repr(settings)
    assert settings.warehouse.dsn.get_secret_value().endswith("password=s3cr3t")
    assert settings.catalog.landing_dir == tmp_path.resolve() / "landing" / "catalog"


def test_settings_read_a_dotenv_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YSH_POSTGRES_SCHEMA", raising=False)
    (tmp_path / ".env").write_text("YSH_POSTGRES_SCHEMA=catalogo\nYSH_PATHWAY_PROCESSES=2\n")
    settings = Settings()
    assert (settings.warehouse.schema_name, settings.pathway.processes) == ("catalogo", 2)


def test_settings_reject_bad_values(monkeypatch):
    monkeypatch.setenv("YSH_POSTGRES_SCHEMA", "drop table;")
    with pytest.raises(ValueError):
        Settings()


@pytest.mark.integration
def test_embedded_postgres_keeps_data_across_restarts(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pg", free_port())
    server.start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        assert server.stop() is True
        assert server.status().running is False
        server.start()
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
            # loopback only, password authentication
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.dsn().replace(server.password(), "wrong"))
        assert oct(server.password_file.stat().st_mode & 0o777) == "0o600"
    finally:
        server.stop()


@pytest.mark.integration
def test_embedded_postgres_refuses_a_taken_port(tmp_path, pg_server):
    other = EmbeddedPostgres(tmp_path / "pg2", pg_server.port)
    with pytest.raises(EmbeddedPostgresError, match="taken"):
        other.start()


@pytest.mark.integration
def test_services_up_status_down(monkeypatch, tmp_path):
    from ysh.cli import app
    from ysh.settings import get_settings

    monkeypatch.setenv("YSH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("YSH_EMBEDDED_POSTGRES_PORT", str(free_port()))
    monkeypatch.delenv("YSH_POSTGRES_DSN", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        up = runner.invoke(app, ["services", "up"])
        assert up.exit_code == 0, up.output
        assert "0001_catalog" in up.output and "running" in up.output
        again = runner.invoke(app, ["services", "up"])
        assert "0001_catalog" not in again.output  # migrations are idempotent
        assert "running" in runner.invoke(app, ["services", "status"]).output
    finally:
        down = runner.invoke(app, ["services", "down"])
        get_settings.cache_clear()
    assert "stopped PostgreSQL" in down.output
    assert "stopped" in runner.invoke(app, ["services", "status"]).output


def test_each_jobs_definitions_hold_everything_its_module_declares():
    """A job's assets module exposes one ``defs``; nothing declared beside it is left out."""
    import dagster as dg
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

    from ysh import definitions

    kinds = (dg.AssetsDefinition, dg.AssetChecksDefinition, dg.JobDefinition, UnresolvedAssetJobDefinition,
             dg.ScheduleDefinition, dg.SensorDefinition)
    for module in definitions.JOBS:
        declared = {name for name, value in vars(module).items() if isinstance(value, kinds)}
        defs = module.defs
        held = {id(d) for group in (defs.assets, defs.asset_checks, defs.jobs, defs.schedules, defs.sensors)
                for d in group or ()}
        missing = {name for name in declared if id(getattr(module, name)) not in held}
        assert not missing, f"{module.__name__}: {sorted(missing)} not in its defs"
    repo = definitions.defs.get_repository_def()  # merged and resolvable, with every resource
    assert {"warehouse", "settings", "pipes_subprocess_client"} <= set(repo.get_top_level_resources())


def test_the_warehouse_dsn_comes_from_the_environment_at_run_time(monkeypatch):
    import dagster as dg

    from ysh import definitions

    monkeypatch.setenv("YSH_POSTGRES_DSN", "postgresql://u@127.0.0.1:1/x")
    resources = definitions.resources()
    assert isinstance(resources["warehouse"].dsn, dg.EnvVar)  # the secret is not in the definitions
    monkeypatch.delenv("YSH_POSTGRES_DSN")
    assert definitions.resources()["warehouse"].dsn is None  # the embedded server


def test_a_misspelled_setting_is_an_error_naming_the_closest_one(monkeypatch):
    import pydantic
    import pytest

    from ysh.settings import Settings, setting_variables, unknown_variables

    assert unknown_variables({"YSH_RAG_HOST": "x", "PATH": "/bin", "YSH_HOME": "h"}) == []
    assert unknown_variables({"YSH_RAG_HOTS": "0.0.0.0"}) == [
        "unknown setting YSH_RAG_HOTS (did you mean YSH_RAG_HOST?)"]
    assert "see the Settings table" in unknown_variables({"YSH_ZZZ": "1"})[0]
    assert {"YSH_POSTGRES_DSN", "YSH_RAG_LLM_TIMEOUT_S"} <= setting_variables()
    monkeypatch.setenv("YSH_POSTGRES_SCHEME", "outro")
    with pytest.raises(pydantic.ValidationError, match="did you mean YSH_POSTGRES_SCHEMA"):
        Settings()


def test_the_cli_reports_a_settings_typo_and_exits_2():
    import os
    import subprocess
    import sys

    env = {**os.environ, "YSH_RAG_HOTS": "0.0.0.0"}
    result = subprocess.run([sys.executable, "-m", "ysh.cli", "tariffs", "current"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert "unknown setting YSH_RAG_HOTS (did you mean YSH_RAG_HOST?)" in " ".join((result.stdout + result.stderr).split())
    assert "Traceback" not in result.stdout + result.stderr


def test_each_variable_lands_in_its_job_group(monkeypatch, tmp_path):
    """The YSH_* names stay what they were; each value lands in its job's group, parsed
    (JSON for lists and mappings), and flat names work as keyword arguments too."""
    from ysh.proposals.assumptions import Assumptions

    monkeypatch.setenv("YSH_HOME", str(tmp_path))
    monkeypatch.setenv("YSH_RAG_PORT", "9001")
    monkeypatch.setenv("YSH_ANEEL_CKAN_RETRIES", "7")
    monkeypatch.setenv("YSH_IRRADIANCE_SOURCES", '["pvgis"]')
    monkeypatch.setenv("YSH_PROPOSAL_SIMULTANEITY_B3", "0.6")
    monkeypatch.setenv("YSH_OM_THRESHOLDS", '{"under_windows": 4}')
    monkeypatch.setenv("YSH_BACKUP_KEEP_DAILY", "3")
    settings = Settings(_env_file=None, rag_host="0.0.0.0", pathway_processes=2)
    assert (settings.rag.host, settings.rag.port, settings.rag.url) == ("0.0.0.0", 9001, "http://0.0.0.0:9001")
    assert settings.tariffs.aneel.ckan_retries == 7
    assert settings.proposals.irradiance.sources == ["pvgis"]
    assert settings.proposals.assumptions == Assumptions(simultaneity_b3=0.6)  # the other defaults: the dataclass's
    assert settings.om.thresholds == {"under_windows": 4.0}
    assert settings.ops.backup.keep_daily == 3 and settings.ops.backup.paths == [tmp_path.resolve() / "landing"]
    assert settings.pathway.processes == 2
    assert settings.rag.docs_dir == tmp_path.resolve() / "docs"  # unset folders resolved under home


def test_a_keyword_argument_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("YSH_RAG_PORT", "9001")
    monkeypatch.setenv("YSH_RAG_HOST", "10.0.0.1")
    settings = Settings(_env_file=None, rag_port=9002)
    assert (settings.rag.host, settings.rag.port) == ("10.0.0.1", 9002)


def test_a_bad_value_is_reported_by_its_variable(monkeypatch):
    import pydantic

    from ysh.settings import variable_of

    monkeypatch.setenv("YSH_PROPOSAL_SIMULTANEITY_B1", "1.5")  # the limit is the Assumptions dataclass's
    monkeypatch.setenv("YSH_OM_THRESHOLDS", "{not json")
    with pytest.raises(pydantic.ValidationError) as caught:
        Settings(_env_file=None)
    assert sorted(variable_of(error["loc"]) for error in caught.value.errors()) == [
        "YSH_OM_THRESHOLDS", "YSH_PROPOSAL_SIMULTANEITY_B1"]


def test_every_variable_is_documented_with_its_place():
    """README's Settings table (and the job docs for the RAG, O&M and proposal groups) name
    every variable, so the mapping stays written down."""
    from pathlib import Path

    from ysh.settings import variables

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    job_docs = {"rag": "docs/rag.md", "om": "docs/om.md", "proposals": "docs/proposals.md"}
    missing = []
    for variable, place in variables().items():
        group = place.split(".")[0]
        text = readme + ((root / job_docs[group]).read_text() if group in job_docs else "")
        if f"`{variable}`" not in text:
            missing.append(variable)
        if group not in job_docs and f"`{place}`" not in readme:
            missing.append(place)
    assert not missing, f"not documented: {missing}"
