"""`ysh ui` serves the Dagster UI with the platform's asset graph."""

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from ysh.services.postgres import free_port

pytestmark = pytest.mark.integration

QUERY = "{ assetNodes { assetKey { path } groupName hasAssetChecks } }"


def test_ui_serves_the_catalog_asset_graph(tmp_path, warehouse):
    port = free_port()
    env = {**os.environ, "YSH_HOME": str(tmp_path / "home"), "YSH_POSTGRES_DSN": warehouse.dsn,
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
        assert set(catalog) == {"catalog_raw", "catalog_normalized", "catalog_products"}
        assert catalog["catalog_normalized"]["hasAssetChecks"]
        assert (tmp_path / "home" / "dagster" / "dagster.yaml").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
