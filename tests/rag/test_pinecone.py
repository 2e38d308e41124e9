"""The optional Pinecone copy of the index, against a fake Pinecone data plane on loopback
(the REST paths and JSON shapes of Pinecone's API, an Api-Key check, Pinecone's limits:
1000 ids per fetch/delete, 40 KB metadata, no null or nested metadata, 2 MB requests)."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from ysh.rag.pinecone import METADATA_LIMIT_BYTES, PineconeError, PineconeStore
from ysh.settings import Settings
from ysh.rag.vectors import ChunkVector, PgvectorSink, chunk_id_of, content_sha256

API_KEY = "pc-test-key"


# --------------------------------------------------------------------------------------
# the fake data plane
# --------------------------------------------------------------------------------------
class FakePinecone:
    """In-memory namespaces of {id: {"values", "metadata"}} served over HTTP."""

    def __init__(self, page_size: int = 100):
        self.namespaces: dict[str, dict[str, dict]] = {}
        self.page_size = page_size
        self.fail: dict[str, list[int]] = {}  # path → statuses to answer before serving
        self.log: list[tuple[str, str, int]] = []  # (method, path, status)
        self.upsert_sizes: list[int] = []
        self.dimension: int | None = None
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                # logged before the reply: the client may check the log as soon as it has read it
                fake.log.append((self.command, urlsplit(self.path).path, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self):
                url = urlsplit(self.path)
                body = None
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Api-Key") != API_KEY:
                    return self._answer(401, {"code": 16, "message": "Invalid API Key"})
                if len(raw) > 2 * 1024 * 1024:
                    return self._answer(413, {"code": 3, "message": "request too large"})
                with fake.lock:
                    pending = fake.fail.get(url.path)
                    if pending:
                        return self._answer(pending.pop(0), {"code": 8, "message": "slow down"})
                if raw:
                    body = json.loads(raw)
                try:
                    with fake.lock:
                        status, answer = fake.route(self.command, url.path, parse_qs(url.query), body)
                except AssertionError as exc:  # a request Pinecone would reject
                    status, answer = 400, {"code": 3, "message": str(exc)}
                self._answer(status, answer)

            do_GET = do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, path: str, status: int | None = None) -> int:
        return sum(1 for _, p, s in self.log if p == path and (status is None or s == status))

    # ---- the endpoints -----------------------------------------------------------------
    def route(self, method: str, path: str, query: dict, body):
        if (method, path) == ("POST", "/vectors/upsert"):
            vectors, ns = body["vectors"], body.get("namespace", "")
            assert 0 < len(vectors) <= 1000, "1 to 1000 vectors per upsert"
            self.upsert_sizes.append(len(vectors))
            for v in vectors:
                self._check_record(v)
            space = self.namespaces.setdefault(ns, {})
            for v in vectors:
                space[v["id"]] = {"values": list(v["values"]), "metadata": v.get("metadata") or {}}
            return 200, {"upsertedCount": len(vectors)}
        if (method, path) == ("POST", "/vectors/delete"):
            ns = body.get("namespace", "")
            ids = body.get("ids") or []
            assert len(ids) <= 1000, "at most 1000 ids per delete"
            for i in ids:
                self.namespaces.get(ns, {}).pop(i, None)
            if ns in self.namespaces and not self.namespaces[ns]:
                del self.namespaces[ns]
            return 200, {}
        if (method, path) == ("GET", "/vectors/fetch"):
            ids, ns = query.get("ids", []), query.get("namespace", [""])[0]
            assert ids, "ids required"
            assert len(ids) <= 1000, "at most 1000 ids per fetch"
            space = self.namespaces.get(ns, {})
            found = {i: {"id": i, "values": space[i]["values"], "metadata": space[i]["metadata"]}
                     for i in ids if i in space}
            return 200, {"vectors": found, "namespace": ns, "usage": {"readUnits": 1}}
        if (method, path) == ("GET", "/vectors/list"):
            ns = query.get("namespace", [""])[0]
            limit = min(int(query.get("limit", ["100"])[0]), self.page_size)
            prefix = query.get("prefix", [""])[0]
            ids = sorted(i for i in self.namespaces.get(ns, {}) if i.startswith(prefix))
            start = 0
            if "paginationToken" in query:
                start = int(base64.b64decode(query["paginationToken"][0]))
            page = ids[start:start + limit]
            answer = {"vectors": [{"id": i} for i in page], "namespace": ns, "usage": {"readUnits": 1}}
            if start + limit < len(ids):
                answer["pagination"] = {"next": base64.b64encode(str(start + limit).encode()).decode()}
            return 200, answer
        if (method, path) == ("POST", "/query"):
            ns, k = body.get("namespace", ""), int(body["topK"])
            q = np.asarray(body["vector"], dtype=np.float64)
            matches = []
            for i, rec in self.namespaces.get(ns, {}).items():
                v = np.asarray(rec["values"], dtype=np.float64)
                assert v.size == q.size, f"query dimension {q.size} != {v.size}"
                score = float(q @ v / (np.linalg.norm(q) * np.linalg.norm(v)))
                match = {"id": i, "score": score, "values": []}
                if body.get("includeMetadata"):
                    match["metadata"] = rec["metadata"]
                matches.append(match)
            matches.sort(key=lambda m: -m["score"])
            return 200, {"matches": matches[:k], "namespace": ns, "usage": {"readUnits": 5}}
        if (method, path) == ("POST", "/describe_index_stats"):
            return 200, {"namespaces": {ns: {"vectorCount": len(s)} for ns, s in self.namespaces.items() if s},
                         "dimension": self.dimension or 0, "indexFullness": 0.0,
                         "totalVectorCount": sum(len(s) for s in self.namespaces.values()),
                         "metric": "cosine", "vectorType": "dense"}
        return 404, {"code": 5, "message": f"no route {method} {path}"}

    def _check_record(self, v: dict) -> None:
        assert isinstance(v["id"], str) and v["id"], "id must be a non-empty string"
        values = v["values"]
        assert all(isinstance(x, (int, float)) for x in values), "values must be numbers"
        assert any(x != 0 for x in values), "dense vectors need a non-zero value"
        if self.dimension is None:
            self.dimension = len(values)
        assert len(values) == self.dimension, f"dimension {len(values)} != index {self.dimension}"
        md = v.get("metadata") or {}
        assert len(json.dumps(md, ensure_ascii=False).encode()) <= METADATA_LIMIT_BYTES, "metadata over 40 KB"
        for key, value in md.items():
            assert value is not None, f"null metadata value for {key}"
            assert isinstance(value, (str, int, float, bool)) or (
                isinstance(value, list) and all(isinstance(x, str) for x in value)), f"bad metadata {key}"

    def ids(self, ns: str = "minilm") -> set[str]:
        return set(self.namespaces.get(ns, {}))


@pytest.fixture
def fake():
    server = FakePinecone(page_size=7)  # small pages: every listing paginates
    yield server
    server.close()


@pytest.fixture
def store(fake):
    s = PineconeStore(fake.url, API_KEY, model="minilm", backoff_s=0.01, max_retries=3, timeout_s=10)
    yield s
    s.close()


def unit(seed: int, dim: int = 16) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def chunk(path: str, index: int, text: str, seed: int, **kw) -> ChunkVector:
    return ChunkVector(path=path, chunk_index=index, text=text, vector=unit(seed), **kw)


# --------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------
def test_upsert_fetch_count_search_delete_round_trip(fake, store):
    long_text = "Geração distribuída — " * 4000  # ~100 KB of UTF-8: over the metadata limit
    chunks = [chunk("docs/lei.md", 0, "Fio B em 2026: 60%", 1, section="Transição", title="Lei 14.300"),
              chunk("docs/lei.md", 1, long_text, 2, section="Créditos"),
              chunk("docs/datasheet.pdf", 0, "Eficiência máxima 97,6%", 3, page=1,
                    metadata={"format": "pdf", "nested": {"no": 1}, "_file_id": "x", "tags": ["a", "b"]})]
    assert store.upsert(chunks) == 3
    assert store.count() == 3 and store.count("minilm") == 3 and store.count("st:other") == 0

    stored = fake.namespaces["minilm"]
    pdf = stored[chunk_id_of("docs/datasheet.pdf", 0)]["metadata"]
    assert pdf == {"path": "docs/datasheet.pdf", "chunk_index": 0, "page": 1, "format": "pdf", "tags": ["a", "b"],
                   "content_sha256": content_sha256("Eficiência máxima 97,6%"), "model": "minilm",
                   "text": "Eficiência máxima 97,6%"}  # no nulls, no nested objects, no private keys
    long_md = stored[chunk_id_of("docs/lei.md", 1)]["metadata"]
    assert long_md["text_truncated"] is True and long_text.startswith(long_md["text"])
    assert 30_000 < len(json.dumps(long_md, ensure_ascii=False).encode()) <= METADATA_LIMIT_BYTES
    assert long_md["content_sha256"] == content_sha256(long_text)  # the hash of the whole text

    hits = store.search(unit(3), k=2)
    assert len(hits) == 2 and hits[0].path == "docs/datasheet.pdf" and hits[0].page == 1
    assert hits[0].score == pytest.approx(1.0, abs=1e-5) and hits[0].text == "Eficiência máxima 97,6%"
    assert hits[0].chunk_id == chunk_id_of("docs/datasheet.pdf", 0) and hits[0].metadata["format"] == "pdf"
    assert store.search(unit(1), k=1)[0].section == "Transição"

    cache = store.load_cache()
    assert set(cache) == {c.content_sha256 for c in chunks}
    assert np.allclose(cache[content_sha256(long_text)], unit(2), atol=1e-6)
    assert store.load_cache("st:other") == {}

    assert store.delete_paths(["docs/lei.md"]) == 2
    assert fake.ids() == {chunk_id_of("docs/datasheet.pdf", 0)}
    store.delete([chunk_id_of("docs/datasheet.pdf", 0)])
    assert store.count() == 0 and store.stats()["chunks"] == 0


def test_batches_pagination_and_models_as_namespaces(fake, store):
    chunks = [chunk(f"d{i}.md", 0, f"texto {i}", i) for i in range(250)]
    assert store.upsert(chunks) == 250
    assert fake.upsert_sizes == [100, 100, 50]
    store.upsert([chunk("outro.md", 0, "outro modelo", 999)], model="st:outro")
    assert store.count("minilm") == 250 and store.count("st:outro") == 1 and store.count() == 251
    assert [h.path for h in store.search(unit(999), k=5, model="st:outro")] == ["outro.md"]
    assert store.search(unit(999), k=1)[0].path != "outro.md"
    stats = store.stats()
    assert stats["chunks"] == 251 and {m["model"]: m["chunks"] for m in stats["models"]} == {"minilm": 250,
                                                                                            "st:outro": 1}
    before = fake.calls("/vectors/list")
    assert store.chunk_ids() == {c.chunk_id for c in chunks}
    assert fake.calls("/vectors/list") - before == 36  # ceil(250 / 7) pages
    cache = store.load_cache()
    assert len(cache) == 250 and np.allclose(cache[content_sha256("texto 42")], unit(42), atol=1e-6)
    assert set(store.load_cache("st:outro")) == {content_sha256("outro modelo")}


def test_delete_except_reconciles_one_namespace(fake, store):
    chunks = [chunk(f"doc{i}.md", j, f"t{i}.{j}", 10 * i + j) for i in range(6) for j in range(3)]
    store.upsert(chunks)
    store.upsert([chunk("keep-other-model.md", 0, "intocado", 77)], model="st:outro")
    keep = {c.chunk_id for c in chunks if c.path in {"doc1.md", "doc4.md"}}
    assert store.delete_except(keep) == 12
    assert fake.ids() == keep
    assert fake.ids("st:outro") == {chunk_id_of("keep-other-model.md", 0)}
    assert store.delete_except(keep) == 0
    assert store.delete_except(set()) == 6 and fake.ids() == set()


def test_429_and_5xx_are_retried_other_errors_are_clear(fake, store):
    fake.fail["/vectors/upsert"] = [429]
    fake.fail["/describe_index_stats"] = [503, 500]
    assert store.upsert([chunk("a.md", 0, "a", 1)]) == 1
    assert fake.calls("/vectors/upsert", 429) == 1 and fake.calls("/vectors/upsert", 200) == 1
    assert store.count() == 1 and store.retries == 3

    fake.fail["/query"] = [500] * 10  # more than max_retries
    with pytest.raises(PineconeError, match="HTTP 500 after 4 attempts") as err:
        store.search(unit(1))
    assert err.value.status == 500

    wrong = PineconeStore(fake.url, "wrong-key", backoff_s=0.01)
    n = len(fake.log)
    with pytest.raises(PineconeError, match="401.*API key was rejected.*Invalid API Key"):
        wrong.count()
    assert len(fake.log) == n + 1  # not retried
    wrong.close()

    with pytest.raises(PineconeError, match="HTTP 400.*dimension"):
        store.upsert([ChunkVector("b.md", 0, "b", unit(2, dim=8))])


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_from_settings_needs_key_and_host(fake):
    assert PineconeStore.from_settings(settings()) is None
    assert PineconeStore.from_settings(settings(rag_pinecone_api_key=API_KEY,
                                                       rag_pinecone_index_host=None)) is None
    assert PineconeStore.from_settings(settings(rag_pinecone_api_key=None,
                                                       rag_pinecone_index_host="idx.svc.pinecone.io")) is None
    remote = PineconeStore.from_settings(settings(rag_pinecone_api_key=API_KEY,
                                                         rag_pinecone_index_host="idx-1.svc.aped.pinecone.io",
                                                         rag_embedder="st:mpnet"))
    assert remote.base_url == "https://idx-1.svc.aped.pinecone.io" and remote.model == "st:mpnet"
    remote.close()
    local = PineconeStore.from_settings(settings(rag_pinecone_api_key=API_KEY,
                                                        rag_pinecone_index_host=fake.url, rag_embedder="minilm"))
    local.upsert([chunk("x.md", 0, "x", 5)])
    assert local.count("minilm") == 1
    local.close()


# --------------------------------------------------------------------------------------
# the sink of vectors.py writing to Pinecone
# --------------------------------------------------------------------------------------
class _Json:
    """Stands in for pw.Json in the sink's rows."""

    def __init__(self, value):
        self.value = value


