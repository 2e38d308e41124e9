"""Running the tariffs graph: over files (JSONL out), or over ``tarifas_raw`` into Postgres.

* :func:`run_static` — files → five JSONL tables (no server).
* :func:`run_warehouse` — a full recompute of the normalized tables from ``tarifas_raw``
  (one consistent snapshot); rows the run did not write are deleted afterwards.
* :func:`follow` — the streaming service: follows ``tarifas_raw`` by change data capture
  (logical replication, :mod:`ysh.cdc`) and keeps the normalized tables current, with
  Pathway persistence so a restart resumes where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pathway as pw
import psycopg
from psycopg import sql

from .. import db, pw_runtime
from ..db import Warehouse
from .pipeline import (
    FileChunkSchema,
    FileChunksSubject,
    RawRowSchema,
    TariffTables,
    build_tariffs_graph,
    build_tariffs_graph_from_raw,
)

log = logging.getLogger(__name__)

#: output → (warehouse table, primary key)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "tariffs": ("tarifas_normalized", ("key_text", "valid_from")),
    "fio_b": ("tarifas_fio_b", ("key_text", "valid_from")),
    "flags": ("tarifas_bandeiras", ("month",)),
    "monthly": ("tarifas_efetivas_mensais", ("utility", "subgroup", "month")),
    "quarantine": ("tarifas_quarantine", ("source_file", "line")),
}
RAW_TABLE = "tarifas_raw"
RAW_COLUMNS = "source, line, dataset, record, extra_fields"

#: output → (file name, sort keys)
JSONL_FILES = {
    "tariffs": ("tarifas_normalized.jsonl", ("utility", "key_text", "valid_from")),
    "fio_b": ("tarifas_fio_b.jsonl", ("utility", "key_text", "valid_from")),
    "flags": ("tarifas_bandeiras.jsonl", ("month",)),
    "monthly": ("tarifas_efetivas_mensais.jsonl", ("utility", "subgroup", "month")),
    "quarantine": ("tarifas_quarantine.jsonl", ("source_file", "line")),
}


@dataclass
class TariffsReport:
    counts: dict[str, int] = field(default_factory=dict)
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    utilities: list[str] = field(default_factory=list)
    seconds: float = 0.0


def build(paths: list[Path]) -> TariffTables:
    """Declare the file source (every file under ``paths``, each once) and the graph."""
    from ..settings import get_settings
    from .load import files_under

    files = files_under(paths)
    pw_runtime.fresh_graph()
    subject = FileChunksSubject(files, chunk_bytes=get_settings().tariffs_chunk_bytes)
    chunks = pw.io.python.read(subject, schema=FileChunkSchema, name="tariff_files")
    return build_tariffs_graph(chunks)


def run_static(paths: list[Path], out_dir: Path) -> TariffsReport:
    """Normalize ANEEL files once and write the five tables as JSONL into ``out_dir``."""
    t0 = time.perf_counter()
    tables = build(paths)
    collectors = {name: pw_runtime.TableCollector(getattr(tables, name), name) for name in JSONL_FILES}
    pw_runtime.run()
    report = TariffsReport(seconds=time.perf_counter() - t0)
    if not pw_runtime.is_leader():
        return report
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (filename, keys) in JSONL_FILES.items():
        rows = collectors[name].values()
        report.counts[name] = pw_runtime.write_jsonl(out_dir / filename, rows, keys)
    report.quarantine_by_reason = dict(Counter(q["reason"] for q in collectors["quarantine"].values()).most_common())
    report.utilities = sorted({t["utility"] for t in collectors["tariffs"].values()})
    return report


def attach_warehouse(tables: TariffTables, warehouse: Warehouse) -> None:
    """Snapshot (upsert/delete by primary key) sinks of the five tables."""
    pw_runtime.write_snapshots(tables, TABLES, warehouse)

class FollowerRunning(RuntimeError):
    """A CDC follower keeps the normalized tables current; a batch recompute would race it."""


def follower_active(warehouse: Warehouse) -> bool:
    _, slot = replication_names(warehouse.schema)
    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active",
                            (slot,)).fetchone() is not None


def run_warehouse(warehouse: Warehouse) -> dict[str, int]:
    """Recompute the normalized tables from ``tarifas_raw`` as it stands (a consistent
    snapshot) and delete the rows this run did not write. Returns the row counts.

    Raises
    ------
    FollowerRunning
        ``ysh tariffs follow`` is running for this schema: it keeps the tables current,
        and a batch writing the same rows from an older snapshot could undo its changes.
    """
    if follower_active(warehouse):
        raise FollowerRunning(f"a CDC follower of {warehouse.schema}.tarifas_raw is running and keeps the "
                              "normalized tables current; stop it to recompute in batch")
    started = db.server_now(warehouse)
    pw_runtime.fresh_graph()
    raw = pw_runtime.read_query(warehouse.dsn, warehouse.schema, f"SELECT {RAW_COLUMNS} FROM {RAW_TABLE}",
                                RawRowSchema, name="tarifas_raw_snapshot")
    attach_warehouse(build_tariffs_graph_from_raw(raw), warehouse)
    pw_runtime.run()
    db.prune_not_written(warehouse, [t for t, _ in TABLES.values()], started)
    return warehouse_counts(warehouse)


def warehouse_counts(warehouse: Warehouse) -> dict[str, int]:
    return db.row_counts(warehouse, (RAW_TABLE, *(t for t, _ in TABLES.values())))


def replication_names(schema: str) -> tuple[str, str]:
    """(publication, slot) of the ``tarifas_raw`` follower of one platform schema."""
    from ..cdc import replication_names as names

    return names(schema, RAW_TABLE)


def ensure_publication(warehouse: Warehouse) -> str:
    """Create the publication of ``tarifas_raw`` if it does not exist; returns its name."""
    publication, _ = replication_names(warehouse.schema)
    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}.{}").format(
                sql.Identifier(publication), sql.Identifier(warehouse.schema), sql.Identifier(RAW_TABLE)))
    return publication


def raw_source(warehouse: Warehouse, *, autocommit_duration_ms: int = 200,
               license_key: str | None = None) -> pw.Table:
    """``tarifas_raw`` as a streaming Pathway table: ``ysh.cdc`` (durable slot, resumes from
    the persisted position), or Pathway's native ``pw.io.postgres.read`` when a license key
    is configured (temporary slot: every start re-reads the table)."""
    publication = ensure_publication(warehouse)
    if license_key:
        pw.set_license_key(license_key)
        return pw.io.postgres.read(pw_runtime.postgres_settings(warehouse.dsn), RAW_TABLE, RawRowSchema,
                                   mode="streaming", publication_name=publication, schema_name=warehouse.schema,
                                   autocommit_duration_ms=autocommit_duration_ms, name="tarifas_raw_native")
    from ..cdc import read_postgres_cdc

    _, slot = replication_names(warehouse.schema)
    return read_postgres_cdc(warehouse.dsn, table=RAW_TABLE, schema=RawRowSchema, publication=publication,
                             slot=slot, schema_name=warehouse.schema, name="tarifas_raw_cdc",
                             autocommit_duration_ms=autocommit_duration_ms)


def follow(warehouse: Warehouse, persistence_dir: Path, *, autocommit_duration_ms: int = 200,
           license_key: str | None = None, on_ready=None) -> None:
    """Follow ``tarifas_raw`` and keep the normalized tables current. Blocks.

    The first run reads the table in an exported snapshot and then streams; later runs
    restore Pathway's persisted state and resume from the persisted replication position
    (nothing re-read, nothing lost). A first run (no persisted state) starts with a batch
    recompute, which also deletes rows an earlier batch or follower wrote for raw rows
    that are gone (the follower's sinks only ever touch the keys it emits).
    ``on_ready()`` is called once the graph is running.
    """
    fresh = not persistence_dir.exists() or not any(persistence_dir.iterdir())
    if fresh:
        run_warehouse(warehouse)
    pw_runtime.fresh_graph()
    raw = raw_source(warehouse, autocommit_duration_ms=autocommit_duration_ms, license_key=license_key)
    tables = build_tariffs_graph_from_raw(raw)
    attach_warehouse(tables, warehouse)
    pw_runtime.observe_outputs({t: getattr(tables, attr) for attr, (t, _) in TABLES.items()}, "tariffs")
    if on_ready is not None:
        threading.Timer(0.5, on_ready).start()
    pw_runtime.run(persistence_dir=persistence_dir)


def drop_follower_state(warehouse: Warehouse, persistence_dir: Path) -> None:
    """Forget the follower: drop its replication slot and persisted state (the next
    ``follow`` starts from a fresh snapshot)."""
    import shutil

    _, slot = replication_names(warehouse.schema)
    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone():
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    shutil.rmtree(persistence_dir, ignore_errors=True)
