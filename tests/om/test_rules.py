"""O&M rules over hand-built 5-minute windows, and the alert lifecycle."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from ysh.om.rules import (
    GAP_DATA, GAP_OUTAGE, GAP_PARTIAL, GAP_UNKNOWN, PLANT_SCOPE, RULE_CLIPPING, RULE_COMM_LOSS, RULE_FROZEN,
    RULE_PLANT_OFFLINE, RULE_PLANT_OUTAGE, RULE_POWER_LIMITED, RULE_TRIP, RULE_UNDERPERFORMANCE, Alert, RuleState, Thresholds,
    WindowStat, advance, availability, classify_gap, clipping_state, comm_loss_state, evaluate_plant,
    evaluate_windows, frozen_state, mttr, performance_index, plant_offline_state, plant_outage_state, trip_state,
    underperformance_state, window_from_samples,
)

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)
RATED = 10_000.0


def win(i: int, power: float, expected: float = 8000.0, inv: str = "inv-1", *, plant: str = "p1",
        rated: float = RATED, max_power: float | None = None, samples: int = 5, identical_run: int = 1,
        last_power: float | None = None, e_first: float | None = None, e_last: float | None = None,
        sensor: bool = True) -> WindowStat:
    """A window; ``sensor``: its expected power came from measured irradiance (default, so
    a lone inverter's PI can be judged)."""
    start = T0 + i * STEP
    max_p = power if max_power is None else max_power
    return WindowStat(plant, inv, start, start + STEP, samples, power, min(power, max_p), max_p,
                      (e_last or 0) - (e_first or 0), expected, rated, performance_index(power, expected, rated),
                      identical_run, start + STEP - timedelta(seconds=10), last_power, e_first, e_last, sensor)


def peers_of(*windows: WindowStat) -> dict[datetime, list[WindowStat]]:
    out: dict[datetime, list[WindowStat]] = defaultdict(list)
    for w in windows:
        out[w.window_start].append(w)
    return out


# --------------------------------------------------------------------------- trip


def test_trip_boundaries_alone():
    assert trip_state([win(0, 100.0, expected=2000.0)], {}).active  # output 1 %, expected 20 %
    assert not trip_state([win(0, 100.1, expected=2000.0)], {}).active
    below = trip_state([win(0, 0.0, expected=1999.0)], {})
    assert not below.active and below.details["reason"] == "no_production_expected"


def test_trip_needs_peers_producing():
    mine = [win(0, 0.0)]
    producing = peers_of(win(0, 4000.0, inv="inv-2"))  # PI 0.5
    assert trip_state(mine, producing).active
    weak = trip_state(mine, peers_of(win(0, 3900.0, inv="inv-2")))  # PI 0.4875: weather, not a trip
    assert not weak.active and weak.details["reason"] == "peers_low_too"


def test_second_tripped_inverter_does_not_hide_the_first():
    peers = peers_of(win(0, 0.0, inv="inv-2"), win(0, 7600.0, inv="inv-3"))
    state = trip_state([win(0, 0.0)], peers)
    assert state.active and state.details["peers_down"] == 1 and state.details["peer_median_pi"] == 0.95


def test_whole_plant_down_is_a_plant_outage_not_trips():
    histories = {inv: [win(0, 8000.0, inv=inv), win(1, 0.0, inv=inv), win(2, 0.0, inv=inv)]
                 for inv in ("inv-1", "inv-2", "inv-3")}
    slots = peers_of(*[w for h in histories.values() for w in h])
    for inv, h in histories.items():
        state = trip_state(h, slots)
        assert not state.active and state.details["reason"] == "plant_wide_no_output"
    outage = plant_outage_state(histories)
    assert outage.active and outage.details["since"] == T0 + STEP and outage.at == T0 + 3 * STEP
    histories["inv-3"].append(win(3, 7000.0, inv="inv-3"))
    for inv in ("inv-1", "inv-2"):
        histories[inv].append(win(3, 0.0, inv=inv))
    assert not plant_outage_state(histories).active


def test_trip_holds_overnight_and_resolves_next_morning():
    history = [win(0, 8000.0), win(1, 0.0), win(2, 0.0, expected=500.0), win(3, 0.0, expected=0.0)]
    night = trip_state(history, {})
    assert night.active and night.details["since"] == T0 + STEP and night.at == T0 + 2 * STEP
    history.append(win(300, 6000.0))
    morning = trip_state(history, {})
    assert not morning.active and morning.details["clear_since"] == T0 + 300 * STEP


# --------------------------------------------------------------------------- stops judged on the clear sky alone


def _clear_sky(powers: list[float], expected: list[float] | float = 8000.0, inv: str = "inv-1") -> list[WindowStat]:
    """Windows of one inverter with only the clear-sky expectation (no sensor)."""
    exp = expected if isinstance(expected, list) else [expected] * len(powers)
    return [win(i, p, expected=e, inv=inv, sensor=False) for i, (p, e) in enumerate(zip(powers, exp))]


def test_a_lone_inverter_that_stops_from_production_trips_after_the_minimum_duration():
    # 5-minute windows: production at 50 % of rated, then the tare (0 W)
    history = _clear_sky([5000.0, 5000.0] + [0.0] * 5)  # 25 min at zero
    early = trip_state(history, {})
    assert not early.active and early.details["reason"] == "too_short"
    history = _clear_sky([5000.0, 5000.0] + [0.0] * 6)  # 30 min: stop_min_duration
    state = trip_state(history, {})
    assert state.active and state.details["since"] == T0 + 2 * STEP
    assert state.details["evidence"] == "stop_from_production" and state.details["output_before"] == 0.5


def test_a_lone_inverter_asleep_at_a_dark_dawn_is_not_a_trip():
    # night, then the clear sky rises to 30 % of rated while the inverter stays at 0 W:
    # heavy overcast or a horizon, which the clear-sky model cannot tell from a trip
    expected = [0.0] * 6 + [1000.0 * k for k in range(1, 12)]
    state = trip_state(_clear_sky([0.0] * len(expected), expected), {})
    assert not state.active
    # the whole history is at zero: nothing says when it stopped, the verdict is undecided
    assert state.details.get("undecided") is True


def test_a_lone_inverter_fading_under_cloud_or_at_dusk_is_not_a_trip():
    # the output falls step by step to below 1 % of rated (real: 416, 111, 22, 0 W of 3.4 kW)
    faded = _clear_sky([4000.0, 1200.0, 330.0, 60.0] + [0.0] * 8)
    state = trip_state(faded, {})
    assert not state.active and state.details["reason"] == "faded_not_stopped"
    # ... or it falls from production to a low output that is not the tare (a cloud leaves 0.5–3 %)
    cloud = _clear_sky([4000.0, 90.0] + [0.0] * 8)
    assert trip_state(cloud, {}).details["reason"] == "not_at_tare"


def test_a_lone_inverter_with_an_irradiance_sensor_trips_at_once():
    assert trip_state([win(0, 0.0, expected=2000.0)], {}).details["evidence"] == "irradiance_sensor"
    assert not trip_state([win(0, 0.0, expected=2000.0, sensor=False)], {}).active


def test_a_stop_older_than_the_horizon_keeps_its_alert_open():
    stopped = _clear_sky([5000.0] + [0.0] * 8)
    states = evaluate_plant("p1", {"inv-1": stopped})
    key = ("p1", "inv-1", RULE_TRIP)
    assert states[key][1].active
    open_alerts, opened, _ = advance({}, states)
    assert [a.rule for a in opened] == [RULE_TRIP]
    # later: the production before the stop has left the rules' horizon; still at zero
    later = _clear_sky([0.0] * 9)
    states = evaluate_plant("p1", {"inv-1": [w._replace(window_start=w.window_start + 9 * STEP,
                                                         window_end=w.window_end + 9 * STEP) for w in later]})
    assert states[key][1].details["undecided"] is True
    still_open, opened, resolved = advance(open_alerts, states)
    assert opened == [] and resolved == [] and key in still_open


def test_a_gap_in_the_data_during_a_trip_keeps_its_alert_open():
    stopped = _clear_sky([5000.0] + [0.0] * 8)
    key = ("p1", "inv-1", RULE_TRIP)
    open_alerts, opened, _ = advance({}, evaluate_plant("p1", {"inv-1": stopped}))
    assert [a.rule for a in opened] == [RULE_TRIP]
    # two windows lost (comm. loss), then still at zero: the moment before the new run is
    # down too, across the gap; not a resolution
    after_gap = [w._replace(window_start=w.window_start + 11 * STEP, window_end=w.window_end + 11 * STEP)
                 for w in _clear_sky([0.0] * 3)]
    states = evaluate_plant("p1", {"inv-1": stopped + after_gap})
    assert states[key][1].details["reason"] == "gap_before_the_stop"
    assert states[key][1].details["undecided"] is True
    still_open, opened, resolved = advance(open_alerts, states)
    assert opened == [] and resolved == [] and key in still_open


def test_plant_outage_without_a_sensor_needs_the_plant_to_stop_from_production():
    def plant(powers: list[float], expected: list[float] | float = 8000.0) -> dict[str, list[WindowStat]]:
        return {inv: _clear_sky(powers, expected, inv=inv) for inv in ("inv-1", "inv-2", "inv-3")}

    outage = plant_outage_state(plant([6000.0] + [0.0] * 6))
    assert outage.active and outage.details["since"] == T0 + STEP
    assert outage.details["evidence"] == "stop_from_production"
    assert plant_outage_state(plant([6000.0] + [0.0] * 5)).details["reason"] == "too_short"
    dawn = plant([0.0] * 12, [0.0] * 4 + [1500.0 * k for k in range(1, 9)])  # a dark dawn, all at 0 W
    assert not plant_outage_state(dawn).active
    dusk = plant([3000.0, 800.0, 200.0, 50.0] + [0.0] * 6)  # faded, not stopped
    state = plant_outage_state(dusk)
    assert not state.active and state.details["reason"] == "faded_not_stopped"


# --------------------------------------------------------------------------- underperformance


def test_underperformance_pi_boundary_needs_three_windows_and_resolves():
    low = [win(i, 5999.0) for i in range(3)]  # PI 0.749875
    assert not underperformance_state(low[:2], {}).active
    state = underperformance_state(low, {})
    assert state.active and state.details["since"] == T0
    assert not underperformance_state([win(i, 6000.0) for i in range(3)], {}).active  # PI 0.75 exactly
    resolved = underperformance_state(low + [win(3, 7000.0)], {})
    assert not resolved.active and resolved.at == T0 + 4 * STEP


def test_underperformance_peer_ratio_boundary():
    peers = peers_of(*[win(i, 5000.0, expected=5000.0, inv="inv-2") for i in range(3)])  # specific 0.5
    at_boundary = [win(i, 4000.0, expected=5000.0) for i in range(3)]  # ratio 0.8, PI 0.8
    assert not underperformance_state(at_boundary, peers).active
    below = [win(i, 3999.0, expected=5000.0) for i in range(3)]
    state = underperformance_state(below, peers)
    assert state.active and state.details["windows"][0]["peer_ratio"] < 0.8


def test_plant_wide_low_pi_is_weather_not_underperformance():
    peers = peers_of(*[win(i, 4000.0, inv="inv-2") for i in range(3)])  # everybody at PI 0.5
    assert not underperformance_state([win(i, 4000.0) for i in range(3)], peers).active


def test_a_lone_inverter_with_only_the_clear_sky_expectation_is_not_judged():
    clouds = [win(i, 4000.0, sensor=False) for i in range(3)]  # PI 0.5 under a cloudy sky
    state = underperformance_state(clouds, {})
    assert not state.active and state.details["reason"] == "not_observable"
    peers = peers_of(*[win(i, 8000.0, inv="inv-2", sensor=False) for i in range(3)])  # a producing peer: judged
    assert underperformance_state(clouds, peers).active


def test_trip_suppresses_frozen_values():
    stuck = [win(i, 0.0, samples=5, identical_run=5, last_power=0.0) for i in range(3)]
    states = evaluate_windows(stuck, {})
    assert states[RULE_TRIP].active and not states[RULE_FROZEN].active
    assert states[RULE_FROZEN].details.get("suppressed_by") in (None, RULE_TRIP)


def test_underperformance_counts_daylight_windows_only():
    dim = [win(i, 100.0, expected=999.0) for i in range(5)]  # expected < 10 % of rated
    assert not underperformance_state(dim, {}).active
    # two low windows in the evening, the night, one low window next morning: still 3 consecutive daylight
    history = [win(0, 5000.0), win(1, 5000.0), win(2, 0.0, expected=0.0), win(300, 5000.0)]
    assert underperformance_state(history, {}).active


def test_trip_suppresses_underperformance():
    states = evaluate_windows([win(i, 0.0) for i in range(3)], {})
    assert states[RULE_TRIP].active
    assert not states[RULE_UNDERPERFORMANCE].active
    # down windows are the trip's: underperformance does not even judge them
    assert [w["skipped"] for w in states[RULE_UNDERPERFORMANCE].details["windows"]] == ["down"] * 3


# --------------------------------------------------------------------------- frozen


def samples(start: datetime, values: list[float], energy: float = 100.0) -> list[tuple[datetime, float, float]]:
    return [(start + timedelta(minutes=k), v, energy + k * 0.05) for k, v in enumerate(values)]


def frozen_pair(first: list[float], second: list[float], expected: float = 8000.0) -> list[WindowStat]:
    return [window_from_samples("p1", "inv-1", T0 + k * STEP, T0 + (k + 1) * STEP, samples(T0 + k * STEP, values),
                                expected, RATED) for k, values in enumerate((first, second))]


def test_window_from_samples_identical_run_is_the_trailing_run():
    w = window_from_samples("p1", "inv-1", T0, T0 + STEP, samples(T0, [1.0, 2.0, 3.0, 3.0, 3.0]), 8000.0, RATED)
    assert (w.identical_run, w.last_power_w, w.samples, w.min_power_w, w.max_power_w) == (3, 3.0, 5, 1.0, 3.0)
    assert w.energy_delta_kwh == pytest.approx(0.2) and w.performance_index == pytest.approx(2.4 / 8000)


def test_frozen_ten_identical_samples_across_windows():
    state = frozen_state(frozen_pair([4000.0] * 5, [4000.0] * 5))
    assert state.active and state.details["run"] == 10 and state.details["since"] == T0
    nine = frozen_state(frozen_pair([3999.0] + [4000.0] * 4, [4000.0] * 5))
    assert not nine.active and nine.details["run"] == 9


def test_frozen_chains_without_last_power_when_windows_are_constant():
    history = [win(0, 4000.0, samples=5, identical_run=5), win(1, 4000.0, samples=5, identical_run=5)]
    assert frozen_state(history).active
    assert not frozen_state([win(0, 4100.0, samples=5, identical_run=5), history[1]]).active


def test_frozen_requires_daylight_and_ignores_clipping_plateaus():
    assert not frozen_state(frozen_pair([0.0] * 5, [0.0] * 5, expected=999.0)).active
    clipped = frozen_state(frozen_pair([9900.0] * 5, [9900.0] * 5))
    assert not clipped.active and clipped.details["reason"] == "at_clipping_level"


# --------------------------------------------------------------------------- clipping


def test_clipping_is_info_after_two_contiguous_windows():
    clipped = [win(0, 9000.0, max_power=9800.0), win(1, 9100.0, max_power=9850.0)]
    state = clipping_state(clipped)
    assert state.active and state.details["since"] == T0
    assert not clipping_state(clipped[:1]).active
    assert not clipping_state([clipped[0], win(1, 9000.0, max_power=9799.0)]).active
    assert not clipping_state([clipped[0], win(2, 9000.0, max_power=9800.0)]).active  # not contiguous
    _, opened, _ = advance({}, {("p1", "inv-1", RULE_CLIPPING): (state.at, state)})
    assert opened[0].details["severity"] == "info"


# --------------------------------------------------------------------------- communication loss vs outage


def test_comm_loss_needs_peers_reporting_for_fifteen_minutes():
    mine = [win(0, 5000.0)]
    peers = peers_of(*[win(i, 5000.0, inv="inv-2") for i in range(4)])  # inv-2 reports 15 min longer
    state = comm_loss_state(mine, peers)
    assert state.active and state.at == mine[0].last_ts + timedelta(minutes=15)
    assert state.details["peers_reporting"] == ["inv-2"]
    short = peers_of(*[win(i, 5000.0, inv="inv-2") for i in range(3)])  # 10 minutes only
    assert not comm_loss_state(mine, short).active


def test_whole_plant_silent_is_plant_offline_not_comm_loss():
    histories = {inv: [win(0, 5000.0, inv=inv)] for inv in ("inv-1", "inv-2")}
    now = T0 + timedelta(minutes=40)
    slots = peers_of(*[w for h in histories.values() for w in h])
    state = comm_loss_state(histories["inv-1"], slots, now=now)
    assert not state.active and state.details["reason"] == "plant_silent"
    offline = plant_offline_state(histories, now=now)
    assert offline.active and offline.at == histories["inv-1"][0].last_ts + timedelta(minutes=15)
    assert not plant_offline_state(histories).active  # silence needs a clock


def test_loggers_that_sleep_at_night_are_not_offline():
    """A site (or an inverter) that goes quiet after dusk is not offline: its silence began
    outside daylight. It counts only after ``night_silence_after``, or, for one inverter,
    when its peers report daylight production meanwhile."""
    night = {inv: [win(0, 0.0, expected=0.0, inv=inv)] for inv in ("inv-1", "inv-2")}
    evening = T0 + timedelta(hours=3)
    state = plant_offline_state(night, now=evening)
    assert not state.active and state.details["reason"] == "night"
    assert plant_offline_state(night, now=T0 + timedelta(hours=16, minutes=5)).active  # a logger that died
    alone = {"inv-1": night["inv-1"], "inv-2": [win(i, 0.0, expected=0.0, inv="inv-2") for i in range(30)]}
    slots = peers_of(*alone["inv-2"])
    quiet = comm_loss_state(alone["inv-1"], slots, now=T0 + timedelta(minutes=150))
    assert not quiet.active and quiet.details["reason"] == "night"
    producing = [win(i, 5000.0, inv="inv-2") for i in range(30)]  # its peer produces: it should too
    assert comm_loss_state(alone["inv-1"], peers_of(*producing), now=T0 + timedelta(minutes=150)).active


def gap_case(energy_after: float | None, peer_power: float = 5000.0):
    before = win(0, 5000.0, e_first=99.6, e_last=100.0)
    after = win(4, 5000.0, e_first=energy_after, e_last=None if energy_after is None else energy_after + 0.4)
    peers = [win(i, peer_power, inv="inv-2") for i in range(5)]
    return [before, after], peers_of(*peers)


@pytest.mark.parametrize(("energy_after", "kind"), [
    (101.25, GAP_DATA),      # all of the 1.25 kWh the peer's specific power implies: only data was lost
    (100.63, GAP_DATA),      # just above 50 %
    (100.62, GAP_PARTIAL),   # just below 50 %
    (100.13, GAP_PARTIAL),   # just above 10 %
    (100.12, GAP_OUTAGE),    # just below 10 %
    (100.0, GAP_OUTAGE),     # counter did not move: the inverter was down, not just silent
    (None, GAP_UNKNOWN),     # no counter readings
    (99.0, GAP_UNKNOWN),     # counter went backwards (reset / replaced)
])
def test_gap_classified_with_the_energy_counter(energy_after, kind):
    history, peers = gap_case(energy_after)
    state = comm_loss_state(history, peers)
    assert not state.active and state.at == T0 + 4 * STEP
    gap = state.details["last_gap"]
    assert gap["classification"] == kind and gap["reference"] == "peers_actual"
    assert gap["reference_kwh"] == pytest.approx(1.25)


def test_night_gap_cannot_be_classified():
    before = win(0, 0.0, expected=0.0, e_last=100.0)
    after = win(4, 0.0, expected=0.0, e_first=100.0)
    assert classify_gap(before, after)["classification"] == GAP_UNKNOWN


def test_plant_offline_resumed_with_expected_reference():
    def histories(delta: float):
        return {inv: [win(0, 5000.0, inv=inv, e_last=100.0), win(4, 5000.0, inv=inv, e_first=100.0 + delta)]
                for inv in ("inv-1", "inv-2")}
    # reference: mean expected 8000 W over 15 minutes = 2 kWh per inverter
    assert plant_offline_state(histories(1.5)).details["last_gap"]["classification"] == GAP_DATA
    assert plant_offline_state(histories(0.0)).details["last_gap"]["classification"] == GAP_OUTAGE
    mixed = histories(1.5)
    mixed["inv-2"][1] = win(4, 5000.0, inv="inv-2", e_first=100.0)
    assert plant_offline_state(mixed).details["last_gap"]["classification"] == GAP_PARTIAL


def test_comm_loss_lifecycle_through_evaluate_plant():
    peers = [win(i, 7000.0, inv="inv-2") for i in range(6)]
    mine = [win(0, 7000.0, e_last=100.0)]
    open_alerts, opened, _ = advance({}, evaluate_plant("p1", {"inv-1": mine, "inv-2": peers[:4]}))
    assert [(a.inverter_id, a.rule) for a in opened] == [("inv-1", RULE_COMM_LOSS)]
    assert opened[0].opened_at == mine[0].last_ts + timedelta(minutes=15)
    mine.append(win(5, 7000.0, e_first=100.0))  # back, and the counter did not move: an outage
    open_alerts, opened, resolved = advance(open_alerts, evaluate_plant("p1", {"inv-1": mine, "inv-2": peers}))
    assert opened == [] and open_alerts == {}
    assert resolved[0].resolved_at == T0 + 5 * STEP
    assert resolved[0].details["resolution"]["last_gap"]["classification"] == GAP_OUTAGE


# --------------------------------------------------------------------------- lifecycle


KEY = ("p1", "inv-1", RULE_TRIP)


def states_at(minute: int, active: bool) -> dict:
    at = T0 + timedelta(minutes=minute)
    return {KEY: (at, RuleState(active, {"minute": minute}, at))}


def test_lifecycle_opens_once_stays_single_resolves_and_reopens_with_new_key():
    open_alerts, opened, resolved = advance({}, states_at(5, True))
    assert len(opened) == 1 and resolved == [] and open_alerts[KEY] == opened[0]
    first = opened[0]
    assert first.opened_at == T0 + timedelta(minutes=5) and first.resolved_at is None
    assert first.details["severity"] == "critical"
    open_alerts, opened, resolved = advance(open_alerts, states_at(10, True))
    assert opened == [] and resolved == [] and open_alerts[KEY] is first
    open_alerts, opened, resolved = advance(open_alerts, states_at(15, False))
    assert opened == [] and open_alerts == {}
    assert resolved[0].key == first.key and resolved[0].resolved_at == T0 + timedelta(minutes=15)
    assert resolved[0].details["resolution"] == {"minute": 15}
    open_alerts, opened, _ = advance(open_alerts, states_at(60, True))
    assert len(opened) == 1 and opened[0].key != first.key
    assert first.key == "p1|inv-1|inverter_trip|2026-01-15T12:05:00+00:00"


def test_advance_is_idempotent_and_pure():
    states = {**states_at(5, True), ("p1", "inv-2", RULE_FROZEN): (T0, RuleState(False, {}))}
    once, opened, _ = advance({}, states)
    twice, opened_again, resolved_again = advance(once, states)
    assert len(opened) == 1 and opened_again == [] and resolved_again == [] and twice == once
    closing = states_at(20, False)
    after, _, resolved = advance(once, closing)
    assert len(resolved) == 1 and KEY in once  # input not modified
    assert advance(after, closing)[1:] == ([], [])


def test_stale_inactive_state_does_not_resolve():
    open_alerts, _, _ = advance({}, states_at(30, True))
    still, _, resolved = advance(open_alerts, states_at(25, False))
    assert resolved == [] and KEY in still


def alert(minutes_open: int | None, rule: str = RULE_TRIP) -> Alert:
    resolved = None if minutes_open is None else T0 + timedelta(minutes=minutes_open)
    return Alert("p1", "inv-1", rule, T0, resolved, {}, "k")


def test_mttr():
    assert mttr([alert(10), alert(20), alert(None)]) == timedelta(minutes=15)
    assert mttr([alert(10), alert(40, RULE_CLIPPING)], rules=[RULE_TRIP]) == timedelta(minutes=10)
    assert mttr([alert(None)]) is None and mttr([]) is None


def test_availability_counts_daylight_windows_and_outage_gaps():
    windows = [win(0, 5000.0), win(1, 0.0), win(2, 5000.0), win(3, 5000.0), win(4, 0.0, expected=0.0),
               win(0, 5000.0, plant="p2", expected=500.0)]
    assert availability(windows) == {"p1": 0.75, "p2": None}
    gap = {"since": T0, "until": T0 + timedelta(minutes=20), "classification": GAP_OUTAGE}
    outage = Alert("p1", PLANT_SCOPE, RULE_PLANT_OFFLINE, T0, T0 + timedelta(minutes=20),
                   {"resolution": {"last_gap": gap}}, "k")
    data_gap = outage._replace(details={"resolution": {"last_gap": {**gap, "classification": GAP_DATA}}})
    assert availability(windows, [outage]) == {"p1": 3 / 8, "p2": None}
    assert availability(windows, [data_gap])["p1"] == 0.75


def test_evaluate_plant_keys_every_rule():
    histories = {inv: [win(i, 5000.0, inv=inv) for i in range(3)] for inv in ("inv-1", "inv-2")}
    states = evaluate_plant("p1", histories, Thresholds())
    inverter_rules = (RULE_TRIP, RULE_UNDERPERFORMANCE, RULE_COMM_LOSS, RULE_FROZEN, RULE_CLIPPING,
                      RULE_POWER_LIMITED)
    assert set(states) == {("p1", inv, rule) for inv in ("inv-1", "inv-2") for rule in inverter_rules} | {
        ("p1", PLANT_SCOPE, RULE_PLANT_OFFLINE), ("p1", PLANT_SCOPE, RULE_PLANT_OUTAGE)}
    assert not any(state.active for _, state in states.values())


# --------------------------------------------------------------------------- rule fixes (evaluation, issue 6)


def held(i: int, level: float, available: float, inv: str = "inv-1", **kw) -> WindowStat:
    """A window pinned at ``level`` (samples within 0.2 %) while ``available`` W were expected."""
    return win(i, level, expected=available, max_power=level, inv=inv, **kw)._replace(min_power_w=level * 0.998)


def test_export_limit_is_clipping_not_underperformance():
    # a 60 % export limit on a clear morning: flat output while the expectation rises
    history = [held(i, 6000.0, 8000.0 + 200.0 * i) for i in range(6)]
    under = underperformance_state(history, {})
    assert not under.active
    assert all(w["limit_w"] == pytest.approx(6000.0) for w in under.details["windows"])
    clip = clipping_state(history)
    assert clip.active and clip.details["kind"] == "export_limit" and clip.details["since"] == T0
    # the same low output following the expectation (a derate) is underperformance
    derated = [win(i, 0.6 * (8000.0 + 200.0 * i), expected=8000.0 + 200.0 * i) for i in range(6)]
    assert underperformance_state(derated, {}).active
    assert not clipping_state(derated).active


def test_export_limit_against_peers_clipping_at_their_rating():
    peers = peers_of(*[win(i, 9990.0, max_power=10_000.0, inv="inv-2") for i in range(4)])  # flat at the rating
    history = [held(i, 5800.0, 10_000.0) for i in range(4)]
    assert not underperformance_state(history, peers).active
    assert clipping_state(history, peers=peers).details["kind"] == "export_limit"


def test_windows_after_a_trip_are_not_underperformance():
    # tripped for 3 windows, then a partial window (reconnected mid-window), then normal
    history = [win(i, 0.0) for i in range(3)] + [win(3, 4000.0, max_power=7900.0), win(4, 7900.0)]
    states = evaluate_windows(history[:4], {})
    assert not states[RULE_TRIP].active
    assert not states[RULE_UNDERPERFORMANCE].active
    assert not evaluate_windows(history, {})[RULE_UNDERPERFORMANCE].active


def test_stale_windows_are_not_judged_and_frozen_suppresses_underperformance():
    stuck = [win(i, 4000.0, samples=5, identical_run=5, last_power=4000.0) for i in range(3)]  # PI 0.5, frozen
    assert not underperformance_state(stuck, {}).active
    states = evaluate_windows(stuck, {})
    assert states[RULE_FROZEN].active and not states[RULE_UNDERPERFORMANCE].active


def test_frozen_at_clipping_level_with_a_flat_counter_is_frozen():
    def constant(i: int, energy: float) -> WindowStat:
        return win(i, 9900.0, samples=5, identical_run=5, last_power=9900.0, e_first=energy, e_last=energy)

    stale = [constant(0, 500.0), constant(1, 500.0)]  # the logger repeats the counter too
    state = frozen_state(stale)
    assert state.active and state.details["counter_kwh"] == 0.0
    running = [win(0, 9900.0, samples=5, identical_run=5, last_power=9900.0, e_first=500.0, e_last=500.66),
               win(1, 9900.0, samples=5, identical_run=5, last_power=9900.0, e_first=500.825, e_last=501.485)]
    clipped = frozen_state(running)  # the counter runs at the rating: a clipping plateau
    assert not clipped.active and clipped.details["reason"] == "at_clipping_level"


def test_a_run_of_zeros_is_a_stopped_inverter_not_frozen_data():
    zeros = [win(i, 0.0, samples=5, identical_run=5, last_power=0.0) for i in range(3)]
    state = frozen_state(zeros)
    assert not state.active and state.details["reason"] == "at_zero"


def test_plant_outage_in_daylight_below_the_trip_level():
    # overcast, expected from the irradiance sensor at 15 % of rated: every inverter at zero
    histories = {inv: [win(i, 0.0, expected=1500.0, inv=inv) for i in range(2)] for inv in ("inv-1", "inv-2")}
    assert plant_outage_state(histories).active
    dusk = {inv: [win(i, 0.0, expected=900.0, inv=inv) for i in range(2)] for inv in ("inv-1", "inv-2")}
    assert not plant_outage_state(dusk).active


# --------------------------------------------------------------------------- the reporting interval computed once (issue 14)


def sparse_logger(minutes: int, count: int, inv: str = "inv-1", power: float = 5000.0, **kw) -> list[WindowStat]:
    """A logger reporting one sample every ``minutes`` into 5-minute windows."""
    out = []
    for k in range(count):
        i = k * minutes // 5
        w = win(i, power, inv=inv, samples=1, **kw)
        out.append(w._replace(last_ts=w.window_start + timedelta(seconds=30)))
    return out


def test_silence_limit_from_an_interval_computed_once_equals_computing_it_again():
    from ysh.om.rules import reporting_interval, silence_limit

    t = Thresholds()
    histories = [[], sparse_logger(15, 1), sparse_logger(15, 6), sparse_logger(5, 6), [win(0, 100.0)]]
    for history in histories:
        for known in (None, timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30)):
            observed = reporting_interval(history)
            assert silence_limit(history, t, known, observed) == silence_limit(history, t, known), (history, known)
    # the interval given is the one used: a 15-minute logger is lost after 45 minutes, not 15
    fifteen = sparse_logger(15, 6)
    assert silence_limit(fifteen, t) == timedelta(minutes=45)
    assert silence_limit(fifteen, t, observed=timedelta(minutes=5)) == timedelta(minutes=15)


