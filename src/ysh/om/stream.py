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

Scale-out (Kafka): the telemetry topic is keyed by plant, so each plant's events are on
one partition. An instance given ``partitions`` (:class:`Instance`) reads only those, and
everything it keeps is its own: its persistence folder (``HOME/state/om-kafka-p0-1``),
its status row (``om_stream_status.pipeline = 'om-p0-1'``) and its consumer group
(``<kafka_group>-p0-1``). The partitions are assigned explicitly, not by the group
coordinator: a rebalance would move a partition without the window and alert state of
its plants (docs/operations.md, "Scale-out").
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pathway as pw

from .. import pw_runtime
from ..db import Warehouse
from ..settings import Settings
from .chunks import FolderTailSubject, RawLineSchema
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


def parse_partitions(spec: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """Kafka partitions of one instance: ``"0,1"``, ``"0-3"``, ``"0,2-3"`` or a sequence of
    ints → sorted, without repeats; None or empty → None (the whole topic)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        values: list[int] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            low, sep, high = part.partition("-")
            try:
                values.extend(range(int(low), int(high) + 1) if sep else [int(low)])
            except ValueError:
                raise ValueError(f"Kafka partitions: {part!r} is not a number or a range such as 0-3") from None
    else:
        values = [int(v) for v in spec]
    if any(v < 0 for v in values):
        raise ValueError(f"Kafka partitions cannot be negative: {spec!r}")
    return tuple(sorted(set(values))) or None


def configured_partitions(settings: Settings) -> tuple[int, ...] | None:
    """``YSH_OM_KAFKA_PARTITIONS``: the partitions this instance owns (None: the whole topic)."""
    return parse_partitions(settings.om.kafka_partitions)


@dataclass(frozen=True)
class Instance:
    """One running ``ysh om follow``: its source and, on Kafka, the partitions it owns
    (None: the whole topic, the single-instance default). Everything an instance keeps
    is named after its partitions, so several run side by side under one ``YSH_HOME``
    and one warehouse."""

    source: str
    partitions: tuple[int, ...] | None = None

    def __post_init__(self):
        if self.partitions is not None and self.source != "kafka":
            raise ValueError("partitions apply to the Kafka source only")

    @property
    def suffix(self) -> str:
        return "" if not self.partitions else "-p" + "-".join(map(str, self.partitions))

    @property
    def pipeline(self) -> str:
        """The instance's row in ``om_stream_status``."""
        return f"om{self.suffix}"

    def state_dir(self, settings: Settings) -> Path:
        """The instance's Pathway persistence folder (never shared between instances)."""
        return settings.state_dir / f"om-{self.source}{self.suffix}"

    def kafka_group(self, settings: Settings) -> str:
        """The consumer group: one per instance, so the coordinator never moves a partition."""
        return f"{settings.om.kafka_group}{self.suffix}"


def persistence_dir(settings: Settings, source: str, partitions: Sequence[int] | None = None) -> Path:
    if partitions is None and source == "kafka":
        partitions = configured_partitions(settings)
    return Instance(source, parse_partitions(partitions)).state_dir(settings)


def topic_partitions(bootstrap: str, topic: str, timeout_s: float = 30.0,
                     security: Mapping[str, str] | None = None) -> int:
    """How many partitions ``topic`` has (0: no such topic)."""
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": bootstrap, "allow.auto.create.topics": False,
                            **(security or {})}).list_topics(
        topic, timeout=timeout_s)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return 0
    return len(found.partitions)


def check_partitions(bootstrap: str, topic: str, partitions: Sequence[int],
                     security: Mapping[str, str] | None = None) -> int:
    """The topic's partition count, after checking that every assigned partition exists
    (a typo would otherwise leave the instance idle and its plants unwatched)."""
    total = topic_partitions(bootstrap, topic, security=security)
    if total == 0:
        raise ValueError(f"Kafka topic {topic!r} does not exist on {bootstrap}: create it with as many partitions "
                         "as instances may ever share it (docs/operations.md, Scale-out)")
    missing = [p for p in partitions if p >= total]
    if missing:
        raise ValueError(f"Kafka topic {topic!r} has partitions 0-{total - 1}; no partition "
                         f"{', '.join(map(str, missing))}")
    return total


