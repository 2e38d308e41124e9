"""The production rules of one inverter (trip, underperformance, frozen values, power
limited, clipping / export limit) and the plant outage. Pure Python, no I/O."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .model import (
    DEFAULT_THRESHOLDS, Peers, RuleState, Thresholds, WindowStat, performance_index, reporting_interval,
    _available_fraction, _contiguous, _entirely_constant, _is_daylight, _is_down, _known, _last_value,
    _median, _ordered, _peers_at, _pinned, _producing, _stale, _trip_eligible, _Moment, _at_tare, _moment,
    stop_evidence,
)


def _limit_levels(windows: Sequence[WindowStat], peers: Peers | None, t: Thresholds,
                  interval: timedelta | None = None) -> list[tuple[float, datetime] | None]:
    """Per window (ordered, one inverter): the active-power limit in force, ``(level_w,
    since)`` or None. A limit is established by ≥ ``clipping_windows`` contiguous pinned
    windows at the same level (± ``limit_flat_fraction``) while the available power
    (:func:`_available_fraction`) was above it by ≥ ``limit_margin`` and moved by ≥
    ``limit_swing_fraction`` of rated over them (or sat at ≥ ``clipping_fraction``: peers
    clipping at their rating, so more is available): the output stays flat while what it
    could give changes, which a fault that scales the output (soiling, a lost string)
    does not do (the available power of the plateau's windows comes from one source:
    peers throughout, or the expected power throughout). It stays in force while the
    output does not exceed it and touches it at least every ``limit_memory_windows``
    windows (a cloud passing under the limit)."""
    out: list[tuple[float, datetime] | None] = []
    if interval is None:  # ``interval``: ``reporting_interval(windows)``, when the caller has it
        interval = reporting_interval(windows)
    run: list[WindowStat] = []
    level: float | None = None
    since: datetime | None = None
    touched = 0
    for i, w in enumerate(windows):
        if _pinned(w, t):
            if run and _contiguous(run[-1], w, interval) and abs(w.max_power_w - run[0].max_power_w) <= (
                    t.limit_flat_fraction * run[0].max_power_w):
                run.append(w)
            else:
                run = [w]
        else:
            run = []
        if level is not None:
            if w.max_power_w > level * (1.0 + 2 * t.limit_flat_fraction) or i - touched > t.limit_memory_windows:
                level, since = None, None
            elif w.max_power_w >= level * (1.0 - t.limit_flat_fraction):
                touched = i
        if level is None and len(run) >= t.clipping_windows:
            references = [_available_fraction(x, peers, t) for x in run]
            if all(r is not None for r in references) and len({r[1] for r in references}) == 1:  # type: ignore[index]
                available = [r[0] for r in references]  # type: ignore[index]
                plateau = statistics.median(x.max_power_w for x in run)
                moved = max(available) - min(available) >= t.limit_swing_fraction
                reference_clipped = min(available) >= t.clipping_fraction  # peers at their rating: ≥ that
                if max(available) * w.rated_power_w >= plateau * (1.0 + t.limit_margin) and (
                        moved or reference_clipped):
                    level, since, touched = plateau, run[0].window_start, i
        out.append((level, since) if level is not None and since is not None else None)
    return out




def trip_state(history: Sequence[WindowStat], peers: Peers,
               thresholds: Thresholds = DEFAULT_THRESHOLDS) -> RuleState:
    """Inverter trip: judged on the last window with expected ≥ ``trip_expected_fraction``
    of rated. Active when its max power ≤ ``trip_output_fraction`` of rated and there is
    evidence that the sun was out:

    * producing peers: their median PI ≥ ``trip_peer_min_pi`` (a peer is producing when
      its max power > ``trip_output_fraction`` of its rating; peers that are all down →
      ``plant_outage``);
    * no peer window at all (alone): a measured irradiance (``expected_from_sensor``), or,
      with the clear-sky expectation only, the output *stopped* from production
      (:func:`stop_evidence`: straight to the tare from ≥ ``stop_from_fraction`` of rated,
      for ≥ ``stop_min_duration``). A lone inverter at zero at dawn, dusk or under heavy
      cloud is not a trip: the clear sky cannot tell it from the weather.

    ``details.since`` is the start of the run of down windows. When the stop began
    before the rules' horizon the verdict is ``undecided`` (an open alert stays open)."""
    t = thresholds
    ordered = _ordered(history)
    # the last eligible window, searched from the newest back (the earlier ones only for ``since``)
    last = next((i for i in range(len(ordered) - 1, -1, -1) if _trip_eligible(ordered[i], t)), None)
    if last is None:
        return RuleState(False, {"reason": "no_production_expected"})
    w = ordered[last]
    peer_windows = _peers_at(peers, w)
    producing = _producing(peer_windows, t)
    peer_pis = [p.performance_index for p in producing if p.performance_index is not None]
    median_pi = _median(peer_pis)
    details: dict[str, Any] = {
        "window_start": w.window_start, "expected_power_w": w.expected_power_w, "max_power_w": w.max_power_w,
        "peers": len(peer_windows), "peers_down": len(peer_windows) - len(producing), "peer_median_pi": median_pi,
    }
    if not _is_down(w, t):
        return RuleState(False, {**details, "clear_since": w.window_start}, w.window_end)
    if peer_windows and not producing:
        return RuleState(False, {**details, "reason": "plant_wide_no_output"}, w.window_end)
    if median_pi is not None and median_pi < t.trip_peer_min_pi:
        return RuleState(False, {**details, "reason": "peers_low_too"}, w.window_end)
    if not peer_windows and not w.expected_from_sensor:
        upto = ordered[:ordered.index(w) + 1]
        stopped, evidence = stop_evidence([_moment(x, t) for x in upto], t, reporting_interval(upto))
        if stopped is None:
            return RuleState(False, {**details, **evidence, "undecided": True}, w.window_end)
        if not stopped:
            return RuleState(False, {**details, **evidence}, w.window_end)
        return RuleState(True, {**details, **evidence}, w.window_end)
    since = w.window_start
    for prev in reversed([x for x in ordered[:last] if _trip_eligible(x, t)]):
        if not _is_down(prev, t):
            break
        since = prev.window_start
    return RuleState(True, {**details, "since": since,
                            "evidence": "producing_peers" if peer_windows else "irradiance_sensor"}, w.window_end)


