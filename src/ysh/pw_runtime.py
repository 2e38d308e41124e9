"""Running Pathway graphs: fresh graphs, collectors, Postgres settings, persistence.

Pathway keeps one global graph per process, so every run here starts from a cleared
graph; Dagster runs it in a subprocess (Dagster Pipes) for full isolation.
"""

from __future__ import annotations

import gc
import json
import os
import threading
from collections.abc import Iterable
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pathway as pw


def is_leader() -> bool:
    """True in the one process that reports results (process 0 of a spawned run).

    Pathway gathers every sink's data (``pw.io.subscribe``, Postgres writers) in process
    0; the other processes only compute, so they must not write reports or files."""
    return os.environ.get("PATHWAY_PROCESS_ID", "0") == "0"


def spawned() -> bool:
    return "PATHWAY_PROCESSES" in os.environ


def spawn_argv(argv: list[str], processes: int, first_port: int | None = None) -> list[str]:
    """``argv`` wrapped in ``pathway spawn -n PROCESSES`` (unchanged for one process)."""
    if processes <= 1:
        return argv
    import shutil
    import sys

    pathway = shutil.which("pathway", path=os.path.dirname(sys.executable)) or "pathway"
    port = first_port or _free_port_block(processes)
    return [pathway, "spawn", "-n", str(processes), "--first-port", str(port), *argv]


def respawn_with_processes(processes: int) -> None:
    """Re-run this very ``ysh`` command under ``pathway spawn -n PROCESSES`` (no-op for one
    process, or inside a spawned run)."""
    import sys

    if processes > 1 and not spawned():
        argv = spawn_argv([sys.executable, "-m", "ysh.cli", *sys.argv[1:]], processes)
        os.execv(argv[0], argv)


def _free_port_block(count: int) -> int:
    import socket

    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65535:
            continue
        try:
            for offset in range(count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of loopback ports for Pathway processes")


def fresh_graph() -> None:
    """Forget every table and connector declared so far in this process."""
    from pathway.internals.parse_graph import G

    G.clear()


def postgres_settings(dsn: str) -> dict[str, str]:
    """libpq key/value settings for ``pw.io.postgres.write`` from a DSN or URI."""
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}


def write_snapshots(tables, outputs: dict[str, tuple[str, tuple[str, ...]]], warehouse) -> None:
    """Snapshot sinks (upsert/delete by primary key) into the warehouse: ``outputs`` maps
    an attribute of ``tables`` to (table name, primary key columns)."""
    settings = postgres_settings(warehouse.dsn)
    for attr, (table_name, key) in outputs.items():
        table = getattr(tables, attr)
        pw.io.postgres.write(table, settings, table_name, schema_name=warehouse.schema,
                             output_table_type="snapshot", primary_key=[table[c] for c in key],
                             name=f"pg_{table_name}")


def quiet_logging(level: int = 30) -> None:
    """Log only warnings and errors in this process (batch runs under Dagster, whose
    subprocess output lands in the caller's terminal). Call before :func:`run`: Pathway
    configures INFO logging only when the root logger has no handler yet."""
    import logging

    from .observability import setup_logging
    from .settings import get_settings

    setup_logging(logging.getLevelName(level), get_settings().observability.log_json)
    # a static source closing at its end is logged as a warning; it is the normal end of a batch
    logging.getLogger("pathway_engine.connectors.monitoring").setLevel(max(level, logging.ERROR))


