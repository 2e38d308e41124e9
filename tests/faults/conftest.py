"""Fault injection: each test gets a PostgreSQL of its own module that it may stop and
start again (the session's server is shared by every other test and must stay up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ..conftest import REPO, own_pg_server

#: how long the server stays down: the shortest outage that outlasts the first few
#: reconnect attempts (0.5, 1, 2, 4 s of backoff) of every follower
OUTAGE_S = 6.0


@pytest.fixture(scope="module")
def restartable_pg():
    """A PostgreSQL server of this module's own, on a free loopback port (its data outside
    pytest's temporary root, like the session server's)."""
    yield from own_pg_server("ysh-fault-pg-")


@pytest.fixture()
def fault_warehouse(restartable_pg):
    """A fresh, migrated platform schema on the restartable server (started if a test
    left it stopped); its replication slots and publications are dropped afterwards."""
    from ysh import db
    from ysh.db import Warehouse

    restartable_pg.start()
    schema = f"f_{uuid.uuid4().hex[:10]}"
    dsn = restartable_pg.dsn()
    db.migrate(dsn, schema)
    yield Warehouse(dsn, schema)
    restartable_pg.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE %s AND active",
                           (f"ysh_{schema}%",)).fetchone() and time.monotonic() < deadline:
            time.sleep(0.2)
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                     "WHERE slot_name LIKE %s AND NOT active", (f"ysh_{schema}%",))
        for (pub,) in conn.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE %s",
                                   (f"ysh_{schema}%",)).fetchall():
            conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(pub)))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def stop_now(server) -> None:
    """Stop the server at once (``pg_ctl stop -m immediate``: every connection is cut, as
    in a crash, an OOM kill or a lost container; the next start recovers from the WAL)."""
    from ysh.services.postgres import _bin_dir

    result = server._run([str(_bin_dir() / "pg_ctl"), "-D", str(server.data_dir), "-m", "immediate", "-w",
                          "-t", "30", "stop"], timeout=40)
    assert result.returncode == 0, result.stderr
    assert not server.status().running


def restart(server, down_s: float = OUTAGE_S) -> None:
    """Stop the server at once (:func:`stop_now`), keep it down ``down_s`` seconds, start
    it again.

    Not ``-m fast``: a fast shutdown waits until every logical walsender's client has
    confirmed all WAL, and a follower with Pathway persistence confirms a position only
    ``confirm_delay_s`` (60 s) after it handed it over (docs/operations.md, "Faults")."""
    stop_now(server)
    time.sleep(down_s)
    server.start()


class Service:
    """One ``ysh`` command as a real process, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", *argv], env=env, cwd=REPO,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def service_env(warehouse, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YSH_")}
    env.update({"YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema,
                "YSH_HOME": str(home), "YSH_LOG_JSON": "false"})
    env.update(extra)
    return env


def table_contents(warehouse, table: str, *, skip: tuple[str, ...] = ("updated_at", "ingested_at")) -> list[tuple]:
    """Every row of ``table`` (bookkeeping timestamps left out, floats rounded to 9
    significant digits, JSON as sorted text), sorted: equal lists mean the same rows,
    none lost and none doubled."""
    import json

    from ysh import db

    def norm(value):
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, (dict, list)):
            return json.dumps(value, sort_keys=True)
        return value

    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        columns = [c for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position", (warehouse.schema, table)).fetchall() if c not in skip]
        rows = conn.execute(sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table))).fetchall()
    return sorted((tuple(norm(v) for v in row) for row in rows), key=repr)


def settled(state, timeout: float = 60.0):
    """``state()``, once it stayed the same for a second (outputs derived from other
    outputs, like products from items, follow a minibatch later)."""
    from ..conftest import wait_for

    def check():
        before = state()
        time.sleep(1.0)
        return before if state() == before else None
    return wait_for(check, timeout, "a settled state")