def _underperforming(w: WindowStat, peers: Peers, t: Thresholds,
                     limit_w: float | None = None) -> tuple[bool, dict[str, Any]]:
    """One window's verdict. A down window (the trip / outage rules' domain) and a stale
    window (the frozen rule's) are not judged. Under an active-power limit ``limit_w``
    the references (expected, peers' specific power) are capped at it."""
    if _is_down(w, t):
        return False, {"window_start": w.window_start, "skipped": "down"}
    if _stale(w, t):
        return False, {"window_start": w.window_start, "skipped": "stale"}
    producing = _producing(_peers_at(peers, w), t)
    peer_pi = _median([p.performance_index for p in producing if p.performance_index is not None])
    peer_specific = _median([p.avg_power_w / p.rated_power_w for p in producing])
    pi = w.performance_index
    if limit_w is not None and w.rated_power_w > 0:
        if peer_specific is not None:
            peer_specific = min(peer_specific, limit_w / w.rated_power_w)
        if pi is not None:
            pi = performance_index(w.avg_power_w, min(w.expected_power_w, limit_w), w.rated_power_w, t)
    ratio = None
    if peer_specific is not None and peer_specific >= t.pi_floor_fraction and w.rated_power_w > 0:
        ratio = (w.avg_power_w / w.rated_power_w) / peer_specific
    pi_low = pi is not None and pi < t.under_pi_max and (peer_pi is None or peer_pi >= t.under_pi_max)
    ratio_low = ratio is not None and ratio < t.under_peer_ratio_max
    details = {"window_start": w.window_start, "pi": pi, "peer_ratio": ratio, "peer_median_pi": peer_pi}
    if limit_w is not None:
        details["limit_w"] = limit_w
    return pi_low or ratio_low, details


