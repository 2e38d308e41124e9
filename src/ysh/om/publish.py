"""Publishing telemetry events to the buses ``ysh om follow`` reads: MQTT (paho-mqtt, QoS 1,
topic ``ysh/telemetry/{plant}/{inverter}``) and Kafka (confluent-kafka, keyed by
``plant_id``: all of a plant's events are on one partition, in order, so the instance
that owns the partition holds the plant's whole state — its windows and its alert fold;
see :func:`kafka_key`).

A message carries one event, or with ``batch`` > 1 up to that many events of one
inverter as JSON lines (a datalogger flushing its buffer); the pipeline splits them.
``speedup`` paces the events by their timestamps (1 = real time, 60 = an hour per
minute); None publishes as fast as the bus takes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from urllib.parse import parse_qs, urlparse

import orjson

TOPIC_PREFIX = "ysh/telemetry"


def _ts(event: dict) -> float | None:
    try:
        return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError, TypeError):
        return None


def paced(events: Iterable[dict], speedup: float | None) -> Iterator[dict]:
    """``events`` delayed so that their timestamps are replayed ``speedup`` times faster
    than real time (None or ≤ 0: no delay)."""
    if not speedup or speedup <= 0:
        yield from events
        return
    origin_event = origin_wall = None
    for event in events:
        ts = _ts(event)
        if ts is not None:
            if origin_event is None:
                origin_event, origin_wall = ts, time.monotonic()
            wait = origin_wall + (ts - origin_event) / speedup - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        yield event


def _messages(events: Iterable[dict], batch: int) -> Iterator[tuple[str, str, bytes]]:
    """(plant, inverter, payload) per message; a batch holds one inverter's consecutive events."""
    if batch <= 1:
        for event in events:
            yield str(event.get("plant_id", "_")), str(event.get("inverter_id", "_")), orjson.dumps(event)
        return
    pending: dict[tuple[str, str], list[bytes]] = {}
    for event in events:
        key = (str(event.get("plant_id", "_")), str(event.get("inverter_id", "_")))
        lines = pending.setdefault(key, [])
        lines.append(orjson.dumps(event))
        if len(lines) >= batch:
            yield key[0], key[1], b"\n".join(lines)
            del pending[key]
    for (plant, inverter), lines in pending.items():
        yield plant, inverter, b"\n".join(lines)


def topic_for(plant_id: str, inverter_id: str, prefix: str = TOPIC_PREFIX) -> str:
    safe = lambda s: s.replace("/", "_").replace("+", "_").replace("#", "_")  # noqa: E731
    return f"{prefix}/{safe(plant_id)}/{safe(inverter_id)}"


def mqtt_auth(settings) -> dict:
    """The keyword arguments of :func:`publish_mqtt` for the broker of ``settings``
    (``YSH_OM_MQTT_USERNAME``, ``YSH_OM_MQTT_PASSWORD``, ``YSH_OM_MQTT_TLS_CA``)."""
    om = settings.om
    return {"username": om.mqtt_username,
            "password": om.mqtt_password.get_secret_value() if om.mqtt_password else None,
            "tls_ca": om.mqtt_tls_ca}


#: messages the MQTT publisher keeps queued (sent or not, not yet acknowledged) at most
MAX_QUEUED = 20_000


