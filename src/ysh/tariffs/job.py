"""Running the tariffs graph: over files (JSONL out), or over ``tarifas_raw`` into Postgres.

* :func:`run_static` — files → five JSONL tables (no server); the kept tariffs and Fio B
  rows arrive packed per utility and are formatted as JSON lines by the Pathway worker
  that holds the utility (:mod:`ysh.tariffs.jsonl`), the leader sorts and writes them.
* :func:`run_warehouse` — a full recompute of the normalized tables from ``tarifas_raw``
  (one consistent snapshot, read in chunks of rows, each chunk parsed by columns in one
  UDF call); rows the run did not write are deleted afterwards. ``chunked=False`` keeps
  the earlier row-by-row read (the reference in tests and the benchmark's baseline).
* :func:`follow` — the streaming service: follows ``tarifas_raw`` by change data capture
  (logical replication, :mod:`ysh.cdc`) and keeps the normalized tables current, with
  Pathway persistence so a restart resumes where it stopped. The follower's lifecycle
  (slot, publication, reset) is :data:`FOLLOWER`, a :class:`ysh.kit.follower.Follower`.
"""

from __future__ import annotations

import logging
import operator
import pickle
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pathway as pw

from .. import db, pw_runtime
from ..db import Warehouse
from ..kit.files import files_under
from ..kit import sinks
from ..kit.follower import Follower
from . import jsonl
from .pipeline import (
    FileChunkSchema,
    FileChunksSubject,
    RawChunkSchema,
    RawChunksSubject,
    RawRowSchema,
    TariffTables,
    build_tariffs_graph,
    build_tariffs_graph_from_raw,
    build_tariffs_graph_from_raw_chunks,
    unpack_rows,
)
from .aneel import FioB, Tariff

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

    files = files_under(paths)
    pw_runtime.fresh_graph()
    subject = FileChunksSubject(files, chunk_bytes=get_settings().tariffs.chunk_bytes)
    chunks = pw.io.python.read(subject, schema=FileChunkSchema, name="tariff_files")
    return build_tariffs_graph(chunks)


def run_static(paths: list[Path], out_dir: Path) -> TariffsReport:
    """Normalize ANEEL files once and write the five tables as JSONL into ``out_dir``."""
    t0 = time.perf_counter()
    tables = build(paths)
    # the kept tariffs and Fio B rows come packed (one row per utility) and are formatted
    # as JSON lines where they are, by the Pathway worker holding the utility
    collectors = {name: pw_runtime.TableCollector(
        tables.packed[name].select(lines=_JSONL_LINES[name](pw.this.rows)) if name in tables.packed
        else getattr(tables, name), name) for name in JSONL_FILES}
    pw_runtime.run(batch=True)
    report = TariffsReport(seconds=time.perf_counter() - t0)
    if not pw_runtime.is_leader():
        return report
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (filename, keys) in JSONL_FILES.items():
        if name in tables.packed:
            # pieces of JSONL (a utility's block, or single lines) in the order of their sort keys
            pieces = [piece for cell in collectors[name].values() for piece in pickle.loads(cell["lines"])]
            pieces.sort(key=operator.itemgetter(0))
            with (out_dir / filename).open("wb") as f:
                f.writelines(data for _, _, data in pieces)
            report.counts[name] = sum(count for _, count, _ in pieces)
            if name == "tariffs":
                report.utilities = sorted({key[0] for key, _, _ in pieces})
        else:
            report.counts[name] = pw_runtime.write_jsonl(out_dir / filename, collectors[name].values(), keys)
    report.quarantine_by_reason = dict(Counter(q["reason"] for q in collectors["quarantine"].values()).most_common())
    return report


#: the row layout of each packed output
LAYOUTS = {"tariffs": Tariff, "fio_b": FioB}
#: columns of each packed output whose values repeat together (encoded once per combination)
TOGETHER = {
    "tariffs": (("utility", "cnpj"), ("valid_from", "valid_to"),
                ("base", "subgroup", "modality", "tariff_class", "subclass", "detail", "post", "unit",
                 "accessing_agent"), ("resolution", "source_file")),
    "fio_b": (("utility", "base", "subgroup", "modality", "tariff_class", "subclass", "detail", "post"),
              ("valid_from", "valid_to"), ("resolution", "source_file")),
}