def underperformance_state(history: Sequence[WindowStat], peers: Peers,
                           thresholds: Thresholds = DEFAULT_THRESHOLDS,
                           observed_interval: timedelta | None = None) -> RuleState:
    """Underperformance: the last ``under_windows`` daylight windows (night windows and
    gaps skipped) are all underperforming: PI < ``under_pi_max`` (when producing peers'
    median PI ≥ ``under_pi_max`` or there are no producing peers) or specific power <
    ``under_peer_ratio_max`` × the producing peers' median specific power. Not judged
    (they break a run): windows where the inverter is down (trip, outage) and stale
    windows (frozen data). Under an active-power limit (export limit, curtailment: see
    :func:`_limit_levels`) the references are capped at the limit, so a held output is
    not underperformance (the clipping rule reports the limit). ``observed_interval``:
    ``reporting_interval(history)`` when the caller has it (the same verdict)."""
    t = thresholds
    ordered = _ordered(history)
    daylight = [w for w in ordered if _is_daylight(w, t)]
    if len(daylight) < t.under_windows:
        return RuleState(False, {"reason": "not_enough_daylight_windows", "windows": len(daylight)},
                         daylight[-1].window_end if daylight else None)
    recent = daylight[-t.under_windows:]
    if not any(w.expected_from_sensor for w in recent) and not any(
            _producing(_peers_at(peers, w), t) for w in recent):
        # clear-sky expectation only and nobody to compare with: clouds look the same
        return RuleState(False, {"reason": "not_observable", "detail": "no producing peers and no irradiance "
                                 "sensor: a cloudy sky cannot be told from underperformance"}, daylight[-1].window_end)
    # every window in daylight: the daylight windows are the history, and so is their interval
    limits = _limit_levels(daylight, peers, t, observed_interval if len(daylight) == len(ordered) else None)

    def verdict(i: int) -> tuple[bool, dict[str, Any]]:
        limit = limits[i]
        return _underperforming(daylight[i], peers, t, limit[0] if limit else None)

    # the verdicts are judged from the newest back, only as far as the rule reads them:
    # the last ``under_windows``, and, when all are low, back to the run's start
    first = len(daylight) - len(daylight[-t.under_windows:])
    last = [verdict(i) for i in range(first, len(daylight))]
    details = {"windows": [d for _, d in last]}
    at = daylight[-1].window_end
    if not all(low for low, _ in last):
        return RuleState(False, details, at)
    since_index = len(daylight) - 1
    while since_index > 0 and (last[since_index - 1 - first][0] if since_index - 1 >= first
                               else verdict(since_index - 1)[0]):
        since_index -= 1
    return RuleState(True, {**details, "since": daylight[since_index].window_start}, at)


class _Run(NamedTuple):
    window: WindowStat  # the last daylight window
    value: float | None  # the repeated ac_power_w
    samples: int  # identical readings, chained back through the windows
    since: datetime
    first: WindowStat  # the earliest window of the run


def _constant_run(ordered: Sequence[WindowStat], t: Thresholds, interval: timedelta | None = None) -> _Run | None:
    """The run of identical ``ac_power_w`` readings ending at the last daylight window,
    chained back through contiguous daylight windows entirely constant at that value
    (contiguous at the inverter's reporting interval: a sparse logger's windows chain)."""
    index = next((i for i in range(len(ordered) - 1, -1, -1) if _is_daylight(ordered[i], t)), None)
    if index is None:
        return None
    w = ordered[index]
    if interval is None:  # ``interval``: ``reporting_interval(ordered)``, when the caller has it
        interval = reporting_interval(ordered)
    value = _last_value(w)
    run = w.identical_run
    current = w
    while value is not None and current.identical_run >= current.samples and index > 0:
        prev = ordered[index - 1]
        if not (_contiguous(prev, current, interval) and _is_daylight(prev, t) and _last_value(prev) == value):
            break
        run += prev.identical_run
        current, index = prev, index - 1
    return _Run(w, value, run, current.window_start, current)


def _run_counter(run: _Run, t: Thresholds) -> tuple[str, dict[str, Any]]:
    """What the energy counter says about a constant run: ``flat`` (it advanced less than
    ``frozen_counter_fraction`` of what the value implies: the logger repeats the counter
    too, stale data), ``follows`` (within ± ``limit_counter_tolerance`` + one
    ``counter_resolution_kwh`` of it: the output really was held there) or ``unknown``
    (no counter readings, a span too short for the counter's resolution, or in between).
    The span runs from the run's first reading (its first window's first one when that
    window is entirely constant, else its last one) to the last window's last reading."""
    first, last = run.first, run.window
    if _entirely_constant(first):
        start_kwh, start_ts = first.energy_first_kwh, first.window_start
    else:
        start_kwh, start_ts = first.energy_last_kwh, first.last_ts
    if run.value is None or not (_known(start_kwh) and _known(last.energy_last_kwh)) or last.last_ts <= start_ts:
        return "unknown", {}
    implied = run.value * (last.last_ts - start_ts).total_seconds() / 3600 / 1000
    advance = last.energy_last_kwh - start_kwh  # type: ignore[operator]
    details = {"counter_kwh": round(advance, 6), "implied_kwh": round(implied, 6)}
    if implied < t.counter_resolution_kwh:
        return "unknown", details
    if advance < t.frozen_counter_fraction * implied:
        return "flat", details
    if abs(advance - implied) <= t.limit_counter_tolerance * implied + t.counter_resolution_kwh:
        return "follows", details
    return "unknown", details


