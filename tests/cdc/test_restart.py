"""SIGKILL the follower mid-stream, change the table while it is down, restart it: the
journaled state equals the table — nothing lost, nothing duplicated."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from ..conftest import REPO

pytestmark = pytest.mark.integration


def journal_state(path):
    state = {}
    if not path.exists():
        return state
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            break  # a line being written
        for key in entry["del"]:
            state.pop(str(key), None)
        state.update(entry["set"])
    return {int(k): (v["name"], v["qty"]) for k, v in state.items()}


def table_state(conn, table):
    return {i: (n, q) for i, n, q in conn.execute(f'SELECT id, name, qty FROM "{table}"').fetchall()}


def wait_equal(conn, table, journal, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal_state(journal) == table_state(conn, table):
            return
        time.sleep(0.2)
    raise AssertionError(f"journal {len(journal_state(journal))} rows vs table {len(table_state(conn, table))}")


def test_kill_and_restart_loses_and_duplicates_nothing(dsn, tmp_path):
    table = "r" + uuid.uuid4().hex[:8]
    journal, persist = tmp_path / "journal.jsonl", tmp_path / "persist"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)')
        conn.execute(f'CREATE PUBLICATION "{table}_pub" FOR TABLE "{table}"')
        conn.execute(f'INSERT INTO "{table}" SELECT g, \'item \' || g, g FROM generate_series(1, 50) g')

        def start():
            return subprocess.Popen([sys.executable, "-m", "tests.cdc.follow_table", dsn, table, str(journal),
                                     str(persist)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        follower = start()
        try:
            wait_equal(conn, table, journal)  # the initial snapshot
            for i in range(51, 151):  # a stream of changes, killed in the middle of it
                conn.execute(f'INSERT INTO "{table}" VALUES (%s, %s, %s)', (i, f"item {i}", i))
                if i % 10 == 0:
                    conn.execute(f'UPDATE "{table}" SET qty = qty + 1000 WHERE id = %s', (i - 55,))
                    conn.execute(f'DELETE FROM "{table}" WHERE id = %s', (i - 45,))
                if i == 100:
                    time.sleep(0.5)
                    os.kill(follower.pid, signal.SIGKILL)
                    follower.wait(10)
            conn.execute(f'UPDATE "{table}" SET name = upper(name) WHERE id % 7 = 0')
            follower = start()
            wait_equal(conn, table, journal)
            conn.execute(f'DELETE FROM "{table}" WHERE id < 20')  # and it keeps following
            wait_equal(conn, table, journal)
        finally:
            follower.kill()
            follower.wait(10)
            deadline = time.monotonic() + 30
            while conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active",
                               (f"{table}_slot",)).fetchone() and time.monotonic() < deadline:
                time.sleep(0.2)
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = %s", (f"{table}_slot",))
            conn.execute(f'DROP PUBLICATION IF EXISTS "{table}_pub"')