def _make_jsonl_lines(name: str):
    layout, (_, sort_keys) = LAYOUTS[name], JSONL_FILES[name]
    names = ("key_text", *layout._fields)
    sort_key = operator.itemgetter(*map(names.index, sort_keys))
    assert sort_keys[0] == "utility"  # a utility's rows sort together, by its name first

    @pw.udf(deterministic=True)
    def jsonl_lines(blobs: tuple) -> bytes:
        """One utility's packed rows → pieces of its JSONL file, pickled ``(sort key,
        rows, UTF-8 text)``: the utility's rows as one block when they all spell the
        utility alike (key ``(utility,)``: their rows are contiguous in the file, whose
        first sort key is the utility's name), else one piece per row (key: utility, key
        and start of validity). Rows are sorted as :func:`ysh.pw_runtime.write_jsonl`
        sorts (those keys are never empty in a kept row), formatted by
        :func:`ysh.tariffs.jsonl.lines`."""
        rows = [(row[0], *row[4:]) for row in unpack_rows(blobs)]
        rows.sort(key=sort_key)
        text = jsonl.lines(names, rows, TOGETHER[name])
        spellings = {key[0] for key in map(sort_key, rows)}
        if len(spellings) == 1:
            pieces = [((spellings.pop(),), len(rows), "".join(text).encode())]
        else:  # a utility spelled two ways: its rows may sort apart
            pieces = [(sort_key(row), 1, line.encode()) for row, line in zip(rows, text)]
        return pickle.dumps(pieces, protocol=pickle.HIGHEST_PROTOCOL)

    return jsonl_lines


_JSONL_LINES = {name: _make_jsonl_lines(name) for name in LAYOUTS}


def _packed_rows(packed: list[dict], layout: type, sort_keys: tuple[str, ...]) -> tuple[tuple[str, ...], list[tuple]]:
    """Rows of a packed table (:attr:`ysh.tariffs.pipeline.TariffTables.packed`) as the
    rows of its unpacked table (``key_text`` and the layout's fields: the column names and
    the rows as tuples), sorted by ``sort_keys`` (utility, key and start of validity:
    never empty in a kept row, so sorted as :func:`ysh.pw_runtime.write_jsonl` sorts)."""
    names = ("key_text", *layout._fields)
    rows = [(row[0], *row[4:]) for cell in packed for row in unpack_rows(cell["rows"])]
    rows.sort(key=operator.itemgetter(*map(names.index, sort_keys)))
    return names, rows


#: the ``tarifas_raw`` follower: the normalized tables kept current by CDC
FOLLOWER = Follower(
    pipeline="tariffs", sources={RAW_TABLE: (RAW_TABLE, RawRowSchema)}, outputs=TABLES,
    busy="a CDC follower of {schema}.tarifas_raw is running and keeps the normalized tables current; "
         "stop it to recompute in batch",
)


#: rows of ``tarifas_raw`` per chunk of the batch read (one UDF call parses a chunk)
RAW_CHUNK_ROWS = 20_000


def _output_rows(cell: dict) -> list[tuple]:
    """The output rows (``key_text`` and the layout's fields) of a packed cell."""
    return [(row[0], *row[4:]) for row in unpack_rows(cell["rows"])]


def write_packed(tables: TariffTables, outputs: dict[str, tuple[str, tuple[str, ...]]], warehouse: Warehouse) -> None:
    """The batch's sinks: the tariff and Fio B rows as they come out of the graph, packed
    per utility, written at the end of the run by ``COPY`` (:class:`ysh.kit.sinks.PackedBatchSink`;
    no row crosses from the engine into Python one at a time), each table's rows replaced
    in one transaction (the batch recomputes all of them from one snapshot); the three
    small tables by Pathway's writer."""
    for name, layout in LAYOUTS.items():
        table_name, key = outputs[name]
        sink = sinks.PackedBatchSink(warehouse.dsn, warehouse.schema, table_name, key,
                                     ("key_text", *layout._fields), _output_rows, replace=True,
                                     source_finished=tables.source_finished)
        pw.io.subscribe(tables.packed[name], on_change=sink.on_change, on_time_end=sink.on_time_end,
                        on_end=sink.on_end, name=f"pg_{table_name}")
    pw_runtime.write_snapshots(tables, {k: v for k, v in outputs.items() if k not in LAYOUTS}, warehouse)