def event_clocks(settings: Settings, owned: Sequence[int] | None) -> tuple[int, ...] | None:
    """The Kafka partitions that get an event-time clock of their own: the instance's
    ``owned`` ones, else every partition of the topic (asked of the brokers at start).
    A topic the brokers do not know (yet) gets one clock for all, with a warning: its
    partitions can be told apart only after a restart."""
    if owned is not None:
        return tuple(owned)
    om = settings.om
    try:
        total = topic_partitions(om.kafka_bootstrap, om.kafka_topic, timeout_s=15.0,
                                 security=kafka_security(settings))
    except Exception as exc:  # noqa: BLE001 - the reader reports an unreachable broker itself
        log.warning("Kafka topic %s: partition count unknown (%s): one event-time clock for the whole topic",
                    om.kafka_topic, exc)
        return None
    if total == 0:
        log.warning("Kafka topic %s does not exist yet: one event-time clock for the whole topic (restart "
                    "once it exists for one clock per partition)", om.kafka_topic)
        return None
    log.info("Kafka topic %s: %d partitions, one event-time clock each", om.kafka_topic, total)
    return tuple(range(total))


#: what the persisted state of a Kafka instance was written for: its reader's row layout
#: (2: the message's metadata in every row, one row id per message) and its clocks
KAFKA_STATE_LAYOUT = 2
LAYOUT_FILE = "ysh-om-layout.json"


def check_state_layout(state_dir: Path, clocks: Sequence[int] | None) -> tuple[int, ...] | None:
    """The clocks a Kafka instance runs with, after checking its persisted state: refuse
    state written by an older reader (rows without the message's metadata: Pathway cannot
    replay them into the new columns and would fail at every restart) or for other
    partitions (a plant moves to another partition when the count changes, and its windows
    would be split between two clocks). State written with one clock (the topic was not
    known at its first start) takes the partitions now known; when they are not known now
    (the brokers did not answer), the saved ones are used. A fresh folder gets the layout
    written beside the state."""
    clocks = tuple(clocks) if clocks else None
    marker = state_dir / LAYOUT_FILE
    if marker.exists():
        saved = json.loads(marker.read_text(encoding="utf-8"))
        saved_clocks = tuple(saved.get("clocks") or ()) or None
        if saved.get("layout") != KAFKA_STATE_LAYOUT:
            why = f"by reader layout {saved.get('layout')}, this version reads layout {KAFKA_STATE_LAYOUT}"
        elif clocks is None or saved_clocks is None or saved_clocks == clocks:
            clocks = clocks or saved_clocks
            marker.write_text(json.dumps({"layout": KAFKA_STATE_LAYOUT, "clocks": list(clocks or ())}),
                              encoding="utf-8")
            return clocks
        else:
            why = f"for partitions {list(saved_clocks)}, and the topic now has {list(clocks)}"
    elif state_dir.exists() and any(state_dir.iterdir()):
        why = "by an older version (rows without the Kafka message's metadata)"
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"layout": KAFKA_STATE_LAYOUT, "clocks": list(clocks or ())}),
                          encoding="utf-8")
        return clocks
    raise ValueError(f"the O&M state in {state_dir} was written {why}: stop every instance, remove that folder "
                     "and start again (the topic is read again from its earliest offset; windows and alerts "
                     "are upserts, nothing is doubled)")


def _mqtt_uri(uri: str, client_id: str) -> str:
    if "client_id=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}client_id={client_id}"


#: what Pathway's MQTT reader (rumqttc) can take in the URI's user info: it does not
#: percent-decode it, so other characters cannot be passed at all
_URI_SAFE_PASSWORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,")


def mqtt_credentials(settings: Settings) -> tuple[str, str] | None:
    """(user, password) of ``YSH_OM_MQTT_USERNAME``/``YSH_OM_MQTT_PASSWORD``, or None."""
    om = settings.om
    if om.mqtt_username is None and om.mqtt_password is None:
        return None
    if not om.mqtt_username:
        raise ValueError("YSH_OM_MQTT_PASSWORD is set without YSH_OM_MQTT_USERNAME")
    return om.mqtt_username, om.mqtt_password.get_secret_value() if om.mqtt_password else ""


def mqtt_reader_uri(settings: Settings) -> str:
    """The URI Pathway's MQTT reader connects with: ``YSH_OM_MQTT_URI`` with the stable
    client id and, when configured, the credentials in its user info. It holds the
    password: never print or log it (print ``settings.om.mqtt_uri``, which cannot hold one)."""
    uri = _mqtt_uri(settings.om.mqtt_uri, settings.om.mqtt_client_id)
    credentials = mqtt_credentials(settings)
    if credentials is None:
        return uri
    user, password = credentials
    bad = sorted({c for c in user + password if c not in _URI_SAFE_PASSWORD})
    if bad:
        raise ValueError("the MQTT user name and password may only hold letters, digits and -._~!$&'()*+, "
                         f"(Pathway's MQTT reader takes them in its URI, unescaped); found {len(bad)} other "
                         "character(s)")
    scheme, sep, rest = uri.partition("://")
    return f"{scheme}{sep}{user}:{password}@{rest}"


