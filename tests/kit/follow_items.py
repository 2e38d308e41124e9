"""A small follower of one table, run as a subprocess by tests/kit/test_first_start.py.

    python -m tests.kit.follow_items DSN SCHEMA PERSIST_DIR DELETE_ID [die-before-snapshot]

Follows ``items`` (id, name, qty) into ``items_out`` through :class:`ysh.kit.follower.Follower`.
Its first batch, once it has written its outputs, deletes the source row ``DELETE_ID``:
the window between a first start's batch and its slots' snapshots, taken deterministically.
``die-before-snapshot``: the process kills itself (SIGKILL) when a CDC source is about to
read its initial snapshot in the streaming run, after its persistence directory was made.
"""

import os
import signal
import sys
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pathway as pw
import psycopg
from psycopg import sql

from ysh import pw_runtime
from ysh.cdc import connector
from ysh.db import Warehouse
from ysh.kit.follower import Follower


class Item(pw.Schema):
    id: int = pw.column_definition(primary_key=True)
    name: str
    qty: int


FOLLOWER = Follower(pipeline="items", sources={"items": ("items", Item)}, outputs={"items": ("items_out", ("id",))},
                    busy="an items follower of {schema} is running")


def graph(sources):
    return SimpleNamespace(items=sources["items"])


def main(dsn: str, schema: str, persist_dir: str, delete_id: str, mode: str = "") -> None:
    warehouse = Warehouse(dsn, schema)

    def batch():
        FOLLOWER.recompute(warehouse, lambda: nullcontext(graph({"items": pw_runtime.read_query(
            dsn, schema, "SELECT id, name, qty FROM items", Item, name="items_batch")})))
        with psycopg.connect(dsn, autocommit=True) as conn:  # the window
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(schema, "items")),
                         (int(delete_id),))

    if mode == "die-before-snapshot":
        def die(self, *args):
            os.kill(os.getpid(), signal.SIGKILL)

        connector.PostgresCdcSubject._emit_snapshot = die
    FOLLOWER.follow(warehouse, Path(persist_dir), batch=batch, graph=graph, autocommit_duration_ms=50)


if __name__ == "__main__":
    main(*sys.argv[1:])
