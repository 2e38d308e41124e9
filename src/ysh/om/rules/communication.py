"""Communication rules: an inverter's ``comm_loss``, the site's ``plant_offline``, and the
energy-counter classification of a gap once data resumes. Pure Python, no I/O."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .model import (
    DEFAULT_THRESHOLDS, GAP_DATA, GAP_OUTAGE, GAP_PARTIAL, GAP_UNKNOWN, Peers, RuleState, Thresholds,
    WindowStat, silence_limit, _is_daylight, _ordered, _window_start,
)


def classify_gap(before: WindowStat, after: WindowStat, peer_windows: Iterable[WindowStat] = (),
                 thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Tell a data gap from an outage with the energy counter (see the module docstring).

    ``before`` is the last window before the gap, ``after`` the first one after it;
    ``peer_windows`` the other inverters' windows (those inside the gap are used)."""
    t = thresholds
    gap_start, gap_end = before.window_end, after.window_start
    slots: dict[datetime, list[WindowStat]] = defaultdict(list)
    for p in peer_windows:
        if p.inverter_id != before.inverter_id and gap_start <= p.window_start < gap_end and p.rated_power_w > 0:
            slots[p.window_start].append(p)
    reference = 0.0
    covered = timedelta(0)
    for windows in slots.values():
        duration = windows[0].window_end - windows[0].window_start
        specific = statistics.median(p.avg_power_w / p.rated_power_w for p in windows)
        reference += specific * before.rated_power_w * duration.total_seconds() / 3600 / 1000
        covered += duration
    uncovered = max(gap_end - gap_start - covered, timedelta(0))
    mean_expected = (before.expected_power_w + after.expected_power_w) / 2
    reference += mean_expected * uncovered.total_seconds() / 3600 / 1000
    result: dict[str, Any] = {
        "since": before.last_ts, "until": after.window_start, "reference_kwh": round(reference, 6),
        "reference": "peers_actual" if slots else "expected", "energy_kwh": None,
    }
    if before.energy_last_kwh is None or after.energy_first_kwh is None:
        return {**result, "classification": GAP_UNKNOWN, "reason": "no_counter_readings"}
    energy = after.energy_first_kwh - before.energy_last_kwh
    result["energy_kwh"] = round(energy, 6)
    if energy < 0:
        return {**result, "classification": GAP_UNKNOWN, "reason": "counter_went_backwards"}
    if reference < t.counter_resolution_kwh:
        return {**result, "classification": GAP_UNKNOWN, "reason": "reference_below_counter_resolution"}
    if energy >= t.gap_data_min_fraction * reference:
        return {**result, "classification": GAP_DATA}
    if energy < t.gap_outage_max_fraction * reference:
        return {**result, "classification": GAP_OUTAGE}
    return {**result, "classification": GAP_PARTIAL}


def comm_loss_state(history: Sequence[WindowStat], peers: Peers, thresholds: Thresholds = DEFAULT_THRESHOLDS,
                    now: datetime | None = None, interval: timedelta | None = None,
                    observed_interval: timedelta | None = None, peer_clock: Any = ...) -> RuleState:
    """Communication loss of one inverter: silent (no sample) for ≥ ``comm_loss_after``
    (for a logger reporting less often, ``comm_loss_intervals`` of its reporting interval:
    :func:`silence_limit`; the same below wherever ``comm_loss_after`` is named)
    up to the evaluation clock — the latest of ``now``, the peers' last samples and its
    own — while at least one peer has a sample after ``last_ts + comm_loss_after``.
    Opened at ``last_ts + comm_loss_after``. A silence shared by the whole plant is
    :func:`plant_offline_state`'s. Once data resumed, the inactive state carries the
    latest gap's ``last_gap`` classification and ``at`` = the resumed window's start.
    ``interval``: the reporting interval inferred earlier (for a history of one window);
    ``observed_interval``: ``reporting_interval(history)`` when the caller has it;
    ``peer_clock``: the newest ``last_ts`` of the other inverters' windows in ``peers``
    (None: there is none), when the caller has it (computed once per plant and moment)."""
    t = thresholds
    ordered = _ordered(history)
    if not ordered:
        return RuleState(False, {"reason": "no_data"})
    own = ordered[-1]
    limit = silence_limit(ordered, t, interval, observed_interval)
    if peer_clock is ...:  # the peers' newest sample, unless the caller has it
        peer_clock = max((p.last_ts for ws in peers.values() for p in ws if p.inverter_id != own.inverter_id),
                         default=None)
    clock = own.last_ts
    for other in (peer_clock, now):
        if other is not None and other > clock:
            clock = other
    silent = clock - own.last_ts

    def peer_windows() -> list[WindowStat]:  # only where needed, and where a peer window exists
        if peer_clock is None:
            return []
        return [p for ws in peers.values() for p in ws if p.inverter_id != own.inverter_id]

    if silent >= limit:
        peer_list = peer_windows()
        later = [p for p in peer_list if p.last_ts >= own.last_ts + limit]
        reporting = sorted({p.inverter_id for p in later})
        details = {"since": own.last_ts, "silent_s": silent.total_seconds(), "peers_reporting": reporting}
        expected = _is_daylight(own, t) or any(_is_daylight(p, t) for p in later) or silent >= t.night_silence_after
        if reporting and not expected:  # went quiet at night with its peers still logging zeros
            return RuleState(False, {**details, "reason": "night"}, own.window_end)
        if reporting:
            return RuleState(True, details, own.last_ts + limit)
        return RuleState(False, {**details, "reason": "plant_silent"}, own.window_end)
    for k in range(len(ordered) - 1, 0, -1):  # the latest gap
        before, after = ordered[k - 1], ordered[k]
        if after.window_start - before.last_ts >= limit:
            peer_list = peer_windows()
            if any(p.last_ts >= before.last_ts + limit and p.window_start < after.window_start
                   for p in peer_list):
                return RuleState(False, {"last_gap": classify_gap(before, after, peer_list, t)}, after.window_start)
            break
    return RuleState(False, {}, own.window_end)


