"""One event-time clock per Kafka partition (issue 14).

Kafka orders a partition, not a topic: librdkafka hands a backlog over partition by
partition, so one partition's events may reach the engine hours of event time ahead of
another's. With one clock for the topic the lagging partition's events were quarantined
as ``late`` and its plants got false ``plant_offline`` alerts. Each partition now has its
own clock: its windows close, its late events are judged and its plants' folds are ticked
by its own newest event time.

The graph test runs the real O&M graph in-process with the deliveries in a fixed order;
the integration test runs ``ysh om follow --source kafka`` against a real Tansu broker
and PostgreSQL, the partitions published hours apart in event time.
"""

from __future__ import annotations

import json
import os
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pathway as pw
import pytest

from ysh import pw_runtime
from ysh.om.fleet import load_plants
from ysh.om.job import run_detect
from ysh.om.pipeline import LATE, build_om_graph
from ysh.om.rules import RULE_PLANT_OFFLINE
from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl

from ..conftest import query, wait_for

PLANTS = Path(__file__).resolve().parents[2] / "data" / "sample" / "om" / "plants.json"
PARTITIONS = 4
#: the partitions published first / held back (the sample plants fall on all four)
AHEAD, BEHIND = (0, 1), (2, 3)
START = datetime(2026, 1, 15, 11, 0, tzinfo=timezone.utc)  # 08:00 in Brasília, 8 hours of daylight
CUTOFF = timedelta(minutes=2)  # the production default


def partition_of(plant_id) -> int:
    """librdkafka's default partitioner (consistent_random): CRC32 of the key, the plant
    (``publish_kafka``'s key; an event without a plant id is keyed ``_``)."""
    return zlib.crc32(str(plant_id if plant_id is not None else "_").encode()) % PARTITIONS