def refuse_mqtt_tls(uri: str) -> None:
    """Pathway 0.33's MQTT reader cannot open ``mqtts://``: its worker panics before the
    handshake (rustls finds no process-level CryptoProvider; tests/faults/test_mqtt_tls.py).
    Say so in one line, with the way that works, instead of that panic."""
    scheme = uri.partition("://")[0].lower()
    if scheme in ("mqtts", "ssl"):
        from ..errors import InputError

        raise InputError(
            f"YSH_OM_MQTT_URI is {scheme}://: Pathway's MQTT reader cannot open TLS connections (0.33 panics "
            "at start); run a mosquitto bridge on loopback that holds the TLS link to the broker and point "
            "YSH_OM_MQTT_URI at it (docs/operations.md, MQTT over TLS)")


def kafka_security(settings: Settings) -> dict[str, str]:
    """librdkafka settings of the O&M Kafka clients (reader and publisher) for TLS and
    SASL: ``security.protocol``, ``sasl.*``, ``ssl.ca.location``. Empty on PLAINTEXT."""
    om = settings.om
    out: dict[str, str] = {}
    if om.kafka_security_protocol != "PLAINTEXT":
        out["security.protocol"] = om.kafka_security_protocol
    if om.kafka_security_protocol.startswith("SASL_"):
        if not om.kafka_sasl_mechanism:
            raise ValueError(f"YSH_OM_KAFKA_SECURITY_PROTOCOL={om.kafka_security_protocol} needs "
                             "YSH_OM_KAFKA_SASL_MECHANISM")
        out["sasl.mechanism"] = om.kafka_sasl_mechanism
        if om.kafka_sasl_username is not None:
            out["sasl.username"] = om.kafka_sasl_username
        if om.kafka_sasl_password is not None:
            out["sasl.password"] = om.kafka_sasl_password.get_secret_value()
    if om.kafka_ssl_ca is not None:
        out["ssl.ca.location"] = str(Path(om.kafka_ssl_ca).expanduser().resolve())
    return out


def read_telemetry(settings: Settings, source: str, *, autocommit_duration_ms: int = 500,
                   partitions: Sequence[int] | None = None) -> pw.Table:
    """The raw telemetry of ``source`` (column ``data``: a line of a followed file, or a
    bus message as bytes, which may hold several lines), streaming, named for persistence.

    ``partitions`` (Kafka): only the messages of these partitions. The instance reads
    the topic in a consumer group of its own and keeps its partitions with a native
    filter on the message metadata: Pathway's streaming reader subscribes (the group
    coordinator assigns), so a shared group would hand a partition to whichever member
    the coordinator picks.

    Kafka: the rows also hold their message's partition (an int column ``partition``),
    for one event-time clock per partition (``build_om_graph(partitions=...)``)."""
    instance = Instance(source, parse_partitions(partitions))
    if source == "jsonl":
        folder = settings.om.replay_dir
        folder.mkdir(parents=True, exist_ok=True)
        # raw lines (a line that is not UTF-8 is quarantined, where the plaintext reader
        # dropped it); a new persistent name: the plaintext reader's state is not replayed
        # into this reader, whose first run reads the folder from the start (upserts)
        table = pw.io.python.read(FolderTailSubject(folder), schema=RawLineSchema, name="om_telemetry_folder",
                                  autocommit_duration_ms=autocommit_duration_ms)
    elif source == "mqtt":
        refuse_mqtt_tls(settings.om.mqtt_uri)
        table = pw.io.mqtt.read(mqtt_reader_uri(settings), settings.om.mqtt_topic,
                                qos=1, format="raw", name="om_telemetry_mqtt",
                                autocommit_duration_ms=autocommit_duration_ms)
    elif source == "kafka":
        table = pw.io.kafka.read(
            {"bootstrap.servers": settings.om.kafka_bootstrap, "group.id": instance.kafka_group(settings),
             "auto.offset.reset": "earliest", "session.timeout.ms": "6000",
             # the persisted frontier is the only resume point: a group offset committed
             # ahead of Pathway's snapshot would skip events whose state was never persisted
             # (seen after kill -9); without it a restart re-reads from the earliest offset
             "enable.auto.commit": "false", **kafka_security(settings)},
            topic=settings.om.kafka_topic, format="raw", name="om_telemetry_kafka",
            # a row id per message: by default the reader takes the message key (the
            # plant) as the row's id, and two copies of one line (a bus redelivery) under
            # one id had the second quarantined as ``late`` although its window held it
            with_metadata=True, autogenerate_key=True, autocommit_duration_ms=autocommit_duration_ms)
        # -1: a row without it (none expected): the first partition's clock takes it
        table = table.select(pw.this.data, partition=pw.this._metadata.get("partition").as_int(default=-1))
        if instance.partitions is not None:
            table = table.filter(functools.reduce(operator.or_,
                                                  [pw.this.partition == p for p in instance.partitions]))
    else:
        raise ValueError(f"unknown O&M source {source!r}; one of {', '.join(SOURCES)}")
    # every source is read as raw bytes (Pathway's plaintext format drops a message or a
    # line that is not UTF-8 with a log line); a row is a bus message, which may carry
    # several lines (a datalogger's buffer), or a line of a followed file: the graph splits
    # it (ysh.om.chunks.message_lines, which marks a line that is not UTF-8 for the
    # quarantine) and skips blank lines. State persisted by the plaintext reader (MQTT,
    # Kafka before) replays as text, split as before.
    return table


