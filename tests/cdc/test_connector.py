"""The connector inside a real Pathway pipeline, against the embedded server.

Each test runs ``pw.run`` in this process (without persistence: temporary slot +
snapshot); a driver thread waits for the stream to be up, makes changes, waits until
``done(state)`` holds, and stops the subject, which ends the pipeline.
"""

from __future__ import annotations

import os
import threading
import time

import pandas as pd
import pathway as pw
import psycopg
import pytest
from pathway.internals.parse_graph import G

from ysh.cdc.connector import CdcError, PostgresCdcSubject


def run_until(dsn, p, schema, driver, done, timeout=30.0):
    """Pipeline over table ``p``; returns the final {id: row} state."""
    G.clear()
    slot = f"{p}_slot"
    subject = PostgresCdcSubject(dsn, table=p, schema=schema, publication=f"{p}_pub", slot=slot)
    table = pw.io.python.read(subject, schema=schema, name=p, autocommit_duration_ms=50)
    state: dict = {}
    pending: list = []
    lock = threading.Lock()

    def on_time_end(time):  # keyed upsert, as in demo/pipeline.py
        with lock:
            added = {row["id"]: row for row, add in pending if add}
            for row, add in pending:
                if not add and row["id"] not in added:
                    state.pop(row["id"], None)
            state.update(added)
            pending.clear()

    pw.io.subscribe(table, on_change=lambda key, row, time, is_addition: pending.append(
        (row, is_addition)), on_time_end=on_time_end)
    failure: list = []

    def drive():
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                deadline = time.monotonic() + timeout
                while not conn.execute("SELECT 1 FROM pg_replication_slots "
                                       "WHERE slot_name = %s AND active", (slot,)).fetchone():
                    assert time.monotonic() < deadline, "stream did not start"
                    time.sleep(0.05)
                driver(conn)
                while True:
                    with lock:
                        if done(state, conn):
                            return
                    if time.monotonic() > deadline:
                        with lock:
                            failure.append(AssertionError(f"timed out; state: {state}"))
                        return
                    time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001
            failure.append(exc)
        finally:
            subject.stop()

    threading.Thread(target=drive, daemon=True).start()
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    if failure:
        raise failure[0]
    return state


def setup_table(conn, p, ddl, identity=None):
    conn.execute(f"CREATE TABLE {p} ({ddl})")
    if identity:
        conn.execute(f"ALTER TABLE {p} REPLICA IDENTITY {identity}")
    conn.execute(f"CREATE PUBLICATION {p}_pub FOR TABLE {p}")


class TypesSchema(pw.Schema):
    id: int = pw.column_definition(primary_key=True)
    flag: bool | None
    f: float | None
    n: float | None
    s: str | None
    j: pw.Json | None
    ts: pw.DateTimeUtc | None
    b: bytes | None
    c: str | None


def test_types_same_through_snapshot_and_stream(db, dsn):
    conn, p = db
    setup_table(conn, p, "id int PRIMARY KEY, flag bool, f float8, n numeric, s text, j jsonb, "
                         "ts timestamptz, b bytea, c char(4)")
    values = ("true, 0.1, 12.50, 'ü \"q\"', '{\"a\": [1, null]}', "
              "'2026-01-02 03:04:05.123456+02', '\\xdeadbeef', 'ab'")
    nulls = "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
    conn.execute(f"INSERT INTO {p} VALUES (1, {values}), (2, {nulls})")  # via the snapshot

    def driver(c):  # the same values again, via the stream
        c.execute(f"INSERT INTO {p} VALUES (11, {values}), (12, {nulls})")

    state = run_until(dsn, p, TypesSchema, driver, lambda st, c: len(st) == 4)
    snap, streamed = state[1], state[11]
    assert {**snap, "id": 11} == streamed and {**state[2], "id": 12} == state[12]
    assert snap["flag"] is True and snap["f"] == 0.1 and snap["n"] == 12.5
    assert snap["s"] == 'ü "q"' and snap["j"] == pw.Json({"a": [1, None]})
    assert snap["ts"] == pd.Timestamp("2026-01-02 01:04:05.123456", tz="UTC")
    assert snap["b"] == bytes.fromhex("deadbeef") and snap["c"] == "ab  "  # char(n) keeps padding
    assert all(v is None for k, v in state[2].items() if k != "id")


class ItemSchema(pw.Schema):
    id: int = pw.column_definition(primary_key=True)
    name: str
    big: str | None


def _table(conn, p):
    return {r[0]: {"id": r[0], "name": r[1], "big": r[2]}
            for r in conn.execute(f"SELECT id, name, big FROM {p}").fetchall()}


@pytest.mark.parametrize("identity", [None, "FULL"])
def test_updates_deletes_key_changes_and_toast(db, dsn, identity):
    conn, p = db
    setup_table(conn, p, "id int PRIMARY KEY, name text NOT NULL, big text", identity)
    big = os.urandom(20000).hex()  # incompressible: stored out of line
    conn.execute(f"INSERT INTO {p} VALUES (1, 'a', %s), (2, 'b', NULL), (3, 'c', NULL)", (big,))

    def driver(c):
        with c.transaction():  # several changes in one transaction
            c.execute(f"INSERT INTO {p} VALUES (4, 'd', %s)", (big,))
            c.execute(f"UPDATE {p} SET name = 'b2' WHERE id = 2")
            c.execute(f"DELETE FROM {p} WHERE id = 3")
        c.execute(f"UPDATE {p} SET name = 'a2' WHERE id = 1")  # big unchanged -> 'u' column
        c.execute(f"UPDATE {p} SET id = 40 WHERE id = 4")  # primary key change, big unchanged
        c.execute(f"UPDATE {p} SET name = 'gone' WHERE id = 2")
        c.execute(f"DELETE FROM {p} WHERE id = 2")

    state = run_until(dsn, p, ItemSchema, driver, lambda st, c: st == _table(c, p))
    assert set(state) == {1, 40} and state[1]["big"] == big and state[40]["big"] == big


def test_truncate_fails_loudly(db, dsn):
    conn, p = db
    setup_table(conn, p, "id int PRIMARY KEY, name text NOT NULL, big text")
    with pytest.raises(CdcError, match="TRUNCATE"):
        run_until(dsn, p, ItemSchema, lambda c: c.execute(f"TRUNCATE {p}"),
                  lambda st, c: False, timeout=10)


def test_snapshot_is_consistent_with_concurrent_writes(db, dsn):
    """Rows written while the snapshot is being read must be counted exactly once."""
    conn, p = db
    setup_table(conn, p, "id int PRIMARY KEY, name text NOT NULL, big text")
    conn.execute(f"INSERT INTO {p} SELECT g, 'r' || g, NULL FROM generate_series(1, 50000) g")
    stop = threading.Event()

    def writer():
        with psycopg.connect(dsn, autocommit=True) as c:
            i = 0
            while not stop.is_set():
                i += 1
                c.execute(f"UPDATE {p} SET name = name || '+' WHERE id = %s", (i % 50000 + 1,))
                c.execute(f"DELETE FROM {p} WHERE id = %s", (50000 - i,))
                c.execute(f"INSERT INTO {p} VALUES (%s, 'new', NULL)", (100000 + i,))

    w = threading.Thread(target=writer)
    w.start()  # already writing while the slot is created and the snapshot read

    def driver(c):
        time.sleep(1.0)
        stop.set()
        w.join()

    state = run_until(dsn, p, ItemSchema, driver, lambda st, c: st == _table(c, p), timeout=60)
    assert len(state) == len(_table(conn, p))
