"""``ysh om follow``: the streaming O&M pipeline against real servers (PostgreSQL, mosquitto,
the Kafka-protocol broker Tansu, a loopback HTTP receiver for Slack and InfluxDB).

The reference for every streaming run is the static run (``ysh om detect``) over the
same events: the streaming windows must be exactly the static windows that are final
(end + late cutoff ≤ the newest event time), and the alerts the same, key for key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ysh.om.engine import PlantFold, replay_alerts
from ysh.om.rules import Thresholds, WindowStat
from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl
from ysh.om.sinks import alert_notices, line_protocol
from ysh.om.stream import thresholds_from

from ..conftest import Receiver, query, wait_for

PLANTS = Path(__file__).resolve().parents[2] / "data" / "sample" / "om" / "plants.json"
CUTOFF = timedelta(seconds=120)
#: the buses replay eight hours in seconds: an hour of event time is what two minutes are
#: for devices publishing in real time (messages of different topics interleave freely)
BUS_CUTOFF = timedelta(hours=1)


def ts(value) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# --------------------------------------------------------------------------- pure parts


def test_threshold_overrides_from_settings_are_typed_and_checked():
    t = thresholds_from({"under_windows": 4, "comm_loss_after": 600, "under_pi_max": 0.7})
    assert t.under_windows == 4 and isinstance(t.under_windows, int)
    assert t.comm_loss_after == timedelta(minutes=10) and t.under_pi_max == 0.7
    assert thresholds_from({}) == Thresholds()
    with pytest.raises(ValueError, match="unknown O&M threshold.*trip_sensitivity.*known: daylight_fraction"):
        thresholds_from({"trip_sensitivity": 1})
    with pytest.raises(ValueError, match="whole number"):
        thresholds_from({"under_windows": 2.5})


def test_line_protocol_escapes_tags_and_types_fields():
    line = line_protocol({"plant_id": "usina 1,sp", "inverter_id": "inv=2", "window_start": "2026-01-15T12:00:00Z",
                          "samples": 5, "avg_power_w": 1000, "min_power_w": 900.5, "max_power_w": 1100.0,
                          "energy_delta_kwh": 0.08, "expected_power_w": 1200.0, "performance_index": None})
    assert line == ("om_inverter_5min,plant_id=usina\\ 1\\,sp,inverter_id=inv\\=2 avg_power_w=1000.0,"
                    "min_power_w=900.5,max_power_w=1100.0,energy_delta_kwh=0.08,expected_power_w=1200.0,"
                    "samples=5i 1768478400")


def test_alert_notices_name_the_alert_and_its_resolution():
    row = {"alert_key": "p|inv-01|inverter_trip|2026-01-15T11:50:00+00:00", "plant_id": "p", "inverter_id": "inv-01",
           "rule": "inverter_trip", "opened_at": ts("2026-01-15T11:50:00Z"), "resolved_at": None}
    (opened,) = alert_notices(row)
    assert opened.key == f"om:{row['alert_key']}" and opened.kind == "om_opened"
    assert "critical: inverter_trip em p/inv-01 desde 2026-01-15 11:50 UTC" in opened.text
    opened_again, resolved = alert_notices({**row, "resolved_at": ts("2026-01-15T12:50:00Z")})
    assert opened_again == opened
    assert resolved.key == f"om-resolved:{row['alert_key']}" and "aberto por 60 min" in resolved.text
    plant_wide = alert_notices({**row, "inverter_id": "*", "rule": "plant_offline"})[0]
    assert "plant_offline em p desde" in plant_wide.text


# --------------------------------------------------------------------------- reference run


def _recent_events(seed: int = 3) -> list[dict]:
    """The sample fleet over the latest 11:00–19:00 UTC (08:00–16:00 in Brasília) that has
    ended: daylight, so the injected faults show. A streaming run checks ``future_ts``
    against the wall clock: the simulator's future-dated events that are not in the
    future any more are left out (of the static reference too)."""
    now = datetime.now(timezone.utc)
    end = now.replace(hour=19, minute=0, second=0, microsecond=0)
    if end > now:
        end -= timedelta(days=1)
    scenario = default_scenario(end - timedelta(hours=8), 8, seed=seed)
    return [e for e in simulate(scenario) if not isinstance(e.get("ts"), str) or "T" not in e["ts"]
            or ts(e["ts"]) <= end or ts(e["ts"]) > now + timedelta(minutes=10)]


def _static(events: list[dict], folder: Path) -> tuple[list[dict], list[dict]]:
    from ysh.om.job import run_detect

    write_jsonl(events, folder / "all.jsonl")
    run_detect([folder / "all.jsonl"], PLANTS, folder / "static")
    read = lambda name: [json.loads(x) for x in (folder / "static" / name).read_text().splitlines()]  # noqa: E731
    return read("windows.jsonl"), read("alerts.jsonl")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("om-stream")
    events = _recent_events()
    windows, alerts = _static(events, folder)
    return events, windows, alerts


def _event_ts(event: dict) -> datetime | None:
    try:
        return ts(event["ts"])
    except (KeyError, ValueError, TypeError):
        return None


def _final(windows: list[dict], events: list[dict], cutoff: timedelta = CUTOFF) -> dict:
    now = datetime.now(timezone.utc)
    newest = max(t for t in map(_event_ts, events) if t is not None and t <= now)
    return {(w["plant_id"], w["inverter_id"], ts(w["window_start"])): w["samples"] for w in windows
            if ts(w["window_end"]) + cutoff <= newest}


def test_the_fold_fed_window_by_window_equals_the_fold_over_all_windows(fleet):
    """The streaming order (windows arrive per 5-minute end, with the fleet's clock) gives
    the alerts of the static order, key for key."""
    _, windows, _ = fleet
    stats = [WindowStat(**{**w, "window_start": ts(w["window_start"]), "window_end": ts(w["window_end"]),
                            "last_ts": ts(w["last_ts"])}) for w in windows]
    ends = sorted({w.window_end for w in stats})
    for plant in sorted({w.plant_id for w in stats}):
        mine = [w for w in stats if w.plant_id == plant]
        fold = PlantFold(plant, keep_resolved=True)
        for end in ends:
            fold = fold.step([w for w in mine if w.window_end == end], [end])
        at_once = replay_alerts(plant, mine, ticks=ends)
        assert fold.alerts() == at_once
        assert len(fold.windows) <= len({w.inverter_id for w in mine}) * 24  # two hours of windows, no more


def _fold_with_one_inverter_late(stats: list[WindowStat], late: str, lag: timedelta) -> list:
    ends = sorted({w.window_end for w in stats})
    fold = PlantFold(stats[0].plant_id, keep_resolved=True, lag=lag)
    for previous, end in zip([None, *ends], ends):
        on_time = [w for w in stats if w.window_end == end and w.inverter_id != late]
        delayed = [w for w in stats if w.window_end == previous and w.inverter_id == late]
        fold = fold.step(on_time + delayed, [end])
    last = [w for w in stats if w.window_end == ends[-1] and w.inverter_id == late]
    return fold.step(last, [ends[-1] + timedelta(minutes=10)]).alerts()


def test_a_moment_waits_for_an_inverter_the_bus_delivers_late(fleet):
    """One inverter's windows always arrive one 5-minute step after its peers' (a bus
    delivering it late): with a lag the alerts are those of the complete data; without
    one, the moments are judged on partial data and some alert comes out different."""
    _, windows, _ = fleet
    plant = "plant-cwb-01"
    stats = [WindowStat(**{**w, "window_start": ts(w["window_start"]), "window_end": ts(w["window_end"]),
                            "last_ts": ts(w["last_ts"])}) for w in windows if w["plant_id"] == plant]
    complete = replay_alerts(plant, stats, ticks=sorted({w.window_end for w in stats}))
    assert any(a.rule == "underperformance" for a in complete)
    inverters = sorted({w.inverter_id for w in stats})
    for late in inverters:
        assert _fold_with_one_inverter_late(stats, late, timedelta(minutes=5)) == complete, late
    assert any(_fold_with_one_inverter_late(stats, late, timedelta(0)) != complete for late in inverters)


# --------------------------------------------------------------------------- ysh om follow


def _env(warehouse, home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YSH_")}
    env.update(YSH_HOME=str(home), YSH_POSTGRES_DSN=warehouse.dsn, YSH_POSTGRES_SCHEMA=warehouse.schema,
               YSH_OM_LATE_CUTOFF_S=str(int(CUTOFF.total_seconds())), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _start(env: dict, log: Path, source: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ysh.cli", "om", "follow", "--source", source], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(30)


def _db_windows(warehouse) -> dict:
    return {(p, i, s): n for p, i, s, n in
            query(warehouse, "SELECT plant_id, inverter_id, window_start, samples FROM om_inverter_5min")}


def _wait_windows(warehouse, expected: dict, proc: subprocess.Popen, log: Path, timeout=180) -> dict:
    def done():
        if proc.poll() is not None:
            raise AssertionError(f"ysh om follow exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        got = _db_windows(warehouse)
        return got if set(expected) <= set(got) else None

    return wait_for(done, timeout=timeout, what="the final windows in om_inverter_5min")


def _alerts_match(warehouse, static_alerts: list[dict], until: datetime) -> list[tuple] | None:
    """The rows of om_alerts when every static alert opened before ``until`` is there with
    the same key, and resolved at the same time when the static run resolved it before
    ``until``; else None (the alert sink may still be writing the batch the windows
    sink already wrote)."""
    rows = {k: (r, o, res) for k, r, o, res in
            query(warehouse, "SELECT alert_key, rule, opened_at, resolved_at FROM om_alerts")}
    for alert in static_alerts:
        if ts(alert["opened_at"]) >= until:
            continue
        if alert["alert_key"] not in rows:
            return None
        if alert["resolved_at"] and ts(alert["resolved_at"]) < until and \
                rows[alert["alert_key"]][2] != ts(alert["resolved_at"]):
            return None
    return list(rows.values())


def _wait_alerts(warehouse, static_alerts: list[dict], until: datetime) -> list[tuple]:
    try:
        return wait_for(lambda: _alerts_match(warehouse, static_alerts, until), timeout=60,
                        what="the alerts of the static run")
    except AssertionError:
        rows = {k: (o, r) for k, o, r in query(warehouse, "SELECT alert_key, opened_at, resolved_at FROM om_alerts")}
        wrong = [(a["alert_key"], a["resolved_at"], rows.get(a["alert_key"])) for a in static_alerts
                 if ts(a["opened_at"]) < until and (a["alert_key"] not in rows or (
                     a["resolved_at"] and ts(a["resolved_at"]) < until and rows[a["alert_key"]][1] != ts(a["resolved_at"])))]
        raise AssertionError(f"streaming alerts differ from the static run: {wrong}") from None


def _assert_as_static(warehouse, static_windows: list[dict], static_alerts: list[dict], events: list[dict],
                      proc: subprocess.Popen, log: Path) -> list[tuple]:
    """A follower's tables against the static run over ``events``: every final window with
    the static run's sample count (nothing lost, nothing doubled), and its alerts up to half
    an hour before the newest window, an inverter trip among them. Returns the alert rows."""
    expected = _final(static_windows, events, BUS_CUTOFF)
    got = _wait_windows(warehouse, expected, proc, log)
    assert {k: got[k] for k in expected} == expected
    newest_window = max(k[2] for k in expected) + timedelta(minutes=5)
    rows = _wait_alerts(warehouse, static_alerts, until=newest_window - timedelta(minutes=30))
    assert any(r[0] == "inverter_trip" for r in rows)
    return rows


def _notified(warehouse) -> int:
    """The notices om_alerts calls for: one per warning/critical alert, one more when resolved."""
    return query(warehouse, "SELECT count(*) + count(resolved_at) FROM om_alerts WHERE rule <> 'clipping'")[0][0]


@pytest.mark.integration
def test_kill_9_and_restart_lose_no_window_double_none_and_notify_each_alert_once(warehouse, fleet, tmp_path):
    events, static_windows, static_alerts = fleet
    slack = Receiver()
    home, folder, log = tmp_path / "home", tmp_path / "telemetry", tmp_path / "run.log"
    folder.mkdir(parents=True)
    split = _event_ts(events[0]) + timedelta(hours=4, minutes=17)
    first, rest = [], []
    for e in events:  # malformed timestamps go with the first part
        (rest if (_event_ts(e) or split) >= split and _event_ts(e) is not None else first).append(e)
    env = _env(warehouse, home, YSH_OM_REPLAY_DIR=str(folder), YSH_SLACK_WEBHOOK_URL=slack.url)
    try:
        write_jsonl(first, folder / "part-1.jsonl")
        proc = _start(env, log, "jsonl")
        _wait_windows(warehouse, _final(static_windows, first), proc, log)

        def notices_settled():
            pending, sent = query(warehouse, "SELECT count(*) FILTER (WHERE status = 'pending'), "
                                             "count(*) FILTER (WHERE status = 'sent') FROM ops_alerts_sent")[0]
            return sent if pending == 0 and sent == len(slack.messages) == _notified(warehouse) else None

        before = _final(static_windows, first)
        _wait_alerts(warehouse, static_alerts, until=max(k[2] for k in before) - timedelta(minutes=25))
        sent_before = wait_for(notices_settled, timeout=120, what="the first notices sent")
        _stop(proc, signal.SIGKILL)
        assert (home / "state" / "om-jsonl").is_dir()

        write_jsonl(rest, folder / "part-2.jsonl")  # arrives while the pipeline is down
        with (folder / "part-1.jsonl").open("ab") as fh:  # a logger appends bytes that are not UTF-8
            fh.write(b'{"event_id": "hostile-1", "plant_id": "\xff\xfe"}\n')
        proc = _start(env, log, "jsonl")
        expected = _final(static_windows, events)
        got = _wait_windows(warehouse, expected, proc, log)
        # the folder is followed as raw bytes: the line is quarantined, not dropped by the reader
        hostile = wait_for(lambda: query(warehouse, "SELECT raw FROM om_quarantine WHERE detail LIKE 'not UTF-8%%'")
                           or None, timeout=30, what="the appended line that is not UTF-8")
        assert hostile == [('{"event_id": "hostile-1", "plant_id": "\\xff\\xfe"}',)]
        # nothing lost: every final window; nothing doubled: the same samples as the static run
        assert {k: got[k] for k in expected} == expected
        newest_window = max(k[2] for k in expected) + timedelta(minutes=5)
        rows = _wait_alerts(warehouse, static_alerts, until=newest_window - timedelta(minutes=30))
        sent_after = wait_for(notices_settled, timeout=120, what="the later notices sent")
        _stop(proc)
    finally:
        slack.stop()
    assert any(r[0] == "inverter_trip" for r in rows) and any(r[0] == "comm_loss" for r in rows)
    # each notice once, although the restart replayed the alerts of the first part
    assert sent_after > sent_before > 0
    assert Counter(slack.messages).most_common(1)[0][1] == 1
    status = query(warehouse, "SELECT source, last_window_end FROM om_stream_status")
    assert status == [("jsonl", newest_window)]


def _bus_service(name: str, home: Path):
    from ysh.services import local
    from ysh.settings import get_settings

    os.environ["YSH_HOME"] = str(home)
    get_settings.cache_clear()
    service = local.get_service(name, get_settings())
    try:
        service.find_binary()
    except local.BinaryNotFound as exc:
        pytest.skip(str(exc))
    status = service.start(port=local.free_port())
    return service, status


def _publish_raw(bus: str, url: str, payload: bytes) -> None:
    """One message of ``payload``'s bytes as they are, acknowledged by the broker."""
    if bus == "mqtt":
        from urllib.parse import urlparse

        import paho.mqtt.client as mqtt

        parsed = urlparse(url)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ysh-test-raw", protocol=mqtt.MQTTv311)
        client.connect(parsed.hostname, parsed.port)
        client.loop_start()
        try:
            client.publish("ysh/telemetry/raw/raw", payload, qos=1).wait_for_publish(timeout=30)
        finally:
            client.loop_stop()
            client.disconnect()
    else:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": url, "acks": "all"})
        producer.produce("inverters_telemetry", payload, key=b"raw")
        assert producer.flush(30) == 0


@pytest.mark.integration
@pytest.mark.parametrize("bus", ["mqtt", "kafka"])
def test_the_buses_feed_the_same_windows_and_alerts_as_a_file(bus, warehouse, fleet, tmp_path, isolated_settings):
    from ysh.om.publish import publish_kafka, publish_mqtt
    from ysh.settings import get_settings

    events, static_windows, static_alerts = fleet
    home, log = tmp_path / "home", tmp_path / "run.log"
    service, status = _bus_service(bus, tmp_path / "services")
    try:
        cutoff = str(int(BUS_CUTOFF.total_seconds()))
        if bus == "mqtt":
            env = _env(warehouse, home, YSH_OM_MQTT_URI=status.url, YSH_OM_MQTT_CLIENT_ID=f"ysh-om-{tmp_path.name}",
                       YSH_OM_LATE_CUTOFF_S=cutoff)
        else:
            env = _env(warehouse, home, YSH_OM_KAFKA_BOOTSTRAP=status.url, YSH_OM_KAFKA_TOPIC="inverters_telemetry",
                       YSH_OM_LATE_CUTOFF_S=cutoff)
        proc = _start(env, log, bus)
        if bus == "mqtt":  # MQTT keeps nothing for a subscriber that has not connected yet
            wait_for(lambda: "Realtime data starts" in log.read_text() or proc.poll() is not None, timeout=90,
                     what="the MQTT subscription")
            published = publish_mqtt(events, status.url, batch=1)
        else:
            published = publish_kafka(events, status.url, "inverters_telemetry", batch=10)
        assert published == len(events)
        # a message holding bytes that are not UTF-8 (the plaintext format dropped it with a log line)
        _publish_raw(bus, status.url, b'{"event_id": "hostile-1", "plant_id": "\xff\xfe"}\n\xc3\x28')
        _assert_as_static(warehouse, static_windows, static_alerts, events, proc, log)
        hostile = wait_for(lambda: query(warehouse, "SELECT raw FROM om_quarantine WHERE detail LIKE 'not UTF-8%%' "
                                                    "ORDER BY raw") or None, timeout=30, what="the hostile lines")
        assert hostile == [("\\xc3(",), ('{"event_id": "hostile-1", "plant_id": "\\xff\\xfe"}',)]
        future = sum(1 for e in events if (_event_ts(e) or datetime.min.replace(tzinfo=timezone.utc))
                     > datetime.now(timezone.utc))
        quarantined = dict(query(warehouse, "SELECT reason, count(*) FROM om_quarantine GROUP BY reason"))
        assert quarantined.get("future_ts", 0) == future
        _stop(proc)
    finally:
        service.stop()
        os.environ["YSH_HOME"] = str(isolated_settings)
        get_settings.cache_clear()


@pytest.mark.integration
def test_window_stats_go_to_influxdb_as_line_protocol():
    import pandas as pd
    import pathway as pw

    from ysh import pw_runtime
    from ysh.om.sinks import InfluxSink

    influx = Receiver()
    influx.answers.extend([503])  # the first attempt fails: retried
    try:
        pw_runtime.fresh_graph()
        rows = [{"plant_id": "p1", "inverter_id": f"inv-0{i}",
                 "window_start": datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc),
                 "samples": 5, "avg_power_w": 1000.0 * i, "min_power_w": 900.0, "max_power_w": 1100.0 * i,
                 "energy_delta_kwh": 0.08, "expected_power_w": 1200.0, "performance_index": 0.83} for i in (1, 2)]
        table = pw.debug.table_from_pandas(pd.DataFrame(rows))
        InfluxSink(influx.url.rsplit("/services", 1)[0], "s3cr3t", "ysh", "om").attach(table)
        pw_runtime.run()
    finally:
        influx.stop()
    (path, headers, body), = influx.requests
    assert path == "/api/v2/write?org=ysh&bucket=om&precision=s"
    assert headers["Authorization"] == "Token s3cr3t"
    assert sorted(body.decode().splitlines()) == [line_protocol(r) for r in rows]


