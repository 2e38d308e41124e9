"""The batch run's PostgreSQL sink: a whole output table replaced with ``COPY`` in one transaction.

A batch (``ysh proposals run``) recomputes every output row from one snapshot of the
sources, so its result *is* the new content of each output table. Writing it row by row
as keyed upserts (``pw.io.postgres.write``) costs one statement per row on the server;
this sink keeps the table's final state in memory while the graph runs (per Pathway
time: retractions first, then additions, by Pathway row key) and, when the run ends,
replaces the table in one transaction: ``LOCK TABLE … IN SHARE ROW EXCLUSIVE MODE``,
``DELETE``, then ``COPY`` (for a first load the table is empty and only ``COPY`` does
anything). Readers see the old rows or the new ones, never a mix. The lock conflicts with
itself and with every other writer but not with readers: two batch runs that end at the
same time (a Dagster run and a Prefect flow) write one after the other, the second
replacing the first's rows, instead of both deleting the same old rows and the second
failing on the first's keys (``UniqueViolation``). The streaming follower keeps the keyed
upserts of :mod:`ysh.kit.sinks`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pathway as pw
from psycopg import sql

from .. import db


class CopyTableSink:
    """Collects a Pathway table's final state and writes it to ``table_name`` at the end."""

    def __init__(self, dsn: str, schema: str, table_name: str, columns: Sequence[str]):
        self._dsn, self._schema, self._table = dsn, schema, table_name
        self._columns = tuple(columns)
        self._state: dict[Any, tuple] = {}
        self._added: list[tuple[Any, tuple]] = []
        self._removed: list[Any] = []
        self._lock = threading.Lock()
        self.written = 0

    # ---- Pathway callbacks -------------------------------------------------------------
    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        if is_addition:
            values = tuple(row[c] for c in self._columns)
            with self._lock:
                self._added.append((key, values))
        else:
            with self._lock:
                self._removed.append(key)

    def on_time_end(self, time: int) -> None:
        with self._lock:
            added, self._added = self._added, []
            removed, self._removed = self._removed, []
        for key in removed:  # a time's update of a row is (−old, +new): retractions first
            self._state.pop(key, None)
        self._state.update(added)

    def on_end(self) -> None:
        self.on_time_end(-1)
        self.write()

    # ---- the write ---------------------------------------------------------------------
    def write(self) -> None:
        table = sql.Identifier(self._table)
        columns = sql.SQL(", ").join(map(sql.Identifier, self._columns))
        rows = list(self._state.values())
        with db.connect(self._dsn, self._schema) as conn:
            with conn.transaction(), conn.cursor() as cur:
                # a second writer waits here until the first commits; its DELETE (a new
                # statement, a new snapshot) then sees and removes the first's rows
                cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
                cur.execute(sql.SQL("DELETE FROM {}").format(table))
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)) as copy:
                    for row in rows:
                        copy.write_row(row)
        self.written = len(rows)


def write_tables(tables, outputs: Mapping[str, tuple[str, tuple[str, ...]]], warehouse) -> dict[str, CopyTableSink]:
    """A :class:`CopyTableSink` for each output: ``outputs`` maps an attribute of
    ``tables`` to (table name, primary key columns), as :func:`ysh.pw_runtime.write_snapshots`."""
    sinks = {}
    for attr, (table_name, _key) in outputs.items():
        table: pw.Table = getattr(tables, attr)
        sink = CopyTableSink(warehouse.dsn, warehouse.schema, table_name, table.column_names())
        pw.io.subscribe(table, on_change=sink.on_change, on_time_end=sink.on_time_end, on_end=sink.on_end,
                        name=f"copy_{table_name}")
        sinks[table_name] = sink
    return sinks