def test_rules_given_the_observed_intervals_give_the_same_verdicts():
    """``evaluate_plant`` with the intervals the fold computed once per inverter and moment
    gives what it gives computing them itself: a 15-minute logger silent for 44.5 minutes
    beside 5-minute ones (not lost yet: 3 × 15 minutes), a tripped inverter, a held output."""
    from ysh.om.rules import reporting_interval

    fast = [win(i, 5000.0 if i < 20 else 0.0, inv="inv-1") for i in range(24)]
    slow = sparse_logger(15, 6, inv="inv-2")  # last report at 25 min, silent since
    held = [win(i, 4000.0, inv="inv-3", max_power=4000.0, samples=5, identical_run=5, last_power=4000.0,
                e_first=100.0 + i * 4000.0 / 12 / 1000, e_last=100.0 + (i + 1) * 4000.0 / 12 / 1000)
            for i in range(24)]
    histories = {"inv-1": fast, "inv-2": slow, "inv-3": held}
    now = T0 + 24 * STEP
    observed = {inv: reporting_interval(h) for inv, h in histories.items()}
    assert observed["inv-2"] == timedelta(minutes=15)
    given = evaluate_plant("p1", histories, now=now, observed_intervals=observed)
    computed = evaluate_plant("p1", histories, now=now)
    assert given == computed
    assert given[("p1", "inv-1", RULE_TRIP)][1].active
    assert not given[("p1", "inv-2", RULE_COMM_LOSS)][1].active
    # the intervals given are the ones used: read as a 5-minute logger, the same silence is lost
    as_fast = evaluate_plant("p1", histories, now=now, observed_intervals={**observed, "inv-2": STEP})
    assert as_fast[("p1", "inv-2", RULE_COMM_LOSS)][1].active