def test_influxdb_lines_still_unsent_at_close_are_counted_in_an_error(caplog):
    """InfluxDB down at the end of a run: close waits its timeout, then says how many lines
    it drops (the warehouse keeps every window) instead of dropping them silently."""
    from ysh.om.sinks import InfluxSink

    influx = Receiver()
    influx.answers.extend([503] * 1000)
    try:
        sink = InfluxSink(influx.url.rsplit("/services", 1)[0], None, "ysh", "om", retries=1000,
                          close_timeout_s=0.5)
        start = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
        for i in range(3):
            sink.on_change(None, {"plant_id": "p1", "inverter_id": f"inv-{i}", "window_start": start, "samples": 5,
                                  "avg_power_w": 1000.0}, 0, True)
        sink.on_time_end(0)
        sink.on_change(None, {"plant_id": "p1", "inverter_id": "inv-9", "window_start": start, "samples": 5,
                              "avg_power_w": 1.0}, 2, True)  # a last batch whose time never ended
        sink.close()
    finally:
        influx.stop()
    assert influx.requests == []
    assert sink.unsent_at_close == 4
    assert "4 window lines still unsent" in caplog.text


@pytest.mark.parametrize("name", ["under_windows", "frozen_samples", "clipping_windows"])
def test_a_window_count_below_one_is_refused(name):
    # underperformance over 0 windows read an empty run (IndexError in the fold)
    with pytest.raises(ValueError, match=f"{name}=0"):
        thresholds_from({name: 0})
