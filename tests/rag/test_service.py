"""The Hélio service end to end: ``ysh rag serve`` in a subprocess over a temporary copy
of sample documents; live add / modify / delete, re-embedding only what changed, error
reporting, auth, limits, answers with real citations and the OpenAPI schema."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import stop_process, wait_for

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
CORPUS = ["lei_14300_marco_legal_gd.md", "guia_conexao_mmgd_prodist_modulo3.pdf",
          "manual_instalacao_sistemas_fv.docx", "bandeiras_tarifarias.html", "fatura_energia_te_tusd_tributos.txt"]
KEY = "chave-de-teste-123"
HEADERS = {"X-API-Key": KEY}


class Helio:
    def __init__(self, base: str, docs: Path, proc: subprocess.Popen, log: Path):
        self.base, self.docs, self.proc, self.log = base, docs, proc, log
        self.client = httpx.Client(base_url=base, headers=HEADERS, timeout=60)

    def post(self, route: str, payload: dict | None = None, **kwargs) -> httpx.Response:
        assert self.proc.poll() is None, f"server died:\n{self.log.read_text()[-3000:]}"
        return self.client.post(route, json=payload or {}, **kwargs)

    def retrieve(self, query: str, k: int = 5, **kwargs) -> list[dict]:
        response = self.post("/v1/retrieve", {"query": query, "k": k, **kwargs})
        response.raise_for_status()
        return response.json()

    def inputs(self) -> dict[str, dict]:
        return {Path(e["path"]).name: e for e in self.post("/v1/inputs").json()}

    def statistics(self) -> dict:
        return self.post("/v1/statistics").json()


@pytest.fixture(scope="module")
def helio(tmp_path_factory):
    from ysh.services.postgres import free_port

    root = tmp_path_factory.mktemp("helio")
    docs = root / "docs"
    docs.mkdir()
    for name in CORPUS:
        shutil.copy(SAMPLE / "docs" / name, docs / name)
    shutil.copy(SAMPLE / "docs_broken" / "corrupt.pdf", docs / "corrupt.pdf")
    shutil.copy(SAMPLE / "docs_adversarial" / "datasheet_modulo_solarmax_sx600_injecao.md", docs)
    port = free_port()
    log = root / "serve.log"
    env = {**os.environ, "YSH_RAG_API_KEY": KEY, "YSH_RAG_OPENAI_BASE_URL": "", "YSH_LOG_LEVEL": "INFO",
           "YSH_RAG_ANSWER_LOG": str(root / "answers.jsonl")}
    env.pop("YSH_RAG_OPENAI_BASE_URL")
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "rag", "serve", "--docs", str(docs),
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    server = Helio(f"http://127.0.0.1:{port}", docs, proc, log)
    try:
        def ready():
            assert proc.poll() is None, f"server died:\n{log.read_text()[-3000:]}"
            try:
                files = server.inputs()
            except httpx.HTTPError:
                return False
            return len(files) == len(CORPUS) + 2 and all(e["status"] != "empty" for e in files.values()) and files
        wait_for(ready, timeout=180, what="the sample documents to be indexed")
        yield server
    finally:
        server.client.close()
        stop_process(proc, 15, signal.SIGTERM)


def top_files(hits: list[dict], n: int = 3) -> list[str]:
    return [Path(h["metadata"]["path"]).name for h in hits[:n]]


@pytest.mark.parametrize("question, expected", [
    ("Qual o percentual do Fio B pago em 2026?", "lei_14300_marco_legal_gd.md"),
    ("Quais documentos acompanham a solicitação de acesso na distribuidora?", "guia_conexao_mmgd_prodist_modulo3.pdf"),
    ("aterramento das estruturas metálicas dos módulos", "manual_instalacao_sistemas_fv.docx"),
    ("quanto custa a bandeira vermelha patamar 2", "bandeiras_tarifarias.html"),
])
def test_retrieval_finds_the_document_for_portuguese_questions(helio, question, expected):
    hits = helio.retrieve(question, k=5)
    assert expected in top_files(hits), top_files(hits, 5)
    first = hits[0]
    assert first["score"] > 0
    assert {"path", "title", "modified_at", "content_sha256", "chunk_index"} <= set(first["metadata"])


@pytest.mark.parametrize("retriever", ["dense", "bm25", "hybrid"])
def test_each_retriever_answers_and_respects_k(helio, retriever):
    hits = helio.retrieve("transicao do fio b", k=2, retriever=retriever)
    assert 1 <= len(hits) <= 2
    if retriever != "dense":
        assert top_files(hits, 1) == ["lei_14300_marco_legal_gd.md"]


def test_filters_restrict_the_documents(helio):
    hits = helio.retrieve("tarifa", k=10, filepath_globpattern="**/*.html")
    assert hits and {Path(h["metadata"]["path"]).suffix for h in hits} == {".html"}


def test_added_modified_and_deleted_documents_are_reflected(helio):
    path = helio.docs / "novo_documento.md"
    path.write_text("# Documento novo\n\nO inversor zorblaxiano tem proteção anti-ilhamento.\n", encoding="utf-8")
    wait_for(lambda: "novo_documento.md" in top_files(helio.retrieve("zorblaxiano", k=3), 1), 60, "the new file")
    path.write_text("# Documento novo\n\nO inversor quuxiferiano substitui o anterior.\n", encoding="utf-8")

    def modified():
        hits = helio.retrieve("quuxiferiano zorblaxiano", k=10)
        texts = " ".join(h["text"] for h in hits)
        return "quuxiferiano" in texts and "zorblaxiano" not in texts
    wait_for(modified, 60, "the modified text")
    path.unlink()
    wait_for(lambda: all("quuxiferiano" not in h["text"] for h in helio.retrieve("quuxiferiano", k=10)), 60,
             "the deleted file to disappear")
    assert "novo_documento.md" not in helio.inputs()


def test_editing_one_section_re_embeds_only_that_chunk(helio):
    path = helio.docs / "secoes.md"
    sections = [f"## Seção {i}\n\n" + f"Regra {i} da compensação de energia para geração distribuída. " * 10
                for i in range(6)]
    path.write_text("# Documento com seções\n\n" + "\n\n".join(sections), encoding="utf-8")
    entry = wait_for(lambda: helio.inputs().get("secoes.md"), 60, "secoes.md indexed")
    assert entry["status"] == "indexed" and entry["chunks"] >= 6
    before = helio.statistics()
    sections[3] = "## Seção 3\n\nTexto revisado com o termo flibbertigibbet."
    path.write_text("# Documento com seções\n\n" + "\n\n".join(sections), encoding="utf-8")
    wait_for(lambda: any("flibbertigibbet" in h["text"] for h in helio.retrieve("flibbertigibbet", k=3)), 60,
             "the edited section")
    stats = helio.statistics()
    assert helio.inputs()["secoes.md"]["chunks"] >= 6
    # Only the edited section goes through the model. How many unchanged chunks are looked up
    # in the cache again depends on how the engine nets the old and new chunk rows (a chunk
    # whose index and text did not move may never be recomputed), so the count of cache hits
    # is not an invariant; the vectors held are: one new vector, every other one reused.
    assert stats["embedded"] - before["embedded"] == 1
    assert stats["embedding"]["cached_vectors"] - before["embedding"]["cached_vectors"] == 1
    path.unlink()


def test_corrupt_pdf_is_reported_and_the_service_keeps_answering(helio):
    entry = helio.inputs()["corrupt.pdf"]
    assert entry["status"] == "error" and "corrupt PDF" in entry["reason"] and entry["chunks"] == 0
    assert helio.statistics()["errors"] >= 1
    assert helio.retrieve("bandeira tarifária", k=1)


def test_statistics_count_files_and_chunks(helio):
    stats = helio.statistics()
    assert stats["files"] >= len(CORPUS) + 2
    assert stats["chunks"] >= 40
    assert stats["last_indexed"] >= stats["last_modified"] > 0


def test_api_key_is_required(helio):
    payload = {"query": "fio b", "k": 1}
    assert httpx.post(helio.base + "/v1/retrieve", json=payload).status_code == 401
    assert httpx.post(helio.base + "/v1/retrieve", json=payload, headers={"X-API-Key": "errada"}).status_code == 401
    assert httpx.post(helio.base + "/v1/retrieve", json=payload, headers=HEADERS).status_code == 200
    log = wait_for(lambda: (text := helio.log.read_text()) and "/v1/retrieve" in text and text, timeout=10,
                   what="the access log")
    assert KEY not in log  # Pathway's access log prints the request headers: the key is redacted


def test_oversized_body_is_refused(helio):
    response = helio.post("/v1/retrieve", {"query": "x" * 100_000, "k": 1})
    assert response.status_code == 413


@pytest.mark.parametrize("payload, reason", [
    ({"k": 3}, "`query` is required"),
    ({"query": "   ", "k": 3}, "`query` is required"),
    ({"query": "fio b", "k": 0}, "between 1 and 50"),
    ({"query": "fio b", "k": 51}, "between 1 and 50"),
    ({"query": "fio b", "retriever": "sparse"}, "`retriever` must be one of"),
])
def test_bad_retrieve_requests_get_a_400_with_the_reason(helio, payload, reason):
    response = helio.post("/v1/retrieve", payload)
    assert response.status_code == 400 and reason in response.text


def test_answer_citations_point_to_real_chunks(helio):
    response = helio.post("/v2/answer", {"prompt": "Em quantos meses os créditos de energia expiram?"})
    response.raise_for_status()
    result = response.json()
    assert result["mode"] == "extractive" and "60 meses" in result["answer"]
    assert result["citations"]
    inputs = {e["path"]: e for e in helio.post("/v1/inputs").json()}
    for citation in result["citations"]:
        assert inputs[citation["path"]]["status"] == "indexed"
        chunks = helio.retrieve(citation["snippet"], k=50, filepath_globpattern=citation["path"])
        chunk = next(h for h in chunks if h["metadata"]["chunk_index"] == citation["chunk_index"])
        assert citation["snippet"] in chunk["text"]


def test_answers_are_logged_with_their_passages_for_the_ranker_when_asked(helio):
    question = "Qual o prazo para a distribuidora fazer a vistoria?"
    helio.post("/v2/answer", {"prompt": question}).raise_for_status()
    log = helio.docs.parent / "answers.jsonl"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600  # it holds questions and document text
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    row = next(r for r in rows if r["question"] == question)
    assert row["hits"] and all(h["text"] and h["metadata"]["path"] for h in row["hits"])


def test_injected_instructions_do_not_change_the_answer(helio):
    result = helio.post("/v2/answer", {"prompt": "Qual é o preço do módulo SolarMax SX-600?"}).json()
    assert "R$ 1" not in result["answer"]
    assert any(f["path"].endswith("injecao.md") for f in result["flagged"])


def test_bad_answer_request_gets_a_400(helio):
    assert helio.post("/v2/answer", {"prompt": ""}).status_code == 400



def test_schema_lists_the_routes_without_a_key(helio):
    response = httpx.get(helio.base + "/_schema", params={"format": "json"})
    assert response.status_code == 200
    assert {"/v1/retrieve", "/v1/statistics", "/v1/inputs", "/v2/answer"} <= set(response.json()["paths"])
