"""Pathway input connector: change data capture from one PostgreSQL table via pgoutput.

    table = read_postgres_cdc(dsn, table="items", schema=ItemSchema,
                              publication="items_pub", slot="items_slot", name="items")

The subject runs an ``upsert`` session keyed by the schema's primary key (which must be
the table's primary key / replica identity): an INSERT or UPDATE is ``next(**row)``
(replacing the row with the same key), a DELETE is ``delete(**key)``. Replaying a
suffix of the change stream therefore converges to the same table, which is what makes
at-least-once delivery safe.

Start-up, with Pathway persistence (``pw.run(persistence_config=...)``):
  * first run (nothing persisted): (re)create the durable slot ``slot`` with an exported
    snapshot, read the table in that snapshot, then stream from the slot's consistent
    point;
  * later runs: Pathway restores its state and calls ``seek()`` with the LSN persisted
    together with it; the stream restarts from that LSN. Nothing is re-read;
  * a slot prepared in this process (:func:`prepare_slot`: a follower's first start made
    it, and computed its first outputs in its snapshot with :func:`read_snapshot`) is
    taken instead of a new one: its snapshot is read, and the stream starts at its
    consistent point. With ``require_prepared_slot``, a first run without one raises
    :class:`SnapshotNeedsFirstStart` instead of taking a snapshot of its own.
Start-up without persistence: Pathway starts empty every time, so every run creates a
*temporary* slot with an exported snapshot, reads the table, and streams (what the
licensed ``pw.io.postgres.read`` does too). Nothing is left on the server on exit.

Pathway minibatches never split a PostgreSQL transaction (autocommit is disabled from
BEGIN to COMMIT), and each COMMIT reports its end LSN as the connector offset, so the
persisted (state, offset) pair always sits on a transaction boundary. A minibatch is
closed as soon as the socket is drained (latency), or after
``max_transactions_per_batch`` transactions under load.

What sinks must do (verified with SIGKILL tests, see demo/e2e.py): after a crash Pathway
restores its last *persisted* time, which may be older than outputs already delivered,
and re-delivers the changes after it. A sink of this table must therefore apply changes
as upserts keyed by the primary key (per Pathway time: an addition sets the row, a key
with only a retraction is deleted, retracted values are not compared), and must make
each time durable before ``on_time_end`` returns (Pathway never re-delivers a persisted
time).

A lost server (a restart, a failover, a network cut) is waited out when Pathway
persistence is on: the replication stream and the admin connection are opened anew (a
restart kills both) with exponential backoff (0.5 s doubling, capped at 10 s, each
attempt logged) for up to ``reconnect_budget_s`` (300 s) without progress, then
:class:`CdcError`; streaming resumes after the last transaction handed to Pathway.
Start-up retries the same way until the first snapshot row is emitted. A *fast* shutdown
of the server waits for each walsender's client to confirm all WAL, which a persisted
run does only ``confirm_delay_s`` after hand-over: ``pg_ctl stop -m fast`` takes up to
about that long while a follower is attached.

Slot confirmation: the server may drop WAL before the slot's ``confirmed_flush_lsn``,
and START_REPLICATION never goes back before it. With persistence, Pathway's persisted
offset must therefore never be behind the confirmed position; see ``_maybe_confirm``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pathway as pw
import psycopg
from psycopg import sql

from . import pgoutput as po
from .values import SESSION_OPTIONS, parser_for, raw_text_cursor
from .walsender import CreatedSlot, ReplicationError, ReplicationStream

log = logging.getLogger("ysh.cdc")


def check_server_setup(conn: psycopg.Connection, table: str, publication: str) -> None:
    """Fail with what to do when the server is not set up for logical replication."""
    (wal_level,) = conn.execute("SHOW wal_level").fetchone()
    if wal_level != "logical":
        raise CdcError(f"wal_level is {wal_level!r}; set wal_level = logical in postgresql.conf and restart")
    can_replicate = conn.execute(
        "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not (can_replicate and can_replicate[0]):
        raise CdcError("the role has no REPLICATION attribute: ALTER ROLE <user> REPLICATION")
    published = conn.execute(
        "SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND tablename = %s",
        (publication, table.split(".")[-1].strip('"'))).fetchone()
    if not published:
        raise CdcError(f"publication {publication!r} does not include table {table!r}: "
                       f"CREATE PUBLICATION {publication} FOR TABLE {table}")


class CdcError(RuntimeError):
    pass


class SnapshotNeedsFirstStart(CdcError):
    """A run with ``require_prepared_slot`` found nothing persisted and no prepared slot
    (a follower killed after its first start began, before Pathway persisted anything)."""


def wait_for_slot_release(admin: psycopg.Connection, slot: str, timeout: float = 120.0) -> None:
    """A killed consumer's walsender keeps the slot active until the server notices the
    dead socket (at once after a process kill, up to wal_sender_timeout after a network
    loss); using an active slot fails with 'replication slot ... is active for PID'."""
    deadline = time.monotonic() + timeout
    while True:
        row = admin.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        if row is None or row[0] is None:
            return
        if time.monotonic() > deadline:
            raise CdcError(f"replication slot {slot!r} still in use by pid {row[0]}")
        time.sleep(0.2)


def snapshot_rows(dsn: str, namespace: str, table: str, columns: dict[str, Callable[[str | None], Any]],
                  snapshot_name: str, *, batch_rows: int = 5000):
    """The rows of ``namespace.table`` in an exported snapshot (``SET TRANSACTION
    SNAPSHOT``), as dicts of the ``columns`` given (name → parser of the value's text):
    the values the stream gives, as the session settings are pinned the same way."""
    names = list(columns)
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(n) for n in names), sql.Identifier(namespace, table))
    parsers = [columns[n] for n in names]
    with psycopg.connect(dsn, options=SESSION_OPTIONS) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            # must be the first statement of the transaction; a literal, not a parameter
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name)))
            oids = [d.type_code for d in conn.execute(query + sql.SQL(" LIMIT 0")).description]
            with raw_text_cursor(conn, oids, name="cdc_snapshot") as cur:
                cur.itersize = batch_rows
                cur.execute(query)
                for row in cur:
                    yield {n: p(v) for n, p, v in zip(names, parsers, row)}


# ---- slots prepared before a run ------------------------------------------------------------
# A follower's first start creates its slots before its Pathway run (ysh.kit.follower): the
# first outputs are computed in the slots' exported snapshots, and the run's connectors then
# read the same snapshots and stream from the same consistent points. The replication
# connection that created a slot is held here, idle, so that its snapshot stays importable.
_prepared: dict[str, tuple[ReplicationStream, CreatedSlot]] = {}
_prepared_lock = threading.Lock()


def prepare_slot(dsn: str, *, table: str, publication: str, slot: str, schema_name: str = "public",
                 transport: type = ReplicationStream) -> CreatedSlot:
    """Create the durable ``slot`` now (dropping an unused one of that name: nothing was
    persisted for it) with an exported snapshot, and keep its connection for the next
    :class:`PostgresCdcSubject` of ``slot`` in this process with Pathway persistence: it
    reads that snapshot and streams from its consistent point. The snapshot stays
    importable (:func:`read_snapshot`) until then, or until :func:`release_prepared_slot`."""
    with psycopg.connect(dsn, autocommit=True, options=SESSION_OPTIONS, connect_timeout=10) as admin:
        check_server_setup(admin, f"{schema_name}.{table}", publication)
        if admin.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone():
            wait_for_slot_release(admin, slot, timeout=120)
            log.warning("dropping slot %s: nothing persisted for it yet", slot)
            admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    stream = transport(dsn)
    try:
        created = stream.create_slot(slot, temporary=False, export_snapshot=True)
    except BaseException:
        stream.close()
        raise
    with _prepared_lock:
        old = _prepared.pop(slot, None)
        _prepared[slot] = (stream, created)
    if old is not None:
        old[0].close()
    log.info("slot %s prepared at %s (snapshot %s)", slot, po.format_lsn(created.consistent_point),
             created.snapshot_name)
    return created


def take_prepared_slot(slot: str) -> tuple[ReplicationStream, CreatedSlot] | None:
    with _prepared_lock:
        return _prepared.pop(slot, None)


def release_prepared_slot(slot: str) -> None:
    """Close the connection of a prepared slot no run took (its snapshot ends; the slot
    stays, and the next first start drops and creates it again)."""
    prepared = take_prepared_slot(slot)
    if prepared is not None:
        prepared[0].close()


class _SnapshotSubject(pw.io.python.ConnectorSubject):
    def __init__(self, dsn: str, table: str, schema: type[pw.Schema], snapshot_name: str, namespace: str,
                 batch_rows: int):
        super().__init__(datasource_name="postgres-cdc-snapshot")
        self._args = (dsn, namespace, table, {n: parser_for(c.dtype) for n, c in schema.columns().items()},
                      snapshot_name)
        self._batch_rows = batch_rows

    def run(self) -> None:
        for row in snapshot_rows(*self._args, batch_rows=self._batch_rows):
            self.next(**row)


def read_snapshot(dsn: str, *, table: str, schema: type[pw.Schema], snapshot: str, name: str,
                  schema_name: str = "public", batch_rows: int = 5000) -> pw.Table:
    """A static Pathway table of ``table`` in the exported ``snapshot``, with the values
    :func:`read_postgres_cdc` gives (same parsers, same session settings)."""
    return pw.io.python.read(_SnapshotSubject(dsn, table, schema, snapshot, schema_name, batch_rows),
                             schema=schema, name=name)


@dataclass(frozen=True)
class _ColumnPlan:
    name: str
    index: int  # position in the Relation / TupleData
    type_oid: int
    parse: Callable[[str | None], Any]


class PostgresCdcSubject(pw.io.python.ConnectorSubject):
    def __init__(
        self,
        dsn: str,
        *,
        table: str,
        schema: type[pw.Schema],
        publication: str,
        slot: str,
        schema_name: str = "public",
        confirm_delay_s: float | None = 60.0,
        status_interval_s: float = 10.0,
        max_transactions_per_batch: int = 1000,
        snapshot_batch_rows: int = 5000,
        reconnect_budget_s: float = 300.0,
        backoff_initial_s: float = 0.5,
        backoff_cap_s: float = 10.0,
        transport: type = ReplicationStream,
        replay_per_transaction: bool = True,
        require_prepared_slot: bool = False,
    ) -> None:
        super().__init__(datasource_name="postgres-cdc", session_type="upsert")
        self._dsn = dsn
        self._table = table
        self._namespace = schema_name
        self._publication = publication
        self._slot = slot
        self._confirm_delay_s = confirm_delay_s
        self._status_interval_s = status_interval_s
        self._max_tx_per_batch = max_transactions_per_batch
        self._snapshot_batch_rows = snapshot_batch_rows
        self._reconnect_budget_s = reconnect_budget_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_cap_s = backoff_cap_s
        self._transport = transport
        self._replay_per_transaction = replay_per_transaction
        self._require_prepared = require_prepared_slot

        self._columns = {name: parser_for(col.dtype) for name, col in schema.columns().items()}
        self._pk = list(schema.primary_key_columns() or [])
        if not self._pk:
            raise CdcError("the schema must declare the table's primary key columns")

        self._persisted_run = False  # Pathway persistence is on for this run
        self._resume_lsn: int | None = None  # what Pathway persisted, from seek()
        self._handed_lsn = 0  # end LSN of the last transaction handed to Pathway
        self._pending: collections.deque[tuple[float, int]] = collections.deque()
        self._stop = threading.Event()
        self._refetch_wait_s = 2.0
        self._stream: ReplicationStream | None = None
        self._admin: psycopg.Connection | None = None
        self._plan: list[_ColumnPlan] | None = None
        self._rel_id: int | None = None
        self._catch_up_until = 0
        self._snapshot_emitted = False  # rows of the initial snapshot went to Pathway

    # ---- Pathway hooks -------------------------------------------------------------------
    def on_persisted_run(self) -> None:
        self._persisted_run = True

    def _seek(self, state: bytes) -> None:
        self._resume_lsn = po.parse_lsn(state.decode("ascii"))

    def on_stop(self) -> None:
        self._close()

    def stop(self) -> None:
        """Ask run() to return; the source then ends (ConnectorSubject calls on_stop() and
        close() whenever run() returns, as ``_is_finite()`` is left True)."""
        self._stop.set()

    # ---- main loop -----------------------------------------------------------------------
    def run(self) -> None:
        try:
            if not self._open_retrying():
                return
            outage_since: float | None = None  # first failure without progress since
            progress_mark = self._handed_lsn
            while not self._stop.is_set():
                try:
                    self._consume()
                    return
                except (ReplicationError, psycopg.OperationalError) as exc:
                    if not self._persisted_run:
                        raise  # the TEMPORARY slot died with the connection: start over
                    if outage_since is None or self._handed_lsn > progress_mark:
                        outage_since = time.monotonic()
                    progress_mark = self._handed_lsn
                    log.warning("replication connection lost (%s); reconnecting", exc)
                    # Resume after the last transaction handed over; a transaction cut in
                    # the middle is re-sent whole (its rows are still in the same,
                    # uncommitted minibatch, and re-applying them is idempotent).
                    self._reconnect(outage_since)
        finally:
            self._close()

    def _open_retrying(self) -> bool:
        """:meth:`_open`, again with backoff while the server cannot be reached (a restart
        during start-up), within ``reconnect_budget_s``. Not once rows of the initial
        snapshot went to Pathway: a second snapshot could not retract the rows of the first
        that are gone meanwhile, so that error ends the run (nothing was persisted yet: the
        next start begins afresh). False when asked to stop meanwhile."""
        since = None
        attempt = 0
        while True:
            try:
                self._admin = self._connect_admin()
                self._open()
            except (ReplicationError, psycopg.OperationalError) as exc:
                self._close_stream()
                self._close_admin()
                now = time.monotonic()
                since = now if since is None else since
                attempt += 1
                if self._snapshot_emitted or now - since >= self._reconnect_budget_s:
                    raise
                delay = min(self._backoff_initial_s * 2.0 ** (attempt - 1), self._backoff_cap_s)
                log.warning("opening replication of %s.%s failed (attempt %d, %.1fs since the first "
                            "failure): %s; retrying in %.1fs", self._namespace, self._table, attempt,
                            now - since, str(exc).strip().splitlines()[0] if str(exc).strip() else exc, delay)
                if self._stop.wait(delay):
                    return False
                continue
            if attempt:
                log.info("replication of %s.%s opened after %d failed attempt(s)", self._namespace,
                         self._table, attempt)
            return True

    def _connect_admin(self) -> psycopg.Connection:
        return psycopg.connect(self._dsn, autocommit=True, options=SESSION_OPTIONS, connect_timeout=10)

    def _reconnect(self, outage_since: float) -> None:
        """Open a fresh admin connection and replication stream at ``_handed_lsn``, with
        exponential backoff (``backoff_initial_s`` doubling up to ``backoff_cap_s``) until
        ``reconnect_budget_s`` after ``outage_since`` (then :class:`CdcError`). A server
        restart kills the admin connection too, so both are opened anew; each attempt is
        logged. Returns at once when the subject is asked to stop."""
        self._close_stream()
        self._close_admin()
        deadline = outage_since + self._reconnect_budget_s
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            delay = min(self._backoff_initial_s * 2.0 ** (attempt - 1), self._backoff_cap_s)
            delay = max(0.0, min(delay, deadline - time.monotonic()))
            if self._stop.wait(delay):
                return
            try:
                self._admin = self._connect_admin()
                # the walsender of a lost connection may hold the slot a while longer
                wait_for_slot_release(self._admin, self._slot,
                                      timeout=max(1.0, min(30.0, deadline - time.monotonic())))
                self._start_stream(self._handed_lsn)
            except (ReplicationError, psycopg.OperationalError, CdcError) as exc:
                self._close_stream()
                self._close_admin()
                waited = time.monotonic() - outage_since
                if time.monotonic() >= deadline:
                    raise CdcError(
                        f"replication of {self._namespace}.{self._table} not restored after "
                        f"{attempt} attempts in {waited:.0f}s: {exc}") from exc
                log.warning("reconnect attempt %d to slot %s failed after %.1fs down (%s); retrying",
                            attempt, self._slot, waited, str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
                continue
            log.info("replication of %s.%s restored at %s after %d attempt(s)", self._namespace,
                     self._table, po.format_lsn(self._handed_lsn), attempt)
            return

    def _open(self) -> int:
        """Prepare the slot (and the snapshot, on a fresh start); return the start LSN."""
        check_server_setup(self._admin, self._table, self._publication)
        if self._resume_lsn is not None:
            row = self._admin.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                "WHERE slot_name = %s AND database = current_database()",
                (self._slot,),
            ).fetchone()
            if row is None:
                raise CdcError(
                    f"replication slot {self._slot!r} is gone, but Pathway's persisted state "
                    f"ends at {po.format_lsn(self._resume_lsn)}: changes since then are lost. "
                    "Remove the persistence directory to start over from a fresh snapshot."
                )
            confirmed = po.parse_lsn(row[0])
            if confirmed > self._resume_lsn:
                raise CdcError(
                    f"slot {self._slot!r} was confirmed up to {row[0]}, past Pathway's persisted "
                    f"position {po.format_lsn(self._resume_lsn)}: the changes in between are no "
                    "longer available. Remove the persistence directory (and the slot) to "
                    "start over from a fresh snapshot, or raise confirm_delay_s."
                )
            log.info("resuming slot %s at %s", self._slot, po.format_lsn(self._resume_lsn))
            self._handed_lsn = self._resume_lsn
            # Pathway restores the state of its last *persisted* time, but the previous run
            # may already have delivered outputs of a later time: those transactions come
            # again now. Replaying them one transaction per minibatch re-creates the same
            # per-transaction diffs, so a keyed upsert sink converges; merged into bigger
            # minibatches their net diff could be relative to a version the sink no longer
            # holds (or be empty). So: one minibatch per transaction until we pass the WAL
            # position of this moment.
            if self._replay_per_transaction:
                (current,) = self._admin.execute("SELECT pg_current_wal_lsn()::text").fetchone()
                self._catch_up_until = po.parse_lsn(current)
            wait_for_slot_release(self._admin, self._slot, timeout=120)
            self._start_stream(self._resume_lsn)
            log.info("streaming from %s", po.format_lsn(self._resume_lsn))
            # This position is durable in Pathway: let the server drop WAL before it.
            self._stream.confirm(self._resume_lsn, force=True)
            return self._resume_lsn

        durable = self._persisted_run
        prepared = take_prepared_slot(self._slot) if durable else None
        if prepared is not None:  # created before this run (a follower's first start)
            self._stream, created = prepared
            self._stream.status_interval = self._status_interval_s
            self._emit_snapshot(created.snapshot_name, created.consistent_point)
            self._stream.start(self._slot, self._publication, created.consistent_point)
            return created.consistent_point
        if durable and self._require_prepared:
            raise SnapshotNeedsFirstStart(
                f"nothing of {self._namespace}.{self._table} is persisted, and its slot {self._slot!r} "
                "was not prepared for this run: a fresh snapshot here would not retract the outputs "
                "of rows deleted since the last one; start over with a first start")
        exists = self._admin.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self._slot,)
        ).fetchone()
        if exists:
            wait_for_slot_release(self._admin, self._slot, timeout=120)
            if durable:
                log.warning("dropping slot %s: nothing persisted for it yet", self._slot)
                self._admin.execute("SELECT pg_drop_replication_slot(%s)", (self._slot,))
            elif self._admin.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self._slot,)
            ).fetchone():  # a released TEMPORARY slot is gone by now; a durable one is not
                raise CdcError(
                    f"slot {self._slot!r} exists, but this run has no Pathway persistence and "
                    "needs a temporary slot of that name; drop it or enable persistence"
                )
        self._stream = self._transport(self._dsn, status_interval=self._status_interval_s)
        created = self._stream.create_slot(self._slot, temporary=not durable, export_snapshot=True)
        self._emit_snapshot(created.snapshot_name, created.consistent_point)
        self._stream.start(self._slot, self._publication, created.consistent_point)
        return created.consistent_point

    def _start_stream(self, start_lsn: int) -> None:
        self._stream = self._transport(self._dsn, status_interval=self._status_interval_s)
        self._stream.start(self._slot, self._publication, start_lsn)

    # ---- initial snapshot ----------------------------------------------------------------
    def _emit_snapshot(self, snapshot_name: str, consistent_point: int) -> None:
        """Read the table as of the slot's creation, as one Pathway minibatch."""
        count = 0
        self._disable_commits()
        for row in snapshot_rows(self._dsn, self._namespace, self._table, self._columns, snapshot_name,
                                 batch_rows=self._snapshot_batch_rows):
            self._snapshot_emitted = True
            self.next(**row)
            count += 1
        self._handed_lsn = consistent_point
        self._report_offset(po.format_lsn(consistent_point).encode("ascii"))
        self._enable_commits()
        self.commit()
        self._pending.append((time.monotonic(), consistent_point))
        log.info("snapshot of %s.%s: %d rows at %s", self._namespace, self._table, count,
                 po.format_lsn(consistent_point))

    # ---- streaming -----------------------------------------------------------------------
    def _consume(self) -> None:
        batch_open = False  # committed PG transactions not yet closed as a Pathway minibatch
        in_batch = 0
        in_tx = False
        stream = self._stream
        for item in stream.messages(idle_timeout=0.5):
            if self._stop.is_set():
                return
            if item is None:  # socket drained: close the minibatch now for low latency
                if batch_open:
                    self.commit()
                    batch_open, in_batch = False, 0
                if not in_tx and stream.server_wal_end > self._handed_lsn:
                    # Keepalives report how far the server has decoded; with no transaction
                    # open, nothing before that is still coming. Making it our offset lets
                    # the slot advance while the table is idle (other WAL keeps flowing).
                    self._handed_lsn = stream.server_wal_end
                    self._report_offset(po.format_lsn(self._handed_lsn).encode("ascii"))
                    self._pending.append((time.monotonic(), self._handed_lsn))
                self._maybe_confirm()
                continue
            _data_start, payload = item
            msg = po.decode(payload)
            if isinstance(msg, po.Begin):
                in_tx = True
                self._disable_commits()
            elif isinstance(msg, po.Commit):
                in_tx = False
                self._handed_lsn = msg.end_lsn
                self._report_offset(po.format_lsn(msg.end_lsn).encode("ascii"))
                self._enable_commits()
                self._pending.append((time.monotonic(), msg.end_lsn))
                self._after_commit(msg)
                batch_open, in_batch = True, in_batch + 1
                if in_batch >= self._max_tx_per_batch or msg.end_lsn <= self._catch_up_until:
                    self.commit()
                    batch_open, in_batch = False, 0
                    self._maybe_confirm()  # the socket may never drain under load
            elif isinstance(msg, po.Relation):
                if msg.namespace == self._namespace and msg.name == self._table:
                    self._plan_relation(msg)
            elif isinstance(msg, (po.Insert, po.Update, po.Delete)):
                if msg.rel_id == self._rel_id:
                    self._apply(msg)
            elif isinstance(msg, po.Truncate):
                if self._rel_id in msg.rel_ids:
                    raise CdcError(
                        f"TRUNCATE of {self._namespace}.{self._table}: the connector cannot "
                        "retract rows it does not know; re-snapshot (drop the slot and "
                        "Pathway's persisted state) after a truncate"
                    )
            # Origin, TypeInfo, LogicalMessage: nothing to do

    def _after_commit(self, commit: po.Commit) -> None:
        """A transaction was fully handed to Pathway (metrics; tests override it)."""
        from ..observability import cdc_committed

        cdc_committed(f"{self._namespace}.{self._table}", commit.commit_ts)

    def _plan_relation(self, rel: po.Relation) -> None:
        index = {c.name: i for i, c in enumerate(rel.columns)}
        missing = [n for n in self._columns if n not in index]
        if missing:
            raise CdcError(f"columns {missing} of the Pathway schema are not in {rel.name}")
        if rel.replica_identity in "di":
            keys = {c.name for c in rel.columns if c.is_key}
            if keys != set(self._pk):
                raise CdcError(f"schema primary key {self._pk} != replica identity {sorted(keys)}")
        elif rel.replica_identity == "n":
            raise CdcError(f"{rel.name} has REPLICA IDENTITY NOTHING")
        self._rel_id = rel.rel_id
        self._plan = [
            _ColumnPlan(n, index[n], rel.columns[index[n]].type_oid, p)
            for n, p in self._columns.items()
        ]

    def _key(self, tup: tuple) -> dict[str, Any]:
        return {c.name: c.parse(tup[c.index]) for c in self._plan if c.name in self._pk}

    def _apply(self, msg) -> None:
        if isinstance(msg, po.Delete):
            self.delete(**self._key(msg.key if msg.key is not None else msg.old))
            return
        new = msg.new
        if isinstance(msg, po.Update):
            old = msg.key if msg.key is not None else msg.old
            if old is not None and self._key(old) != self._key(new):  # primary key changed
                self.delete(**self._key(old))
            if msg.old is not None:  # REPLICA IDENTITY FULL: old row carries TOASTed values
                new = tuple(o if n is po.UNCHANGED_TOAST else n for n, o in zip(new, msg.old))
        row = {}
        unchanged = []
        for c in self._plan:
            value = new[c.index]
            if value is po.UNCHANGED_TOAST:
                unchanged.append(c)
            else:
                row[c.name] = c.parse(value)
        if unchanged and not self._refetch(row, unchanged):
            return  # the row is gone by now; its DELETE follows later in the stream
        self.next(**row)

    def _refetch(self, row: dict[str, Any], columns: list[_ColumnPlan]) -> bool:
        """An UPDATE left TOASTed columns out ('u'). Read them from the table now. The value
        may be newer than this change, but every later change is still ahead in the stream,
        so the row converges. Use REPLICA IDENTITY FULL to avoid these round trips."""
        query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
            sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
            sql.Identifier(self._namespace, self._table),
            sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in self._pk),
        )
        # A transaction can reach logical decoding a moment before it is visible to other
        # sessions (its commit record is in the WAL before the server marks it finished),
        # so a row just written may not be readable yet: retry briefly before concluding
        # that it was deleted since (its DELETE is then ahead in the stream).
        found = None
        deadline = time.monotonic() + self._refetch_wait_s
        while True:
            with raw_text_cursor(self._admin, [c.type_oid for c in columns]) as cur:
                found = cur.execute(query, [row[k] for k in self._pk]).fetchone()
            if found is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        if found is None:
            return False
        for c, text in zip(columns, found):
            row[c.name] = c.parse(text)
        return True

    def _maybe_confirm(self) -> None:
        """Tell the server which WAL it may recycle.

        Without Pathway persistence (temporary slot) every handed-over LSN is confirmed at
        once. With persistence only Pathway knows what it has persisted, and 0.33.0 has no
        callback for it: a position is confirmed ``confirm_delay_s`` after it was handed
        over (None: only the position restored at start-up is ever confirmed). If a crash
        still finds the slot ahead of the persisted state, start-up fails loudly instead
        of silently skipping changes."""
        if not self._pending or self._stream is None:
            return
        if not self._persisted_run:
            lsn = self._pending[-1][1]
            self._pending.clear()
        else:
            if self._confirm_delay_s is None:
                self._pending.clear()
                return
            horizon = time.monotonic() - self._confirm_delay_s
            lsn = None
            while self._pending and self._pending[0][0] <= horizon:
                lsn = self._pending.popleft()[1]
            if lsn is None:
                return
        self._stream.confirm(lsn)

    # ---- teardown ------------------------------------------------------------------------
    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _close_admin(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except psycopg.Error:
                pass
            finally:
                self._admin = None

    def _close(self) -> None:
        self._close_stream()
        self._close_admin()


def read_postgres_cdc(
    dsn: str,
    *,
    table: str,
    schema: type[pw.Schema],
    publication: str,
    slot: str,
    name: str,
    autocommit_duration_ms: int = 1000,
    **options: Any,
) -> pw.Table:
    """A Pathway table that follows ``table`` through the publication and slot given.

    ``name`` is the persistent name of the source in Pathway's persistence: keep it stable.
    """
    subject = PostgresCdcSubject(
        dsn, table=table, schema=schema, publication=publication, slot=slot, **options
    )
    return pw.io.python.read(
        subject, schema=schema, name=name, autocommit_duration_ms=autocommit_duration_ms
    )