def _index_view(fake, ns="minilm") -> dict[str, tuple[str, int, str]]:
    return {i: (r["metadata"]["path"], r["metadata"]["chunk_index"], r["metadata"]["text"])
            for i, r in fake.namespaces.get(ns, {}).items()}


def test_the_sink_keeps_pinecone_equal_to_the_chunks(fake, store):
    vectors = {"um": unit(1), "dois": unit(2), "três": unit(3), "dois v2": unit(4), "outro": unit(5)}
    fake.fail["/vectors/upsert"] = [429]  # the first flush is throttled once, and still lands
    sink = PgvectorSink(store, vectors.get, reconcile_after_s=None)

    def row(text, index, path="doc.md"):
        return {"text": text, "metadata": _Json({"path": path, "chunk_index": index, "section": "S", "_file_id": "x"})}

    for i, text in enumerate(["um", "dois", "três"]):
        sink.on_change(None, row(text, i), 2, True)
    sink.on_change(None, row("outro", 0, "b.md"), 2, True)
    sink.on_time_end(2)
    assert _index_view(fake) == {chunk_id_of("doc.md", 0): ("doc.md", 0, "um"),
                                 chunk_id_of("doc.md", 1): ("doc.md", 1, "dois"),
                                 chunk_id_of("doc.md", 2): ("doc.md", 2, "três"),
                                 chunk_id_of("b.md", 0): ("b.md", 0, "outro")}
    assert sink.upserted == 4 and sink.errors == 0 and fake.calls("/vectors/upsert", 429) == 1

    # doc.md rewritten with two chunks (retractions and additions in any order), b.md removed
    sink.on_change(None, row("dois v2", 1), 4, True)
    for i, text in enumerate(["um", "dois", "três"]):
        sink.on_change(None, row(text, i), 4, False)
    sink.on_change(None, row("um", 0), 4, True)
    sink.on_change(None, row("outro", 0, "b.md"), 4, False)
    sink.on_time_end(4)
    assert _index_view(fake) == {chunk_id_of("doc.md", 0): ("doc.md", 0, "um"),
                                 chunk_id_of("doc.md", 1): ("doc.md", 1, "dois v2")}
    md = fake.namespaces["minilm"][chunk_id_of("doc.md", 1)]["metadata"]
    assert md["section"] == "S" and "_file_id" not in md and md["content_sha256"] == content_sha256("dois v2")
    assert np.allclose(fake.namespaces["minilm"][chunk_id_of("doc.md", 1)]["values"], unit(4), atol=1e-6)
    # what a restart would seed its embedder cache with
    assert set(store.load_cache()) == {content_sha256("um"), content_sha256("dois v2")}
    sink.stop()