def _plant_gaps(histories: Mapping[str, Sequence[WindowStat]], after: timedelta) -> list[tuple[datetime, datetime]]:
    if len(histories) == 1:  # one inverter: its history is ordered already (``_ordered``, the same stable sort)
        windows = _ordered(next(iter(histories.values())))
    else:
        windows = sorted((w for h in histories.values() for w in h), key=_window_start)
    gaps = []
    latest: datetime | None = None
    for w in windows:
        if latest is None:
            latest = w.last_ts
            continue
        if w.window_start - latest >= after:
            gaps.append((latest, w.window_start))
        if w.last_ts > latest:  # max(latest, w.last_ts), without the call
            latest = w.last_ts
    return gaps


def plant_offline_state(histories: Mapping[str, Sequence[WindowStat]], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                        now: datetime | None = None, intervals: Mapping[str, timedelta] | None = None,
                        observed_intervals: Mapping[str, timedelta] | None = None) -> RuleState:
    """The whole site is silent: no inverter has a sample for ≥ ``comm_loss_after`` (or the
    slowest logger's :func:`silence_limit`) before
    ``now`` (without ``now`` this cannot fire: silence needs a clock), and the silence began
    in daylight (or has lasted ``night_silence_after``: loggers that sleep at night are not
    offline). Once data resumed,
    each inverter's gap is classified (:func:`classify_gap`) and combined: all
    ``data_gap`` → ``data_gap``, all ``outage`` → ``outage``, unknown ones ignored, any
    other mix → ``partial_outage``. ``intervals``: the reporting intervals inferred earlier
    per inverter; ``observed_intervals``: inverter → ``reporting_interval`` of its history,
    when the caller has them."""
    t = thresholds
    ordered = {inv: _ordered(h) for inv, h in histories.items() if h}
    if not ordered:
        return RuleState(False, {"reason": "no_data"})
    latest = max(h[-1].last_ts for h in ordered.values())
    observed = observed_intervals or {}
    limit = max(silence_limit(h, t, (intervals or {}).get(inv), observed.get(inv)) for inv, h in ordered.items())
    if now is not None and now - latest >= limit:
        details = {"since": latest, "silent_s": (now - latest).total_seconds(), "inverters": sorted(ordered)}
        if any(_is_daylight(h[-1], t) for h in ordered.values()) or now - latest >= t.night_silence_after:
            return RuleState(True, details, latest + limit)
        # the site went quiet outside daylight: loggers that sleep at night do that
        return RuleState(False, {**details, "reason": "night"}, max(h[-1].window_end for h in ordered.values()))
    gaps = _plant_gaps(ordered, limit)
    if not gaps:
        return RuleState(False, {}, max(h[-1].window_end for h in ordered.values()))
    gap_start, gap_end = gaps[-1]
    per_inverter: dict[str, dict[str, Any]] = {}
    for inv, h in ordered.items():
        before = [w for w in h if w.last_ts <= gap_start]
        after = [w for w in h if w.window_start >= gap_end]
        if before and after:
            per_inverter[inv] = classify_gap(before[-1], after[0], (), t)
    kinds = {g["classification"] for g in per_inverter.values()} - {GAP_UNKNOWN}
    if not kinds:
        kind = GAP_UNKNOWN
    elif len(kinds) == 1:
        kind = kinds.pop()
    else:
        kind = GAP_PARTIAL
    return RuleState(False, {"last_gap": {"since": gap_start, "until": gap_end, "classification": kind,
                                          "inverters": {k: v["classification"] for k, v in per_inverter.items()}}},
                     gap_end)
