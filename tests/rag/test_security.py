"""The hardened Hélio API (issue 12, part 5): the pure rules of ``ysh.rag.security`` and a
real ``ysh rag serve`` on loopback (Host/Origin guards, JSON bodies, caps, filter
validation, relative paths, no exception text, short questions in the log, private files),
plus the CLI's refusal to listen beyond loopback without a long key."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ysh.rag.evaluation import stop_process

from tests.conftest import wait_for
from ysh.rag import security
from ysh.rag.security import (check_globpattern, check_metadata_filter, check_question, exposure_problem,
                              host_header_is_local, is_inside_docs_root, is_loopback_host, origin_is_local,
                              relativize_paths)

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


# --------------------------------------------------------------------------------------
# pure rules
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("helio.ysh.com.br", False), ("", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback


def test_exposure_needs_a_long_key_beyond_loopback():
    long_key = secrets.token_urlsafe(32)  # 43 characters
    assert exposure_problem("127.0.0.1", None) is None
    assert exposure_problem("localhost", "curta") is None
    assert "without an API key" in exposure_problem("0.0.0.0", None)
    assert "at least 32" in exposure_problem("0.0.0.0", "x" * 31)
    assert exposure_problem("0.0.0.0", "x" * 32) is None
    assert exposure_problem("10.0.0.5", long_key) is None
    assert exposure_problem("0.0.0.0", None, insecure=True) is None


@pytest.mark.parametrize("header, local", [
    ("127.0.0.1:8765", True), ("localhost:8765", True), ("localhost", True), ("[::1]:8765", True),
    ("evil.example:8765", False), ("evil.example", False), ("127.0.0.1.nip.io:8765", False), (None, False),
    ("", False),
])
def test_host_header(header, local):
    assert host_header_is_local(header) is local


@pytest.mark.parametrize("origin, local", [
    (None, True), ("http://127.0.0.1:8765", True), ("http://localhost:3000", True), ("http://[::1]:8765", True),
    ("https://evil.example", False), ("null", False), ("file://", False), ("http://localhost.evil.example", False),
])
def test_origin(origin, local):
    assert origin_is_local(origin) is local


def test_question_cap():
    assert check_question("x" * 2000) is None
    assert "at most 2000" in check_question("x" * 2001)


@pytest.mark.parametrize("expression", [
    "contains(path, `lei`)", "format == `pdf`", "page > `3` && starts_with(title, `Lei`)",
    "globmatch(`**/*.md`, path)",
])
def test_valid_metadata_filters(expression):
    assert check_metadata_filter(expression) is None


@pytest.mark.parametrize("expression, reason", [
    ("contains(path, ", "not a valid JMESPath"),
    ("path ==", "not a valid JMESPath"),
    ("[?", "not a valid JMESPath"),
    ("rm_rf(path)", "unknown function"),
    ("x" * 1001, "at most 1000"),
    ("path == `a`\n", "control characters"),
])
def test_invalid_metadata_filters(expression, reason):
    assert reason in check_metadata_filter(expression)


@pytest.mark.parametrize("pattern, ok", [
    ("**/*.pdf", True), ("lei_14300_marco_legal_gd.md", True), ("manuais/inversor-[ab]*.docx", True),
    ("relatório {2025,2026}/*.md", True), ("a') || true || ('", False), ("a\\b", False), ("x" * 257, False),
    ("a\x00b", False), ("[abc", False), ("`x`", False),
])
def test_globpatterns(pattern, ok):
    assert (check_globpattern(pattern) is None) is ok


def test_anchor_glob():
    assert security.anchor_glob("lei.md", "/srv/docs") == "/srv/docs/lei.md"
    assert security.anchor_glob("**/*.md", "/srv/docs") == "**/*.md"
    assert security.anchor_glob("/srv/docs/*.md", "/srv/docs") == "/srv/docs/*.md"
    assert security.anchor_glob("catalog://produto/*", "/srv/docs") == "catalog://produto/*"
    assert security.anchor_glob("lei.md", None) == "lei.md"


def test_is_inside_docs_root_follows_symlinks(tmp_path):
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "segredos"
    outside.mkdir()
    (outside / "senha.txt").write_text("x")
    (root / "lei.md").write_text("x")
    (root / "sub" / "manual.md").write_text("x")
    (root / "link_dentro.md").symlink_to(root / "sub" / "manual.md")
    (root / "link_fora.txt").symlink_to(outside / "senha.txt")
    (root / "pasta_fora").symlink_to(outside, target_is_directory=True)
    (root / "link_relativo").symlink_to(Path("..") / "segredos" / "senha.txt")
    assert is_inside_docs_root(root / "lei.md", root)
    assert is_inside_docs_root(root / "sub" / "manual.md", root)
    assert is_inside_docs_root(root / "link_dentro.md", root)
    assert is_inside_docs_root(root, root)
    assert not is_inside_docs_root(root / "link_fora.txt", root)
    assert not is_inside_docs_root(root / "pasta_fora" / "senha.txt", root)
    assert not is_inside_docs_root(root / "link_relativo", root)
    assert not is_inside_docs_root(root / ".." / "segredos" / "senha.txt", root)
    assert not is_inside_docs_root(tmp_path / "docs_irmao" / "x.md", root)  # a sibling sharing the prefix
    # the root itself reached through a symlink
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert is_inside_docs_root(alias / "lei.md", root)
    assert is_inside_docs_root(root / "lei.md", str(alias))


def _folder_with_links(tmp_path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    outside = tmp_path / "fora"
    outside.mkdir()
    (outside / "senha.txt").write_text("segredo de fora")
    (root / "lei.md").write_text("dentro")
    (root / "link_fora.txt").symlink_to(outside / "senha.txt")
    (root / "pasta_fora").symlink_to(outside, target_is_directory=True)
    (root / "link_dentro.md").symlink_to(root / "lei.md")
    return root


def test_keep_inside_docs_root_drops_links_out_of_the_folder(tmp_path):
    """Pathway's folder reader follows symlinks; the filter keeps what resolves inside."""
    import pathway as pw

    from ysh.pw_runtime import fresh_graph
    from ysh.rag.security import keep_inside_docs_root

    root = _folder_with_links(tmp_path)
    fresh_graph()
    raw = pw.io.fs.read(str(root), format="binary", mode="static", with_metadata=True)
    kept = keep_inside_docs_root(raw, root)
    paths = pw.debug.table_to_pandas(kept.select(path=pw.this._metadata["path"].as_str()))["path"]
    assert sorted(Path(p).name for p in paths) == ["lei.md", "link_dentro.md"]
    fresh_graph()
    every = pw.debug.table_to_pandas(
        pw.io.fs.read(str(root), format="binary", mode="static", with_metadata=True)
        .select(path=pw.this._metadata["path"].as_str()))["path"]
    assert {Path(p).name for p in every} >= {"link_fora.txt", "senha.txt"}  # what the filter removes
    fresh_graph()


