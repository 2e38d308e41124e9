"""The batch run's PostgreSQL sink: a whole output table replaced with ``COPY`` in one transaction.

A batch (``ysh proposals run``) recomputes every output row from one snapshot of the
sources, so its result *is* the new content of each output table. Writing it row by row
as keyed upserts (``pw.io.postgres.write``) costs one statement per row on the server;
this sink keeps the table's final state in memory while the graph runs (per Pathway
time: each version of a row counted, additions minus retractions, by Pathway row key) and, when the run ends,
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

import operator
import queue
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pathway as pw
from psycopg import sql

from .. import db


class CopyTableSink:
    """Collects a Pathway table's final state and writes it to ``table_name`` at the end."""

    def __init__(self, dsn: str, schema: str, table_name: str, columns: Sequence[str], *,
                 group: WriteGroup | None = None):
        self._dsn, self._schema, self._table = dsn, schema, table_name
        self._group = group
        self._columns = tuple(columns)
        # the row's values in column order, one C call (a tuple even for one column)
        getter = operator.itemgetter(*self._columns)
        self._values = getter if len(self._columns) > 1 else (lambda row: (getter(row),))
        self._state: dict[Any, tuple] = {}
        self._changes: list[tuple[Any, tuple, int]] = []  # this time's (key, values, +1 | −1)
        self._lock = threading.Lock()
        self.written = 0

    # ---- Pathway callbacks -------------------------------------------------------------
    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        change = (key, self._values(row), 1 if is_addition else -1)
        with self._lock:
            self._changes.append(change)

    def on_values(self, key, values: list, time: int, diff: int) -> None:
        """:meth:`on_change` as Pathway's engine calls a callback sink: the row's values in
        the sink's column order (no dictionary per row; :func:`subscribe`)."""
        change = (key, tuple(values), 1 if diff >= 1 else -1)
        with self._lock:
            self._changes.append(change)

    def on_time_end(self, time: int) -> None:
        """Apply one Pathway time. Its changes come in no set order, and a time can hold a
        transient version of a row with its own retraction (``+new, +transient,
        −transient``): each version is counted, additions minus retractions; the version
        left with a positive count is the row, and a key whose versions all cancel or are
        retracted is removed. (Taking the last addition seen, as this sink did before, kept
        transient versions: KPI rows whose kWp disagreed with ``propostas_analytics``.)"""
        self._apply_time()

    def _apply_time(self) -> list[tuple[Any, tuple | None]]:
        """Apply the changes of the time that ended: (key, its row or ``None`` when removed)
        for each key whose row changed."""
        with self._lock:
            changes, self._changes = self._changes, []
        return self._apply(changes)

    def _apply(self, changes: list[tuple[Any, tuple, int]]) -> list[tuple[Any, tuple | None]]:
        """:meth:`_apply_time` of these changes."""
        versions: dict[Any, list[list]] = {}
        for key, values, sign in changes:
            entries = versions.get(key)
            if entries is None:
                versions[key] = [[values, sign]]
                continue
            for entry in entries:
                if _same(entry[0], values):
                    entry[1] += sign
                    break
            else:
                entries.append([values, sign])
        touched: list[tuple[Any, tuple | None]] = []
        for key, entries in versions.items():
            alive = [values for values, count in entries if count > 0]
            if alive:
                self._state[key] = alive[-1]
                touched.append((key, alive[-1]))
            elif any(count < 0 for _, count in entries):
                self._state.pop(key, None)
                touched.append((key, None))
        return touched

    def on_end(self) -> None:
        self.on_time_end(-1)
        if self._group is None:
            self.finish()
        else:
            self._group.ended(self)

    def finish(self) -> None:
        """Write what the run left (called once, when the table's last time has ended)."""
        self.write()

    def abort(self) -> None:
        """The run failed: nothing of it is written."""

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


