"""The pgvector copy of the index (rag_chunks) on a real PostgreSQL: upserts, deletions,
the embed cache a restart loads, SQL KNN, and the Pathway sink that follows a chunk table."""

import uuid

import numpy as np
import pytest
from psycopg import sql

from ysh import db
from ysh.rag.vectors import (
    ChunkVector,
    PgvectorSink,
    VectorStore,
    chunk_id_of,
    content_sha256,
    parse_vector,
    vector_literal,
)

from ..conftest import query, wait_for

pytestmark = pytest.mark.integration


def unit(seed: int, dim: int = 384) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def chunk(path: str, index: int, text: str, seed: int, **kw) -> ChunkVector:
    return ChunkVector(path=path, chunk_index=index, text=text, vector=unit(seed), **kw)


def test_vector_literals_round_trip():
    v = unit(1)
    assert np.allclose(parse_vector(vector_literal(v)), v, atol=1e-6)
    with pytest.raises(ValueError):
        vector_literal([0.0, float("nan")])


def test_upsert_search_delete_round_trip(warehouse):
    store = VectorStore(warehouse, model="minilm")
    chunks = [chunk("docs/lei.md", 0, "Fio B em 2026: 60%", 1, section="Transição", title="Lei 14.300"),
              chunk("docs/lei.md", 1, "Créditos expiram em 60 meses", 2, section="Créditos"),
              chunk("docs/datasheet.pdf", 0, "Eficiência máxima 97,6%", 3, page=1, metadata={"format": "pdf"})]
    assert store.upsert(chunks) == 3
    assert store.count() == 3 and store.count("other-model") == 0

    hits = store.search(unit(3), k=2)
    assert hits[0].path == "docs/datasheet.pdf" and hits[0].page == 1 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].metadata == {"format": "pdf"} and len(hits) == 2

    # unchanged rows are not rewritten; a changed text is
    assert store.upsert(chunks) == 0
    changed = chunk("docs/lei.md", 1, "Créditos expiram após 60 meses", 4, section="Créditos")
    assert store.upsert([changed]) == 1
    (row,) = query(warehouse, "SELECT text, content_sha256, dim, model FROM rag_chunks WHERE chunk_id = %s",
                   (chunk_id_of("docs/lei.md", 1),))
    assert row == ("Créditos expiram após 60 meses", content_sha256("Créditos expiram após 60 meses"), 384, "minilm")

    assert store.delete_paths(["docs/lei.md"]) == 2
    assert store.delete([chunk_id_of("docs/datasheet.pdf", 0)]) == 1
    assert store.count() == 0
    store.close()


def test_the_embed_cache_a_restart_loads(warehouse):
    store = VectorStore(warehouse, model="minilm")
    store.upsert([chunk("a.md", 0, "texto A", 1), chunk("b.md", 0, "texto A", 1), chunk("b.md", 1, "texto B", 2)])
    store.upsert([chunk("c.md", 0, "texto C", 3)], model="st:other")
    cache = store.load_cache("minilm")
    assert set(cache) == {content_sha256("texto A"), content_sha256("texto B")}
    assert np.allclose(cache[content_sha256("texto B")], unit(2), atol=1e-6)
    assert set(store.load_cache("st:other")) == {content_sha256("texto C")}


def test_another_dimension_is_stored_and_searched_exactly(warehouse):
    store = VectorStore(warehouse, model="st:mpnet")
    store.upsert([ChunkVector("x.md", 0, "x", unit(5, 768)), ChunkVector("y.md", 0, "y", unit(6, 768))])
    assert store.search(unit(6, 768), k=1)[0].path == "y.md"
    assert store.search(unit(6), k=1) == []  # no 384-dimension vectors of that model


def test_the_hnsw_index_serves_the_knn_query(warehouse):
    store = VectorStore(warehouse)
    store.upsert([chunk(f"d{i}.md", 0, f"t{i}", i) for i in range(50)])
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT chunk_id FROM rag_chunks WHERE dim = 384 AND model = 'minilm' "
            "ORDER BY embedding::public.vector(384) <=> %s::public.vector(384) LIMIT 5",
            (vector_literal(unit(1)),)).fetchall())
    assert "rag_chunks_embedding_384_hnsw" in plan


def test_two_schemas_in_one_database_each_have_their_table(warehouse, pg_server):
    other = f"t_{uuid.uuid4().hex[:10]}"
    db.migrate(pg_server.dsn(), other)
    try:
        first, second = VectorStore(warehouse), VectorStore(db.Warehouse(pg_server.dsn(), other))
        first.upsert([chunk("a.md", 0, "só no primeiro", 1)])
        second.upsert([chunk("b.md", 0, "só no segundo", 2), chunk("c.md", 0, "também", 3)])
        assert (first.count(), second.count()) == (1, 2)
        assert second.search(unit(1), k=3)[0].path in {"b.md", "c.md"}
        (ext_schema,) = query(warehouse, "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                                         "ON n.oid = e.extnamespace WHERE e.extname = 'vector'")[0]
        assert ext_schema == "public"
        first.close()
        second.close()
    finally:
        import psycopg

        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(other)))


