"""Dagster: the RAG assets against a real warehouse and a stand-in for the running
service's /v1/statistics on loopback: the docs inventory, the embeddings summary, and the
service as an observable asset observed hourly, with its freshness check (fresh, stale,
down)."""

import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import numpy as np
import pytest

from ysh.rag import assets
from ysh.rag.vectors import ChunkVector, VectorStore
from ysh.resources import SettingsResource, WarehouseResource
from ysh.settings import get_settings

pytestmark = pytest.mark.integration


class StatisticsServer:
    """Answers GET /v1/statistics with ``self.stats`` (401 without the key when one is set)."""

    def __init__(self, api_key: str | None = None):
        self.stats: dict = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if api_key and self.headers.get("X-API-Key") != api_key:
                    status, body = 401, {"error": "missing or wrong API key"}
                elif self.path == "/v1/statistics":
                    status, body = 200, server.stats
                else:
                    status, body = 404, {"error": "not found"}
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def docs(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "lei_14300.md").write_text("# Lei 14.300\n\nFio B.", encoding="utf-8")
    (folder / "manual.docx").write_bytes(b"PK\x03\x04" + b"\x00" * 300)
    (folder / "sub").mkdir()
    (folder / "sub" / "datasheet.pdf").write_bytes(b"%PDF-1.4\n" + b"x" * 1000)
    (folder / ".hidden.md").write_text("not a document")
    old = time.time() - 3600
    for path in folder.rglob("*"):
        os.utime(path, (old, old))
    monkeypatch.setenv("YSH_RAG_DOCS_DIR", str(folder))
    get_settings.cache_clear()
    return folder


@pytest.fixture()
def service(monkeypatch):
    server = StatisticsServer(api_key="s3cret")
    monkeypatch.setenv("YSH_RAG_URL", server.url)
    monkeypatch.setenv("YSH_RAG_API_KEY", "s3cret")
    yield server
    server.stop()


INDEX = dg.AssetKey("helio_rag_index")


def observe():
    """The ``helio_rag_observe`` job (the observation and its check): (observation, check)."""
    defs = dg.Definitions.merge(assets.defs, dg.Definitions(
        resources={"warehouse": WarehouseResource(), "settings": SettingsResource()}))
    result = defs.resolve_job_def("helio_rag_observe").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    (observation,) = result.asset_observations_for_node("helio_rag_index")
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "helio_rag_index_fresh"
    return observation, evaluation


def resources(warehouse):
    return {"warehouse": WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema), "settings": SettingsResource()}


def materialize(selection, warehouse=None):
    return dg.materialize(selection, resources=resources(warehouse) if warehouse else {"settings": SettingsResource()},
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_the_service_is_an_hourly_observation_with_its_check_and_keeps_its_lineage():
    assert {a.key.to_user_string() for a in assets.defs.assets} == {"rag_docs_raw", "helio_rag_index", "rag_embeddings"}
    assert not assets.defs.schedules
    defs = dg.Definitions.merge(assets.defs, dg.Definitions(
        resources={"warehouse": WarehouseResource(), "settings": SettingsResource()}))
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assert graph.get(INDEX).is_observable and not graph.get(INDEX).is_materializable
    assert graph.get(dg.AssetKey("rag_embeddings")).parent_keys == {INDEX}
    # the documents; the live records' assets (catalog, tariffs) are checked in tests/test_lineage.py
    assert dg.AssetKey("rag_docs_raw") in graph.get(INDEX).parent_keys
    assert {k.name for k in graph.get_check_keys_for_assets({INDEX})} == {"helio_rag_index_fresh"}
    assert repo.get_sensor_def("helio_rag_automation").default_status == dg.DefaultSensorStatus.RUNNING
    # observed on each hour's tick (a simulated clock, never the wall clock)
    instance, cursor = dg.DagsterInstance.ephemeral(), None
    first = datetime(2026, 1, 15, 12, 10, tzinfo=timezone.utc)
    requested = []
    for minutes in (0, 30, 51, 55, 111):  # 12:10 12:40 13:01 13:05 14:01
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor,
                                                   evaluation_time=first + timedelta(minutes=minutes))
        cursor = result.cursor
        requested.append(result.get_num_requested(INDEX))
    assert requested == [0, 0, 1, 0, 1]


def test_the_docs_folder_is_inventoried(docs):
    result = materialize([assets.rag_docs_raw])
    assert result.success
    metadata = result.asset_materializations_for_node("rag_docs_raw")[0].metadata
    assert metadata["files"].value == 3 and metadata["bytes"].value > 1300
    assert "pdf" in metadata["formats"].value and "docx" in metadata["formats"].value
    assert abs(metadata["newest_modified"].value - (time.time() - 3600)) < 5