_COMMIT, _ABORT = object(), object()
#: rows a :class:`StreamingCopySink` collects before sending them to its ``COPY`` ahead of
#: the time's end (one ``COPY`` statement and one queue step per chunk)
EARLY_CHUNK = 2_000


class StreamingCopySink(CopyTableSink):
    """A :class:`CopyTableSink` that writes each Pathway time's rows while the graph runs.

    One transaction for the whole run, on a writer thread of its own: at the first time
    that ends it takes the lock and deletes the table's rows (readers keep seeing them
    until the commit), then ``COPY``\ s the rows of new keys as the engine hands them over
    (in chunks of :data:`EARLY_CHUNK`; :meth:`_add`) and the rest of each time's rows as
    the time ends, and deletes by primary key (``key``) a row it wrote earlier whose key a
    later change or time changed or removed. The server parses a time's rows (the yearly documents of
    ``propostas_analytics`` are its longest work) on its own core while Pathway evaluates
    the next time's quotes, instead of all at the end. :meth:`finish` commits and waits;
    :meth:`abort` (a failed run) rolls back.

    :meth:`start` opens that transaction before the run (:func:`write_tables` calls it when
    the graph is declared): the lock and the ``DELETE`` of the old rows then happen while
    Pathway reads and evaluates, on the server's core that is idle then, instead of in
    front of the first ``COPY`` at the end of the run. With ``propostas_analytics``'
    uncompressed (``STORAGE EXTERNAL``) yearly documents that ``DELETE`` also removes
    their TOAST chunks (0.15–0.3 s for 20,000 rows)."""

    def __init__(self, dsn: str, schema: str, table_name: str, columns: Sequence[str], key: Sequence[str], *,
                 group: WriteGroup | None = None):
        super().__init__(dsn, schema, table_name, columns, group=group)
        self._key = tuple(key)
        self._key_of = operator.itemgetter(*[self._columns.index(c) for c in self._key])
        self._sent: dict[Any, Any] = {}  # Pathway key → primary key of the row written for it
        self._sent_keys: set = set()  # the primary keys of self._sent: the rows in the table
        # sent before their time ended (on_values): Pathway key → row, their primary keys,
        # and the rows not yet handed to the writer
        self._early: dict[Any, tuple] = {}
        self._early_keys: set = set()
        self._chunk: list[tuple] = []
        self._queue: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Open the run's transaction now: lock the table and delete its rows (readers
        keep seeing them until the commit). Without it, the first time that ends does it."""
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_all, name=f"copy_{self._table}", daemon=True)
            self._writer.start()

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        self._add(key, self._values(row), 1 if is_addition else -1)

    def on_values(self, key, values: list, time: int, diff: int) -> None:
        self._add(key, tuple(values), 1 if diff >= 1 else -1)

    def _add(self, key, values: tuple, sign: int) -> None:
        """Count the change for the time's end, and send a new key's row to the ``COPY`` at
        once (in chunks of :data:`EARLY_CHUNK`) instead of when the time ends.

        Pathway hands a time's rows over only when the whole graph has computed that time,
        and handing over 20,000 rows of ``propostas_analytics`` took ~0.3 s: the server now
        parses them meanwhile. Only a row whose Pathway key has no row in the table and
        whose primary key is in no row of the table yet is sent early (so the ``COPY``
        cannot hit the primary key); :meth:`on_time_end` then checks each such row against
        the time's result, and deletes it (by primary key) and writes the right one where a
        later change of the same time replaced or retracted it."""
        with self._lock:
            self._changes.append((key, values, sign))
            if sign < 0 or key in self._early or key in self._sent:
                return
            primary = self._key_of(values)
            if primary in self._early_keys or primary in self._sent_keys:
                return
            self._early[key] = values
            self._early_keys.add(primary)
            self._chunk.append(values)
            if len(self._chunk) >= EARLY_CHUNK:
                chunk, self._chunk = self._chunk, []
                self._send(([], chunk))

    def _as_key(self, primary) -> tuple:
        return primary if len(self._key) > 1 else (primary,)

    def on_time_end(self, time: int) -> None:
        with self._lock:  # the time's changes, and what of them was sent early
            changes, self._changes = self._changes, []
            early, self._early, self._early_keys = self._early, {}, set()
            chunk, self._chunk = self._chunk, []
        if chunk:  # before the reconciliation below, which may delete some of these rows
            self._send(([], chunk))
        deletes, rows = [], []
        for key, values in self._apply(changes):
            streamed = early.pop(key, None)
            if streamed is not None:  # in the table since this time (the key had no row before)
                if values is not None and _same(streamed, values):
                    primary = self._sent[key] = self._key_of(values)
                    self._sent_keys.add(primary)
                    continue
                deletes.append(self._as_key(self._key_of(streamed)))
            else:
                sent = self._sent.pop(key, None)
                if sent is not None:
                    deletes.append(self._as_key(sent))
                    self._sent_keys.discard(sent)
            if values is not None:
                rows.append(values)
                primary = self._sent[key] = self._key_of(values)
                self._sent_keys.add(primary)
        # rows sent early whose versions all cancelled within the time (+row, −row): gone
        deletes.extend(self._as_key(self._key_of(streamed)) for streamed in early.values())
        if deletes or rows:
            self._send((deletes, rows))

    def _send(self, op) -> None:
        self.start()
        self._queue.put(op)

    def _write_all(self) -> None:
        table = sql.Identifier(self._table)
        copy_rows = sql.SQL("COPY {} ({}) FROM STDIN").format(table, sql.SQL(", ").join(
            map(sql.Identifier, self._columns)))
        delete_key = sql.SQL("DELETE FROM {} WHERE {}").format(table, sql.SQL(" AND ").join(
            sql.SQL("{} = %s").format(sql.Identifier(c)) for c in self._key))
        try:
            with db.connect(self._dsn, self._schema) as conn, conn.cursor() as cur:
                # as CopyTableSink.write: a second writer waits here until the first commits
                cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
                cur.execute(sql.SQL("DELETE FROM {}").format(table))
                while True:
                    op = self._queue.get()
                    if op is _COMMIT:
                        conn.commit()
                        return
                    if op is _ABORT:
                        conn.rollback()
                        return
                    deletes, rows = op
                    if deletes:
                        cur.executemany(delete_key, deletes)
                    if rows:
                        with cur.copy(copy_rows) as copy:
                            for row in rows:
                                copy.write_row(row)
        except BaseException as exc:  # raised by finish()
            self._error = exc

    def finish(self) -> None:
        if self._writer is None:  # an empty result: the table is still replaced
            self._send(([], []))
        self._queue.put(_COMMIT)
        self._writer.join()
        if self._error is not None:
            raise self._error
        self.written = len(self._state)

    def abort(self) -> None:
        if self._writer is not None:
            self._queue.put(_ABORT)
            self._writer.join()


class WriteGroup:
    """The sinks of one run, written at once: each table's write starts on its own thread
    (and connection, so its own PostgreSQL backend) when its sink ends, and the last sink
    to end waits for every write, so the run ends when all tables are written. The server
    parses the tables side by side (``propostas_analytics`` and its JSON documents take
    the longest) instead of one after the other. Each table is still one transaction."""

    def __init__(self, size: int):
        self._waiting = size
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def _write(self, sink: CopyTableSink) -> None:
        try:
            sink.finish()
        except BaseException as exc:  # raised by the last sink to end
            with self._lock:
                self._errors.append(exc)

    def ended(self, sink: CopyTableSink) -> None:
        thread = threading.Thread(target=self._write, args=(sink,), name=f"copy_{sink._table}")
        thread.start()
        with self._lock:
            self._threads.append(thread)
            self._waiting -= 1
            last = self._waiting == 0
        if last:
            for thread in self._threads:
                thread.join()
            if self._errors:
                raise self._errors[0]


def _same(a: tuple, b: tuple) -> bool:
    """Equal row values, NaN equal to NaN."""
    return a == b or (len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b)))


def _date_columns(warehouse, table_names) -> dict[str, set[str]]:
    """table → its columns of SQL type ``date``."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        rows = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = %s AND table_name = ANY(%s) AND data_type = 'date'",
                            (warehouse.schema, list(table_names))).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return found


