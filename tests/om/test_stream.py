"""``ysh om run``: the streaming O&M pipeline against real servers (PostgreSQL, mosquitto,
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
from ysh.om.simulator import default_scenario, simulate, write_jsonl
from ysh.om.stream import alert_notices, line_protocol, thresholds_from

from ..conftest import Receiver, query, wait_for

PLANTS = Path(__file__).resolve().parents[2] / "data" / "sample" / "om" / "plants.json"
CUTOFF = timedelta(seconds=120)


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


def _final(windows: list[dict], events: list[dict]) -> dict:
    now = datetime.now(timezone.utc)
    newest = max(t for t in map(_event_ts, events) if t is not None and t <= now)
    return {(w["plant_id"], w["inverter_id"], ts(w["window_start"])): w["samples"] for w in windows
            if ts(w["window_end"]) + CUTOFF <= newest}


def test_the_fold_fed_window_by_window_equals_the_fold_over_all_windows(fleet):
    """The streaming order (windows arrive per 5-minute end, with the fleet's clock) gives
    the alerts of the static order, key for key."""
    _, windows, _ = fleet
    stats = [WindowStat(**{**w, "window_start": ts(w["window_start"]), "window_end": ts(w["window_end"]),
                            "last_ts": ts(w["last_ts"])}) for w in windows]
    ends = sorted({w.window_end for w in stats})
    for plant in sorted({w.plant_id for w in stats}):
        mine = [w for w in stats if w.plant_id == plant]
        fold = PlantFold(plant, retention=None)
        for end in ends:
            fold = fold.step([w for w in mine if w.window_end == end], [end])
        at_once = replay_alerts(plant, mine, ticks=ends)
        assert fold.alerts() == at_once
        assert len(fold.windows) <= len({w.inverter_id for w in mine}) * 24  # two hours of windows, no more


def _fold_with_one_inverter_late(stats: list[WindowStat], late: str, lag: timedelta) -> list:
    ends = sorted({w.window_end for w in stats})
    fold = PlantFold(stats[0].plant_id, retention=None, lag=lag)
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