def _ts(event: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00"))
    except (KeyError, ValueError, TypeError):
        return None


def _when(t: datetime | None) -> datetime:
    return t or datetime.min.replace(tzinfo=timezone.utc)


def _static(events: list[dict], folder: Path, now: datetime) -> tuple[list[dict], list[dict]]:
    """The reference: ``ysh om detect`` over the same events."""
    write_jsonl(events, folder / "all.jsonl")
    run_detect([folder / "all.jsonl"], PLANTS, folder / "static", now=now)
    read = lambda name: [json.loads(x) for x in (folder / "static" / name).read_text().splitlines()]  # noqa: E731
    return read("windows.jsonl"), read("alerts.jsonl")


def _key(plant, inverter, start) -> tuple:
    return plant, inverter, pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else \
        pd.Timestamp(start).tz_localize("UTC")


def _final_per_partition(windows: list[dict], events: list[dict], cutoff: timedelta, now: datetime) -> dict:
    """The static windows a streaming run must have emitted: final by the clock of their
    own partition (end + cutoff ≤ the newest valid event time of that partition; the
    simulator's events a day in the future are not valid)."""
    newest: dict[int, datetime] = {}
    for e in events:
        t = _ts(e)
        if t is not None and t <= now:
            p = partition_of(e.get("plant_id"))
            newest[p] = max(newest.get(p, t), t)
    return {_key(w["plant_id"], w["inverter_id"], w["window_start"]): w["samples"] for w in windows
            if partition_of(w["plant_id"]) in newest
            and pd.Timestamp(w["window_end"]) + cutoff <= newest[partition_of(w["plant_id"])]}


@pytest.fixture(scope="module")
def split_fleet(tmp_path_factory):
    """Eight hours of the sample fleet (a fixed day), split into: the first 1.5 hours of
    the partitions behind, then all of the partitions ahead, then the rest of the
    partitions behind; and the static run over all of it."""
    events = list(simulate(default_scenario(START, 8, seed=3)))
    now = START + timedelta(hours=8, minutes=10)  # the simulator's future-dated events stay in the future
    behind = [e for e in events if partition_of(e.get("plant_id")) in BEHIND]
    ahead = [e for e in events if partition_of(e.get("plant_id")) in AHEAD]
    assert {partition_of(e.get("plant_id")) for e in events if _ts(e)} == set(range(PARTITIONS))
    split = START + timedelta(hours=1, minutes=30)
    head = [e for e in behind if _ts(e) is None or _ts(e) < split]
    tail = [e for e in behind if _ts(e) is not None and _ts(e) >= split]
    windows, alerts = _static(events, tmp_path_factory.mktemp("kafka-clock"), now)
    return {"events": events, "parts": [head, ahead, tail], "now": now, "windows": windows, "alerts": alerts}


def _stream(parts: list[list[dict]], now: datetime, partitions) -> dict[str, list[dict]]:
    """The streaming graph over ``parts`` delivered one after another (each a batch of
    the engine), every line with its message's partition."""
    rows = [{"data": json.dumps(e), "partition": partition_of(e.get("plant_id")), "__time__": 2 * (i + 1)}
            for i, part in enumerate(parts) for e in part]
    pw_runtime.fresh_graph()
    lines = pw.debug.table_from_pandas(pd.DataFrame(rows))
    tables = build_om_graph(lines, load_plants(PLANTS), now=now, late_cutoff=CUTOFF, partitions=partitions)
    collectors = {name: pw_runtime.TableCollector(getattr(tables, name), name, keep_retracted=name == "alerts")
                  for name in ("windows", "alerts", "quarantine")}
    pw_runtime.run()
    return {name: c.values() for name, c in collectors.items()}


def test_a_partition_hours_behind_another_loses_no_event_and_raises_no_false_offline(split_fleet):
    out = _stream(split_fleet["parts"], split_fleet["now"], partitions=range(PARTITIONS))
    assert [q for q in out["quarantine"] if q["reason"] == LATE] == []
    expected = _final_per_partition(split_fleet["windows"], split_fleet["events"], CUTOFF, split_fleet["now"])
    got = {_key(w["plant_id"], w["inverter_id"], w["window_start"]): w["samples"] for w in out["windows"]}
    assert {k: got.get(k) for k in expected} == expected  # every final window, with the static run's samples
    behind_plants = {p for p, *_ in expected if partition_of(p) in BEHIND}
    assert behind_plants
    assert not [a for a in out["alerts"] if a["rule"] == RULE_PLANT_OFFLINE and a["plant_id"] in behind_plants]
    # the alerts of the static run (an hour before the end: the streaming fold's last moments wait)
    until = START + timedelta(hours=7)
    static = {a["alert_key"] for a in split_fleet["alerts"] if pd.Timestamp(a["opened_at"]) < until}
    assert static and static <= {a["alert_key"] for a in out["alerts"]}
    assert not {a["alert_key"] for a in out["alerts"] if pd.Timestamp(a["opened_at"]) < until} - static


def test_one_clock_for_the_topic_was_the_bug(split_fleet):
    """What one clock for the whole topic did with the same deliveries (the single-stream
    graph files and MQTT still use): whichever partition was behind the topic's newest
    event had its events quarantined as late, and the plants of the one held back went
    offline."""
    out = _stream(split_fleet["parts"], split_fleet["now"], partitions=None)
    late = [q for q in out["quarantine"] if q["reason"] == LATE]
    assert {partition_of(q["plant_id"]) for q in late} == set(range(PARTITIONS))
    assert any(a["rule"] == RULE_PLANT_OFFLINE and partition_of(a["plant_id"]) in BEHIND for a in out["alerts"])


# --------------------------------------------------------------------------- ysh om follow, real Tansu


@pytest.mark.integration
def test_ysh_om_follow_on_kafka_keeps_a_lagging_partition(warehouse, tmp_path, isolated_settings):
    """``ysh om follow --source kafka`` over a topic of four partitions keyed by plant:
    the first 1.5 hours of two partitions, then all eight hours of the other two, then
    the rest of the first two (each part read before the next is published). No event is
    late, no plant of the lagging partitions goes offline, and the windows and alerts are
    the static run's."""
    from ysh.om.publish import publish_kafka
    from ysh.services.local import ensure_topic
    from ysh.settings import get_settings

    from .test_stream import _bus_service, _db_windows, _env, _start, _stop

    # the follower checks future_ts against the wall clock: the latest 8 daylight hours that ended
    now = datetime.now(timezone.utc)
    end = now.replace(hour=19, minute=0, second=0, microsecond=0)
    if end > now:
        end -= timedelta(days=1)
    start = end - timedelta(hours=8)
    events = [e for e in simulate(default_scenario(start, 8, seed=3)) if _when(_ts(e)) <= end]
    behind = [e for e in events if partition_of(e.get("plant_id")) in BEHIND]
    split = start + timedelta(hours=1, minutes=30)
    parts = [[e for e in behind if _when(_ts(e)) < split],
             [e for e in events if partition_of(e.get("plant_id")) in AHEAD],
             [e for e in behind if _when(_ts(e)) >= split]]
    (tmp_path / "static").mkdir()
    windows, alerts = _static(events, tmp_path / "static", now)
    cutoff = timedelta(minutes=10)  # one event per message, in order per partition
    topic = "telemetry_lagging"
    home, log = tmp_path / "home", tmp_path / "run.log"
    service, status = _bus_service("kafka", tmp_path / "services")
    proc = None
    try:
        assert ensure_topic(status.url, topic, PARTITIONS) == PARTITIONS
        env = _env(warehouse, home, YSH_OM_KAFKA_BOOTSTRAP=status.url, YSH_OM_KAFKA_TOPIC=topic,
                   YSH_OM_LATE_CUTOFF_S=str(int(cutoff.total_seconds())), YSH_OM_NOTIFY="false")
        proc = _start(env, log, "kafka")
        seen: list[dict] = []

        def lost() -> list[tuple]:
            return query(warehouse, "SELECT event_id, detail FROM om_quarantine WHERE reason = 'late'")

        def read(expected: dict):
            def done():
                if proc.poll() is not None:
                    raise AssertionError(f"ysh om follow exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                got = {_key(*k): n for k, n in _db_windows(warehouse).items()}
                return got if lost() or set(expected) <= set(got) else None

            return wait_for(done, timeout=180, what="the final windows in om_inverter_5min")

        for part in parts:
            assert publish_kafka(part, status.url, topic, batch=1) == len(part)
            seen += part
            got = read(_final_per_partition(windows, seen, cutoff, end))
            late = lost()
            assert not late, f"{len(late)} events quarantined as late, e.g. {late[:2]}"
        expected = _final_per_partition(windows, events, cutoff, end)
        assert {k: got.get(k) for k in expected} == expected
        behind_plants = {p for p, *_ in expected if partition_of(p) in BEHIND}
        offline = query(warehouse, "SELECT plant_id FROM om_alerts WHERE rule = %s", (RULE_PLANT_OFFLINE,))
        assert behind_plants and not {p for (p,) in offline} & behind_plants
        until = end - timedelta(minutes=40)
        static = {a["alert_key"] for a in alerts if pd.Timestamp(a["opened_at"]) < until}

        def same_alerts():
            rows = {k for k, opened in query(warehouse, "SELECT alert_key, opened_at FROM om_alerts")
                    if opened < until}
            return rows if rows == static else None

        try:
            wait_for(same_alerts, timeout=60, what="the static run's alerts")
        except AssertionError:
            rows = {k for k, o in query(warehouse, "SELECT alert_key, opened_at FROM om_alerts") if o < until}
            raise AssertionError(f"missing {static - rows}, extra {rows - static}") from None
        assert any(k.split("|")[2] == "inverter_trip" for k in static)
    finally:
        if proc is not None:
            _stop(proc)
        service.stop()
        os.environ["YSH_HOME"] = str(isolated_settings)
        get_settings.cache_clear()


def test_kafka_state_written_for_another_layout_is_refused_with_what_to_do(tmp_path):
    from ysh.om.stream import LAYOUT_FILE, check_state_layout

    fresh = tmp_path / "fresh"
    assert check_state_layout(fresh, (0, 1, 2, 3)) == (0, 1, 2, 3)
    assert check_state_layout(fresh, (0, 1, 2, 3)) == (0, 1, 2, 3)  # a restart
    assert check_state_layout(fresh, None) == (0, 1, 2, 3)  # brokers silent at start: the saved clocks
    with pytest.raises(ValueError, match="remove that folder"):  # the topic got more partitions
        check_state_layout(fresh, (0, 1, 2, 3, 4, 5))
    # one clock at first (the topic did not exist yet): the partitions known later are taken
    early = tmp_path / "early"
    assert check_state_layout(early, None) is None
    assert check_state_layout(early, (0, 1)) == (0, 1)
    assert (early / LAYOUT_FILE).exists()
    # a folder of the reader before the metadata was kept in every row
    old = tmp_path / "old"
    (old / "streams").mkdir(parents=True)
    with pytest.raises(ValueError, match="older version"):
        check_state_layout(old, (0, 1, 2, 3))
