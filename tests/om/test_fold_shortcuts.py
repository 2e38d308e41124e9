"""The fold's shortcuts (issue 14, part 1) give the states and alerts the rules give in
full: the reporting interval from spacings computed once per step, the peers' clock,
the slots and the constant run computed once per moment, and the night shortcut (only
the silence rules when no production rule can be active and no alert is open).

Every moment of three simulated days (the sample fleet: 1-minute loggers, an overcast
day and 15-minute loggers, every fault kind) is evaluated as the fold evaluates it and
again by the rule functions without the hints: the same verdicts, details included."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from ysh.om import engine
from ysh.om.engine import PlantFold, _spacings
from ysh.om.expected import expected_power_w
from ysh.om.rules import (DEFAULT_THRESHOLDS, PLANT_SCOPE, RULE_COMM_LOSS, RULE_PLANT_OFFLINE, WindowStat,
                          clipping_state, comm_loss_state, evaluate_plant, frozen_state, plant_outage_state,
                          power_limited_state, reporting_interval, trip_state, underperformance_state,
                          window_from_samples)
from ysh.om.rules.evaluate import production_quiet
from ysh.om.rules.model import _ordered
from ysh.samples.om_telemetry import default_scenario, simulate


def windows_of(scenario) -> dict[str, list[WindowStat]]:
    """The windows of a scenario's events, as the graph's window call makes them (no
    copies, no invalid events in these scenarios)."""
    plants = {p.plant_id: p for p in scenario.plants}
    groups: dict[tuple, list] = defaultdict(list)
    for e in simulate(scenario):
        plant = plants[e["plant_id"]]
        length = plant.inverter(e["inverter_id"]).window_s
        t = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
        groups[(e["plant_id"], e["inverter_id"], int(t // length) * length, length)].append(
            (datetime.fromtimestamp(t, tz=timezone.utc), float(e["ac_power_w"]), float(e["energy_total_kwh"]),
             e.get("irradiance_wm2")))
    out: dict[str, list[WindowStat]] = defaultdict(list)
    for (plant_id, inverter_id, start, length), samples in sorted(groups.items()):
        plant = plants[plant_id]
        start_dt = datetime.fromtimestamp(start, tz=timezone.utc)
        end_dt = start_dt + timedelta(seconds=length)
        poa = [float(s[3]) for s in samples if s[3] is not None]
        expected = expected_power_w(plant, inverter_id, start_dt, end_dt, sum(poa) / len(poa) if poa else None)
        rated = plant.inverter(inverter_id).rated_power_w
        out[plant_id].append(window_from_samples(plant_id, inverter_id, start_dt, end_dt, [s[:3] for s in samples],
                                                 expected, rated)._replace(expected_from_sensor=bool(poa)))
    return out


SCENARIOS = {
    "day": lambda: default_scenario("2026-01-15", 24, seed=3, duplicate_rate=0.0, invalid_rate=0.0),
    "overcast": lambda: default_scenario("2026-06-20", 30, seed=5, sky="overcast", step_s=300, duplicate_rate=0.0,
                                         invalid_rate=0.0),
    "15-minute loggers": lambda: default_scenario("2026-03-10", 36, seed=2, step_s=900, duplicate_rate=0.0,
                                                  invalid_rate=0.0),
}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def recorded(request):
    """Every ``evaluate_plant`` call the fold makes over the scenario (one step per plant,
    as a static run), with the fold's alerts."""
    by_plant = windows_of(SCENARIOS[request.param]())
    ends = sorted({w.window_end for ws in by_plant.values() for w in ws})
    calls = []

    def recording(*args, **kwargs):
        result = evaluate_plant(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "evaluate_plant", recording)
        for plant_id, windows in by_plant.items():
            PlantFold(plant_id).step(windows, ends)
    assert len(calls) > 500
    return calls


def test_the_reporting_interval_from_the_steps_spacings_is_the_rules_own(recorded):
    for (plant_id, histories, *_), kwargs, _ in recorded:
        assert kwargs["observed_intervals"] == {inv: reporting_interval(h) for inv, h in histories.items()}


def test_the_night_shortcut_leaves_out_only_inactive_states(recorded):
    quiet = 0
    for args, kwargs, result in recorded:
        full = evaluate_plant(*args, **{**kwargs, "silence_only": False})
        if not kwargs["silence_only"]:
            assert result == full
            continue
        quiet += 1
        assert production_quiet(args[1])
        assert {key[2] for key in result} <= {RULE_COMM_LOSS, RULE_PLANT_OFFLINE}
        assert all(full[key] == value for key, value in result.items())
        assert not any(state.active for key, (_, state) in full.items() if key not in result)
    assert quiet > 100  # the nights were taken