def test_an_empty_docs_folder_fails_clearly(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("YSH_RAG_DOCS_DIR", str(tmp_path / "empty"))
    result = materialize([assets.rag_docs_raw])
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "is empty" in failure


def test_a_fresh_index_is_observed_and_passes_its_check(docs, service):
    now = time.time()
    service.stats = {"files": 3, "chunks": 12, "errors": 0, "last_modified": now - 3600, "last_indexed": now - 3590}
    observation, evaluation = observe()
    metadata = observation.metadata
    assert metadata["status"].value == "answering"
    assert (metadata["files"].value, metadata["chunks"].value, metadata["errors"].value) == (3, 12, 0)
    indexed = datetime.fromtimestamp(now - 3590, timezone.utc)
    assert observation.data_version == f"{indexed.isoformat()}:12"  # the service's own index, versioned
    assert metadata["dagster/last_updated_timestamp"].value == pytest.approx(now - 3590, abs=1e-3)
    assert evaluation.passed and evaluation.metadata["index_lag_s"].value < 0
    # nothing new indexed: the same version on the next observation; new chunks: a new one
    assert observe()[0].data_version == observation.data_version
    service.stats = {**service.stats, "chunks": 13, "last_indexed": now - 10}
    assert observe()[0].data_version != observation.data_version


def test_a_document_newer_than_the_index_by_over_a_minute_fails_the_check(docs, service):
    now = time.time()
    service.stats = {"files": 3, "chunks": 12, "errors": [{"path": "x.pdf"}],
                     "last_modified": now - 3600, "last_indexed": now - 3590}
    (docs / "novo.md").write_text("# Novo documento")
    old = now - 300  # written five minutes ago, never indexed
    os.utime(docs / "novo.md", (old, old))
    observation, evaluation = observe()
    assert observation.metadata["errors"].value == 1
    assert not evaluation.passed and evaluation.metadata["index_lag_s"].value == pytest.approx(3290, abs=5)


def test_a_stale_index_by_the_services_own_clock_fails(docs, service):
    # relative to now and newer than the folder's files (an hour old), so the lag is the
    # service's own 300 s on any day
    now = int(time.time())
    service.stats = {"files": 3, "chunks": 12, "errors": 0, "last_modified": now, "last_indexed": now - 300}
    observation, evaluation = observe()
    assert observation.metadata["index_lag_s"].value == 300
    assert not evaluation.passed and evaluation.metadata["index_lag_s"].value == 300


def test_a_service_that_is_down_is_observed_as_such_and_fails_the_check(docs, monkeypatch):
    server = StatisticsServer()
    url = server.url
    server.stop()
    monkeypatch.setenv("YSH_RAG_URL", url)
    observation, evaluation = observe()  # the observation records the outage; the check judges it
    assert observation.metadata["status"].value == "not answering" and observation.data_version is None
    assert "ConnectError" in observation.metadata["error"].value
    assert not evaluation.passed and "no answer" in evaluation.metadata["reason"].value


def test_a_wrong_key_counts_as_down(docs, service, monkeypatch):
    monkeypatch.setenv("YSH_RAG_API_KEY", "wrong")
    service.stats = {"files": 1, "last_indexed": time.time(), "last_modified": time.time()}
    observation, evaluation = observe()
    assert observation.metadata["status"].value == "not answering" and "401" in observation.metadata["error"].value
    assert not evaluation.passed


def test_the_embeddings_are_summarized_from_rag_chunks(warehouse):
    assert not materialize([assets.rag_embeddings], warehouse).success  # empty: fails
    rng = np.random.default_rng(0)
    store = VectorStore(warehouse)
    store.upsert([ChunkVector("/docs/lei.md", i, f"texto {i}", rng.normal(size=384), metadata={"format": "text"})
                  for i in range(3)]
                 + [ChunkVector("/docs/ds.pdf", 0, "pdf", rng.normal(size=384), page=1, metadata={"format": "pdf"}),
                    ChunkVector("catalog://produto/a/b", 0, "produto", rng.normal(size=384))])
    store.close()
    result = materialize([assets.rag_embeddings], warehouse)
    assert result.success
    metadata = result.asset_materializations_for_node("rag_embeddings")[0].metadata
    assert (metadata["chunks"].value, metadata["documents"].value) == (5, 3)
    assert (metadata["model"].value, metadata["dimension"].value) == ("minilm", 384)
    by_format = metadata["by_format"].value
    assert "| text | 3 |" in by_format and "| pdf | 1 |" in by_format and "| catalog | 1 |" in by_format
