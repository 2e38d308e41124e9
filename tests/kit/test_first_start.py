"""A follower's first start, against the session's real PostgreSQL: the outputs and the
stream meet exactly. A source row deleted after the first batch wrote its outputs, before
the slot's snapshot, used to leave its output row behind for good (the follower's sinks
only touch the keys it emits, and the row is neither in the snapshot nor in the stream)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ysh import db

from ..conftest import drop_follower_replication, query, stop_process, wait_for
from .follow_items import FOLLOWER

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def items(warehouse, tmp_path):
    """``items`` (the source, five rows) and ``items_out`` (the output, holding a row of a
    source row gone long ago); a ``start(delete_id, *mode)`` of the follower process."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)")
        conn.execute("CREATE TABLE items_out (id bigint PRIMARY KEY, name text NOT NULL, qty bigint NOT NULL, "
                     "updated_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("CREATE TRIGGER items_out_touch BEFORE INSERT OR UPDATE ON items_out "
                     "FOR EACH ROW EXECUTE FUNCTION touch_updated_at()")
        conn.execute("INSERT INTO items SELECT i, 'item ' || i, 10 * i FROM generate_series(1, 5) i")
        conn.execute("INSERT INTO items_out (id, name, qty) VALUES (99, 'gone long ago', 0)")
        conn.commit()
    procs = []
    log = (tmp_path / "follow.log").open("w")

    def start(delete_id: int, *mode: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "tests.kit.follow_items", warehouse.dsn, warehouse.schema,
                                 str(tmp_path / "persist"), str(delete_id), *mode],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    start.persist = tmp_path / "persist"
    yield start
    for proc in procs:
        stop_process(proc)
    log.close()
    drop_follower_replication(warehouse, FOLLOWER)


def table(warehouse, name: str) -> list[tuple]:
    return query(warehouse, f"SELECT id, name, qty FROM {name} ORDER BY id")


def caught_up(warehouse, marker: int) -> None:
    """A new source row, seen in the output: every change before it was applied."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("INSERT INTO items VALUES (%s, 'marker', 0)", (marker,))
        conn.commit()
    wait_for(lambda: query(warehouse, "SELECT 1 FROM items_out WHERE id = %s", (marker,)), 60, "the marker row")


def test_a_row_deleted_between_the_first_batch_and_the_slot_snapshot_leaves_no_output(warehouse, items):
    proc = items(3)  # the first batch writes item 3's output, then item 3 is deleted
    wait_for(lambda: FOLLOWER.streaming(warehouse), 120, "the follower streaming")
    caught_up(warehouse, 6)
    assert table(warehouse, "items_out") == table(warehouse, "items")
    assert [row[0] for row in table(warehouse, "items_out")] == [1, 2, 4, 5, 6]

    # kill -9, changes while down, restart: the stream resumes, nothing re-read
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("DELETE FROM items WHERE id = 1")
        conn.execute("UPDATE items SET qty = 7 WHERE id = 2")
        conn.commit()
    items(5)  # no first start: its batch (and its delete) does not run
    caught_up(warehouse, 7)
    assert table(warehouse, "items_out") == table(warehouse, "items")
    assert [row[0] for row in table(warehouse, "items")] == [2, 4, 5, 6, 7]


def test_a_first_start_killed_before_anything_was_persisted_starts_over(warehouse, items):
    proc = items(3, "die-before-snapshot")  # killed in its streaming run, before the snapshot
    proc.wait(120)
    assert proc.returncode == -signal.SIGKILL
    assert any(items.persist.iterdir())  # Pathway's directory is there, with nothing of the sources
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("DELETE FROM items WHERE id = 4")  # after the first outputs were written
        conn.commit()
    assert 4 in [row[0] for row in table(warehouse, "items_out")]
    items(5)  # a fresh snapshot of its own would not retract item 4's output: a first start again
    wait_for(lambda: FOLLOWER.streaming(warehouse), 120, "the follower streaming")
    caught_up(warehouse, 6)
    assert table(warehouse, "items_out") == table(warehouse, "items")
    assert [row[0] for row in table(warehouse, "items_out")] == [1, 2, 6]