def _dates_as_text(table: pw.Table, date_columns: set[str]) -> pw.Table:
    """``table`` with its naive-datetime columns that land in SQL ``date`` columns as
    ``YYYY-MM-DD`` text, formatted by Pathway (what PostgreSQL keeps of them; handing them
    to Python costs a pandas Timestamp per value)."""
    hints = table.typehints()
    dated = [c for c in table.column_names() if c in date_columns and hints[c] == pw.DateTimeNaive]
    if not dated:
        return table
    return table.with_columns(**{c: pw.this[c].dt.strftime("%Y-%m-%d") for c in dated})


def subscribe(table: pw.Table, sink: CopyTableSink, *, name: str) -> None:
    """Feed ``table``'s changes to ``sink``, whose columns are the table's, in its order.

    ``pw.io.subscribe`` builds a dictionary of every changed row for ``on_change`` (a
    Python loop over the columns, then a call with keywords: ~3 µs a row, on the engine's
    thread, for 40,000 rows of the two quote tables); Pathway's callback sink, which
    ``pw.io.subscribe`` wraps, hands over the row's values as a list in column order, and
    :meth:`CopyTableSink.on_values` takes them as they are. Pathway versions without that
    internal module get the public callback."""
    if tuple(table.column_names()) != sink._columns:
        raise ValueError(f"the sink's columns {sink._columns} are not the table's {tuple(table.column_names())}")
    try:
        from pathway.internals import datasink
        from pathway.internals.table_io import table_to_datasink
    except ImportError:  # pragma: no cover - another Pathway release
        pw.io.subscribe(table, on_change=sink.on_change, on_time_end=sink.on_time_end, on_end=sink.on_end, name=name)
        return
    # what pw.io.subscribe passes (skip_persisted_batch=True; errors skipped as its default)
    table_to_datasink(table, datasink.CallbackDataSink(
        on_change=sink.on_values, on_time_end=sink.on_time_end, on_end=sink.on_end,
        skip_persisted_batch=True, skip_errors=True, unique_name=name))