def frozen_state(history: Sequence[WindowStat], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                 observed_interval: timedelta | None = None, run: Any = ...) -> RuleState:
    """Frozen values: the run of identical ``ac_power_w`` readings ending at the last
    daylight window (:func:`_constant_run`) is ≥ ``frozen_samples`` — and the energy
    counter does not contradict it (:func:`_run_counter`): where the counter advances as
    the repeated value implies, the output really was held there (a power limit:
    :func:`power_limited_state`; reason ``counter_advances``). A run at ≥
    ``clipping_fraction`` of rated is a clipping plateau, not frozen data, unless the
    counter is flat (a stale logger repeats the counter too; a clipping inverter's
    counter runs at the rating). A run at ≤ ``trip_output_fraction`` of rated is a
    stopped inverter (zeros repeat), for the trip and plant-outage rules, not frozen
    data. Without counter readings a long enough run is frozen, as before.
    ``observed_interval``: ``reporting_interval(history)`` when the caller has it; ``run``:
    :func:`_constant_run` of the history, when the caller has it."""
    t = thresholds
    if run is ...:
        run = _constant_run(_ordered(history), t, observed_interval)
    if run is None:
        return RuleState(False, {"reason": "no_daylight_window"})
    w, value = run.window, run.value
    details: dict[str, Any] = {"value_w": value, "run": run.samples, "since": run.since}
    if value is not None and value <= t.trip_output_fraction * w.rated_power_w:
        # a stopped inverter reads zero, again and again: the trip / outage rules' case
        return RuleState(False, {**details, "reason": "at_zero"}, w.window_end)
    verdict, counter = _run_counter(run, t)
    if value is not None and value >= t.clipping_fraction * w.rated_power_w and verdict != "flat":
        return RuleState(False, {**details, "reason": "at_clipping_level"}, w.window_end)
    details.update(counter)
    if verdict == "follows":
        return RuleState(False, {**details, "reason": "counter_advances"}, w.window_end)
    return RuleState(run.samples >= t.frozen_samples, details, w.window_end)


def power_limited_state(history: Sequence[WindowStat], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                        observed_interval: timedelta | None = None, run: Any = ...) -> RuleState:
    """Power limited (info): ≥ ``frozen_samples`` identical readings in daylight above the
    trip level and below the clipping level while the energy counter advances as that
    value implies (:func:`_run_counter`): the inverter is held at a constant power (an
    active-power limit, a derating setpoint), which repeated readings alone would call
    frozen data. ``details``: ``level_w``, ``fraction`` of rated, ``since``, the counter's
    advance and the energy implied. Whether the held output is also below expectation is
    the underperformance rule's verdict. ``observed_interval``:
    ``reporting_interval(history)`` when the caller has it; ``run``: :func:`_constant_run`
    of the history, when the caller has it."""
    t = thresholds
    if run is ...:
        run = _constant_run(_ordered(history), t, observed_interval)
    if run is None:
        return RuleState(False, {"reason": "no_daylight_window"})
    w, value = run.window, run.value
    details: dict[str, Any] = {"level_w": value, "run": run.samples, "since": run.since}
    if value is None or w.rated_power_w <= 0 or not (
            t.trip_output_fraction * w.rated_power_w < value < t.clipping_fraction * w.rated_power_w):
        return RuleState(False, {**details, "reason": "not_a_partial_level"}, w.window_end)
    verdict, counter = _run_counter(run, t)
    details.update(counter, fraction=round(value / w.rated_power_w, 4))
    if verdict != "follows":
        return RuleState(False, {**details, "reason": f"counter_{verdict}"}, w.window_end)
    return RuleState(run.samples >= t.frozen_samples, details, w.window_end)


