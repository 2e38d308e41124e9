"""Running the O&M graph statically over JSONL telemetry files (``ysh om detect``), to
JSONL files and/or the warehouse; loading the plant registry into the warehouse."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pathway as pw

from .. import db, pw_runtime
from ..db import Warehouse
from ..settings import get_settings
from .chunks import TelemetryChunkSchema, TelemetryChunksSubject
from .fleet import Plant, load_plants
from .pipeline import build_om_graph
from .rules import DEFAULT_THRESHOLDS, Thresholds

#: output → (file name, sort keys)
JSONL_FILES = {
    "windows": ("windows.jsonl", ("plant_id", "inverter_id", "window_start")),
    "alerts": ("alerts.jsonl", ("opened_at", "plant_id", "inverter_id", "rule")),
    "quarantine": ("quarantine.jsonl", ("reason", "event_id")),
}


#: output → (warehouse table, primary key)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "windows": ("om_inverter_5min", ("plant_id", "inverter_id", "window_start")),
    "alerts": ("om_alerts", ("alert_key",)),
    "quarantine": ("om_quarantine", ("quarantine_key",)),
}


def load_registry(warehouse: Warehouse, plants: list[Plant]) -> None:
    """Upsert the plants and inverters into ``om_plants`` / ``om_inverters``; inverters
    no longer listed for a plant are removed."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn, conn.transaction():
        for p in plants:
            conn.execute(
                "INSERT INTO om_plants (plant_id, name, capacity_kwp, latitude, longitude, tilt_deg, azimuth_deg, "
                "poa_sensor) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (plant_id) DO UPDATE SET "
                "name = EXCLUDED.name, capacity_kwp = EXCLUDED.capacity_kwp, latitude = EXCLUDED.latitude, "
                "longitude = EXCLUDED.longitude, tilt_deg = EXCLUDED.tilt_deg, azimuth_deg = EXCLUDED.azimuth_deg, "
                "poa_sensor = EXCLUDED.poa_sensor",
                (p.plant_id, p.name, p.capacity_kwp, p.latitude, p.longitude, p.tilt_deg, p.azimuth_deg,
                 bool(p.poa_sensor)))
            for inv in p.inverters:
                conn.execute("INSERT INTO om_inverters VALUES (%s, %s, %s) ON CONFLICT (plant_id, inverter_id) "
                             "DO UPDATE SET rated_power_w = EXCLUDED.rated_power_w",
                             (p.plant_id, inv.inverter_id, inv.rated_power_w))
            conn.execute("DELETE FROM om_inverters WHERE plant_id = %s AND NOT (inverter_id = ANY(%s))",
                         (p.plant_id, [inv.inverter_id for inv in p.inverters]))


def attach_warehouse(tables, warehouse: Warehouse, *, notify: bool = False, wake=None,
                     min_severity: str = "warning", streaming: bool = False) -> None:
    """Snapshot upserts of the windows and the quarantine; the alerts through
    :class:`ysh.om.sinks.AlertSink` (last version per key, open → resolved only).
    ``streaming``: with sinks that wait out a lost connection (a database restart) and
    retry the same transaction, instead of Pathway's writer, which ends the run."""
    from .sinks import AlertSink

    outputs = {k: v for k, v in TABLES.items() if k != "alerts"}
    if streaming:
        from ..kit import sinks

        sinks.write_snapshots(tables, outputs, warehouse)
    else:
        pw_runtime.write_snapshots(tables, outputs, warehouse)
    AlertSink(warehouse, notify, wake, min_severity).attach(tables.alerts)