def run_stream(settings: Settings, warehouse: Warehouse, *, source: str | None = None,
               plants_path: Path | None = None, state_dir: Path | None = None,
               autocommit_duration_ms: int = 500, partitions: Sequence[int] | str | None = None) -> None:
    """Run the O&M pipeline streaming until killed. Blocks.

    ``partitions`` (Kafka): the partitions this instance owns (default:
    ``YSH_OM_KAFKA_PARTITIONS``, else the whole topic)."""
    source = source or settings.om.source
    parts = parse_partitions(partitions) if partitions is not None else (
        configured_partitions(settings) if source == "kafka" else None)
    instance = Instance(source, parts)
    if parts is not None:
        total = check_partitions(settings.om.kafka_bootstrap, settings.om.kafka_topic, parts,
                                 security=kafka_security(settings))
        log.info("O&M instance %s: partitions %s of %d of topic %s", instance.pipeline,
                 ",".join(map(str, parts)), total, settings.om.kafka_topic)
    clocks = event_clocks(settings, parts) if source == "kafka" else None
    for chatty in ("pathway_engine.connectors.data_storage.mqtt", "pathway_engine.persistence.input_snapshot"):
        logging.getLogger(chatty).setLevel(logging.WARNING)  # one line per PUBACK / snapshot chunk
    plants = load_plants(plants_path or settings.om.plants_file)
    thresholds = thresholds_from(settings.om.thresholds)
    load_registry(warehouse, plants)
    if source == "kafka":
        clocks = check_state_layout(state_dir or instance.state_dir(settings), clocks)
    pw_runtime.fresh_graph()
    lines = read_telemetry(settings, source, autocommit_duration_ms=autocommit_duration_ms, partitions=parts)
    tables = build_om_graph(lines, plants, now=None, thresholds=thresholds,
                            late_cutoff=timedelta(seconds=settings.om.late_cutoff_s),
                            evaluation_lag=timedelta(seconds=settings.om.evaluation_lag_s), partitions=clocks)
    wake = threading.Event()
    attach_warehouse(tables, warehouse, notify=settings.om.notify, wake=wake,
                     min_severity=settings.om.notify_min_severity, streaming=True)
    status = StatusWriter(warehouse, source, pipeline=instance.pipeline, partitions=parts)
    status.attach(tables.windows, quarantine=tables.quarantine)
    if settings.om.influx_url:
        token = settings.om.influx_token.get_secret_value() if settings.om.influx_token else None
        InfluxSink(settings.om.influx_url, token, settings.om.influx_org, settings.om.influx_bucket).attach(
            tables.windows)
    pw_runtime.observe_outputs({t: getattr(tables, attr) for attr, (t, _) in TABLES.items()}, "om")
    notifier = Notifier(settings, warehouse, wake)
    notifier.start()
    status.start()
    log.info("O&M pipeline streaming from %s (%d plants)", source, len(plants))
    with pw_runtime.few_collections():  # what exists now is frozen out of the collections
        pw_runtime.run(persistence_dir=state_dir or instance.state_dir(settings))
