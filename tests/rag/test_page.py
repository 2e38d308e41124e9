"""The Hélio page (issue 12, part 4) in a real headless Chromium: Debian's ``chromium``
driven by Playwright (never a browser of Playwright's own), against a real ``ysh rag
serve``. Type a question, get an answer with citations, open a citation and read the
passage; index freshness and the failed input are shown.

Skipped, saying why, when Playwright or /usr/bin/chromium is missing (scripts/bootstrap.sh
installs both); with ``HELIO_REQUIRE_BROWSER=1`` (not YSH_*: the test fixtures clear those) a missing browser is a failure instead.
``HELIO_UPDATE_SCREENSHOT=1`` also writes the screenshot to docs/img/helio-page.png."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ysh.rag.evaluation import stop_process

from tests.conftest import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
CHROMIUM = Path(os.environ.get("HELIO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CORPUS = ["lei_14300_marco_legal_gd.md", "guia_conexao_mmgd_prodist_modulo3.pdf"]


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]' / scripts/bootstrap.sh)"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} not found: apt-get install chromium (scripts/bootstrap.sh does it as root)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("HELIO_REQUIRE_BROWSER") == "1":
            pytest.fail(f"HELIO_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def helio(tmp_path_factory, browser):
    from ysh.services.postgres import free_port

    root = tmp_path_factory.mktemp("helio_page")
    docs = root / "docs"
    docs.mkdir()
    for name in CORPUS:
        shutil.copy(SAMPLE / "docs" / name, docs / name)
    shutil.copy(SAMPLE / "docs_broken" / "corrupt.pdf", docs / "corrupt.pdf")
    port = free_port()
    key = secrets.token_urlsafe(32)
    log = root / "serve.log"
    env = {**os.environ, "YSH_HOME": str(root / "home"), "YSH_RAG_API_KEY": key, "YSH_LOG_LEVEL": "INFO",
           "YSH_RAG_LIVE_RECORDS": "false", "YSH_RAG_PGVECTOR": "false"}
    env.pop("YSH_RAG_OPENAI_BASE_URL", None)
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "rag", "serve", "--docs", str(docs),
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            assert proc.poll() is None, f"server died:\n{log.read_text()[-3000:]}"
            try:
                entries = httpx.post(base + "/v1/inputs", json={}, headers={"X-API-Key": key}, timeout=30).json()
            except httpx.HTTPError:
                return False
            return len(entries) == len(CORPUS) + 1 and all(e["status"] != "empty" for e in entries)
        wait_for(ready, timeout=180, what="the documents to be indexed")
        yield base, key
    finally:
        stop_process(proc)


@pytest.fixture
def page(browser, helio):
    base, key = helio
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(base + "/")
    pg.click("#chave-box summary")  # the key field is folded away, as a user finds it
    pg.fill("#chave", key)
    pg.dispatch_event("#chave", "change")
    pg.click("#chave-box summary")
    yield pg
    assert not errors, errors  # no JavaScript error on the page
    assert all(url.startswith(base) for url in requests), [u for u in requests if not u.startswith(base)]
    context.close()


def ask(pg, question: str) -> None:
    pg.fill("#pergunta", question)
    pg.click("#perguntar")
    pg.wait_for_selector("#resposta:not([hidden]) #citacoes li", timeout=60_000)


def test_ask_read_the_answer_and_open_a_citation(page, tmp_path):
    from playwright.sync_api import expect

    assert page.title().startswith("Hélio")
    assert page.inner_text("h1").startswith("Hélio")
    ask(page, "Em quantos meses os créditos de energia expiram?")
    answer = page.inner_text("#resposta-texto")
    assert "60 meses" in answer
    sources = page.locator("#citacoes li")
    assert sources.count() >= 1
    assert "lei_14300_marco_legal_gd.md" in sources.first.inner_text()
    assert "/" + "docs/" not in sources.first.inner_text()  # relative paths, no server path
    # a [n] marker in the answer opens its passage
    marker = page.locator("#resposta-texto button.cit").first
    n = int(marker.get_attribute("data-n"))
    marker.click()
    page.wait_for_selector("#trecho:not([hidden])")
    assert page.inner_text("#trecho-titulo").startswith(f"[{n}]")
    passage = page.inner_text("#trecho-texto")
    assert len(passage) > 40
    # once the whole chunk arrived, the quoted snippet is highlighted inside it
    page.wait_for_selector("#trecho-texto mark", timeout=30_000)
    assert page.inner_text("#trecho-texto mark") in page.inner_text("#trecho-texto")
    # freshness and the failed input from /v1/statistics and /v1/inputs
    # locator waits run in Playwright's own world: a string predicate (wait_for_function) is an
    # eval in the page, which the page's CSP (script-src 'self') refuses on some Chromium builds
    expect(page.locator("#st-trechos")).not_to_have_text("—", timeout=30_000)
    assert int(page.inner_text("#st-arquivos")) == len(CORPUS) + 1
    assert int(page.inner_text("#st-trechos")) > 10
    assert re.search(r"\d{2}/\d{2}/\d{4}.*\(há ", page.inner_text("#st-indexado"))
    failures = page.inner_text("#falhas")
    assert "corrupt.pdf" in failures and "corrupt PDF" in failures
    shot = tmp_path / "helio-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("HELIO_UPDATE_SCREENSHOT") == "1":
        target = ROOT / "docs" / "img" / "helio-page.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target)


def test_a_pdf_citation_shows_its_page(page):
    ask(page, "Quais documentos acompanham a solicitação de acesso na distribuidora?")
    items = [page.locator("#citacoes li").nth(i).inner_text() for i in range(page.locator("#citacoes li").count())]
    pdf = next(i for i, text in enumerate(items) if "guia_conexao_mmgd_prodist_modulo3.pdf" in text)
    assert re.search(r"p\. \d+", items[pdf]), items[pdf]
    page.locator("#citacoes li button").nth(pdf).click()
    page.wait_for_selector("#trecho:not([hidden])")
    assert re.search(r"guia_conexao_mmgd_prodist_modulo3\.pdf — p\. \d+", page.inner_text("#trecho-onde"))
    assert page.inner_text("#trecho-texto").strip()


def test_without_the_key_the_page_says_so(browser, helio):
    from playwright.sync_api import expect

    base, _ = helio
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(base + "/")
    pg.fill("#pergunta", "Qual o prazo dos créditos?")
    pg.click("#perguntar")
    expect(pg.locator("#estado")).to_contain_text("Chave", timeout=30_000)
    assert "incorreta" in pg.inner_text("#estado")
    assert pg.is_visible("#chave")  # the key field opens by itself
    context.close()
