"""``ysh om run``: the O&M graph (:func:`ysh.om.pipeline.build_om_graph`) streaming from
MQTT, Kafka or a folder of JSONL files into the warehouse, with Slack notices and,
when configured, InfluxDB line protocol.

Exactly-once effects over at-least-once parts:

* the sources are read with Pathway persistence (filesystem backend, under
  ``HOME/state/om-<source>``): after ``kill -9`` a restart replays its snapshot and goes
  on from the persisted offsets (MQTT: a stable client id and QoS 1 keep the broker's
  session; Kafka: the persisted offsets; files: the persisted read positions);
* whatever comes twice (a bus redelivery, the replay) is deduplicated by event id inside
  its window, and every sink is an upsert by key: ``om_inverter_5min`` by (plant,
  inverter, window start), ``om_alerts`` by alert key (an alert only moves from open to
  resolved), ``om_quarantine`` by the raw line's hash;
* Slack notices go through the outbox ``ops_alerts_sent`` (keys ``om:<alert key>`` when
  an alert opens, ``om-resolved:<alert key>`` when it resolves): a notice is recorded
  once, committed, and then sent by a separate thread, so a replayed alert is never
  notified again and a slow or failing Slack never holds the pipeline up.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pathway as pw

from .. import db, pw_runtime
from ..db import Warehouse
from ..notify import Notice, SlackNotifier, enqueue_notices, send_pending
from ..settings import Settings
from .fleet import load_plants
from .job import TABLES, load_registry
from .pipeline import build_om_graph
from .rules import SEVERITY, Thresholds

log = logging.getLogger("ysh.om.stream")

SOURCES = ("jsonl", "mqtt", "kafka")
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def thresholds_from(overrides: Mapping[str, float]) -> Thresholds:
    """``Thresholds`` with ``overrides`` (``YSH_OM_THRESHOLDS``); durations in seconds.
    An unknown name is an error that lists the known ones."""
    known = {f.name: f for f in fields(Thresholds)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown O&M threshold(s) {', '.join(unknown)}; known: {', '.join(known)}")
    values: dict[str, Any] = {}
    defaults = Thresholds()
    for name, value in overrides.items():
        current = getattr(defaults, name)
        if isinstance(current, timedelta):
            values[name] = timedelta(seconds=float(value))
        elif isinstance(current, int) and not isinstance(current, bool):
            if float(value) != int(value):
                raise ValueError(f"O&M threshold {name} must be a whole number, got {value}")
            values[name] = int(value)
        else:
            values[name] = float(value)
    return Thresholds(**values)


def persistence_dir(settings: Settings, source: str) -> Path:
    return settings.state_dir / f"om-{source}"


def _mqtt_uri(uri: str, client_id: str) -> str:
    if "client_id=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}client_id={client_id}"


@pw.udf(deterministic=True)
def _lines(data: str) -> list[str]:
    return data.split("\n")


def read_telemetry(settings: Settings, source: str, *, autocommit_duration_ms: int = 500) -> pw.Table:
    """The raw telemetry lines (column ``data``) of ``source``, streaming, named for persistence."""
    if source == "jsonl":
        folder = settings.om_replay_folder
        folder.mkdir(parents=True, exist_ok=True)
        table = pw.io.plaintext.read(str(folder), mode="streaming", name="om_telemetry_jsonl",
                                     autocommit_duration_ms=autocommit_duration_ms)
    elif source == "mqtt":
        table = pw.io.mqtt.read(_mqtt_uri(settings.om_mqtt_uri, settings.om_mqtt_client_id), settings.om_mqtt_topic,
                                qos=1, format="plaintext", name="om_telemetry_mqtt",
                                autocommit_duration_ms=autocommit_duration_ms)
    elif source == "kafka":
        table = pw.io.kafka.read(
            {"bootstrap.servers": settings.om_kafka_bootstrap, "group.id": settings.om_kafka_group,
             "auto.offset.reset": "earliest", "session.timeout.ms": "6000"},
            topic=settings.om_kafka_topic, format="plaintext", name="om_telemetry_kafka",
            autocommit_duration_ms=autocommit_duration_ms)
    else:
        raise ValueError(f"unknown O&M source {source!r}; one of {', '.join(SOURCES)}")
    if source != "jsonl":  # a message may carry several JSON lines (a datalogger's buffer)
        table = table.select(data=_lines(pw.this.data)).flatten(pw.this.data)
    return table.filter(pw.this.data.str.strip() != "")


# --------------------------------------------------------------------------- sinks


def _utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    value = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def alert_notices(alert: Mapping[str, Any]) -> list[Notice]:
    """The outbox entries of one alert row: its opening, and its resolution once resolved."""
    where = f"{alert['plant_id']}/{alert['inverter_id']}" if alert["inverter_id"] != "*" else alert["plant_id"]
    opened = _utc(alert["opened_at"])
    severity = SEVERITY.get(alert["rule"], "warning")
    notices = [Notice(f"om:{alert['alert_key']}", "om_opened",
                      f":rotating_light: O&M {severity}: {alert['rule']} em {where} desde "
                      f"{opened:%Y-%m-%d %H:%M} UTC")]
    resolved = _utc(alert.get("resolved_at"))
    if resolved is not None:
        minutes = round((resolved - opened).total_seconds() / 60)
        notices.append(Notice(f"om-resolved:{alert['alert_key']}", "om_resolved",
                              f":white_check_mark: O&M resolvido: {alert['rule']} em {where} às "
                              f"{resolved:%Y-%m-%d %H:%M} UTC (aberto por {minutes} min)"))
    return notices


class AlertSink:
    """Upserts ``om_alerts`` by key (open → resolved only: a later open version never
    reopens a resolved row) and records the notices in the outbox, per Pathway batch.
    Retractions are ignored: a streaming alert leaves the rule state after its retention,
    not the table."""

    def __init__(self, warehouse: Warehouse, notify: bool, wake: threading.Event | None = None,
                 min_severity: str = "warning"):
        self.warehouse, self.notify, self.wake = warehouse, notify, wake
        self.min_rank = SEVERITY_RANK[min_severity]
        self._rows: dict[str, dict] = {}
        self._conn = None

    def attach(self, table: pw.Table) -> None:
        pw.io.subscribe(table, on_change=self.on_change, on_time_end=self.on_time_end, name="om_alerts_sink")

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        if is_addition:
            self._rows[row["alert_key"]] = row

    def on_time_end(self, time: int) -> None:
        if not self._rows:
            return
        rows, self._rows = list(self._rows.values()), {}
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True)
        conn = self._conn
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO om_alerts (alert_key, plant_id, inverter_id, rule, opened_at, resolved_at, details) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (alert_key) DO UPDATE SET "
                    "resolved_at = COALESCE(EXCLUDED.resolved_at, om_alerts.resolved_at), "
                    "details = CASE WHEN om_alerts.resolved_at IS NULL THEN EXCLUDED.details ELSE om_alerts.details END "
                    "WHERE om_alerts.resolved_at IS NULL AND (EXCLUDED.resolved_at IS NOT NULL "
                    "OR om_alerts.details IS DISTINCT FROM EXCLUDED.details)",
                    [(r["alert_key"], r["plant_id"], r["inverter_id"], r["rule"], _utc(r["opened_at"]),
                      _utc(r["resolved_at"]), _jsonb(r["details"])) for r in rows])
        if self.notify:
            notices = [n for r in sorted(rows, key=lambda r: (_utc(r["opened_at"]), r["alert_key"]))
                       if SEVERITY_RANK[SEVERITY.get(r["rule"], "warning")] >= self.min_rank
                       for n in alert_notices(r)]
            if enqueue_notices(conn, notices) and self.wake is not None:
                self.wake.set()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _jsonb(value):
    from psycopg.types.json import Jsonb

    return Jsonb(value.value if isinstance(value, pw.Json) else value)


class Notifier(threading.Thread):
    """Sends the outbox's pending notices (``ops_alerts_sent``) when woken, and every
    ``interval_s`` (to retry the ones Slack did not take)."""

    def __init__(self, settings: Settings, warehouse: Warehouse, wake: threading.Event, interval_s: float = 30.0):
        super().__init__(name="om-notifier", daemon=True)
        self.settings, self.warehouse, self.wake, self.interval_s = settings, warehouse, wake, interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        with SlackNotifier.from_settings(self.settings) as slack:
            while not self.stopping.is_set():
                self.wake.wait(self.interval_s)
                self.wake.clear()
                try:
                    with db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True) as conn:
                        send_pending(conn, slack)
                except Exception as exc:  # the pipeline goes on; the notices stay pending
                    log.warning("O&M notices not sent now: %s", exc)


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


LINE_FIELDS = ("avg_power_w", "min_power_w", "max_power_w", "energy_delta_kwh", "expected_power_w",
               "performance_index")


def line_protocol(window: Mapping[str, Any]) -> str:
    """One window as InfluxDB line protocol (measurement ``om_inverter_5min``, tags plant
    and inverter, timestamp = window start in seconds)."""
    parts = [f"{name}={float(window[name])!r}" for name in LINE_FIELDS if window.get(name) is not None]
    parts.append(f"samples={int(window['samples'])}i")
    start = _utc(window["window_start"])
    return (f"om_inverter_5min,plant_id={_tag(window['plant_id'])},inverter_id={_tag(window['inverter_id'])} "
            f"{','.join(parts)} {int(start.timestamp())}")


class InfluxSink:
    """Window stats to an InfluxDB v2 ``/api/v2/write`` endpoint, one POST per Pathway
    batch, retried on network errors, 429 and 5xx; a batch that still fails is logged
    and dropped (the warehouse keeps every window)."""

    def __init__(self, url: str, token: str | None, org: str, bucket: str, *, retries: int = 3,
                 timeout_s: float = 10.0):
        self.endpoint = url.rstrip("/") + "/api/v2/write"
        self.params = {"org": org, "bucket": bucket, "precision": "s"}
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.client = httpx.Client(headers=headers, timeout=timeout_s)
        self.retries = retries
        self._lines: list[str] = []

    def attach(self, table: pw.Table) -> None:
        pw.io.subscribe(table, on_change=self.on_change, on_time_end=self.on_time_end, name="om_influx_sink")

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        if is_addition:
            self._lines.append(line_protocol(row))

    def on_time_end(self, time: int) -> None:
        if not self._lines:
            return
        body, self._lines = "\n".join(self._lines) + "\n", []
        import time as clock

        for attempt in range(self.retries + 1):
            try:
                resp = self.client.post(self.endpoint, params=self.params, content=body.encode())
                if resp.status_code < 300:
                    return
                if resp.status_code != 429 and resp.status_code < 500:
                    log.error("InfluxDB refused %d lines: HTTP %d %s", body.count("\n"), resp.status_code,
                              resp.text[:200])
                    return
                reason = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                reason = str(exc)
            if attempt < self.retries:
                clock.sleep(min(0.5 * 2 ** attempt, 5.0))
        log.error("InfluxDB write failed after %d attempts (%s); %d lines dropped", self.retries + 1, reason,
                  body.count("\n"))


class StatusWriter:
    """``om_stream_status``: a heartbeat thread (the process lives) and, per batch of
    windows, the wall clock and the newest window end (how far event time got)."""

    def __init__(self, warehouse: Warehouse, source: str, interval_s: float = 5.0):
        self.warehouse, self.source, self.interval_s = warehouse, source, interval_s
        self.stopping = threading.Event()
        self._latest: datetime | None = None
        self._conn = None
        with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO om_stream_status (pipeline, source, pid, started_at, heartbeat_at) "
                "VALUES ('om', %s, %s, now(), now()) ON CONFLICT (pipeline) DO UPDATE SET source = EXCLUDED.source, "
                "pid = EXCLUDED.pid, started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at",
                (source, os.getpid()))
        self._thread = threading.Thread(target=self._beat, name="om-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                with db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True) as conn:
                    conn.execute("UPDATE om_stream_status SET heartbeat_at = now() WHERE pipeline = 'om'")
            except Exception as exc:
                log.warning("O&M heartbeat not written: %s", exc)

    def attach(self, windows: pw.Table) -> None:
        pw.io.subscribe(windows, on_change=self.on_change, on_time_end=self.on_time_end, name="om_status_sink")

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        end = _utc(row["window_end"])
        if is_addition and (self._latest is None or end > self._latest):
            self._latest = end

    def on_time_end(self, time: int) -> None:
        if self._latest is None:
            return
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True)
        self._conn.execute("UPDATE om_stream_status SET last_batch_at = now(), last_window_end = "
                           "GREATEST(last_window_end, %s) WHERE pipeline = 'om'", (self._latest,))


def run_stream(settings: Settings, warehouse: Warehouse, *, source: str | None = None,
               plants_path: Path | None = None, state_dir: Path | None = None,
               autocommit_duration_ms: int = 500) -> None:
    """Run the O&M pipeline streaming until killed. Blocks."""
    source = source or settings.om_source
    for chatty in ("pathway_engine.connectors.data_storage.mqtt", "pathway_engine.persistence.input_snapshot"):
        logging.getLogger(chatty).setLevel(logging.WARNING)  # one line per PUBACK / snapshot chunk
    plants = load_plants(plants_path or settings.om_plants_path)
    thresholds = thresholds_from(settings.om_thresholds)
    load_registry(warehouse, plants)
    pw_runtime.fresh_graph()
    lines = read_telemetry(settings, source, autocommit_duration_ms=autocommit_duration_ms)
    tables = build_om_graph(lines, plants, now=None, thresholds=thresholds,
                            late_cutoff=timedelta(seconds=settings.om_late_cutoff_s),
                            alert_retention=timedelta(hours=settings.om_alert_retention_h),
                            evaluation_lag=timedelta(seconds=settings.om_evaluation_lag_s))
    pw_runtime.write_snapshots(tables, {k: v for k, v in TABLES.items() if k != "alerts"}, warehouse)
    wake = threading.Event()
    AlertSink(warehouse, settings.om_notify, wake, settings.om_notify_min_severity).attach(tables.alerts)
    status = StatusWriter(warehouse, source)
    status.attach(tables.windows)
    if settings.om_influx_url:
        token = settings.om_influx_token.get_secret_value() if settings.om_influx_token else None
        InfluxSink(settings.om_influx_url, token, settings.om_influx_org, settings.om_influx_bucket).attach(
            tables.windows)
    pw_runtime.observe_outputs({t: getattr(tables, attr) for attr, (t, _) in TABLES.items()}, "om")
    notifier = Notifier(settings, warehouse, wake)
    notifier.start()
    status.start()
    log.info("O&M pipeline streaming from %s (%d plants)", source, len(plants))
    pw_runtime.run(persistence_dir=state_dir or persistence_dir(settings, source))