class _Json:
    """Stands in for pw.Json in the sink's rows."""

    def __init__(self, value):
        self.value = value


def test_the_sink_applies_a_modified_document_as_upserts_and_deletions(warehouse):
    store = VectorStore(warehouse)
    vectors = {"um": unit(1), "dois": unit(2), "três": unit(3), "dois v2": unit(4)}
    sink = PgvectorSink(store, vectors.get, reconcile_after_s=None)

    def row(text, index, path="doc.md"):
        return {"text": text, "metadata": _Json({"path": path, "chunk_index": index, "section": "S", "_file_id": "x"})}

    for i, text in enumerate(["um", "dois", "três"]):
        sink.on_change(None, row(text, i), 2, True)
    sink.on_time_end(2)
    assert store.count() == 3 and sink.upserted == 3
    # the file is rewritten with two chunks: retractions of all three, additions of two
    # (order inside a batch is arbitrary: an addition may come before its retraction)
    sink.on_change(None, row("dois v2", 1), 4, True)
    for i, text in enumerate(["um", "dois", "três"]):
        sink.on_change(None, row(text, i), 4, False)
    sink.on_change(None, row("um", 0), 4, True)
    sink.on_time_end(4)
    rows = query(warehouse, "SELECT chunk_index, text, metadata FROM rag_chunks ORDER BY chunk_index")
    assert [(i, t) for i, t, _ in rows] == [(0, "um"), (1, "dois v2")]
    assert "_file_id" not in rows[0][2] and rows[0][2]["section"] == "S"
    sink.stop()


def test_the_sink_waits_for_a_vector_and_reconciles_after_a_restart(warehouse):
    store = VectorStore(warehouse)
    store.upsert([chunk("gone.md", 0, "removido com o serviço parado", 9)])
    known: dict = {}
    sink = PgvectorSink(store, known.get, reconcile_after_s=0.0, retry_s=0.1)
    sink.on_change(None, {"text": "novo", "metadata": _Json({"path": "new.md", "chunk_index": 0})}, 2, True)
    sink.on_time_end(2)
    assert sink.pending == 1
    assert query(warehouse, "SELECT path FROM rag_chunks") == []  # reconciled: gone.md removed
    known["novo"] = unit(7)
    wait_for(lambda: query(warehouse, "SELECT path FROM rag_chunks"), timeout=10, what="the pending chunk")
    assert sink.pending == 0
    sink.stop()


def test_the_sink_follows_a_pathway_table(warehouse):
    import pathway as pw

    from ysh.pw_runtime import fresh_graph

    fresh_graph()

    class Chunk(pw.Schema):
        text: str
        metadata: pw.Json

    table = pw.debug.table_from_rows(Chunk, [("alfa", pw.Json({"path": "p.md", "chunk_index": 0})),
                                             ("beta", pw.Json({"path": "p.md", "chunk_index": 1, "page": 2}))])
    from ysh.rag.vectors import attach_pgvector_sink

    vectors = {"alfa": unit(1), "beta": unit(2)}
    sink = attach_pgvector_sink(table, VectorStore(warehouse), vectors.get, reconcile_after_s=None)
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    assert query(warehouse, "SELECT chunk_index, page FROM rag_chunks ORDER BY 1") == [(0, None), (1, 2)]
    assert sink.upserted == 2


def test_no_reconcile_before_the_index_delivered_anything_nor_across_models(warehouse):
    """A service still embedding its first batch holds no chunk yet: reconciling then
    would wipe the table. And another model's rows are never touched."""
    store = VectorStore(warehouse)
    store.upsert([chunk("kept.md", 0, "ainda indexando", 3)])
    VectorStore(warehouse, model="st:outro").upsert([chunk("other.md", 0, "outro modelo", 4)])
    sink = PgvectorSink(store, {}.get, reconcile_after_s=0.0, retry_s=0.05)
    sink.flush()
    sink.flush()
    assert sorted(p for (p,) in query(warehouse, "SELECT path FROM rag_chunks")) == ["kept.md", "other.md"]
    sink.on_change(None, {"text": "novo", "metadata": _Json({"path": "new.md", "chunk_index": 0})}, 2, True)
    sink.on_time_end(2)
    assert sorted(p for (p,) in query(warehouse, "SELECT path FROM rag_chunks")) == ["other.md"]
    sink.stop()
