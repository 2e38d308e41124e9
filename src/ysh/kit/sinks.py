"""A PostgreSQL snapshot sink for streaming graphs that rides through a lost server.

Pathway's own ``pw.io.postgres.write`` ends the whole run when its connection breaks (a
server restart panics its writer thread: "error connecting to server"). A streaming job
writes its outputs with :func:`write_snapshots` instead: a ``pw.io.subscribe`` sink that
applies each Pathway time as **one transaction** of keyed upserts and deletes (per
primary key: the last addition sets the row, a key with only retractions is deleted;
retracted values are not compared), and retries that transaction on a fresh connection,
with backoff, when the connection is lost (:func:`ysh.db.with_reconnect`). The sink
holds ``on_time_end`` until the time is written, so the time is durable before Pathway
moves on (the sink contract of docs/cdc.md) and the graph waits for the server instead
of dropping or doubling rows: an upsert applied twice is the same row.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pathway as pw
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .. import db

log = logging.getLogger("ysh.kit.sinks")


def sql_value(value: Any) -> Any:
    """A Pathway value as psycopg adapts it (Json → jsonb, arrays → lists, numpy scalars
    → Python, pandas timestamps and durations → datetime/timedelta)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, pw.Json):
        return Jsonb(value.value)
    if isinstance(value, (tuple, list)):
        return [sql_value(v) for v in value]
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if hasattr(value, "to_pytimedelta"):
        return value.to_pytimedelta()
    if isinstance(value, (dt.datetime, dt.date, dt.timedelta, bytes)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, pw.Pointer):
        return str(value)
    return value


def _copy_from_stdin(table: sql.Composable, names: sql.Composable) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(table, names)


