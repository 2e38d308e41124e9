"""``ysh om follow``: the O&M graph (:func:`ysh.om.pipeline.build_om_graph`) streaming from
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
import threading
from collections.abc import Mapping
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pathway as pw

from .. import pw_runtime
from ..db import Warehouse
from ..settings import Settings
from .fleet import load_plants
from .job import TABLES, attach_warehouse, load_registry
from .pipeline import build_om_graph
from .rules import Thresholds
from .sinks import InfluxSink, Notifier, StatusWriter

log = logging.getLogger("ysh.om.stream")

SOURCES = ("jsonl", "mqtt", "kafka")


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
        folder = settings.om.replay_dir
        folder.mkdir(parents=True, exist_ok=True)
        table = pw.io.plaintext.read(str(folder), mode="streaming", name="om_telemetry_jsonl",
                                     autocommit_duration_ms=autocommit_duration_ms)
    elif source == "mqtt":
        table = pw.io.mqtt.read(_mqtt_uri(settings.om.mqtt_uri, settings.om.mqtt_client_id), settings.om.mqtt_topic,
                                qos=1, format="plaintext", name="om_telemetry_mqtt",
                                autocommit_duration_ms=autocommit_duration_ms)
    elif source == "kafka":
        table = pw.io.kafka.read(
            {"bootstrap.servers": settings.om.kafka_bootstrap, "group.id": settings.om.kafka_group,
             "auto.offset.reset": "earliest", "session.timeout.ms": "6000"},
            topic=settings.om.kafka_topic, format="plaintext", name="om_telemetry_kafka",
            autocommit_duration_ms=autocommit_duration_ms)
    else:
        raise ValueError(f"unknown O&M source {source!r}; one of {', '.join(SOURCES)}")
    if source != "jsonl":  # a message may carry several JSON lines (a datalogger's buffer)
        table = table.select(data=_lines(pw.this.data)).flatten(pw.this.data)
    return table.filter(pw.this.data.str.strip() != "")


def run_stream(settings: Settings, warehouse: Warehouse, *, source: str | None = None,
               plants_path: Path | None = None, state_dir: Path | None = None,
               autocommit_duration_ms: int = 500) -> None:
    """Run the O&M pipeline streaming until killed. Blocks."""
    source = source or settings.om.source
    for chatty in ("pathway_engine.connectors.data_storage.mqtt", "pathway_engine.persistence.input_snapshot"):
        logging.getLogger(chatty).setLevel(logging.WARNING)  # one line per PUBACK / snapshot chunk
    plants = load_plants(plants_path or settings.om.plants_file)
    thresholds = thresholds_from(settings.om.thresholds)
    load_registry(warehouse, plants)
    pw_runtime.fresh_graph()
    lines = read_telemetry(settings, source, autocommit_duration_ms=autocommit_duration_ms)
    tables = build_om_graph(lines, plants, now=None, thresholds=thresholds,
                            late_cutoff=timedelta(seconds=settings.om.late_cutoff_s),
                            evaluation_lag=timedelta(seconds=settings.om.evaluation_lag_s))
    wake = threading.Event()
    attach_warehouse(tables, warehouse, notify=settings.om.notify, wake=wake,
                     min_severity=settings.om.notify_min_severity)
    status = StatusWriter(warehouse, source)
    status.attach(tables.windows)
    if settings.om.influx_url:
        token = settings.om.influx_token.get_secret_value() if settings.om.influx_token else None
        InfluxSink(settings.om.influx_url, token, settings.om.influx_org, settings.om.influx_bucket).attach(
            tables.windows)
    pw_runtime.observe_outputs({t: getattr(tables, attr) for attr, (t, _) in TABLES.items()}, "om")
    notifier = Notifier(settings, warehouse, wake)
    notifier.start()
    status.start()
    log.info("O&M pipeline streaming from %s (%d plants)", source, len(plants))
    pw_runtime.run(persistence_dir=state_dir or persistence_dir(settings, source))