#: the batch's writers (``run_warehouse(writer=…)``)
WRITERS = ("packed", "pathway", "copy")


def run_warehouse(warehouse: Warehouse, *, chunked: bool = True, chunk_rows: int = RAW_CHUNK_ROWS,
                  writer: str | None = None) -> dict[str, int]:
    """Recompute the normalized tables from ``tarifas_raw`` as it stands (a consistent
    snapshot) and delete the rows this run did not write. Returns the row counts.

    ``chunked`` (the default): the snapshot is read ``chunk_rows`` rows of a source at a
    time, gathered by the server (:class:`ysh.tariffs.pipeline.RawChunksSubject`), each
    chunk parsed in one UDF call (*tarifas homologadas* by columns), the rows kept packed
    per utility as the file graph keeps them
    (:func:`ysh.tariffs.pipeline.build_tariffs_graph_from_raw_chunks`). Otherwise one UDF
    call per raw row (the follower's graph): the earlier path, kept as the reference
    (same tables). ``writer``: ``"packed"`` (the default when chunked:
    :func:`write_packed`, the tariffs by ``COPY`` at the end of the run), ``"pathway"``
    (every table by ``pw.io.postgres.write``, one row at a time; the default row by row)
    or ``"copy"`` (every table by :func:`ysh.kit.sinks.write_snapshots`); the last two
    stay for the comparison in ``benchmarks/tariffs.py --warehouse``.

    Raises
    ------
    ysh.kit.follower.FollowerRunning
        ``ysh tariffs follow`` is running for this schema: it keeps the tables current,
        and a batch writing the same rows from an older snapshot could undo its changes.
    ValueError
        an unknown ``writer``, or ``"packed"`` row by row (that graph packs nothing).
    """
    writer = writer or ("packed" if chunked else "pathway")
    if writer not in WRITERS:
        raise ValueError(f"writer {writer!r}: one of {', '.join(map(repr, WRITERS))}")
    if writer == "packed" and not chunked:
        raise ValueError("writer 'packed' needs the chunked batch: the row-by-row graph keeps no packed rows")

    def graph():
        if chunked:
            subject = RawChunksSubject(warehouse.dsn, warehouse.schema, chunk_rows, RAW_TABLE)
            chunks = pw.io.python.read(subject, schema=RawChunkSchema, name="tarifas_raw_chunks")
            tables = build_tariffs_graph_from_raw_chunks(chunks)
            tables.source_finished = lambda: subject.finished
            return nullcontext(tables)
        raw = pw_runtime.read_query(warehouse.dsn, warehouse.schema, f"SELECT {RAW_COLUMNS} FROM {RAW_TABLE}",
                                    RawRowSchema, name="tarifas_raw_snapshot")
        return nullcontext(build_tariffs_graph_from_raw(raw))

    FOLLOWER.recompute(warehouse, graph, write={"packed": write_packed, "copy": sinks.write_snapshots,
                                                "pathway": None}[writer])
    return warehouse_counts(warehouse)


def warehouse_counts(warehouse: Warehouse) -> dict[str, int]:
    return db.row_counts(warehouse, (RAW_TABLE, *FOLLOWER.output_tables))


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
    FOLLOWER.follow(warehouse, persistence_dir, batch=lambda: run_warehouse(warehouse),
                    graph=lambda sources: build_tariffs_graph_from_raw(sources[RAW_TABLE]),
                    autocommit_duration_ms=autocommit_duration_ms, license_key=license_key, on_ready=on_ready)
