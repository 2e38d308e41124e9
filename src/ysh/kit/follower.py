"""The CDC follower of a job: the part of its life that is the same for every job.

A job's outputs are kept current by a long-running follower of its source tables
(logical replication, :mod:`ysh.cdc`; Pathway's native ``pw.io.postgres.read`` when a
license key is given), or recomputed by a batch over a snapshot. A :class:`Follower`
names the replication objects (one publication and one slot per followed table), tells
whether a follower is running (a session advisory lock the follower holds from before its
first batch to its end, or an active slot), runs the batch (refused while a follower runs: it would
race it), runs batch-then-follow (a first start meets its stream exactly: the outputs are computed
in the slots' own snapshots), and resets a follower's state. The job supplies its
tables and its graph; its business rules stay in the job.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathway as pw
import psycopg
from psycopg import sql

from .. import db, pw_runtime
from . import sinks
from ..db import Warehouse

log = logging.getLogger(__name__)

# the (int4, int4) advisory lock a running follower holds: (hashtext of _LOCK_SPACE,
# hashtext of "<schema>:<pipeline>"); pg_locks shows it as classid/objid, objsubid 2
_LOCK_SPACE = "ysh.follower"
_HELD = """SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND classid::text::bigint = (hashtext(%(space)s)::bigint & 4294967295)
    AND objid::text::bigint = (hashtext(%(name)s)::bigint & 4294967295)"""


#: libpq settings of a lock's session: a dead link is noticed in seconds, not minutes
_LOCK_SESSION = {"autocommit": True, "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 5,
                 "keepalives_interval": 2, "keepalives_count": 3, "tcp_user_timeout": 10_000}


def _try_lock(dsn: str, name: str) -> psycopg.Connection | None:
    """A session holding the ``name`` lock (None when another session holds it)."""
    conn = psycopg.connect(dsn, **_LOCK_SESSION)
    try:
        (taken,) = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
                                (_LOCK_SPACE, name)).fetchone()
    except BaseException:
        conn.close()
        raise
    if not taken:
        conn.close()
        return None
    return conn


def _release(conn: psycopg.Connection, name: str) -> None:
    """Unlock now (not when the server notices the closed session) and close."""
    try:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", (_LOCK_SPACE, name))
    except psycopg.Error:
        pass
    conn.close()


class _Presence:
    """A session advisory lock held by a thread while a follower runs: it tells a batch
    that a follower is there in the moments no slot of it is active (its first batch, the
    slot's creation, the initial snapshot). A lost server drops the lock; the thread
    takes it again once the server is back. Released on leaving the ``with`` block (or
    with the process). The session is only touched under ``_guard``, and a lock the thread
    takes after the block was left is released at once."""

    here: set[str] = set()  # the names this process holds: its own batch is not refused

    def __init__(self, dsn: str, name: str, *, check_s: float = 2.0, wait_s: float = 15.0):
        self._dsn, self._name, self._check_s, self._wait_s = dsn, name, check_s, wait_s
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._thread = threading.Thread(target=self._keep, name=f"follower-lock {name}", daemon=True)

    def _take(self) -> bool:
        conn = _try_lock(self._dsn, self._name)
        if conn is None:
            return False
        with self._guard:
            if self._stop.is_set():  # the block was left meanwhile: hold nothing
                _release(conn, self._name)
                return False
            self._conn = conn
        return True

    def __enter__(self) -> _Presence:
        try:
            # a killed follower's session ends a moment after its process: wait for it
            deadline = time.monotonic() + self._wait_s
            while not self._take():
                if time.monotonic() >= deadline:
                    raise FollowerRunning(f"another {self._name} follower (or a batch of it) holds the follower "
                                          "lock; stop it first")
                time.sleep(0.5)
        except psycopg.OperationalError as exc:  # the server is down: the thread takes it later
            log.warning("follower lock %s not taken (%s); retrying", self._name, _first_line(exc))
        _Presence.here.add(self._name)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        _Presence.here.discard(self._name)
        with self._guard:
            if self._conn is not None:
                _release(self._conn, self._name)
                self._conn = None

    def _keep(self) -> None:
        refused = 0
        while not self._stop.wait(self._check_s):
            try:
                if self._conn is None:
                    if self._take():
                        log.info("follower lock %s taken again", self._name)
                        refused = 0
                    elif not self._stop.is_set():
                        refused += 1
                        if refused in (1, 30) or refused % 300 == 0:
                            log.warning("follower lock %s is held by another session (a batch?); retrying",
                                        self._name)
                else:
                    with self._guard:
                        if self._conn is not None:
                            self._conn.execute("SELECT 1")
            except psycopg.OperationalError as exc:
                with self._guard:
                    if self._conn is not None:
                        log.warning("follower lock %s lost (%s); taking it again when the server is back",
                                    self._name, _first_line(exc))
                        self._conn.close()
                        self._conn = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class FollowerRunning(RuntimeError):
    """A CDC follower keeps the outputs current; a batch recompute would race it."""


@dataclass(frozen=True)
class Follower:
    """How one job follows its source tables.

    Parameters
    ----------
    pipeline : str
        the job's name in metrics (``pipeline`` label of the output counters).
    sources : mapping
        source name → (table, Pathway schema). The name is the graph's (and the Pathway
        persistence's: ``<name>_cdc``, ``<name>_native``), the table the warehouse's.
    outputs : mapping
        attribute of the graph's outputs → (warehouse table, primary key).
    busy : str
        the :class:`FollowerRunning` message, ``{schema}`` filled in.
    lead : str, optional
        the table whose slot tells that the follower runs (default: the first source's).
    """

    pipeline: str
    sources: Mapping[str, tuple[str, type[pw.Schema]]]
    outputs: Mapping[str, tuple[str, tuple[str, ...]]]
    busy: str
    lead: str | None = None

    @property
    def tables(self) -> list[str]:
        """The followed tables."""
        return [table for table, _ in self.sources.values()]

    @property
    def output_tables(self) -> list[str]:
        return [table for table, _ in self.outputs.values()]

    def names(self, schema: str, table: str | None = None) -> tuple[str, str]:
        """(publication, slot) of one followed table (default: the lead table) in ``schema``."""
        from ..cdc import replication_names

        return replication_names(schema, table or self.lead or self.tables[0])

    def _lock_name(self, schema: str) -> str:
        return f"{schema}:{self.pipeline}"

    def active(self, warehouse: Warehouse) -> bool:
        """Whether a follower of this schema runs now: it holds its advisory lock (taken
        before its first batch, kept to its end) or the lead table's replication slot."""
        with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
            if conn.execute(_HELD, {"space": _LOCK_SPACE, "name": self._lock_name(warehouse.schema)}).fetchone():
                return True
        return self._lead_slot_active(warehouse)

    def _lead_slot_active(self, warehouse: Warehouse) -> bool:
        """The lead table's replication slot is held (by a walsender streaming it, or by
        the connection that prepared it for a first start)."""
        _, slot = self.names(warehouse.schema)
        with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active",
                                (slot,)).fetchone() is not None

    def streaming(self, warehouse: Warehouse) -> bool:
        """Whether a follower streams changes now: every followed table's slot is held by
        a walsender in the ``streaming`` state (START_REPLICATION given, caught up), so
        its first start — snapshots, first outputs — is over. A slot that is merely
        active is not enough: the replication connection that prepared it holds it while
        the first start still reads its snapshot (a server restart then ends that start).
        The walsenders' state is visible to superusers and ``pg_read_all_stats``; for
        another role this is False."""
        slots = [self.names(warehouse.schema, table)[1] for table in self.tables]
        with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
            streaming = conn.execute(
                "SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid "
                "WHERE s.slot_name = ANY(%s) AND r.state = 'streaming'", (slots,)).fetchone()[0]
        return streaming == len(slots)

    def ensure_publications(self, warehouse: Warehouse) -> dict[str, str]:
        """One publication per followed table, created if missing; source → publication."""
        names = {}
        with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
            for source, (table, _) in self.sources.items():
                publication, _ = self.names(warehouse.schema, table)
                if not conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone():
                    conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}.{}").format(
                        sql.Identifier(publication), sql.Identifier(warehouse.schema), sql.Identifier(table)))
                names[source] = publication
        return names

    def read(self, warehouse: Warehouse, *, autocommit_duration_ms: int = 200,
             license_key: str | None = None, require_prepared: bool = False) -> dict[str, pw.Table]:
        """The followed tables as streaming Pathway tables (source → table): ``ysh.cdc``
        (durable slots, resumes from the persisted position), or Pathway's native
        ``pw.io.postgres.read`` when a license key is given (temporary slots: every start
        re-reads the tables). ``require_prepared``: a ``ysh.cdc`` source with nothing
        persisted takes the slot :meth:`follow` prepared, and without one raises
        :class:`ysh.cdc.SnapshotNeedsFirstStart` instead of taking a snapshot of its own."""
        publications = self.ensure_publications(warehouse)
        if license_key:
            pw.set_license_key(license_key)
        from ..cdc import read_postgres_cdc

        tables = {}
        for name, (table, schema) in self.sources.items():
            if license_key:
                tables[name] = pw.io.postgres.read(
                    pw_runtime.postgres_settings(warehouse.dsn), table, schema, mode="streaming",
                    publication_name=publications[name], schema_name=warehouse.schema,
                    autocommit_duration_ms=autocommit_duration_ms, name=f"{name}_native")
            else:
                _, slot = self.names(warehouse.schema, table)
                options = {"require_prepared_slot": True} if require_prepared else {}
                tables[name] = read_postgres_cdc(
                    warehouse.dsn, table=table, schema=schema, publication=publications[name], slot=slot,
                    schema_name=warehouse.schema, name=f"{name}_cdc", autocommit_duration_ms=autocommit_duration_ms,
                    **options)
        return tables

    def _prepare_slots(self, warehouse: Warehouse) -> dict[str, str]:
        """Create every followed table's slot now, each with its exported snapshot held
        open for this process's follower run (:func:`ysh.cdc.prepare_slot`); source →
        snapshot name. On failure, the slots prepared so far are released."""
        from ..cdc import prepare_slot

        publications = self.ensure_publications(warehouse)
        snapshots: dict[str, str] = {}
        try:
            for name, (table, _) in self.sources.items():
                _, slot = self.names(warehouse.schema, table)
                created = prepare_slot(warehouse.dsn, table=table, publication=publications[name], slot=slot,
                                       schema_name=warehouse.schema)
                snapshots[name] = created.snapshot_name
        except BaseException:
            self._release_slots(warehouse)
            raise
        return snapshots

    def _release_slots(self, warehouse: Warehouse) -> None:
        from ..cdc import release_prepared_slot

        for table in self.tables:
            release_prepared_slot(self.names(warehouse.schema, table)[1])

    def _first_outputs(self, warehouse: Warehouse, snapshots: Mapping[str, str],
                       graph: Callable[[dict[str, pw.Table]], Any]) -> None:
        """The outputs as of the prepared slots' snapshots: the follower's graph over each
        source read in its slot's snapshot (the rows and values its stream starts from),
        written by the follower's sinks; then every output row this run did not write is
        deleted (a batch's row of a source row deleted before the snapshots, say)."""
        from ..cdc import read_snapshot

        def first():
            sources = {name: read_snapshot(warehouse.dsn, table=table, schema=schema, snapshot=snapshots[name],
                                           schema_name=warehouse.schema, name=f"{name}_first")
                       for name, (table, schema) in self.sources.items()}
            return nullcontext(graph(sources))

        self.recompute(warehouse, first, write=sinks.write_snapshots)

    def recompute(self, warehouse: Warehouse, graph: Callable[[], AbstractContextManager[Any]], *,
                  write: Callable[..., Any] | None = None) -> None:
        """A batch: build the graph over snapshots of the sources, write the outputs, and
        delete the output rows this run did not write.

        ``graph()`` is called on a fresh Pathway graph and returns a context manager that
        gives the outputs (the run happens inside it: a shared snapshot can stay open).
        ``write(outputs, specs, warehouse)`` puts the sinks on the graph: Pathway's writer
        (``pw_runtime.write_snapshots``) by default, or :func:`ysh.kit.sinks.write_snapshots`.

        Raises
        ------
        FollowerRunning
            a follower of this schema is running (or another batch of it): it keeps the
            outputs current, and a batch writing the same rows from an older snapshot could
            undo its changes. The batch holds the follower lock while it runs, so the check
            and the run are one step, and a follower starting meanwhile waits, then is refused.
        """
        name = self._lock_name(warehouse.schema)
        guard = None
        # (a follower's own first batch runs under its lock; the helper processes of a
        # spawned batch run under their process 0's)
        if name not in _Presence.here and pw_runtime.is_leader():
            # the follower lock, held for the whole batch: a follower cannot start meanwhile,
            # and a follower that is running (or another batch) refuses this one
            guard = None if self._lead_slot_active(warehouse) else _try_lock(warehouse.dsn, name)
            if guard is None:
                raise FollowerRunning(self.busy.format(schema=warehouse.schema))
        try:
            started = db.server_now(warehouse)
            pw_runtime.fresh_graph()
            with graph() as outputs:
                (write or pw_runtime.write_snapshots)(outputs, self.outputs, warehouse)
                pw_runtime.run(batch=True)
            db.prune_not_written(warehouse, self.output_tables, started)
        finally:
            if guard is not None:
                _release(guard, name)

    def follow(self, warehouse: Warehouse, persistence_dir: Path, *, batch: Callable[[], Any],
               graph: Callable[[dict[str, pw.Table]], Any], autocommit_duration_ms: int = 200,
               license_key: str | None = None, on_ready: Callable[[], Any] | None = None) -> None:
        """Follow the sources and keep the outputs current. Blocks.

        A first start (no persisted state) runs ``batch()`` first; then (``ysh.cdc``) it
        creates the slots, each with its snapshot held open, computes the outputs from the
        sources as of those snapshots with ``graph`` and deletes every output row it did
        not write (the follower's sinks only ever touch the keys it emits, so a row of a
        source row deleted after the batch would stay otherwise); the streaming run then
        reads the same snapshots and streams from the slots' consistent points, so the
        outputs and the stream meet exactly. A run that finds nothing persisted and no
        prepared slot (killed during a first start, before Pathway persisted anything)
        starts over with a first start. Later starts restore Pathway's persisted state and
        resume from the persisted replication positions (nothing re-read, nothing lost). A lost
        server is waited out: the sources reconnect with backoff (:mod:`ysh.cdc`) and the
        sinks retry each write (:mod:`ysh.kit.sinks`).
        ``graph(sources)`` builds the outputs from the streaming sources; ``on_ready()``
        is called once the graph is running. From its start to its end the follower holds
        an advisory lock that :meth:`active` reads, so a batch is refused even before its
        slots are active, and a second follower of the schema is refused
        (:class:`FollowerRunning`).
        """
        from ..cdc import SnapshotNeedsFirstStart

        ready = threading.Event()  # on_ready() once, even when the run is started over

        def signal_ready() -> None:
            if not ready.is_set():
                ready.set()
                on_ready()

        with _Presence(warehouse.dsn, self._lock_name(warehouse.schema)):
            for attempt in (1, 2):
                first = not persistence_dir.exists() or not any(persistence_dir.iterdir())
                try:
                    if first:
                        batch()
                        if not license_key:
                            # the slots first, then the outputs as of their snapshots: the
                            # stream starts exactly where the outputs stand
                            self._first_outputs(warehouse, self._prepare_slots(warehouse), graph)
                    pw_runtime.fresh_graph()
                    outputs = graph(self.read(warehouse, autocommit_duration_ms=autocommit_duration_ms,
                                              license_key=license_key, require_prepared=True))
                    # sinks that wait out a lost server (Pathway's own writer ends the run)
                    sinks.write_snapshots(outputs, self.outputs, warehouse)
                    pw_runtime.observe_outputs({t: getattr(outputs, attr) for attr, (t, _) in self.outputs.items()},
                                               self.pipeline)
                    if on_ready is not None:
                        threading.Timer(0.5, signal_ready).start()
                    pw_runtime.run(persistence_dir=persistence_dir)
                    return
                except SnapshotNeedsFirstStart as exc:
                    # killed after a first start began, before Pathway persisted anything
                    if attempt == 2:
                        raise
                    log.warning("%s; starting over with a first start", _first_line(exc))
                    shutil.rmtree(persistence_dir, ignore_errors=True)
                    # a server restarting is why it happens, most often: wait it out
                    # before the first start's batch needs it (as the sources and sinks do)
                    db.with_reconnect(lambda: psycopg.connect(warehouse.dsn, connect_timeout=5).close(),
                                      what=f"{self.pipeline}: the warehouse, before starting over")
                finally:
                    self._release_slots(warehouse)

    def reset(self, warehouse: Warehouse, persistence_dir: Path) -> None:
        """Forget the follower: drop its replication slots and persisted state (the next
        :meth:`follow` starts from a fresh snapshot)."""
        with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
            for table in self.tables:
                _, slot = self.names(warehouse.schema, table)
                if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone():
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        shutil.rmtree(persistence_dir, ignore_errors=True)