def test_the_sink_reconciles_pinecone_after_a_restart(fake, store):
    store.upsert([chunk("gone.md", 0, "removido com o serviço parado", 9),
                  chunk("kept.md", 0, "continua", 8)])
    store.upsert([chunk("other.md", 0, "outro modelo", 7)], model="st:outro")
    sink = PgvectorSink(store, {"continua": unit(8), "novo": unit(6)}.get, reconcile_after_s=0.0, retry_s=0.05)
    sink.on_change(None, {"text": "continua", "metadata": _Json({"path": "kept.md", "chunk_index": 0})}, 2, True)
    sink.on_change(None, {"text": "novo", "metadata": _Json({"path": "new.md", "chunk_index": 0})}, 2, True)
    sink.on_time_end(2)
    assert sink.reconciled and fake.ids() == {chunk_id_of("kept.md", 0), chunk_id_of("new.md", 0)}
    assert fake.ids("st:outro") == {chunk_id_of("other.md", 0)}
    sink.stop()


def test_the_sink_keeps_pending_writes_while_pinecone_is_down(fake, store):
    store.max_retries = 0
    sink = PgvectorSink(store, {"a": unit(1)}.get, reconcile_after_s=None, retry_s=0.05)
    fake.fail["/vectors/upsert"] = [503]
    sink.on_change(None, {"text": "a", "metadata": _Json({"path": "a.md", "chunk_index": 0})}, 2, True)
    sink.on_time_end(2)
    assert sink.errors == 1 and sink.pending == 1 and fake.ids() == set()
    import time

    deadline = time.monotonic() + 10
    while fake.ids() != {chunk_id_of("a.md", 0)} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.ids() == {chunk_id_of("a.md", 0)} and sink.pending == 0
    sink.stop()


def test_attach_pgvector_sink_drives_pinecone_from_a_pathway_table(fake, store):
    import pathway as pw

    from ysh.pw_runtime import fresh_graph
    from ysh.rag.vectors import attach_pgvector_sink

    fresh_graph()

    class Chunk(pw.Schema):
        text: str
        metadata: pw.Json

    table = pw.debug.table_from_rows(Chunk, [("alfa", pw.Json({"path": "p.md", "chunk_index": 0})),
                                             ("beta", pw.Json({"path": "p.md", "chunk_index": 1, "page": 2}))])
    sink = attach_pgvector_sink(table, store, {"alfa": unit(1), "beta": unit(2)}.get, reconcile_after_s=None,
                                name="rag_pinecone")
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    assert _index_view(fake) == {chunk_id_of("p.md", 0): ("p.md", 0, "alfa"),
                                 chunk_id_of("p.md", 1): ("p.md", 1, "beta")}
    assert fake.namespaces["minilm"][chunk_id_of("p.md", 1)]["metadata"]["page"] == 2
    assert sink.upserted == 2