def test_every_verdict_is_the_rules_own_without_the_hints(recorded):
    """The peers' clock (comm loss), the slots (plant outage), the reporting interval and
    the constant run (frozen values, power limited), handed in by ``evaluate_plant`` and
    the fold, against each rule function computing its own (a suppressed verdict: the
    rule's active one, marked)."""
    t = DEFAULT_THRESHOLDS
    checked = 0
    for (plant_id, histories, *_), kwargs, result in recorded[::2]:
        if kwargs["silence_only"]:
            continue
        now = kwargs["now"]
        ordered = {inv: _ordered(h) for inv, h in histories.items() if h}
        slots: dict = defaultdict(list)
        for h in ordered.values():
            for w in h:
                slots[w.window_start].append(w)
        slots = dict(slots)
        for inv, h in ordered.items():
            reference = {
                "inverter_trip": trip_state(h, slots, t),
                "underperformance": underperformance_state(h, slots, t),
                RULE_COMM_LOSS: comm_loss_state(h, slots, t, now, kwargs["intervals"].get(inv)),
                "frozen_values": frozen_state(h, t),
                "clipping": clipping_state(h, t, slots),
                "power_limited": power_limited_state(h, t),
            }
            for rule, expected in reference.items():
                got = result[(plant_id, inv, rule)][1]
                if "suppressed_by" in got.details and "suppressed_by" not in expected.details:
                    assert expected.active and not got.active
                    got = got._replace(active=True, details={k: v for k, v in got.details.items()
                                                             if k != "suppressed_by"})
                assert got == expected, (plant_id, inv, rule, now)
                checked += 1
        assert result[(plant_id, PLANT_SCOPE, "plant_outage")][1] == plant_outage_state(ordered, t)
    assert checked > 1000


def test_an_open_alert_is_evaluated_in_full_at_night(monkeypatch):
    """The night shortcut only when no alert of the plant is open: an open alert must see
    its rule's verdict to resolve."""
    night = datetime(2026, 1, 15, 4, 0, tzinfo=timezone.utc)  # 01:00 in Brazil

    def window(k: int) -> WindowStat:
        start = night + timedelta(minutes=5 * k)
        return WindowStat("p", "inv-1", start, start + timedelta(minutes=5), 5, 0.0, 0.0, 0.0, 0.0, 0.0, 5000.0,
                          None, 5, start + timedelta(minutes=4), 0.0, 1.0, 1.0)

    windows = [window(k) for k in range(6)]
    assert production_quiet({"inv-1": windows})
    seen = []
    monkeypatch.setattr(engine, "evaluate_plant",
                        lambda *a, **k: seen.append(k["silence_only"]) or evaluate_plant(*a, **k))
    PlantFold("p").step(windows)
    assert seen and all(seen)  # nothing open: the silence rules only
    fold = PlantFold("p")
    fold.open_alerts = {("p", "inv-1", "underperformance"): object()}  # open since the day
    seen.clear()
    monkeypatch.setattr(engine, "advance", lambda open_alerts, states, resolve_after: (dict(open_alerts), [], []))
    fold.step(windows)
    assert seen and not any(seen)


def test_spacings_are_left_to_the_rules_for_an_inverter_with_windows_of_two_lengths():
    """An inverter whose windows changed length (its registry entry did) is not in the
    step's table: its interval is computed by ``reporting_interval`` from its history,
    whose order by start is not the fold's order by end."""
    base = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)

    def window(inverter: str, start_min: int, length_min: int, samples: int) -> WindowStat:
        start = base + timedelta(minutes=start_min)
        end = start + timedelta(minutes=length_min)
        return WindowStat("p", inverter, start, end, samples, 1000.0, 900.0, 1100.0, 0.1, 1200.0, 5000.0, 0.8, 1,
                          end - timedelta(seconds=30), 1000.0, 1.0, 1.1)

    windows = sorted([window("a", 0, 5, 5), window("a", 5, 5, 5), window("a", 10, 5, 4),
                      window("b", 0, 15, 1), window("b", 15, 5, 5), window("b", 20, 5, 2)],
                     key=lambda w: (w.window_end, w.inverter_id))
    spacing, lengths = _spacings(windows)
    assert set(lengths) == {"a"}
    fold = PlantFold("p")
    fold._spacings = (spacing, lengths)
    for inverter in ("a", "b"):
        history = [w for w in windows if w.inverter_id == inverter]
        for k in range(1, len(history) + 1):
            assert fold._interval(inverter, history[:k]) == reporting_interval(history[:k])


def test_a_night_is_a_window_no_production_rule_can_use():
    """``could_produce``: daylight (expected ≥ 10 % of rated, even below the trip rule's
    20 %), the clipping level, an output pinned flat above the trip level: each lets a
    production rule speak (frozen values at dawn, clipping, a limit), so the moment is
    not a night; zeros with no expectation are."""
    from ysh.om.rules.evaluate import could_produce

    start = datetime(2026, 1, 15, 9, 0, tzinfo=timezone.utc)

    def window(expected: float, low: float, high: float) -> WindowStat:
        return WindowStat("p", "inv-1", start, start + timedelta(minutes=5), 5, (low + high) / 2, low, high, 0.0,
                          expected, 5000.0, None, 1, start + timedelta(minutes=4), high, 1.0, 1.0)

    assert not could_produce(window(0.0, 0.0, 0.0))  # night
    assert not could_produce(window(0.0, -3.0, 0.0))  # the tare
    assert could_produce(window(0.15 * 5000, 200.0, 300.0))  # dawn: daylight, not yet trip-eligible
    assert could_produce(window(0.25 * 5000, 0.0, 0.0))  # trip-eligible
    assert could_produce(window(0.0, 4950.0, 4990.0))  # at the clipping level
    assert could_produce(window(0.0, 2000.0, 2001.0))  # pinned at a limit
    assert not production_quiet({"inv-1": [window(0.0, 0.0, 0.0), window(0.15 * 5000, 200.0, 300.0)]})