STREAMING_READER = """
import sys, pathway as pw
from ysh.rag.security import keep_inside_docs_root
docs = pw.io.fs.read(sys.argv[1], format="binary", mode="streaming", with_metadata=True, autocommit_duration_ms=50)
kept = keep_inside_docs_root(docs, sys.argv[1])
pw.io.subscribe(kept, on_change=lambda key, row, time, is_addition: print(
    ("+" if is_addition else "-"), row["_metadata"]["path"], flush=True))
pw.run(monitoring_level=pw.MonitoringLevel.NONE)
"""


@pytest.mark.integration
def test_keep_inside_docs_root_while_streaming(tmp_path):
    """Links added and removed while the folder is followed: outside ones never enter, and
    deleting them (or an admitted file) does not upset the engine."""
    root = _folder_with_links(tmp_path)
    out = tmp_path / "changes.txt"
    with out.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", STREAMING_READER, str(root)], stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        def lines():
            assert proc.poll() is None, out.read_text()
            return [line for line in out.read_text().splitlines() if line[:1] in "+-"]
        wait_for(lambda: len(lines()) >= 2, 60, "the first documents")
        (root / "link_fora.txt").unlink()
        (root / "outro_fora.md").symlink_to(tmp_path / "fora" / "senha.txt")
        (root / "novo.md").write_text("novo")
        wait_for(lambda: any("novo.md" in line for line in lines()), 30, "the new document")
        (root / "lei.md").unlink()
        wait_for(lambda: any(line.startswith("-") and line.endswith('lei.md"') for line in lines()), 30,
                 "the deletion")
        seen = lines()
        assert not [line for line in seen if "fora" in line], seen
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(15)