@dataclass
class DetectReport:
    events: int = 0
    windows: int = 0
    alerts_by_rule: dict[str, int] = field(default_factory=dict)
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run_detect(paths: list[Path], plants_path: Path, out_dir: Path | None = None, *, now: datetime | None = None,
               warehouse: Warehouse | None = None, thresholds: Thresholds | None = None,
               static_windows: bool = True, chunk_bytes: int | None = None) -> DetectReport:
    """Validate, window and evaluate the telemetry in ``paths`` (JSONL files or folders)
    with ``thresholds`` (default: the rules' own); write windows.jsonl, alerts.jsonl and
    quarantine.jsonl into ``out_dir`` and/or upsert ``om_inverter_5min``, ``om_alerts``
    and ``om_quarantine`` (with the registry) in the warehouse.

    The files are read once, to their end (a finite input: every window is final when
    the run ends), so the windows are built by the static window operator
    (``build_om_graph(static=True)``: a ``groupby`` on the window slot, no event-time
    cutoff); the same windows, alerts and quarantine as the streaming operator
    (``static_windows=False``, kept to compare: ``tests/om/test_detect.py``). The static
    run reads the files in chunks of whole lines of about ``chunk_bytes`` (default
    ``YSH_OM_CHUNK_BYTES``), validated and grouped by window one chunk per Python call
    (``build_om_graph(packed=True)``); the streaming operator's run reads line by line.

    Under ``pathway spawn`` (``ysh om detect`` / ``ysh om run`` with
    ``YSH_PATHWAY_PROCESSES`` > 1) every process runs this; the windows and the fold are
    sharded by inverter and plant, the outputs are gathered in process 0, which alone
    loads the registry, writes the files and reports (the others return an empty report)."""
    if out_dir is None and warehouse is None:
        raise ValueError("give at least one sink: out_dir and/or warehouse")
    from ..kit.files import files_under

    plants = load_plants(plants_path)
    files = files_under(paths)
    t0 = time.perf_counter()
    pw_runtime.fresh_graph()
    if static_windows:  # chunks of whole lines, one engine row each (see ysh.om.chunks)
        # one commit at the end of the input (autocommit off): the static fold takes every
        # window once and final; a commit in the middle of the files would hand it a window
        # split across the commit twice, partial first
        size = chunk_bytes if chunk_bytes is not None else get_settings().om.chunk_bytes
        lines = pw.io.python.read(TelemetryChunksSubject(files, size), schema=TelemetryChunkSchema,
                                  name="telemetry_chunks", autocommit_duration_ms=None)
    else:
        sources = [pw.io.plaintext.read(str(f), mode="static", name=f"telemetry_{i}") for i, f in enumerate(files)]
        lines = sources[0] if len(sources) == 1 else pw.Table.concat_reindex(*sources)
    # blank lines are skipped by the graph's per-line call (a filter here cost 0.08 s per 58k lines)
    tables = build_om_graph(lines, plants, now=now or datetime.now(timezone.utc),
                            thresholds=thresholds or DEFAULT_THRESHOLDS, static=static_windows,
                            packed=static_windows)
    # the windows come back to Python only for the files: into the warehouse alone, their
    # count and events are a native reduce (one row, not every window crossing over)
    collected = JSONL_FILES if out_dir is not None else {k: v for k, v in JSONL_FILES.items() if k != "windows"}
    collectors = {name: pw_runtime.TableCollector(getattr(tables, name), name, keep_retracted=name == "alerts")
                  for name in collected}
    totals = pw_runtime.TableCollector(tables.windows.reduce(windows=pw.reducers.count(),
                                                             events=pw.reducers.sum(pw.this.samples)),
                                       "window_totals")
    leader = pw_runtime.is_leader()  # under ``pathway spawn`` the sinks' data is gathered in process 0
    if warehouse is not None:
        if leader:
            load_registry(warehouse, plants)
        attach_warehouse(tables, warehouse)
    pw_runtime.run(batch=True)
    report = DetectReport(seconds=time.perf_counter() - t0)
    if not leader:
        return report  # a helper process of a spawned run: the results live in process 0
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, (filename, keys) in JSONL_FILES.items():
            pw_runtime.write_jsonl(out_dir / filename, collectors[name].values(), keys)
    for row in totals.values():  # one row (none when no window)
        report.events, report.windows = row["events"], row["windows"]  # events: valid and unique
    report.alerts_by_rule = dict(Counter(a["rule"] for a in collectors["alerts"].values()).most_common())
    report.quarantine_by_reason = dict(Counter(q["reason"] for q in collectors["quarantine"].values()).most_common())
    return report
