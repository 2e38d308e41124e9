"""PostgreSQL restarted under a CDC follower: the follower reconnects with backoff (a
fresh admin connection, a fresh replication stream at the last handed-over position),
and what it journals equals the table — nothing lost, nothing doubled. And the embedded
server bounds the WAL that a stopped follower's slot can hold."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from ..cdc.test_restart import journal_state, table_state, wait_equal
from ..conftest import REPO
from .conftest import restart

pytestmark = pytest.mark.integration


def test_the_embedded_server_bounds_the_wal_a_slot_keeps(restartable_pg):
    from ysh.services.postgres import MAX_SLOT_WAL_KEEP_SIZE

    restartable_pg.start()
    with psycopg.connect(restartable_pg.dsn(), autocommit=True) as conn:
        (size,) = conn.execute("SHOW max_slot_wal_keep_size").fetchone()
        (unit,) = conn.execute("SELECT unit FROM pg_settings WHERE name = 'max_slot_wal_keep_size'").fetchone()
        (setting,) = conn.execute("SELECT setting::bigint FROM pg_settings "
                                  "WHERE name = 'max_slot_wal_keep_size'").fetchone()
    assert size == MAX_SLOT_WAL_KEEP_SIZE
    assert unit == "MB" and setting == 2048  # not -1 (unlimited), the server's default


def test_a_follower_rides_through_a_database_restart(restartable_pg, tmp_path):
    restartable_pg.start()
    dsn = restartable_pg.dsn()
    table = "r" + uuid.uuid4().hex[:8]
    journal, persist = tmp_path / "journal.jsonl", tmp_path / "persist"
    log = (tmp_path / "follow.log").open("w")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)')
        conn.execute(f'CREATE PUBLICATION "{table}_pub" FOR TABLE "{table}"')
        conn.execute(f'INSERT INTO "{table}" SELECT g, \'item \' || g, g FROM generate_series(1, 50) g')
    follower = subprocess.Popen([sys.executable, "-m", "tests.cdc.follow_table", dsn, table, str(journal),
                                 str(persist)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            wait_equal(conn, table, journal)  # the initial snapshot
            for i in range(51, 101):  # changes streaming right up to the stop
                conn.execute(f'INSERT INTO "{table}" VALUES (%s, %s, %s)', (i, f"item {i}", i))
                if i % 10 == 0:
                    conn.execute(f'UPDATE "{table}" SET qty = qty + 1000 WHERE id = %s', (i - 45,))
                    conn.execute(f'DELETE FROM "{table}" WHERE id = %s', (i - 35,))
        restart(restartable_pg)
        assert follower.poll() is None, "the follower ended during the outage"
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(101, 151):  # and it keeps following after the restart
                conn.execute(f'INSERT INTO "{table}" VALUES (%s, %s, %s)', (i, f"item {i}", i))
            conn.execute(f'UPDATE "{table}" SET name = upper(name) WHERE id % 7 = 0')
            conn.execute(f'DELETE FROM "{table}" WHERE id < 10')
            wait_equal(conn, table, journal, timeout=90)
            assert len(table_state(conn, table)) == 150 - 9 - 5
        assert follower.poll() is None
        text = (tmp_path / "follow.log").read_text()
        assert "replication connection lost" in text
        assert "restored at" in text
    finally:
        follower.kill()
        follower.wait(10)
        log.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active",
                               (f"{table}_slot",)).fetchone() and time.monotonic() < deadline:
                time.sleep(0.2)
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = %s", (f"{table}_slot",))
            conn.execute(f'DROP PUBLICATION IF EXISTS "{table}_pub"')
