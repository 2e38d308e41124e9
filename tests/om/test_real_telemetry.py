"""Real telemetry read right (issue 14, part 3): the night tare, a power limit that repeats
one value while the energy counter runs, alerts that survive cloud noise and suppression,
loggers reporting every 5 or 15 minutes, and late events.

The graph tests run the real O&M graph (:func:`ysh.om.pipeline.build_om_graph`, Pathway)
over telemetry in the shapes real loggers send; the rule tests feed hand-built windows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pathway as pw
import pytest

from ysh import pw_runtime
from ysh.om.engine import PlantFold, replay_alerts
from ysh.om.fleet import Inverter, Plant, dump_plants, sample_plants
from ysh.om.job import run_detect
from ysh.om.pipeline import LATE, build_om_graph
from ysh.om.rules import (
    RULE_CLIPPING, RULE_COMM_LOSS, RULE_FROZEN, RULE_PLANT_OFFLINE, RULE_POWER_LIMITED, RULE_UNDERPERFORMANCE, Thresholds, WindowStat,
    advance, comm_loss_state, evaluate_windows, frozen_state, performance_index, power_limited_state,
    reporting_interval, window_from_samples,
)
from ysh.om.validation import NEGATIVE_POWER, Event, validate_event
from ysh.samples.om_telemetry import Scenario, simulate, write_jsonl

DAY = datetime(2026, 1, 15, 3, tzinfo=timezone.utc)  # local midnight in Brasília
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
RATED = 6000.0


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def plant_with(*inverters: Inverter, plant_id: str = "p1") -> Plant:
    rated = sum(i.rated_power_w for i in inverters)
    return Plant(plant_id=plant_id, capacity_kwp=rated * 1.2 / 1000, latitude=-23.55, longitude=-46.63,
                 tilt_deg=20, azimuth_deg=0, inverters=list(inverters))


def event(inv: str, t: datetime, power: float, energy: float, plant: str = "p1") -> dict:
    return {"event_id": f"{plant}:{inv}:{int(t.timestamp())}", "plant_id": plant, "inverter_id": inv,
            "ts": iso(t), "ac_power_w": power, "energy_total_kwh": energy}


def detect(tmp_path: Path, events: list[dict], plants: list[Plant], now: datetime) -> dict[str, list[dict]]:
    write_jsonl(events, tmp_path / "telemetry.jsonl")
    dump_plants(plants, tmp_path / "plants.json")
    run_detect([tmp_path / "telemetry.jsonl"], tmp_path / "plants.json", tmp_path / "out", now=now)
    return {name: [json.loads(line) for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]
            for name in ("windows", "alerts", "quarantine")}


# --------------------------------------------------------------------------- 1. night tare


def test_night_tare_reads_as_zero_and_larger_negatives_stay_quarantined():
    registry = {("p1", "inv-1"): RATED}  # tare limit: max(50 W, 1 % of 6 kW) = 60 W
    now = T0

    def raw(power, dc=None):
        return {"event_id": "e", "plant_id": "p1", "inverter_id": "inv-1", "ts": "2026-01-15T03:00:00Z",
                "ac_power_w": power, "energy_total_kwh": 1234.5, "dc_power_w": dc}

    tare = validate_event(raw(-3.0, dc=-1.5), registry, now)
    assert isinstance(tare, Event) and tare.ac_power_w == 0.0 and tare.dc_power_w == 0.0
    assert isinstance(validate_event(raw(-60.0), registry, now), Event)
    assert validate_event(raw(-60.5), registry, now).reason == NEGATIVE_POWER
    assert validate_event(raw(0.0, dc=-61.0), registry, now).reason == NEGATIVE_POWER
    big = {("p1", "inv-1"): 75_000.0}  # 1 % of 75 kW = 750 W
    assert isinstance(validate_event(raw(-700.0), big, now), Event)
    # the limit is a threshold (YSH_OM_THRESHOLDS): none at all quarantines the tare again
    strict = Thresholds(night_tare_w=0.0, night_tare_fraction=0.0)
    assert validate_event(raw(-3.0), registry, now, thresholds=strict).reason == NEGATIVE_POWER


def test_a_night_of_minus_three_watts_is_windows_not_quarantine(tmp_path):
    """A real 1-minute AC series at night reads −3 W (the inverter's own consumption, as
    NREL's measured series show): two hours of it are windows at 0 W, not quarantine; one
    reading of −500 W (a sign or scaling error) is still quarantined."""
    plant = plant_with(Inverter(inverter_id="inv-1", rated_power_w=RATED))
    start = DAY + timedelta(hours=1)  # 22:00 local
    events = [event("inv-1", start + timedelta(minutes=k), -3.0 if k % 7 else -2.5, 5000.0) for k in range(120)]
    events.append(event("inv-1", start + timedelta(minutes=60, seconds=30), -500.0, 5000.0))
    out = detect(tmp_path, events, [plant], start + timedelta(hours=3))
    assert [q["reason"] for q in out["quarantine"]] == [NEGATIVE_POWER]
    assert sum(w["samples"] for w in out["windows"]) == 120
    assert all(w["min_power_w"] == w["max_power_w"] == 0.0 for w in out["windows"])


# --------------------------------------------------------------------------- 2. power limit, not frozen


def _held_at(limit_fraction: float, counter: str) -> tuple[list[dict], Plant]:
    """A simulated variable-sky day of a 3 × 15 kW plant (1-minute data, irradiance
    sensor) where inv-02 is held at exactly ``limit_fraction`` of its rating from 09:00 to
    16:00 local: every reading over it reads the limit, the same value again and again.
    ``counter``: ``runs`` (re-integrated from the held power, as a real inverter's) or
    ``stale`` (the logger repeats its last counter reading while the power repeats)."""
    plant = next(p for p in sample_plants() if p.plant_id == "plant-cwb-01")
    scenario = Scenario(plants=[plant], start=DAY, duration=timedelta(hours=24), sky="variable", seed=5)
    events = sorted(simulate(scenario), key=lambda e: e["ts"])
    limit = limit_fraction * plant.inverter("inv-02").rated_power_w
    lo, hi = iso(DAY + timedelta(hours=9)), iso(DAY + timedelta(hours=16))
    energy = previous = None
    for e in events:
        if e["inverter_id"] != "inv-02":
            continue
        held = lo <= e["ts"] < hi and e["ac_power_w"] >= limit
        if energy is None:
            energy = e["energy_total_kwh"]
        elif not (counter == "stale" and held):
            energy += previous * 60 / 3600 / 1000
        if held:
            e["ac_power_w"] = limit
        previous = e["ac_power_w"]
        e["energy_total_kwh"] = round(energy, 3)
    return events, plant


def test_a_plateau_at_45_percent_with_a_running_counter_is_a_power_limit_not_frozen(tmp_path):
    events, plant = _held_at(0.45, "runs")
    out = detect(tmp_path, events, [plant], DAY + timedelta(days=1))
    mine = [a for a in out["alerts"] if a["inverter_id"] == "inv-02"]
    assert not [a for a in mine if a["rule"] == RULE_FROZEN]
    # the limit is reported, as info: an export limit against the peers, or power_limited
    limits = [a for a in mine if a["rule"] in (RULE_CLIPPING, RULE_POWER_LIMITED)]
    assert limits and all(a["details"]["severity"] == "info" for a in limits)
    assert all(a["details"].get("kind", "export_limit") == "export_limit" for a in limits)
    assert len([a for a in mine if a["rule"] == RULE_UNDERPERFORMANCE]) <= 1
    # before: the same windows judged without the counter's evidence are frozen data
    windows = [WindowStat(**{**w, **{k: datetime.fromisoformat(w[k]) for k in ("window_start", "window_end",
                                                                                "last_ts")}})
               for w in out["windows"]]
    blind = Thresholds(limit_counter_tolerance=-1.0)  # "follows" never holds
    assert any(a.rule == RULE_FROZEN and a.inverter_id == "inv-02"
               for a in replay_alerts(plant.plant_id, windows, blind))
    assert not any(a.rule == RULE_FROZEN for a in replay_alerts(plant.plant_id, windows))


def test_the_same_plateau_with_a_stale_counter_is_frozen(tmp_path):
    events, plant = _held_at(0.45, "stale")
    out = detect(tmp_path, events, [plant], DAY + timedelta(days=1))
    assert [a for a in out["alerts"] if a["inverter_id"] == "inv-02" and a["rule"] == RULE_FROZEN]
    assert not [a for a in out["alerts"] if a["rule"] == RULE_POWER_LIMITED]


def constant(i: int, value: float, energy: float, *, rated: float = RATED, advance_kwh: float | None = None,
             expected: float = 5000.0, inv: str = "inv-1") -> WindowStat:
    """A 5-minute window of five identical 1-minute readings; the counter advances by
    ``advance_kwh`` (default: what ``value`` implies over the window)."""
    start = T0 + i * timedelta(minutes=5)
    step = value * 60 / 3600 / 1000 if advance_kwh is None else advance_kwh / 5
    rows = [(start + timedelta(minutes=k), value, energy + step * k) for k in range(5)]
    return window_from_samples("p1", inv, start, start + timedelta(minutes=5), rows, expected, rated)


def test_power_limited_rule_boundaries():
    # 45 % of 6 kW for 15 minutes, counter running: power_limited, not frozen
    held = [constant(i, 2700.0, 100.0 + i * 0.225) for i in range(3)]
    state = power_limited_state(held)
    assert state.active and state.details["level_w"] == 2700.0 and state.details["fraction"] == 0.45
    assert not frozen_state(held).active and frozen_state(held).details["reason"] == "counter_advances"
    # the counter stands still: stale data
    stuck = [constant(i, 2700.0, 100.0, advance_kwh=0.0) for i in range(3)]
    assert frozen_state(stuck).active and not power_limited_state(stuck).active
    # no counter at all: the repeated value alone decides, as before (frozen)
    blind = [w._replace(energy_first_kwh=None, energy_last_kwh=None) for w in held]
    assert frozen_state(blind).active and not power_limited_state(blind).active
    # nine readings are not enough for either
    assert not power_limited_state(held[:1] + [held[1]._replace(identical_run=4)]).active
    # the clipping rule already reports a limit: power_limited stays quiet (one alert)
    peers_flat = {w.window_start: [constant(i, 5500.0, 200.0 + i, inv="inv-2")] for i, w in enumerate(held)}
    states = evaluate_windows(held, peers_flat)
    assert states[RULE_CLIPPING].active != states[RULE_POWER_LIMITED].active


# --------------------------------------------------------------------------- 3. one fault, one alert

KEY = ("p1", "inv-1", RULE_UNDERPERFORMANCE)


def verdicts(pattern: str) -> list[tuple[datetime, bool]]:
    """``1`` underperforming, ``0`` clear, one per 5-minute window from T0."""
    return [(T0 + timedelta(minutes=5 * (i + 1)), c == "1") for i, c in enumerate(pattern)]


def fold(pattern: str, resolve_after: timedelta = Thresholds().resolve_after, key=KEY, suppressed: str = ""):
    open_alerts, alerts = {}, []
    for i, (at, active) in enumerate(verdicts(pattern)):
        details = {"suppressed_by": RULE_FROZEN} if i < len(suppressed) and suppressed[i] == "s" else {}
        open_alerts, opened, resolved = advance(open_alerts, {key: (at, _state(active, details, at))}, resolve_after)
        alerts += opened
        alerts = [a for a in alerts if a.key not in {r.key for r in resolved}] + resolved
    return open_alerts, alerts


def _state(active, details, at):
    from ysh.om.rules import RuleState

    return RuleState(active, details, at)


def test_underperformance_through_passing_clouds_is_one_alert():
    # a derated inverter; cloud edges make single windows (and one 20-minute spell) look fine
    pattern = "111101110111100001111"
    open_alerts, alerts = fold(pattern)
    assert len(alerts) == 1 and alerts[0].resolved_at is None and KEY in open_alerts
    # without hysteresis the same verdicts split into four alerts
    assert len(fold(pattern, timedelta(0))[1]) == 4
    # clear for 30 minutes: resolved, at the first clear verdict
    _, alerts = fold("1111" + "0" * 7)
    assert len(alerts) == 1 and alerts[0].resolved_at == T0 + timedelta(minutes=25)
    _, alerts = fold("1111" + "0" * 6)
    assert alerts[0].resolved_at is None


def test_a_trip_is_not_held_open_by_hysteresis():
    key = ("p1", "inv-1", "inverter_trip")
    _, alerts = fold("1110", key=key)
    assert alerts[0].resolved_at == T0 + timedelta(minutes=20)


def test_a_suppressing_rule_does_not_split_the_alert():
    # underperforming, then frozen for a while (suppressed), then underperforming again
    pattern = "111" + "0" * 10 + "111"
    suppressed = "   " + "s" * 10
    _, alerts = fold(pattern, timedelta(0), suppressed=suppressed)
    assert len(alerts) == 1 and alerts[0].resolved_at is None
    # a suppressed verdict does not open one either
    _, alerts = fold("0000", suppressed="ssss")
    assert alerts == []


def test_frozen_spell_inside_underperformance_keeps_one_alert_through_the_fold():
    """Through :class:`PlantFold`: a derated inverter (PI 0.6) whose logger freezes for
    20 minutes in the middle; the frozen alert comes and goes, the underperformance alert
    stays one."""
    windows = []
    energy = 100.0
    for i in range(24):
        start = T0 + i * timedelta(minutes=5)
        if 6 <= i < 10:
            rows = [(start + timedelta(minutes=k), 3000.0, energy) for k in range(5)]  # stale: counter too
        else:
            rows = [(start + timedelta(minutes=k), 3000.0 + 7 * ((i * 5 + k) % 4), energy + 0.05 * k)
                    for k in range(5)]
            energy += 0.25
        w = window_from_samples("p1", "inv-1", start, start + timedelta(minutes=5), rows, 5000.0, RATED)
        windows.append(w._replace(expected_from_sensor=True))
    alerts = PlantFold("p1", keep_resolved=True).step(windows).alerts()
    by_rule = {}
    for a in alerts:
        by_rule.setdefault(a.rule, []).append(a)
    assert len(by_rule[RULE_FROZEN]) == 1
    assert len(by_rule[RULE_UNDERPERFORMANCE]) == 1 and by_rule[RULE_UNDERPERFORMANCE][0].resolved_at is None


# --------------------------------------------------------------------------- 4. 5- and 15-minute loggers


def sparse(inv: str, every: timedelta, hours: float, power: float = 4000.0, *, start: datetime = T0,
           stop_after: timedelta | None = None) -> list[dict]:
    out, energy, t, k = [], 1000.0, start, 0
    while t < start + timedelta(hours=hours):
        p = power + 13.0 * (k % 5)  # a little sky noise: never the same value twice in a row
        if stop_after is None or t < start + stop_after:
            out.append(event(inv, t, p, round(energy, 3)))
        energy += p * every.total_seconds() / 3600 / 1000
        t, k = t + every, k + 1
    return out


def windows_of(events: list[dict], length: timedelta = timedelta(minutes=5)) -> list[WindowStat]:
    groups: dict[tuple, list] = {}
    for e in events:
        t = datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        start = datetime.fromtimestamp(t.timestamp() // length.total_seconds() * length.total_seconds(),
                                       tz=timezone.utc)
        groups.setdefault((e["inverter_id"], start), []).append((t, e["ac_power_w"], e["energy_total_kwh"]))
    return [window_from_samples("p1", inv, s, s + length, rows, 5000.0, RATED)._replace(expected_from_sensor=True)
            for (inv, s), rows in sorted(groups.items(), key=lambda kv: kv[0][1])]


def test_the_reporting_interval_is_inferred_from_the_spacing():
    assert reporting_interval(windows_of(sparse("a", timedelta(minutes=1), 1))) == timedelta(minutes=5)
    assert reporting_interval(windows_of(sparse("a", timedelta(minutes=5), 1))) == timedelta(minutes=5)
    assert reporting_interval(windows_of(sparse("a", timedelta(minutes=15), 2))) == timedelta(minutes=15)
    assert reporting_interval(windows_of(sparse("a", timedelta(minutes=15), 2), timedelta(minutes=15))) == \
        timedelta(minutes=15)


@pytest.mark.parametrize("minutes", [5, 15])
def test_a_slow_logger_in_five_minute_windows_is_not_comm_loss(minutes):
    """Interval inferred (no registry entry): a logger reporting every 5 or 15 minutes
    beside a 1-minute one raises nothing over three hours; the same logger silent for an
    hour is comm loss."""
    every = timedelta(minutes=minutes)
    fast = sparse("inv-1", timedelta(minutes=1), 3)
    slow = sparse("inv-2", every, 3)
    alerts = replay_alerts("p1", windows_of(fast + slow))
    assert [a for a in alerts if a.rule != RULE_CLIPPING] == []
    lost = sparse("inv-2", every, 3, stop_after=timedelta(hours=1))
    alerts = replay_alerts("p1", windows_of(fast + lost))
    comm = [a for a in alerts if a.rule == RULE_COMM_LOSS]
    assert len(comm) == 1 and comm[0].inverter_id == "inv-2"
    last = T0 + timedelta(hours=1) - every
    assert comm[0].opened_at == last + max(timedelta(minutes=15), 3 * every)
    # alone in its plant (a residential site), evaluated at the fleet's every 5-minute
    # tick once it has reported twice (its very first report says nothing of its
    # interval): no plant_offline between its reports
    ticks = [T0 + every + timedelta(minutes=5 * k) for k in range(1, 30)]
    assert replay_alerts("p1", windows_of(slow), ticks=ticks) == []
    # before: 15 minutes without data was the site offline, whatever the logger's interval
    if minutes == 15:
        quick = Thresholds(comm_loss_intervals=0)
        offline = [a for a in replay_alerts("p1", windows_of(slow), quick, ticks) if a.rule == RULE_PLANT_OFFLINE]
        assert len(offline) >= 8  # one every 15 minutes


def test_fifteen_minute_loggers_from_the_registry_get_fifteen_minute_windows(tmp_path):
    plant = plant_with(Inverter(inverter_id="inv-1", rated_power_w=RATED),
                       Inverter(inverter_id="inv-2", rated_power_w=RATED, report_interval_s=900),
                       Inverter(inverter_id="inv-3", rated_power_w=RATED, report_interval_s=300))
    events = (sparse("inv-1", timedelta(minutes=1), 4) + sparse("inv-2", timedelta(minutes=15), 4)
              + sparse("inv-3", timedelta(minutes=5), 4))
    out = detect(tmp_path, events, [plant], T0 + timedelta(hours=5))
    by_inv: dict[str, list[dict]] = {}
    for w in out["windows"]:
        by_inv.setdefault(w["inverter_id"], []).append(w)
    lengths = {inv: {datetime.fromisoformat(w["window_end"]) - datetime.fromisoformat(w["window_start"])
                     for w in ws} for inv, ws in by_inv.items()}
    assert lengths == {"inv-1": {timedelta(minutes=5)}, "inv-2": {timedelta(minutes=15)},
                       "inv-3": {timedelta(minutes=5)}}
    assert len(by_inv["inv-2"]) == 16 and all(w["samples"] == 1 for w in by_inv["inv-2"])
    assert len(by_inv["inv-3"]) == 48 and all(w["samples"] == 1 for w in by_inv["inv-3"])
    assert [a for a in out["alerts"] if a["rule"] not in (RULE_CLIPPING,)] == []
    assert out["quarantine"] == []


def test_registry_interval_is_optional_and_rounds_up_to_whole_five_minutes():
    assert Inverter(inverter_id="a", rated_power_w=1).window_s == 300
    assert Inverter(inverter_id="a", rated_power_w=1, report_interval_s=60).window_s == 300
    assert Inverter(inverter_id="a", rated_power_w=1, report_interval_s=600).window_s == 600
    assert Inverter(inverter_id="a", rated_power_w=1, report_interval_s=840).window_s == 900
    with pytest.raises(ValueError):
        Inverter(inverter_id="a", rated_power_w=1, report_interval_s=0)


# --------------------------------------------------------------------------- 5. late events


def _stream_late(rows: list[dict], plant) -> tuple:
    """The streaming graph over ``rows`` (``data``, ``__time__``: engine batches) with a
    2-minute cutoff: its (quarantine, windows) collectors; the quarantine one keeps every
    row ever written, so a late row written and later retracted counts."""
    pw_runtime.fresh_graph()
    lines = pw.debug.table_from_pandas(pd.DataFrame(rows))
    tables = build_om_graph(lines, [plant], now=T0 + timedelta(hours=1), late_cutoff=timedelta(minutes=2))
    quarantine = pw_runtime.TableCollector(tables.quarantine, "quarantine", keep_retracted=True)
    windows = pw_runtime.TableCollector(tables.windows, "windows")
    pw_runtime.run()
    return quarantine, windows


def test_a_buffer_re_sent_with_newer_readings_makes_only_the_new_ones_late():
    """A logger re-sends its buffer after its window closed, with a newer reading of that
    window appended: the readings the window already holds are not late, the new one is."""
    plant = plant_with(Inverter(inverter_id="inv-1", rated_power_w=RATED))
    old = [event("inv-1", T0 + timedelta(minutes=k), 3000.0, 100.0 + k * 0.05) for k in (0, 1)]
    new = event("inv-1", T0 + timedelta(minutes=2), 3000.0, 100.1)
    later = [event("inv-1", T0 + timedelta(minutes=k), 3000.0, 100.0 + k * 0.05) for k in range(10, 20)]
    batches = [(2, ["\n".join(map(json.dumps, old))]), (4, [json.dumps(e) for e in later]),
               (6, ["\n".join(map(json.dumps, [*old, new]))])]
    rows = [{"data": m, "__time__": t} for t, ms in batches for m in ms]
    quarantine, windows = _stream_late(rows, plant)
    assert sorted((r["reason"], r["event_id"]) for r in quarantine.values()) == [(LATE, new["event_id"])]
    first = [w for w in windows.values() if w["window_start"] == pd.Timestamp(T0)]
    assert [w["samples"] for w in first] == [2]


def test_late_events_are_quarantined_with_reason_late():
    """Streaming (three batches): an event for a window whose cutoff has passed the fleet's
    clock is in no window and is quarantined as ``late``, once, even when redelivered; an
    event that is merely out of order but before the cutoff lands in its window."""
    plant = plant_with(Inverter(inverter_id="inv-1", rated_power_w=RATED),
                       Inverter(inverter_id="inv-2", rated_power_w=RATED))
    first = [event(inv, T0 + timedelta(minutes=k), 3000.0, 100.0 + k * 0.05) for k in range(30)
             for inv in ("inv-1", "inv-2") if k != 3]
    late = event("inv-1", T0 + timedelta(minutes=3), 3000.0, 100.15)  # window 12:00-12:05, closed at 12:07
    late_too = event("inv-2", T0 + timedelta(minutes=3), 3000.0, 100.15)
    reordered = event("inv-1", T0 + timedelta(minutes=29, seconds=30), 3000.0, 101.5)  # window still open
    batches = [(2, first), (4, [late, reordered]), (6, [late, late_too])]  # ``late`` redelivered
    rows = [{"data": json.dumps(e), "__time__": t} for t, es in batches for e in es]
    quarantine, windows = _stream_late(rows, plant)
    q = quarantine.values()
    assert sorted((r["reason"], r["event_id"]) for r in q) == [(LATE, late["event_id"]), (LATE, late_too["event_id"])]
    q = sorted(q, key=lambda r: r["event_id"])
    assert "closed at" in q[0]["detail"] and json.loads(q[0]["raw"]) == late
    by_key = {(w["inverter_id"], w["window_start"]): w for w in windows.values()}
    first_start = pd.Timestamp(T0)
    assert by_key[("inv-1", first_start)]["samples"] == 4  # the late one is not in it
    assert by_key[("inv-1", pd.Timestamp(T0 + timedelta(minutes=25)))]["samples"] == 6  # the reordered one is
