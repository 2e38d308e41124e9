"""Scale-out on Kafka: two ``ysh om follow --source kafka`` instances split a telemetry
topic of four partitions keyed by plant (real Tansu, real PostgreSQL).

Each instance owns two partitions (explicit assignment, docs/operations.md "Scale-out"):
so it owns whole plants. The reference is one instance reading the whole topic into a
warehouse of its own: the union of what the two instances wrote must be what it wrote.
One of the two is killed (-9) mid-stream and restarted; nothing may be lost or doubled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
import zlib
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ysh.om.stream import Instance, parse_partitions

from ..conftest import Receiver, query, wait_for
from .test_stream import (BUS_CUTOFF, PLANTS, _bus_service, _db_windows, _env, _event_ts, _final, _notified,
                          _stop, fleet)  # noqa: F401 - fleet is a fixture

TOPIC = "inverters_telemetry"
PARTITIONS = 4
A, B = (0, 1), (2, 3)


# --------------------------------------------------------------------------- pure parts


def test_partitions_parse_as_lists_and_ranges():
    assert parse_partitions("0,1") == (0, 1)
    assert parse_partitions("2-3, 0") == (0, 2, 3)
    assert parse_partitions([3, 1, 3]) == (1, 3)
    assert parse_partitions(None) is None and parse_partitions("") is None
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_partitions("0,x")
    with pytest.raises(ValueError, match="negative"):
        parse_partitions([-1])


def test_what_an_instance_keeps_is_named_after_its_partitions(tmp_path, monkeypatch):
    from ysh.settings import get_settings

    monkeypatch.setenv("YSH_HOME", str(tmp_path))
    get_settings.cache_clear()
    settings = get_settings()
    whole, half = Instance("kafka"), Instance("kafka", (0, 1))
    assert (whole.pipeline, whole.kafka_group(settings)) == ("om", settings.om.kafka_group)
    assert whole.state_dir(settings) == settings.state_dir / "om-kafka"
    assert (half.pipeline, half.kafka_group(settings)) == ("om-p0-1", f"{settings.om.kafka_group}-p0-1")
    assert half.state_dir(settings) == settings.state_dir / "om-kafka-p0-1"
    with pytest.raises(ValueError, match="Kafka source only"):
        Instance("mqtt", (0,))
    get_settings.cache_clear()


# --------------------------------------------------------------------------- two instances


def _partition(plant_id: str) -> int:
    """librdkafka's default partitioner (consistent_random): CRC32 of the key (the plant)."""
    return zlib.crc32(plant_id.encode()) % PARTITIONS