def publish_mqtt(events: Iterable[dict], uri: str, *, qos: int = 1, batch: int = 1, speedup: float | None = None,
                 prefix: str = TOPIC_PREFIX, on_progress: Callable[[int], None] | None = None,
                 timeout_s: float = 60.0, username: str | None = None, password: str | None = None,
                 tls_ca=None) -> int:
    """Publish to the MQTT broker at ``uri`` (``mqtt://host:port``, ``mqtts://`` for TLS);
    returns the number of events published. Waits until the broker acknowledged every
    QoS ≥ 1 message. ``username``/``password``: the broker's credentials (see
    :func:`mqtt_auth`); ``tls_ca``: the CA bundle of the broker's certificate (TLS also
    on ``mqtts://`` with the system's roots). A refused connection raises ConnectionError."""
    import paho.mqtt.client as mqtt

    parsed = urlparse(uri)
    client_id = (parse_qs(parsed.query).get("client_id") or [""])[0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    # a bounded queue: paho numbers messages with 16-bit ids, and with more than 65,535 not
    # yet acknowledged a new id meets a queued one and the publish is refused ("message
    # queue full"); a full queue makes the loop below wait for the broker's acks instead
    client.max_queued_messages_set(MAX_QUEUED)
    if username is not None:
        client.username_pw_set(username, password)
    secure = parsed.scheme in ("mqtts", "ssl")
    if secure or tls_ca is not None:
        client.tls_set(ca_certs=str(tls_ca) if tls_ca is not None else None)
    connected = threading.Event()
    refusal: list[str] = []

    def on_connect(_client, _userdata, _flags, reason, _properties=None) -> None:
        if reason.is_failure:
            refusal.append(str(reason))
        connected.set()

    client.on_connect = on_connect
    client.connect(parsed.hostname or "127.0.0.1", parsed.port or (8883 if secure else 1883), keepalive=60)
    client.loop_start()
    count = 0
    last = None
    try:
        if not connected.wait(timeout_s):
            raise TimeoutError(f"the MQTT broker did not answer the connection within {timeout_s:.0f} s")
        if refusal:
            raise ConnectionError(f"the MQTT broker refused the connection: {refusal[0]}")
        for plant, inverter, payload in _messages(paced(events, speedup), batch):
            last = client.publish(topic_for(plant, inverter, prefix), payload, qos=qos)
            waited = time.monotonic()
            while last.rc == mqtt.MQTT_ERR_QUEUE_SIZE and time.monotonic() - waited < timeout_s:
                time.sleep(0.002)  # the broker has not acknowledged enough yet: back pressure
                last = client.publish(topic_for(plant, inverter, prefix), payload, qos=qos)
            if last.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"MQTT publish failed: {mqtt.error_string(last.rc)}")
            count += payload.count(b"\n") + 1
            if on_progress is not None and count % 10_000 < batch:
                on_progress(count)
        if last is not None and qos > 0:
            last.wait_for_publish(timeout_s)
            if not last.is_published():
                raise TimeoutError(f"the MQTT broker did not acknowledge within {timeout_s:.0f} s")
    finally:
        client.loop_stop()
        client.disconnect()
    return count


def kafka_key(plant_id: str) -> bytes:
    """The Kafka message key of a plant's telemetry. The producer's partitioner (librdkafka's
    default ``consistent_random``: CRC32 of the key modulo the partition count) sends one
    key to one partition, so a plant never straddles two ``ysh om follow`` instances."""
    return plant_id.encode()


def publish_kafka(events: Iterable[dict], bootstrap: str, topic: str, *, batch: int = 1,
                  speedup: float | None = None, on_progress: Callable[[int], None] | None = None,
                  timeout_s: float = 60.0, security: Mapping[str, str] | None = None) -> int:
    """Produce to ``topic`` on the Kafka brokers ``bootstrap``; returns the number of events.
    Waits until every message is delivered; raises on a delivery error. ``security``:
    librdkafka TLS/SASL settings (:func:`ysh.om.stream.kafka_security`)."""
    from confluent_kafka import Producer

    errors: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                         "enable.idempotence": False, "queue.buffering.max.messages": 500_000,
                         **(security or {})})
    count = 0
    for plant, _inverter, payload in _messages(paced(events, speedup), batch):
        while True:
            try:
                producer.produce(topic, payload, key=kafka_key(plant), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        count += payload.count(b"\n") + 1
        if on_progress is not None and count % 10_000 < batch:
            on_progress(count)
        if errors:
            break
    left = producer.flush(timeout_s)
    if errors:
        raise ConnectionError(f"Kafka delivery failed: {errors[0]} ({len(errors)} errors)")
    if left:
        raise TimeoutError(f"{left} Kafka messages not delivered within {timeout_s:.0f} s")
    return count