class SnapshotSink:
    """Keeps ``table_name`` equal to a Pathway table, keyed by ``primary_key``.

    A time with at least ``copy_min_rows`` upserts of one column set (a first load, a
    large feed) is written by ``COPY`` through a staging table (:meth:`_copy_upsert`),
    smaller ones by a prepared upsert per row; both in the time's one transaction. A role
    that may not create temporary tables (no ``TEMPORARY`` privilege on the database)
    gets the upsert per row instead, with one warning per sink. ``copied_rows`` and
    ``upserted_rows`` count the rows written each way."""

    #: upserts of one time from which COPY is used instead of a statement per row
    copy_min_rows = 200

    def __init__(self, dsn: str, schema: str, table_name: str, primary_key: Sequence[str], *,
                 retry_budget_s: float = 300.0, backoff_cap_s: float = 10.0):
        self._dsn, self._schema, self._table = dsn, schema, table_name
        self._key = tuple(primary_key)
        self._budget_s, self._cap_s = retry_budget_s, backoff_cap_s
        self._changes: list[tuple[dict, bool]] = []
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._statements: dict[tuple[str, ...], sql.Composed] = {}
        #: False once the server refused the staging table (no TEMPORARY privilege)
        self._copy_allowed = True
        #: a column (the write time) that alone does not make a row changed (PackedBatchSink)
        self._skip_unchanged: str | None = None
        self.copied_rows = 0
        self.upserted_rows = 0

    # ---- Pathway callbacks -------------------------------------------------------------
    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        with self._lock:
            self._changes.append((row, is_addition))

    def on_time_end(self, time: int) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        upserts, deletes = self.net(changes)
        if upserts or deletes:
            db.with_reconnect(lambda: self._apply(upserts, deletes), what=f"writing {self._table}",
                              budget_s=self._budget_s, cap_s=self._cap_s)

    def on_end(self) -> None:
        self.close()

    # ---- the writes ----------------------------------------------------------------------
    def net(self, changes: list[tuple[dict, bool]]) -> tuple[dict[tuple, dict], list[tuple]]:
        """(primary key → row to upsert, primary keys to delete) of one Pathway time.

        The changes of one time come in no set order, and a time can hold a transient
        version of a row with its own retraction (``+new, +transient, −transient``). Each
        version is counted, additions minus retractions: the version left with a positive
        count is the row; a key whose versions all cancel or are retracted is deleted.
        (Taking the last addition seen wrote the transient version: a follower's KPI row
        kept a kWp of 0.0 after a database restart.)"""
        key = self._key
        if all(is_addition for _, is_addition in changes):
            # a time of additions only (a first load): each key once is its row as it is; the
            # versions are only counted when a key comes twice
            upserts = {tuple(row[c] for c in key): row for row, _ in changes}
            if len(upserts) == len(changes):
                return upserts, []
        versions: dict[tuple, dict[str, list]] = {}
        for row, is_addition in changes:
            pk = tuple(row[c] for c in self._key)
            entry = versions.setdefault(pk, {}).setdefault(repr(sorted(row.items())), [row, 0])
            entry[1] += 1 if is_addition else -1
        upserts: dict[tuple, dict] = {}
        deletes: list[tuple] = []
        for pk, by_content in versions.items():
            alive = [row for row, count in by_content.values() if count > 0]
            if alive:
                upserts[pk] = alive[-1]
            elif any(count < 0 for _, count in by_content.values()):
                deletes.append(pk)
        return upserts, sorted(deletes, key=repr)

    #: libpq options of the sink's connections, besides the timeout
    connect_options: dict[str, str] = {}

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            self._conn = db.connect(self._dsn, self._schema, connect_timeout=10, **self.connect_options)
        return self._conn

    def _on_conflict(self, columns: tuple[str, ...]) -> sql.Composed:
        others = [c for c in columns if c not in self._key]
        if not others:
            return sql.SQL("DO NOTHING")
        action = sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others))
        compared = [c for c in others if c != self._skip_unchanged]
        if self._skip_unchanged is None or not compared:
            return action
        # a row equal but for the write time is left alone: no new row version, no index
        # entries (the target's columns are named by its table, as ON CONFLICT allows)
        table = sql.Identifier(self._table)
        return action + sql.SQL(" WHERE ({}) IS DISTINCT FROM ({})").format(
            sql.SQL(", ").join(sql.SQL("{}.{}").format(table, sql.Identifier(c)) for c in compared),
            sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in compared))

    def _upsert(self, columns: tuple[str, ...]) -> sql.Composed:
        statement = self._statements.get(columns)
        if statement is None:
            action = self._on_conflict(columns)
            statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
                sql.Identifier(self._table), sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                sql.SQL(", ").join(map(sql.Identifier, self._key)), action)
            self._statements[columns] = statement
        return statement

    def _apply(self, upserts: Mapping[tuple, dict], deletes: list[tuple]) -> None:
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                if deletes:
                    cur.executemany(sql.SQL("DELETE FROM {} WHERE {}").format(
                        sql.Identifier(self._table), sql.SQL(" AND ").join(
                            sql.SQL("{} = %s").format(sql.Identifier(c)) for c in self._key)),
                        [[sql_value(v) for v in pk] for pk in deletes])
                by_columns: dict[tuple[str, ...], list[list]] = {}
                for row in upserts.values():
                    columns = tuple(row)
                    by_columns.setdefault(columns, []).append([sql_value(row[c]) for c in columns])
                copied = upserted = 0
                for columns, params in by_columns.items():
                    if (len(params) >= self.copy_min_rows and self._copy_allowed
                            and self._copy_upsert(conn, cur, columns, params) is not None):
                        copied += len(params)
                    else:
                        cur.executemany(self._upsert(columns), params)
                        upserted += len(params)
            self.copied_rows += copied  # counted once the time is committed
            self.upserted_rows += upserted
        except psycopg.OperationalError:
            self.close()  # a broken connection is not reused; the retry opens a fresh one
            raise

    def _copy_upsert(self, conn: psycopg.Connection, cur: psycopg.Cursor, columns: tuple[str, ...],
                     params: Iterable[Sequence[Any]]) -> int | None:
        """Many upserts at once (a first load, a large feed): ``COPY`` into a staging table
        of the transaction, then one ``INSERT … SELECT … ON CONFLICT`` — the same rows as
        :meth:`_upsert` per row, without a statement per row. The staging table takes the
        target's column types and is dropped at commit.

        All of it runs inside a savepoint: when the role may not create a temporary table
        (``InsufficientPrivilege``: the database's ``TEMPORARY`` privilege was revoked
        from it or from PUBLIC) the savepoint is rolled back, the time's transaction goes
        on, a warning is logged once, and None is returned (nothing written: the caller
        upserts row by row, as every later time of this sink does). Any other error is
        raised as before."""
        stage = sql.Identifier(f"_stage_{self._table}"[:63])
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        staged = False
        try:
            with conn.transaction():  # nested in the time's transaction: a SAVEPOINT
                cur.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                    stage, names, sql.Identifier(self._table)))
                staged = True
                copied = self._copy(cur, _copy_from_stdin(stage, names), params)
                cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) {}").format(
                    sql.Identifier(self._table), names, names, stage,
                    sql.SQL(", ").join(map(sql.Identifier, self._key)), self._on_conflict(columns)))
                cur.execute(sql.SQL("DROP TABLE {}").format(stage))
        except psycopg.errors.InsufficientPrivilege as exc:
            if staged:  # the staging table was made: the refusal is the target's, not TEMP's
                raise
            self._copy_allowed = False
            log.warning("writing %s: this role may not create temporary tables (%s); "
                        "upserting row by row instead of COPY", self._table,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            return None
        return copied

    @staticmethod
    def _copy(cur: psycopg.Cursor, statement: sql.Composed, rows: Iterable[Sequence[Any]]) -> int:
        count = 0
        with cur.copy(statement) as copy:
            for count, row in enumerate(rows, start=1):
                copy.write_row(row)
        return count

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


class PackedBatchSink(SnapshotSink):
    """A batch's sink for a table whose every row packs many output rows (the tariffs
    graph keeps a utility's rows as pickled lists from the parser to the sink): it keeps
    the table's final state (per Pathway row, additions minus retractions) and, when the
    run ends, writes the unpacked rows in one transaction: into an empty ``table_name``
    a plain ``COPY``, otherwise ``COPY`` into a staging table and one ``INSERT … ON
    CONFLICT`` (a role without the ``TEMPORARY`` privilege: an upsert per row), retried
    on a fresh connection when the connection is lost. ``replace``: the batch's rows are
    the whole new content of the table (a full recompute): the transaction locks the table
    against other writers (``SHARE ROW EXCLUSIVE``; readers go on, and see the old rows or
    the new ones), deletes its rows and ``COPY``s the new ones — no conflict to resolve, so
    a re-run over a full table costs about what a first load does. It needs
    ``source_finished()``, which must say whether the batch's source read everything: a
    run whose source fails may still be ended by Pathway through ``on_end`` (with the rows
    read so far) before it raises, and replacing the table with those would lose the
    others — so then nothing is written and ``on_end`` raises. ``unpack(row)`` gives the
    output rows of a Pathway row (a dict), each a sequence of values in ``columns`` order.

    ``skip_unchanged`` (a column, the write time): an upsert leaves a row whose other
    columns are equal alone — no new row version, no index update — so that column keeps
    the time the row last changed, and whoever prunes by it must know which rows the batch
    held. ``on_written(rows, method)`` is called once the batch is committed, with its
    Pathway rows and how they went in (``write_method``).

    For a static batch only: nothing is written before the run ends, and the output rows
    are held in memory at the end. A run that fails in a UDF writes nothing (Pathway does
    not call ``on_end``); without ``replace``, a run whose source fails and still reaches
    ``on_end`` writes what the graph had (as Pathway's own writer would have, row by row),
    and the batch's caller sees the error and prunes nothing. ``written_rows`` counts the
    rows written and ``write_method`` says how they went in."""

    def __init__(self, dsn: str, schema: str, table_name: str, primary_key: Sequence[str],
                 columns: Sequence[str], unpack: Callable[[dict], Iterable[Sequence[Any]]], *,
                 replace: bool = False, source_finished: Callable[[], bool] | None = None,
                 scope: str | None = None, skip_unchanged: str | None = None,
                 on_written: Callable[[list[dict], str], None] | None = None,
                 retry_budget_s: float = 300.0, backoff_cap_s: float = 10.0):
        super().__init__(dsn, schema, table_name, primary_key, retry_budget_s=retry_budget_s,
                         backoff_cap_s=backoff_cap_s)
        if skip_unchanged is not None and skip_unchanged not in columns:
            raise ValueError(f"skip_unchanged={skip_unchanged!r} is not one of the columns")
        self._skip_unchanged, self._on_written = skip_unchanged, on_written
        if replace and source_finished is None:
            raise ValueError("replace=True needs source_finished: a partial batch must not replace a table")
        self._columns, self._unpack, self._replace = tuple(columns), unpack, replace
        # with ``scope`` (a column of both the Pathway rows and the table): a plain COPY when
        # the table has no row with one of the batch's values of it (other writers of the
        # run may fill the table's other rows meanwhile), instead of when it is empty
        self._scope = scope
        self._source_finished = source_finished
        self._counts: dict[Any, dict[Any, list]] = {}  # Pathway key → version → [row, count]
        self.written_rows = 0
        #: how the rows went in: "copy" (an empty or replaced table), "staged copy" or "upserts"
        self.write_method = ""

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        version: Any = tuple(sorted(row.items()))
        try:
            hash(version)  # packed rows (bytes, tuples of bytes) hash without a copy
        except TypeError:
            version = repr(version)
        with self._lock:
            entry = self._counts.setdefault(key, {}).setdefault(version, [row, 0])
            entry[1] += 1 if is_addition else -1

    def on_time_end(self, time: int) -> None:
        pass  # a batch is written whole, at its end

    def on_end(self) -> None:
        with self._lock:
            alive = [row for versions in self._counts.values() for row, count in versions.values() if count > 0]
            self._counts = {}

        def rows() -> Iterator[Sequence[Any]]:
            return (values for row in alive for values in self._unpack(row))

        try:
            if alive and self._replace and not self._source_finished():
                raise RuntimeError(f"{self._table}: the batch's source did not read everything; "
                                   "the table is left as it was (a partial batch would replace it)")
            if alive:
                scope = sorted({row[self._scope] for row in alive}) if self._scope else None
                db.with_reconnect(lambda: self._write(rows, scope), what=f"writing {self._table}",
                                  budget_s=self._budget_s, cap_s=self._cap_s)
                if self._on_written is not None:
                    self._on_written(alive, self.write_method)
        finally:
            self.close()

    def _write(self, rows: Callable[[], Iterator[Sequence[Any]]], scope: list | None = None) -> None:
        """One transaction: into an empty table (a first load; with ``scope``, a table
        without rows of the batch's scope values) a plain ``COPY`` (no staging table, no
        conflict to resolve; if a row's key is there after all — a writer outside the
        batch — the staged upsert instead), otherwise the staged upsert. The rows are
        unpacked as they are sent, so the server works while the client formats."""
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                table, names = sql.Identifier(self._table), sql.SQL(", ").join(map(sql.Identifier, self._columns))
                written, method = None, ""
                if self._replace:
                    # a lock still held by a lost session of ours waits at most this long (then retried)
                    cur.execute("SET LOCAL lock_timeout = '60s'")
                    cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
                    cur.execute(sql.SQL("DELETE FROM {}").format(table))
                if self._empty(cur, scope):
                    try:
                        with conn.transaction():  # a SAVEPOINT: a clash rolls the COPY back alone
                            written, method = self._copy(cur, _copy_from_stdin(table, names), rows()), "copy"
                    except psycopg.errors.UniqueViolation:
                        written = None
                if written is None and self._copy_allowed:
                    written, method = self._copy_upsert(conn, cur, self._columns, rows()), "staged copy"
                if written is None:
                    params = self._params(rows)
                    cur.executemany(self._upsert(self._columns), params)
                    written, method = len(params), "upserts"
            self.written_rows, self.write_method = written, method
        except psycopg.OperationalError:
            self.close()
            raise

    def _params(self, rows: Callable[[], Iterator[Sequence[Any]]]) -> list:
        """The rows as statement parameters (the upsert per row)."""
        return list(rows())

    def _empty(self, cur: psycopg.Cursor, scope: list | None) -> bool:
        """Whether the table has no row (with ``scope``: none of the batch's scope values)."""
        table = sql.Identifier(self._table)
        if scope is None:
            return cur.execute(sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(table)).fetchone()[0]
        return cur.execute(sql.SQL("SELECT NOT EXISTS (SELECT FROM {} WHERE {} = ANY(%s))").format(
            table, sql.Identifier(self._scope)), (scope,)).fetchone()[0]


class CopyTextSink(PackedBatchSink):
    """A :class:`PackedBatchSink` whose ``unpack(row)`` gives the output rows already as
    ``COPY`` text (:func:`ysh.kit.copytext.encode`, one or more chunks of whole lines):
    written in the graph's UDFs, in parallel, they are sent to the server unchanged —
    by a plain ``COPY`` or through the staging table. The upsert per row (a role without
    the ``TEMPORARY`` privilege writing into rows it has) binds the decoded text.

    The plain ``COPY`` (a table without rows of the batch) is spread over
    ``copy_connections`` connections at once, the chunks dealt by size: the server
    computes each row's generated columns (the catalog's ``tsvector``) on one core per
    connection. Each connection has its own transaction; all are committed only once
    every ``COPY`` is through (an error in any rolls all back), the others before this
    sink's own. A connection lost between those commits leaves some of the rows in: the
    retry then finds rows of the batch and writes all of it through the staging table,
    which comes to the same rows.

    While one connection waits for the others in Python, the server cannot see that wait:
    a lock request queued between them (another session's index build, say) would stall
    both for good. So every connection of a spread COPY waits at most ``lock_timeout``
    for a lock; the error (``LockNotAvailable``, an ``OperationalError``) rolls all of
    them back and the write is retried like a lost connection. The text is UTF-8: the
    connections say so (``client_encoding``), whatever the server's or the environment's
    encoding."""

    #: connections a plain COPY is spread over
    copy_connections = 2
    #: how long a connection of a spread COPY waits for a lock
    lock_timeout = "30s"
    connect_options = {"client_encoding": "UTF8"}

    @staticmethod
    def _copy(cur: psycopg.Cursor, statement: sql.Composed, rows: Iterable[bytes]) -> int:
        count = 0
        with cur.copy(statement) as copy:
            for chunk in rows:
                copy.write(chunk)
                count += chunk.count(b"\n")
        return count

    def _params(self, rows: Callable[[], Iterator[bytes]]) -> list:
        from .copytext import decode

        return [row for chunk in rows() for row in decode(chunk)]

    def _write(self, rows: Callable[[], Iterator[bytes]], scope: list | None = None) -> None:
        chunks = [chunk for chunk in rows() if chunk]
        if self._replace or self.copy_connections < 2 or len(chunks) < 2:
            return super()._write(lambda: iter(chunks), scope)
        shares: list[list[bytes]] = [[] for _ in range(min(self.copy_connections, len(chunks)))]
        sizes = [0] * len(shares)
        for chunk in sorted(chunks, key=len, reverse=True):  # the largest first, to the least loaded
            i = sizes.index(min(sizes))
            shares[i].append(chunk)
            sizes[i] += len(chunk)
        statement = _copy_from_stdin(sql.Identifier(self._table), sql.SQL(", ").join(map(sql.Identifier, self._columns)))
        others: list[psycopg.Connection] = []
        try:
            conn = self._connection()
            others = [db.connect(self._dsn, self._schema, connect_timeout=10, **self.connect_options)
                      for _ in shares[1:]]
            for connection in (conn, *others):
                connection.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(self.lock_timeout)))
            with conn.cursor() as cur:
                empty = self._empty(cur, scope)
            if not empty:
                self._rollback(others)
                conn.rollback()
                return super()._write(lambda: iter(chunks), scope)

            def copy_on(connection: psycopg.Connection, share: list[bytes]) -> int:
                with connection.cursor() as cursor:
                    return self._copy(cursor, statement, share)

            with ThreadPoolExecutor(len(others)) as pool:
                futures = [pool.submit(copy_on, c, share) for c, share in zip(others, shares[1:])]
                outcomes: list[int | BaseException] = []
                try:
                    outcomes.append(copy_on(conn, shares[0]))
                except Exception as exc:  # noqa: BLE001 - raised below, once the others are done
                    outcomes.append(exc)
                for future in futures:
                    exc = future.exception()
                    outcomes.append(exc if exc is not None else future.result())
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if errors:
                raise errors[0]
            for other in others:
                other.commit()
            conn.commit()
            self.written_rows, self.write_method = sum(outcomes), "copy"
        except psycopg.errors.UniqueViolation:
            # a writer outside the batch put a key of it there meanwhile: the staged upsert
            self._rollback(others)
            conn.rollback()
            return super()._write(lambda: iter(chunks), scope)
        except psycopg.OperationalError:
            self._rollback(others)
            self.close()
            raise
        except Exception:
            self._rollback(others)
            if self._conn is not None and not self._conn.closed:
                self._conn.rollback()
            raise
        finally:
            for other in others:
                other.close()

    @staticmethod
    def _rollback(connections: list[psycopg.Connection]) -> None:
        for connection in connections:
            try:
                if not connection.closed:
                    connection.rollback()
            except psycopg.Error:
                pass


def write_snapshots(tables, outputs: Mapping[str, tuple[str, Sequence[str]]], warehouse, *,
                    retry_budget_s: float = 300.0, backoff_cap_s: float = 10.0) -> dict[str, SnapshotSink]:
    """Snapshot sinks (upsert/delete by primary key) of ``tables`` into the warehouse that
    retry a write on a lost connection: ``outputs`` maps an attribute of ``tables`` to
    (table name, primary key columns), as :func:`ysh.pw_runtime.write_snapshots`."""
    sinks = {}
    for attr, (table_name, key) in outputs.items():
        sink = SnapshotSink(warehouse.dsn, warehouse.schema, table_name, key,
                            retry_budget_s=retry_budget_s, backoff_cap_s=backoff_cap_s)
        pw.io.subscribe(getattr(tables, attr), on_change=sink.on_change, on_time_end=sink.on_time_end,
                        on_end=sink.on_end, name=f"pg_{table_name}")
        sinks[table_name] = sink
    return sinks