def _start(env: dict, log: Path, partitions: tuple[int, ...] | None) -> subprocess.Popen:
    """``ysh om follow --source kafka`` owning ``partitions`` (YSH_OM_KAFKA_PARTITIONS;
    None: the whole topic)."""
    if partitions:
        env = {**env, "YSH_OM_KAFKA_PARTITIONS": ",".join(map(str, partitions))}
    argv = [sys.executable, "-m", "ysh.cli", "om", "follow", "--source", "kafka", "--plants", str(PLANTS)]
    return subprocess.Popen(argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture()
def reference_warehouse(pg_server):
    """A second migrated schema: the single instance's warehouse."""
    from ysh import db
    from ysh.catalog.job import Warehouse

    schema = f"t_{uuid.uuid4().hex[:10]}"
    db.migrate(pg_server.dsn(), schema)
    yield Warehouse(pg_server.dsn(), schema)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _wait(warehouse, expected: dict, procs: list[tuple[subprocess.Popen, Path]], timeout=240) -> dict:
    def done():
        for proc, log in procs:
            if proc.poll() is not None:
                raise AssertionError(f"ysh om follow exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        got = _db_windows(warehouse)
        return got if set(expected) <= set(got) else None

    return wait_for(done, timeout=timeout, what="the final windows in om_inverter_5min")


def _alerts(warehouse, until: datetime) -> dict:
    """The alerts opened before ``until``, each with its resolution when that came before it."""
    return {k: (rule, opened, resolved if resolved is not None and resolved < until else None)
            for k, rule, opened, resolved in
            query(warehouse, "SELECT alert_key, rule, opened_at, resolved_at FROM om_alerts") if opened < until}


def _same_alerts(left, right, until: datetime) -> dict:
    """Both warehouses' alerts before ``until``, once they agree (an alert sink may still be
    writing the batch the window sink already wrote)."""
    try:
        return wait_for(lambda: (a := _alerts(left, until)) == _alerts(right, until) and a, timeout=90,
                        what="the same alerts")
    except AssertionError:
        mine, theirs = _alerts(left, until), _alerts(right, until)
        diff = {k: (mine.get(k), theirs.get(k)) for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
        raise AssertionError(f"two instances and one disagree on these alerts: {diff}") from None


@pytest.mark.integration
def test_two_instances_split_the_topic_by_plant_and_a_kill_9_loses_and_doubles_nothing(
        warehouse, reference_warehouse, fleet, tmp_path, isolated_settings):
    from ysh.om.publish import publish_kafka
    from ysh.settings import get_settings

    events, static_windows, _ = fleet
    plants = sorted({e["plant_id"] for e in events if isinstance(e.get("plant_id"), str)
                     and e["plant_id"].startswith("plant-")})
    owned = {p: (A if _partition(p) in A else B) for p in plants}
    assert set(owned.values()) == {A, B}, "the sample plants must fall on both instances' partitions"
    slack = Receiver()
    home = tmp_path / "home"  # one YSH_HOME for both instances: nothing they keep may collide
    service, status = _bus_service("kafka", tmp_path / "services")
    cutoff = str(int(BUS_CUTOFF.total_seconds()))
    env = _env(warehouse, home, YSH_OM_KAFKA_BOOTSTRAP=status.url, YSH_OM_KAFKA_TOPIC=TOPIC,
               YSH_OM_LATE_CUTOFF_S=cutoff, YSH_SLACK_WEBHOOK_URL=slack.url)
    split = _event_ts(events[0]) + timedelta(hours=4, minutes=17)
    first = [e for e in events if (_event_ts(e) or split) < split or _event_ts(e) is None]
    rest = [e for e in events if _event_ts(e) is not None and _event_ts(e) >= split]
    logs = {A: tmp_path / "a.log", B: tmp_path / "b.log", None: tmp_path / "single.log"}
    procs: dict = {}

    def notices_settled():
        pending, sent = query(warehouse, "SELECT count(*) FILTER (WHERE status = 'pending'), "
                                         "count(*) FILTER (WHERE status = 'sent') FROM ops_alerts_sent")[0]
        return sent if pending == 0 and sent == len(slack.messages) == _notified(warehouse) else None

    try:
        from ysh.services.local import ensure_topic

        assert ensure_topic(status.url, TOPIC, PARTITIONS) == PARTITIONS  # created when tansu started
        procs[A], procs[B] = _start(env, logs[A], A), _start(env, logs[B], B)
        assert publish_kafka(first, status.url, TOPIC, batch=10) == len(first)
        expected_first = _final(static_windows, first, BUS_CUTOFF)
        _wait(warehouse, expected_first, [(procs[A], logs[A]), (procs[B], logs[B])])
        wait_for(lambda: notices_settled(), timeout=120, what="the first part's notices sent")

        _stop(procs[A], signal.SIGKILL)  # mid-stream: the rest is published while it is down
        assert (home / "state" / "om-kafka-p0-1").is_dir() and (home / "state" / "om-kafka-p2-3").is_dir()
        assert publish_kafka(rest, status.url, TOPIC, batch=10) == len(rest)
        expected = _final(static_windows, events, BUS_CUTOFF)
        b_only = {k: n for k, n in expected.items() if owned[k[0]] == B}
        _wait(warehouse, b_only, [(procs[B], logs[B])])
        # all of a plant's events go to its partition's instance: A's plants wait for A
        later = {k for k in expected if owned[k[0]] == A and k[2] >= split}
        assert later and not later & set(_db_windows(warehouse))

        procs[A] = _start(env, logs[A], A)
        got = _wait(warehouse, expected, [(procs[A], logs[A]), (procs[B], logs[B])])
        assert {k: got[k] for k in expected} == expected  # none lost, none doubled (samples per window)

        # the reference: one instance, the whole topic, a warehouse of its own, no Slack
        single_env = _env(reference_warehouse, tmp_path / "single-home", YSH_OM_KAFKA_BOOTSTRAP=status.url,
                          YSH_OM_KAFKA_TOPIC=TOPIC, YSH_OM_LATE_CUTOFF_S=cutoff, YSH_OM_NOTIFY="false")
        procs[None] = _start(single_env, logs[None], None)
        single = _wait(reference_warehouse, expected, [(procs[None], logs[None])])
        assert {k: single[k] for k in expected} == {k: got[k] for k in expected}
        until = max(k[2] for k in expected) + timedelta(minutes=5) - timedelta(minutes=30)
        alerts = _same_alerts(warehouse, reference_warehouse, until)
        assert any(rule == "inverter_trip" for rule, _, _ in alerts.values())
        assert {owned[k.split("|")[0]] for k in alerts} == {A, B}

        sent = wait_for(notices_settled, timeout=120, what="every notice sent")
        for key in (A, B, None):
            _stop(procs[key])
    finally:
        for proc in procs.values():
            _stop(proc, signal.SIGKILL)
        slack.stop()
        service.stop()
        os.environ["YSH_HOME"] = str(isolated_settings)
        get_settings.cache_clear()
    assert sent > 0 and Counter(slack.messages).most_common(1)[0][1] == 1  # each notice once
    rows = {p: (src, parts) for p, src, parts in
            query(warehouse, "SELECT pipeline, source, kafka_partitions FROM om_stream_status")}
    assert rows == {"om-p0-1": ("kafka", list(A)), "om-p2-3": ("kafka", list(B))}
    assert query(reference_warehouse, "SELECT pipeline, kafka_partitions FROM om_stream_status") == [("om", None)]