@contextmanager
def few_collections():
    """Python's cyclic garbage collector during a run of the graph: what exists before it
    (the graph, the imported libraries, a registry: ~175,000 objects) is frozen out of
    the collections (``gc.freeze``), and the youngest generation is collected every 50,000
    allocations instead of 700; both come back as they were afterwards. A run allocates
    objects per event, window and parsed row in the engine's Python calls, which set off a
    collection every few hundred allocations, the older generations scanning everything
    again: about 0.1 s of a 1.5 s O&M run (12 h of 40 plants) and about 1 s of a 9 s tariffs
    batch (300,000 rows, ``benchmarks/tariffs.py --warehouse``). Reference counting frees
    almost all of it anyway; cycles wait a little longer."""
    threshold = gc.get_threshold()
    gc.freeze()  # without a collection first: one full collection here costs ~0.1 s
    gc.set_threshold(50_000, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def run(*, persistence_dir: Path | None = None, batch: bool = False) -> None:
    """``pw.run`` with the platform defaults: no terminal dashboard, Pathway's monitoring
    HTTP server when ``YSH_PATHWAY_MONITORING`` is set, optional persistence (filesystem
    backend, free without a license; every source must carry a stable ``name=``).

    ``batch``: a run that ends by itself (a batch over a snapshot or files), run with
    :func:`few_collections` (a streaming run that allocates per event may ask for it
    too: ``with few_collections(): run(...)``)."""
    from .settings import get_settings

    kwargs: dict[str, Any] = {"monitoring_level": pw.MonitoringLevel.NONE,
                              "with_http_server": get_settings().pathway.monitoring}
    if persistence_dir is not None:
        persistence_dir.mkdir(parents=True, exist_ok=True)
        kwargs["persistence_config"] = pw.persistence.Config(
            pw.persistence.Backend.filesystem(str(persistence_dir))
        )
    os.environ.setdefault("PATHWAY_DISABLE_PROGRESS", "1")
    with few_collections() if batch else nullcontext():
        pw.run(**kwargs)


class TableCollector:
    """Keeps the current state of a Pathway table in memory (row id → row dict); with
    ``keep_retracted``, the last version of every row ever added (retractions ignored)."""

    def __init__(self, table: pw.Table, name: str, *, keep_retracted: bool = False):
        self.name = name
        self.rows: dict[Any, dict] = {}
        self._keep = keep_retracted
        self._lock = threading.Lock()
        pw.io.subscribe(table, on_change=self._on_change, name=f"collect_{name}")

    def _on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        with self._lock:
            if is_addition:
                self.rows[key] = row
            elif not self._keep:
                self.rows.pop(key, None)

    def values(self) -> list[dict]:
        with self._lock:
            return list(self.rows.values())


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, pw.Json):
        return value.value
    return str(value)


def write_jsonl(path: Path, rows: Iterable[dict], sort_keys: tuple[str, ...] = ()) -> int:
    """Write rows as JSON lines (sorted by ``sort_keys`` for stable output); returns the count."""
    rows = list(rows)
    if sort_keys:
        rows.sort(key=lambda r: tuple("" if r.get(k) is None else r.get(k) for k in sort_keys))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
    return len(rows)


class _QuerySubject(pw.io.python.ConnectorSubject):
    """Emits the rows of one SQL query, then closes (a static snapshot of a table). Rows are
    fetched ``batch_size`` tuples at a time from a server-side cursor instead of a
    dictionary and a generator step per row (reading the sources was ~10 % of a proposals
    batch run's samples, py-spy)."""

    def __init__(self, dsn: str, schema: str, query: str, batch_size: int = 10_000, snapshot: str | None = None):
        super().__init__(datasource_name="postgres_query")
        self._dsn, self._schema, self._query, self._batch = dsn, schema, query, batch_size
        self._snapshot = snapshot

    def run(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn) as conn:
            if self._snapshot:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                # the first statement of the transaction: read what the exporting one sees
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self._snapshot)))
            conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self._schema)))
            with conn.cursor(name="ysh_snapshot") as cur:
                cur.execute(self._query)
                names = [column.name for column in cur.description]
                emit = self.next
                while rows := cur.fetchmany(self._batch):
                    for row in rows:
                        emit(**dict(zip(names, row)))


def read_query(dsn: str, schema: str, query: str, table_schema: type[pw.Schema], *,
               name: str, snapshot: str | None = None) -> pw.Table:
    """A static Pathway table holding the result of ``query`` (columns match ``table_schema``).

    Pathway's own Postgres reader needs a license key; this plain Python connector reads a
    consistent snapshot (one transaction, server-side cursor) instead. Several reads see
    one common state when they get the same exported ``snapshot`` (:class:`SharedSnapshot`).
    """
    return pw.io.python.read(_QuerySubject(dsn, schema, query, snapshot=snapshot), schema=table_schema, name=name)


class SharedSnapshot:
    """An exported PostgreSQL snapshot, held open for the ``with`` block: every
    :func:`read_query` given ``.id`` reads the database as of the same instant."""

    def __init__(self, dsn: str):
        self._dsn = dsn
        self.connection = None  # the read-only transaction holding the snapshot (open in the block)
        self.id: str | None = None

    def __enter__(self) -> "SharedSnapshot":
        import psycopg

        self.connection = psycopg.connect(self._dsn)
        try:
            self.connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.connection.read_only = True
            self.id = self.connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        conn, self.connection = self.connection, None
        if conn is None:
            return
        try:
            conn.rollback()  # may fail on a connection the server dropped: it is closed anyway
        finally:
            conn.close()


def observe_outputs(tables: dict, pipeline: str) -> None:
    """Count the outputs' changes into the Prometheus metrics when ``YSH_METRICS_PORT`` is
    set (and serve them); nothing otherwise."""
    from .settings import get_settings

    settings = get_settings()
    if not settings.observability.metrics_port:
        return
    from .observability import observe_table, start_metrics

    start_metrics(settings.observability.metrics_port)
    for name, table in tables.items():
        observe_table(table, pipeline, name)
