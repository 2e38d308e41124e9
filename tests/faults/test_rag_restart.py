"""PostgreSQL restarted under ``ysh rag serve`` with its pgvector copy: a document edited
while the server is down and one deleted after it is back; the service keeps answering,
its sink keeps the chunks pending and retries, and rag_chunks ends equal to the index —
no chunk lost, none doubled, none stale."""

from __future__ import annotations

import shutil

import pytest

from ysh.rag.evaluation import start_service

from ..conftest import query, wait_for
from ..rag.test_pgvector_service import DOCS, FILES, in_sync, stats
from .conftest import stop_now

pytestmark = pytest.mark.integration


def test_rag_serve_pgvector_rides_through_a_database_restart(restartable_pg, fault_warehouse, tmp_path):
    warehouse = fault_warehouse
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in FILES:
        shutil.copy2(DOCS / name, docs / name)
    env = {"YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema, "YSH_RAG_PGVECTOR": "true",
           "YSH_RAG_LIVE_RECORDS": "false", "YSH_RAG_PGVECTOR_RECONCILE_S": "2", "YSH_RAG_API_KEY": "",
           "YSH_HOME": str(tmp_path / "home")}
    log = tmp_path / "helio.log"
    with start_service(docs, env=env, timeout_s=300, log_path=log) as service:
        wait_for(lambda: in_sync(warehouse, service.url), timeout=120, what="rag_chunks = the index")
        stop_now(restartable_pg)
        glossary = docs / "glossario_energia_solar.md"  # edited while the server is down
        glossary.write_text(glossary.read_text() + "\n\n## Termo novo\n\nHeliotermia quântica: termo inventado "
                            "para este teste, que precisa aparecer na cópia durável.\n")
        # the sink meets the database down (waited for, not left to timing: on a quiet
        # machine the edit could otherwise be written before the server stops)
        wait_for(lambda: "writing rag_chunks failed" in log.read_text(), timeout=90,
                 what="the pgvector sink to fail on the stopped server")
        assert stats(service.url)["chunks"]  # it kept answering
        restartable_pg.start()
        (docs / "faq_frete_logistica.html").unlink()  # deleted after the start
        rows = wait_for(lambda: (rows := in_sync(warehouse, service.url)) and not any("faq_frete" in p for p in rows)
                        and query(warehouse, "SELECT count(*) FROM rag_chunks WHERE text LIKE %s",
                                  ("%Heliotermia quântica%",))[0][0] == 1 and rows,
                        timeout=90, what="rag_chunks = the index after the restart")
        assert {p.rsplit("/", 1)[-1] for p in rows} == {"lei_14300_marco_legal_gd.md", "glossario_energia_solar.md"}
        final = stats(service.url)
        assert sum(rows.values()) == final["chunks"]
        # none doubled: one row per (document, chunk index)
        assert query(warehouse, "SELECT count(*) FROM rag_chunks") == query(
            warehouse, "SELECT count(DISTINCT (path, chunk_index)) FROM rag_chunks")
