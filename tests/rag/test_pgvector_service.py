"""``ysh rag serve`` with the durable pgvector copy, against a real PostgreSQL: rag_chunks
follows the index through edits and deletions, and a restart embeds nothing again (the
cache is seeded from the table) and drops the chunks of a document removed meanwhile."""

import shutil

import httpx
import pytest

from ysh.rag.evaluation import start_service

from ..conftest import REPO, query, wait_for

pytestmark = pytest.mark.integration

DOCS = REPO / "data" / "sample" / "docs"
FILES = ("lei_14300_marco_legal_gd.md", "glossario_energia_solar.md", "faq_frete_logistica.html")


def stats(url: str) -> dict:
    return httpx.get(f"{url}/v1/statistics", timeout=30).json()


def stored(warehouse) -> dict[str, int]:
    return dict(query(warehouse, "SELECT path, count(*) FROM rag_chunks GROUP BY path"))


def in_sync(warehouse, url: str):
    """rag_chunks holds exactly the index's chunks (same count, the same files)."""
    s = stats(url)
    rows = stored(warehouse)
    return rows if s["chunks"] and sum(rows.values()) == s["chunks"] else None


def test_rag_chunks_follow_the_index_and_a_restart_embeds_nothing(warehouse, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in FILES:
        shutil.copy2(DOCS / name, docs / name)
    env = {"YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema, "YSH_RAG_PGVECTOR": "true",
           "YSH_RAG_LIVE_RECORDS": "false", "YSH_RAG_PGVECTOR_RECONCILE_S": "2", "YSH_RAG_API_KEY": ""}
    with start_service(docs, env=env, timeout_s=300) as service:
        rows = wait_for(lambda: in_sync(warehouse, service.url), timeout=120, what="rag_chunks = the index")
        assert {p.rsplit("/", 1)[-1] for p in rows} == set(FILES)
        first = stats(service.url)
        assert first["embedded"] == first["chunks"]  # a first start embeds everything
        # an edit: the new text is stored, the chunks stay in sync
        glossary = docs / "glossario_energia_solar.md"
        glossary.write_text(glossary.read_text() + "\n\n## Termo novo\n\nHeliotermia quântica: termo inventado "
                            "para este teste, que precisa aparecer na cópia durável.\n")
        wait_for(lambda: query(warehouse, "SELECT count(*) FROM rag_chunks WHERE text LIKE %s", ("%Heliotermia quântica%",))
                 [0][0] == 1 and in_sync(warehouse, service.url), timeout=60, what="the edit in rag_chunks")
        # a deletion
        (docs / "faq_frete_logistica.html").unlink()
        wait_for(lambda: (rows := in_sync(warehouse, service.url)) and not any("faq_frete" in p for p in rows),
                 timeout=60, what="the deleted document gone from rag_chunks")
        before = stored(warehouse)
    (docs / "lei_14300_marco_legal_gd.md").unlink()  # removed while the service is down
    with start_service(docs, env=env, timeout_s=300) as service:
        wait_for(lambda: (rows := in_sync(warehouse, service.url)) and not any("lei_14300" in p for p in rows),
                 timeout=60, what="the chunks of the document removed while down reconciled away")
        again = stats(service.url)
        assert again["embedding"]["seeded"] == sum(before.values())
        assert again["embedded"] == 0  # every chunk came from the pgvector copy
        assert stored(warehouse) == {p: n for p, n in before.items() if "lei_14300" not in p}
