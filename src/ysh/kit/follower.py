"""The CDC follower of a job: the part of its life that is the same for every job.

A job's outputs are kept current by a long-running follower of its source tables
(logical replication, :mod:`ysh.cdc`; Pathway's native ``pw.io.postgres.read`` when a
license key is given), or recomputed by a batch over a snapshot. A :class:`Follower`
names the replication objects (one publication and one slot per followed table), tells
whether a follower is running, runs the batch (refused while a follower runs: it would
race it), runs batch-then-follow, and resets a follower's state. The job supplies its
tables and its graph; its business rules stay in the job.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathway as pw
import psycopg
from psycopg import sql

from .. import db, pw_runtime
from . import sinks
from ..db import Warehouse


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

    def active(self, warehouse: Warehouse) -> bool:
        """Whether a follower holds the lead table's replication slot now."""
        _, slot = self.names(warehouse.schema)
        with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active",
                                (slot,)).fetchone() is not None

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
             license_key: str | None = None) -> dict[str, pw.Table]:
        """The followed tables as streaming Pathway tables (source → table): ``ysh.cdc``
        (durable slots, resumes from the persisted position), or Pathway's native
        ``pw.io.postgres.read`` when a license key is given (temporary slots: every start
        re-reads the tables)."""
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
                tables[name] = read_postgres_cdc(
                    warehouse.dsn, table=table, schema=schema, publication=publications[name], slot=slot,
                    schema_name=warehouse.schema, name=f"{name}_cdc", autocommit_duration_ms=autocommit_duration_ms)
        return tables

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
            a follower of this schema is running: it keeps the outputs current, and a
            batch writing the same rows from an older snapshot could undo its changes.
        """
        if self.active(warehouse):
            raise FollowerRunning(self.busy.format(schema=warehouse.schema))
        started = db.server_now(warehouse)
        pw_runtime.fresh_graph()
        with graph() as outputs:
            (write or pw_runtime.write_snapshots)(outputs, self.outputs, warehouse)
            pw_runtime.run()
        db.prune_not_written(warehouse, self.output_tables, started)

    def follow(self, warehouse: Warehouse, persistence_dir: Path, *, batch: Callable[[], Any],
               graph: Callable[[dict[str, pw.Table]], Any], autocommit_duration_ms: int = 200,
               license_key: str | None = None, on_ready: Callable[[], Any] | None = None) -> None:
        """Follow the sources and keep the outputs current. Blocks.

        A first start (no persisted state) runs ``batch()`` first, which also deletes
        output rows of source rows gone meanwhile (the follower's sinks only ever touch
        the keys it emits); later starts restore Pathway's persisted state and resume from
        the persisted replication positions (nothing re-read, nothing lost). A lost
        server is waited out: the sources reconnect with backoff (:mod:`ysh.cdc`) and the
        sinks retry each write (:mod:`ysh.kit.sinks`).
        ``graph(sources)`` builds the outputs from the streaming sources; ``on_ready()``
        is called once the graph is running.
        """
        if not persistence_dir.exists() or not any(persistence_dir.iterdir()):
            batch()
        pw_runtime.fresh_graph()
        outputs = graph(self.read(warehouse, autocommit_duration_ms=autocommit_duration_ms, license_key=license_key))
        # sinks that wait out a lost server (Pathway's own writer ends the run)
        sinks.write_snapshots(outputs, self.outputs, warehouse)
        pw_runtime.observe_outputs({t: getattr(outputs, attr) for attr, (t, _) in self.outputs.items()}, self.pipeline)
        if on_ready is not None:
            threading.Timer(0.5, on_ready).start()
        pw_runtime.run(persistence_dir=persistence_dir)

    def reset(self, warehouse: Warehouse, persistence_dir: Path) -> None:
        """Forget the follower: drop its replication slots and persisted state (the next
        :meth:`follow` starts from a fresh snapshot)."""
        with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
            for table in self.tables:
                _, slot = self.names(warehouse.schema, table)
                if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone():
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        shutil.rmtree(persistence_dir, ignore_errors=True)