def write_tables(tables, outputs: Mapping[str, tuple[str, tuple[str, ...]]], warehouse) -> dict[str, CopyTableSink]:
    """A :class:`StreamingCopySink` for each output: ``outputs`` maps an attribute of
    ``tables`` to (table name, primary key columns), as :func:`ysh.pw_runtime.write_snapshots`.
    The sinks are declared in that order, and Pathway hands a time's rows to them in that
    order: the table whose ``COPY`` takes longest should come first (its write then overlaps
    the handing of the others' rows). Each sink's transaction is open
    (:meth:`StreamingCopySink.start`: the table locked against other writers, its old rows
    deleted) when this returns: if the run fails, or is never run, call
    :meth:`CopyTableSink.abort` on each (nothing is written)."""
    sinks = {}
    date_columns = _date_columns(warehouse, [name for name, _ in outputs.values()])
    group = WriteGroup(len(outputs))  # the tables written side by side when the run ends
    for attr, (table_name, _key) in outputs.items():
        table: pw.Table = _dates_as_text(getattr(tables, attr), date_columns.get(table_name, set()))
        sink = StreamingCopySink(warehouse.dsn, warehouse.schema, table_name, table.column_names(), _key,
                                 group=group)
        subscribe(table, sink, name=f"copy_{table_name}")
        sinks[table_name] = sink
    # the locks and deletes overlap the run (the graph is fully declared: nothing above can
    # fail after a transaction is open)
    for sink in sinks.values():
        sink.start()
    return sinks