def test_relativize_paths():
    root = "/srv/ysh/docs"
    value = {"path": "/srv/ysh/docs/sub/lei.md", "reason": "cannot read /srv/ysh/docs/x.pdf: corrupt",
             "uri": "catalog://produto/jinko", "list": ["/srv/ysh/docs/a.md", 3, None], "root": "/srv/ysh/docs",
             "other": "/srv/ysh/docs_old/a.md"}
    out = relativize_paths(value, root)
    assert out == {"path": "sub/lei.md", "reason": "cannot read x.pdf: corrupt",
                   "uri": "catalog://produto/jinko", "list": ["a.md", 3, None], "root": ".",
                   "other": "/srv/ysh/docs_old/a.md"}


def test_guard_never_returns_exception_text(caplog):
    """The real guard middleware on a real aiohttp server whose handler raises."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from ysh.rag.server import guard_middleware

    async def boom(request):
        raise RuntimeError("segredo interno /srv/ysh/docs/x.pdf")

    async def run():
        app = web.Application(middlewares=[guard_middleware(None, 65536, local_only=True)])
        app.router.add_post("/v1/retrieve", boom)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await client.post("/v1/retrieve", json={"query": "x"})
            return response.status, await response.text()

    with caplog.at_level(logging.ERROR, logger="ysh.rag.server"):
        status, text = asyncio.run(run())
    assert status == 500 and "internal error" in text
    assert "segredo" not in text and "RuntimeError" not in text and "/srv" not in text
    assert "segredo interno" in caplog.text  # logged for the operator


# --------------------------------------------------------------------------------------
# ysh rag serve: refusal beyond loopback
# --------------------------------------------------------------------------------------


def _serve(args, env_extra, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != "YSH_RAG_API_KEY"}
    env.update(env_extra)
    result = subprocess.run([sys.executable, "-m", "ysh.cli", "rag", "serve", *args], env=env, capture_output=True,
                            text=True, timeout=timeout)
    # the console wraps long lines (a long temporary path moves the break): compare words
    result.stdout = " ".join(result.stdout.split())
    return result


def test_serve_refuses_a_public_host_without_a_long_key(tmp_path):
    from ysh.services.postgres import free_port

    port = str(free_port())
    result = _serve(["--host", "0.0.0.0", "--port", port, "--docs", str(tmp_path)], {})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "without an API key" in result.stdout and "--insecure" in result.stdout
    result = _serve(["--host", "0.0.0.0", "--port", port, "--docs", str(tmp_path)], {"YSH_RAG_API_KEY": "k" * 31})
    assert result.returncode == 2 and "at least 32" in result.stdout
    # past the rule (--insecure, or a long key) the command goes on: a file as --docs is its next error
    not_a_folder = tmp_path / "arquivo.txt"
    not_a_folder.write_text("x")
    result = _serve(["--host", "0.0.0.0", "--port", port, "--docs", str(not_a_folder), "--insecure"], {})
    assert result.returncode == 2 and "is not a folder" in result.stdout and "without an API key" not in result.stdout
    result = _serve(["--host", "0.0.0.0", "--port", port, "--docs", str(not_a_folder)],
                    {"YSH_RAG_API_KEY": secrets.token_urlsafe(32)})
    assert result.returncode == 2 and "is not a folder" in result.stdout


# --------------------------------------------------------------------------------------
# a real service on loopback
# --------------------------------------------------------------------------------------


class Service:
    def __init__(self, port: int, key: str, home: Path, docs: Path, proc: subprocess.Popen, log: Path):
        self.port, self.key, self.home, self.docs, self.proc, self.log = port, key, home, docs, proc, log
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"X-API-Key": key}

    def post(self, route: str, payload=None, headers=None, **kwargs) -> httpx.Response:
        assert self.proc.poll() is None, f"server died:\n{self.log.read_text()[-3000:]}"
        return httpx.post(self.base + route, json=payload if payload is not None else {},
                          headers={**self.headers, **(headers or {})}, timeout=60, **kwargs)

    def raw(self, route: str, content: bytes, content_type: str | None) -> httpx.Response:
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        return httpx.post(self.base + route, content=content, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """``ysh rag serve`` with a fresh home (the documents folder is the default HOME/docs, so
    the service creates it), a generated key, INFO logs to a file."""
    from ysh.services.postgres import free_port

    root = tmp_path_factory.mktemp("helio_sec")
    home = root / "home"  # does not exist yet: the service creates home and home/docs
    port = free_port()
    key = secrets.token_urlsafe(32)
    log = root / "serve.log"
    env = {**os.environ, "YSH_HOME": str(home), "YSH_RAG_API_KEY": key, "YSH_LOG_LEVEL": "INFO",
           "YSH_RAG_LIVE_RECORDS": "false", "YSH_RAG_PGVECTOR": "false"}
    for name in ("YSH_RAG_OPENAI_BASE_URL", "YSH_RAG_DOCS_DIR", "YSH_RAG_SOURCE"):
        env.pop(name, None)
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "rag", "serve", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    docs = home / "docs"
    server = Service(port, key, home, docs, proc, log)
    try:
        wait_for(lambda: proc.poll() is None and docs.is_dir() or (proc.poll() is not None and "died"), 60,
                 "the documents folder")
        assert proc.poll() is None, log.read_text()[-3000:]
        created = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p != log)
        shutil.copy(SAMPLE / "docs" / "lei_14300_marco_legal_gd.md", docs)
        shutil.copy(SAMPLE / "docs_broken" / "corrupt.pdf", docs)

        def ready():
            assert proc.poll() is None, f"server died:\n{log.read_text()[-3000:]}"
            try:
                entries = server.post("/v1/inputs").json()
            except httpx.HTTPError:
                return False
            return len(entries) == 2 and all(e["status"] != "empty" for e in entries)
        wait_for(ready, timeout=180, what="the documents to be indexed")
        server.created_before_docs = created
        yield server
    finally:
        stop_process(proc)


@pytest.mark.integration
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}", "192.168.0.7:{port}"])
def test_a_foreign_host_header_is_refused(service, host):
    response = service.post("/v1/statistics", headers={"Host": host.format(port=service.port)})
    assert response.status_code == 403
    assert "DNS rebinding" in response.json()["error"]
    page = httpx.get(service.base + "/", headers={"Host": host.format(port=service.port)})
    assert page.status_code == 403


@pytest.mark.integration
@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "localhost"])
def test_loopback_host_headers_are_accepted(service, host):
    assert service.post("/v1/statistics", headers={"Host": host.format(port=service.port)}).status_code == 200


@pytest.mark.integration
@pytest.mark.parametrize("origin, status", [
    ("https://evil.example", 403), ("null", 403), ("http://localhost.evil.example:{port}", 403),
    ("http://127.0.0.1:{port}", 200), ("http://localhost:{port}", 200),
])
def test_cross_site_origins_are_refused(service, origin, status):
    response = service.post("/v1/retrieve", {"query": "fio b", "k": 1},
                            headers={"Origin": origin.format(port=service.port)})
    assert response.status_code == status, response.text
    if status == 403:
        assert "Origin" in response.json()["error"]


@pytest.mark.integration
@pytest.mark.parametrize("content, content_type, status, reason", [
    (b'{"query": "fio b"}', "text/plain", 415, "application/json"),
    (b"query=fio+b", "application/x-www-form-urlencoded", 415, "application/json"),
    (b'{"query": "fio b"}', None, 415, "application/json"),
    (b'{"query": "fio b"', "application/json", 400, "not valid JSON"),
    (b"\xff\xfe\x00", "application/json", 400, "not valid JSON"),
    (b'["fio b"]', "application/json", 400, "JSON object"),
    (b'"fio b"', "application/json", 400, "JSON object"),
])
def test_bodies_that_are_not_a_json_object_get_400_or_415(service, content, content_type, status, reason):
    for route in ("/v1/retrieve", "/v2/answer", "/v1/statistics"):
        response = service.raw(route, content, content_type)
        assert response.status_code == status, (route, response.text)
        assert reason in response.json()["error"]


@pytest.mark.integration
def test_a_json_body_still_reaches_the_route(service):
    response = service.raw("/v1/retrieve", '{"query": "créditos de energia", "k": 2}'.encode(),
                           "application/json; charset=utf-8")
    assert response.status_code == 200 and 1 <= len(response.json()) <= 2


@pytest.mark.integration
def test_question_cap(service):
    assert service.post("/v1/retrieve", {"query": "fio b " * 333 + "xy", "k": 1}).status_code == 200  # 2000
    response = service.post("/v1/retrieve", {"query": "x" * 2001, "k": 1})
    assert response.status_code == 400 and "at most 2000" in response.json()["error"]
    response = service.post("/v2/answer", {"prompt": "y" * 2001})
    assert response.status_code == 400 and "at most 2000" in response.json()["error"]


@pytest.mark.integration
@pytest.mark.parametrize("payload, reason", [
    ({"metadata_filter": "contains(path, "}, "not a valid JMESPath"),
    ({"metadata_filter": "[?"}, "not a valid JMESPath"),
    ({"metadata_filter": "nope(path)"}, "unknown function"),
    ({"metadata_filter": 7}, "must be a string"),
    ({"filepath_globpattern": "x') || true || ('"}, "filepath_globpattern"),
    ({"filepath_globpattern": "a" * 300}, "at most 256"),
    ({"filepath_globpattern": "[abc"}, "unbalanced"),
])
def test_bad_filters_get_a_400_with_the_reason(service, payload, reason):
    for route, question in (("/v1/retrieve", "query"), ("/v2/answer", "prompt")):
        response = service.post(route, {question: "créditos", "k": 2, **payload})
        assert response.status_code == 400, (route, response.text)
        assert reason in response.json()["error"]
    assert service.post("/v1/statistics").status_code == 200  # the engine is unharmed


@pytest.mark.integration
def test_good_filters_still_work(service):
    hits = service.post("/v1/retrieve", {"query": "créditos", "k": 3, "metadata_filter": "contains(path, `lei`)"}).json()
    assert hits and all("lei" in h["metadata"]["path"] for h in hits)
    hits = service.post("/v1/retrieve", {"query": "créditos", "k": 3,
                                         "filepath_globpattern": "lei_14300_marco_legal_gd.md"}).json()
    assert hits and {h["metadata"]["path"] for h in hits} == {"lei_14300_marco_legal_gd.md"}


@pytest.mark.integration
def test_no_absolute_server_paths_in_responses(service):
    root = str(service.docs.resolve())
    inputs = service.post("/v1/inputs")
    retrieve = service.post("/v1/retrieve", {"query": "créditos de energia", "k": 5})
    answer = service.post("/v2/answer", {"prompt": "Em quantos meses os créditos de energia expiram?"})
    for response in (inputs, retrieve, answer, service.post("/v1/statistics")):
        assert response.status_code == 200
        assert root not in response.text and str(service.home) not in response.text
    assert {e["path"] for e in inputs.json()} == {"corrupt.pdf", "lei_14300_marco_legal_gd.md"}
    assert {c["path"] for c in answer.json()["citations"]} == {"lei_14300_marco_legal_gd.md"}


@pytest.mark.integration
def test_errors_are_json_without_internals(service):
    response = service.post("/v1/nada")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}
    response = httpx.get(service.base + "/v2/answer", headers=service.headers)
    assert response.status_code == 405 and "error" in response.json()


@pytest.mark.integration
def test_page_is_public_and_the_api_is_not(service):
    page = httpx.get(service.base + "/")
    assert page.status_code == 200 and "Hélio" in page.text and "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert httpx.get(service.base + "/static/helio.js").status_code == 200
    assert httpx.get(service.base + "/static/..%2F..%2Fsettings.py").status_code == 404  # a fixed file list
    assert httpx.get(service.base + "/static/../../settings.py").status_code == 401  # /settings.py: not public
    assert httpx.get(service.base + "/static/nada.js").status_code == 404
    assert httpx.post(service.base + "/v1/statistics", json={}).status_code == 401


@pytest.mark.integration
def test_full_questions_are_not_logged_at_info(service):
    question = "Qual o prazo dos créditos do contrato sigiloso zephyrquux?"
    assert service.post("/v2/answer", {"prompt": question}).status_code == 200
    assert service.post("/v1/retrieve", {"query": "zephyrquux confidencial", "k": 1}).status_code == 200
    got = httpx.get(service.base + "/v1/retrieve", params={"query": "zephyrquux pela url", "k": 1},
                    headers=service.headers, timeout=60)
    assert got.status_code == 200
    # the access log has the method, path and status of each request, never a question
    log = wait_for(lambda: (text := service.log.read_text()) and "GET /v1/retrieve 200" in text
                   and "POST /v2/answer 200" in text and text, 10, "the request log")
    assert "zephyrquux" not in log
    assert service.key not in log


@pytest.mark.integration
def test_files_the_service_creates_are_private(service):
    assert service.created_before_docs == ["home", "home/docs"]  # all the service itself wrote
    for folder in (service.home, service.docs):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, oct(folder.stat().st_mode)
    for path in service.home.rglob("*"):
        if path.parent == service.docs and path.name in ("lei_14300_marco_legal_gd.md", "corrupt.pdf"):
            continue  # copied by the test
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