def clipping_state(history: Sequence[WindowStat], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                   peers: Peers | None = None, observed_interval: timedelta | None = None) -> RuleState:
    """Clipping (info): max power ≥ ``clipping_fraction`` of rated in each of the last
    ``clipping_windows`` windows, which are contiguous (``details.kind`` = ``rating``); or
    the output held at an active-power limit below the rating (export limit,
    curtailment; ``kind`` = ``export_limit``, ``level_w``): the last ``clipping_windows``
    windows are pinned at a limit established by :func:`_limit_levels` (``peers`` give
    the available power; without them, the expected power). ``observed_interval``:
    ``reporting_interval(history)`` when the caller has it."""
    t = thresholds
    ordered = _ordered(history)
    if not ordered:
        return RuleState(False, {})
    at = ordered[-1].window_end
    interval = reporting_interval(ordered) if observed_interval is None else observed_interval
    tail = ordered[-t.clipping_windows:]
    def at_limit(w: WindowStat) -> bool:
        return w.max_power_w >= t.clipping_fraction * w.rated_power_w

    contiguous = len(tail) == t.clipping_windows and all(_contiguous(a, b, interval) for a, b in zip(tail, tail[1:]))
    clipped = contiguous and all(at_limit(w) for w in tail)
    details: dict[str, Any] = {"max_power_w": [w.max_power_w for w in tail],
                               "rated_power_w": ordered[-1].rated_power_w}
    if clipped:
        since_index = len(ordered) - t.clipping_windows
        while (since_index > 0 and _contiguous(ordered[since_index - 1], ordered[since_index], interval)
               and at_limit(ordered[since_index - 1])):
            since_index -= 1
        return RuleState(True, {**details, "kind": "rating", "since": ordered[since_index].window_start}, at)
    # the last windows pinned first (cheap, and most often not): only then the limit in force
    if contiguous and all(_pinned(w, t) for w in tail):
        limits = _limit_levels(ordered, peers, t, interval)
        level = limits[-1]
        if level is not None and all(
                _pinned(w, t) and abs(w.max_power_w - level[0]) <= t.limit_flat_fraction * level[0] for w in tail):
            return RuleState(True, {**details, "kind": "export_limit", "level_w": level[0], "since": level[1]}, at)
    return RuleState(False, details, at)


def plant_outage_state(histories: Mapping[str, Sequence[WindowStat]],
                       thresholds: Thresholds = DEFAULT_THRESHOLDS,
                       observed_intervals: Mapping[str, timedelta] | None = None,
                       slots: Mapping[datetime, Sequence[WindowStat]] | None = None) -> RuleState:
    """Plant outage: at the last window start where ≥ 2 inverters report and all are in
    daylight (expected ≥ ``daylight_fraction`` of rated), every one of them is down (max
    power ≤ ``trip_output_fraction`` of rated) — a plant-wide trip (grid fault, breaker),
    which the per-inverter trip rule deliberately does not report — and the sun was out:
    a measured irradiance (a window ``expected_from_sensor``: with a sensor under an
    overcast sky expected may stay below the trip level, and the daylight level is
    enough), or, with the clear-sky expectation only, the plant *stopped* from production
    (:func:`stop_evidence` over the plant's slots: the slot before the run produced a
    median ≥ ``stop_from_fraction`` of rated, the run's first slot is at the tare on every
    inverter, the run lasted ≥ ``stop_min_duration``). A whole plant at zero at dawn, dusk
    or under heavy cloud or snow is not an outage the clear sky can tell. When the stop
    began before the rules' horizon the verdict is ``undecided``. ``observed_intervals``:
    inverter → ``reporting_interval`` of its history, when the caller has them. ``slots``:
    window start → the windows of ``histories`` at that start, in their order, when the
    caller has them."""
    t = thresholds
    if slots is None:
        slots = defaultdict(list)
        for h in histories.values():
            for w in h:
                slots[w.window_start].append(w)
    starts = sorted(slots)

    def eligible(s: datetime) -> bool:
        return len(slots[s]) >= 2 and all(_is_daylight(w, t) for w in slots[s])

    # the newest eligible slot, searched from the newest back (the earlier ones only when needed)
    last = next((s for s in reversed(starts) if eligible(s)), None)
    if last is None:
        return RuleState(False, {"reason": "no_production_expected"})
    at = max(w.window_end for w in slots[last])
    if not all(_is_down(w, t) for w in slots[last]):
        return RuleState(False, {"clear_since": last}, at)
    inverters = sorted(w.inverter_id for w in slots[last])
    if not any(w.expected_from_sensor for w in slots[last]):
        moments = [_Moment(s, max(w.window_end for w in slots[s]), all(_is_down(w, t) for w in slots[s]),
                           all(_at_tare(w, t) for w in slots[s]),
                           statistics.median(w.max_power_w / w.rated_power_w if w.rated_power_w > 0 else 0.0
                                             for w in slots[s]))
                   for s in starts if s <= last]
        known = observed_intervals or {}
        interval = max((known[inv] if inv in known else reporting_interval(h) for inv, h in histories.items() if h),
                       default=None)
        stopped, evidence = stop_evidence(moments, t, interval)
        details = {**evidence, "inverters": inverters}
        if stopped is None:
            return RuleState(False, {**details, "undecided": True}, at)
        return RuleState(bool(stopped), details, at)
    since = last
    for s in reversed([s for s in starts if s < last and eligible(s)]):
        if not all(_is_down(w, t) for w in slots[s]):
            break
        since = s
    return RuleState(True, {"since": since, "inverters": inverters, "evidence": "irradiance_sensor"}, at)
