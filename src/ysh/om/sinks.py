"""The O&M job's sinks beyond the snapshot tables: ``om_alerts`` (upsert, open → resolved
only) with Slack notices through the outbox, the notifier thread that sends them,
InfluxDB line protocol, and the stream's heartbeat (``om_stream_status``, one row per
running instance, with its running count of late events)."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import pathway as pw
import psycopg
from prometheus_client import Counter

from .. import db
from ..db import Warehouse
from ..notify import Notice, SlackNotifier, enqueue_notices, send_pending
from ..settings import Settings
from .engine import utc
from .rules import SEVERITY

log = logging.getLogger("ysh.om.sinks")

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

#: the quarantine reason the graph gives a valid event that came after its window's cutoff
#: (``ysh.om.pipeline.LATE``; spelled here so that the sinks do not import the graph)
LATE_REASON = "late"

LATE_EVENTS = Counter("ysh_om_late_events", "Telemetry events that came after their window's late-data cutoff "
                      "(quarantined with reason 'late'), per O&M instance.", ["pipeline"])


def alert_notices(alert: Mapping[str, Any]) -> list[Notice]:
    """The outbox entries of one alert row: its opening, and its resolution once resolved."""
    where = f"{alert['plant_id']}/{alert['inverter_id']}" if alert["inverter_id"] != "*" else alert["plant_id"]
    opened = utc(alert["opened_at"])
    severity = SEVERITY.get(alert["rule"], "warning")
    notices = [Notice(f"om:{alert['alert_key']}", "om_opened",
                      f":rotating_light: O&M {severity}: {alert['rule']} em {where} desde "
                      f"{opened:%Y-%m-%d %H:%M} UTC")]
    resolved = utc(alert.get("resolved_at"))
    if resolved is not None:
        minutes = round((resolved - opened).total_seconds() / 60)
        notices.append(Notice(f"om-resolved:{alert['alert_key']}", "om_resolved",
                              f":white_check_mark: O&M resolvido: {alert['rule']} em {where} às "
                              f"{resolved:%Y-%m-%d %H:%M} UTC (aberto por {minutes} min)"))
    return notices


def _with_retries(what: str, attempt: Callable[[], None], *, max_delay_s: float = 30.0) -> None:
    """Run ``attempt`` until it succeeds, backing off (0.5 s → ``max_delay_s``) and logging:
    a warehouse that blips holds the pipeline up for that long, it neither kills the
    service nor loses the batch."""
    delay = 0.5
    while True:
        try:
            attempt()
            return
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            log.warning("%s failed (%s); retrying in %.1f s", what, str(exc).strip()[:200], delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay_s)


class AlertSink:
    """Upserts ``om_alerts`` by key (open → resolved only: a later open version never
    reopens a resolved row) and records the notices in the outbox, per Pathway batch, in
    one transaction (an alert row never lands without its notices, nor the reverse).
    Retractions are ignored: a resolved alert leaves the rule state after the step that
    resolved it, not the table. A failing warehouse is retried until it answers."""

    def __init__(self, warehouse: Warehouse, notify: bool, wake: threading.Event | None = None,
                 min_severity: str = "warning"):
        self.warehouse, self.notify, self.wake = warehouse, notify, wake
        self.min_rank = SEVERITY_RANK[min_severity]
        self._rows: dict[str, dict] = {}
        self._conn = None

    def attach(self, table: pw.Table) -> None:
        pw.io.subscribe(table, on_change=self.on_change, on_time_end=self.on_time_end, on_end=self.close,
                        name="om_alerts_sink")

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        if is_addition:
            self._rows[row["alert_key"]] = row

    def on_time_end(self, time: int) -> None:
        if not self._rows:
            return
        rows = sorted(self._rows.values(), key=lambda r: (utc(r["opened_at"]), r["alert_key"]))
        notices = [n for r in rows if self.notify and SEVERITY_RANK[SEVERITY.get(r["rule"], "warning")] >= self.min_rank
                   for n in alert_notices(r)]
        new: list[str] = []

        def write() -> None:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True)
            conn = self._conn
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO om_alerts (alert_key, plant_id, inverter_id, rule, opened_at, resolved_at, "
                        "details) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (alert_key) DO UPDATE SET "
                        "resolved_at = COALESCE(EXCLUDED.resolved_at, om_alerts.resolved_at), "
                        "details = CASE WHEN om_alerts.resolved_at IS NULL THEN EXCLUDED.details "
                        "ELSE om_alerts.details END "
                        "WHERE om_alerts.resolved_at IS NULL AND (EXCLUDED.resolved_at IS NOT NULL "
                        "OR om_alerts.details IS DISTINCT FROM EXCLUDED.details)",
                        [(r["alert_key"], r["plant_id"], r["inverter_id"], r["rule"], utc(r["opened_at"]),
                          utc(r["resolved_at"]), _jsonb(r["details"])) for r in rows])
                new[:] = enqueue_notices(conn, notices)

        _with_retries("writing O&M alerts", write)
        self._rows = {}  # only once committed
        if new and self.wake is not None:
            self.wake.set()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _jsonb(value):
    from psycopg.types.json import Jsonb

    return Jsonb(value.value if isinstance(value, pw.Json) else value)


#: the outbox rows this service sends (the alerts flow sends the others)
OM_NOTICE_KINDS = ("om_opened", "om_resolved")


class Notifier(threading.Thread):
    """Sends the outbox's pending O&M notices (``ops_alerts_sent``) when woken, and every
    ``interval_s`` (to retry the ones Slack did not take). Rows are claimed with a row
    lock, so another sender (the alerts flow) never sends the same one."""

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
                        send_pending(conn, slack, kinds=OM_NOTICE_KINDS,
                                     max_attempts=self.settings.ops.slack_max_attempts)
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
    start = utc(window["window_start"])
    return (f"om_inverter_5min,plant_id={_tag(window['plant_id'])},inverter_id={_tag(window['inverter_id'])} "
            f"{','.join(parts)} {int(start.timestamp())}")


class InfluxSink:
    """Window stats to an InfluxDB v2 ``/api/v2/write`` endpoint: each Pathway batch is
    queued and POSTed by a background thread (the pipeline never waits for InfluxDB),
    retried on network errors, 429 and 5xx; a batch that still fails, or that finds the
    queue full (InfluxDB down for long), is logged and dropped — the warehouse keeps
    every window. At close what is queued is sent for up to ``close_timeout_s``; what is
    still unsent then is counted in one error line, never dropped silently."""

    def __init__(self, url: str, token: str | None, org: str, bucket: str, *, retries: int = 3,
                 timeout_s: float = 10.0, max_queued_batches: int = 1000, close_timeout_s: float = 30.0):
        self.endpoint = url.rstrip("/") + "/api/v2/write"
        self.params = {"org": org, "bucket": bucket, "precision": "s"}
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Token {token}"
        self.client = httpx.Client(headers=headers, timeout=timeout_s)
        self.retries = retries
        self.close_timeout_s = close_timeout_s
        self._deadline: float | None = None  # set by close: past it, queued batches are counted, not sent
        self.unsent_at_close = 0  # lines
        self._lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=max_queued_batches)
        self._thread = threading.Thread(target=self._drain, name="om-influx", daemon=True)
        self._thread.start()

    def attach(self, table: pw.Table) -> None:
        pw.io.subscribe(table, on_change=self.on_change, on_time_end=self.on_time_end, on_end=self.close,
                        name="om_influx_sink")

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        if is_addition:
            self._lines.append(line_protocol(row))

    def on_time_end(self, time: int) -> None:
        if not self._lines:
            return
        body, self._lines = "\n".join(self._lines) + "\n", []
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            log.error("InfluxDB is behind by %d batches; %d lines dropped", self._queue.qsize(), body.count("\n"))

    def close(self) -> None:
        """Send what is queued, then stop (called at the end of a run)."""
        if self._lines:
            self.on_time_end(0)
        self._deadline = time.monotonic() + self.close_timeout_s
        self._queue.put(None)  # after everything queued; the drain thread frees room even past the deadline
        self._thread.join()
        self.client.close()
        if self.unsent_at_close:
            log.error("InfluxDB: %d window lines still unsent %.0f s after close were dropped (the warehouse "
                      "keeps every window)", self.unsent_at_close, self.close_timeout_s)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _drain(self) -> None:
        while (body := self._queue.get()) is not None:
            if self._past_deadline():
                self.unsent_at_close += body.count("\n")
            else:
                self._post(body)

    def _post(self, body: str) -> None:
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt and self._past_deadline():
                self.unsent_at_close += body.count("\n")
                return
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
                time.sleep(min(0.5 * 2 ** attempt, 5.0))
        log.error("InfluxDB write failed after %d attempts (%s); %d lines dropped", self.retries + 1, reason,
                  body.count("\n"))


class StatusWriter:
    """``om_stream_status``, the row of one instance (``pipeline``: ``om``, or ``om-p0-1``
    for the instance owning Kafka partitions 0 and 1): a heartbeat thread (the process
    lives); per batch of windows, the wall clock and the newest window end (how far event
    time got); per batch of quarantine rows, the late events (``late_events``, a running
    total, and the Prometheus counter ``ysh_om_late_events_total``)."""

    def __init__(self, warehouse: Warehouse, source: str, interval_s: float = 5.0, *, pipeline: str = "om",
                 partitions: Sequence[int] | None = None):
        self.warehouse, self.source, self.interval_s, self.pipeline = warehouse, source, interval_s, pipeline
        self.stopping = threading.Event()
        self._latest: datetime | None = None
        self._late = 0  # net late rows of the batch in hand
        self._late_metric = LATE_EVENTS.labels(pipeline)
        self._conn = None
        self._lock = threading.Lock()  # the two subscriptions share the connection
        with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO om_stream_status (pipeline, source, pid, started_at, heartbeat_at, kafka_partitions) "
                "VALUES (%s, %s, %s, now(), now(), %s) ON CONFLICT (pipeline) DO UPDATE SET source = EXCLUDED.source, "
                "pid = EXCLUDED.pid, started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at, "
                "kafka_partitions = EXCLUDED.kafka_partitions",
                (pipeline, source, os.getpid(), list(partitions) if partitions is not None else None))
        self._thread = threading.Thread(target=self._beat, name="om-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        conn = None  # one connection for the thread's life, reopened when it breaks
        while not self.stopping.wait(self.interval_s):
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True)
                conn.execute("UPDATE om_stream_status SET heartbeat_at = now() WHERE pipeline = %s", (self.pipeline,))
            except Exception as exc:
                log.warning("O&M heartbeat not written: %s", exc)
        if conn is not None:
            conn.close()

    def attach(self, windows: pw.Table, quarantine: pw.Table | None = None) -> None:
        pw.io.subscribe(windows, on_change=self.on_change, on_time_end=self.on_time_end, name="om_status_sink")
        if quarantine is not None:
            pw.io.subscribe(quarantine, on_change=self.on_quarantine, on_time_end=self.on_quarantine_time_end,
                            name="om_status_late_sink")

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        end = utc(row["window_end"])
        if is_addition and (self._latest is None or end > self._latest):
            self._latest = end

    def on_time_end(self, time: int) -> None:
        """Only a batch that brought windows counts (a batch of quarantined or late events
        does not make the stream look alive)."""
        if self._latest is None:
            return
        if self._update("last_batch_at = now(), last_window_end = GREATEST(last_window_end, %s)", self._latest):
            self._latest = None

    def on_quarantine(self, key, row: dict, time: int, is_addition: bool) -> None:
        """A late line counts once: the quarantine keeps one row per raw line, and a row
        updated in place comes as a retraction and an addition."""
        if row.get("reason") == LATE_REASON:
            self._late += 1 if is_addition else -1

    def on_quarantine_time_end(self, time: int) -> None:
        late, self._late = self._late, 0
        if late <= 0:
            return
        self._late_metric.inc(late)
        self._update("late_events = late_events + %s", late)  # informative: om_quarantine has the rows

    def _update(self, assignments: str, value) -> bool:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True)
                self._conn.execute(f"UPDATE om_stream_status SET {assignments} WHERE pipeline = %s",
                                   (value, self.pipeline))
                return True
            except psycopg.Error as exc:  # the status is informative: the windows themselves are safe
                log.warning("O&M status not written: %s", exc)
                return False
