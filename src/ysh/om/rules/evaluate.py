"""Every rule for one inverter and one plant, with the suppressions that keep one fault
to one alert. Pure Python, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .model import (
    AlertKey, DEFAULT_THRESHOLDS, PLANT_SCOPE, Peers, RULE_CLIPPING, RULE_COMM_LOSS, RULE_FROZEN,
    RULE_PLANT_OFFLINE, RULE_PLANT_OUTAGE, RULE_POWER_LIMITED, RULE_TRIP, RULE_UNDERPERFORMANCE, RuleState,
    Thresholds, WindowStat, _is_daylight, _is_down, _ordered, _pinned, _trip_eligible, reporting_interval,
)
from .production import (
    _constant_run, clipping_state, frozen_state, plant_outage_state, power_limited_state, trip_state,
    underperformance_state,
)
from .communication import (
    comm_loss_state, plant_offline_state,
)


def evaluate_windows(history: Sequence[WindowStat], peers: Peers, thresholds: Thresholds = DEFAULT_THRESHOLDS,
                     now: datetime | None = None, interval: timedelta | None = None,
                     observed_interval: timedelta | None = None, peer_clock: Any = ...) -> dict[str, RuleState]:
    """All inverter rules for one inverter. ``peers`` maps window start → the plant's
    windows at that start (the inverter's own windows there are ignored). While a trip is
    active, underperformance and frozen values are reported inactive (``suppressed_by``);
    while frozen values are active, underperformance and clipping are; while clipping is
    active, power_limited is: one fault, one alert. A suppressed state neither opens nor
    closes an alert (:func:`advance`). ``interval``: the reporting interval inferred
    earlier (for a history of one window); ``observed_interval``:
    ``reporting_interval(history)``, computed here once for every rule when not given;
    ``peer_clock``: the newest ``last_ts`` of the other inverters' windows (None: none),
    computed by :func:`comm_loss_state` when not given."""
    ordered = _ordered(history)
    observed = reporting_interval(ordered) if observed_interval is None else observed_interval
    run = _constant_run(ordered, thresholds, observed)  # frozen values and power limited read the same run
    states = {
        RULE_TRIP: trip_state(ordered, peers, thresholds),
        RULE_UNDERPERFORMANCE: underperformance_state(ordered, peers, thresholds, observed),
        RULE_COMM_LOSS: comm_loss_state(ordered, peers, thresholds, now, interval, observed, peer_clock),
        RULE_FROZEN: frozen_state(ordered, thresholds, observed, run),
        RULE_CLIPPING: clipping_state(ordered, thresholds, peers, observed),
        RULE_POWER_LIMITED: power_limited_state(ordered, thresholds, observed, run),
    }
    if states[RULE_TRIP].active:  # a tripped inverter reads zero: that is not a second fault
        for rule in (RULE_UNDERPERFORMANCE, RULE_FROZEN):
            if states[rule].active:
                states[rule] = RuleState(False, {**states[rule].details, "suppressed_by": RULE_TRIP}, states[rule].at)
    elif states[RULE_FROZEN].active:  # stale readings say nothing about the output
        for rule in (RULE_UNDERPERFORMANCE, RULE_CLIPPING):
            if states[rule].active:
                states[rule] = RuleState(False, {**states[rule].details, "suppressed_by": RULE_FROZEN},
                                         states[rule].at)
    if states[RULE_CLIPPING].active and states[RULE_POWER_LIMITED].active:  # the limit is reported once
        limited = states[RULE_POWER_LIMITED]
        states[RULE_POWER_LIMITED] = RuleState(False, {**limited.details, "suppressed_by": RULE_CLIPPING},
                                               limited.at)
    return states


def production_quiet(histories: Mapping[str, Sequence[WindowStat]], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                     ) -> bool:
    """No rule but those that read silence can be active over ``histories``: no window is
    in daylight or trip-eligible (trip, underperformance, frozen values, power limited
    and the plant outage need one), at the clipping level or pinned at a limit (clipping
    needs its last windows so). A night, for the fold: it evaluates only the silence
    rules then, when no alert of the plant is open (``evaluate_plant(silence_only=True)``)."""
    return not any(could_produce(w, thresholds) for h in histories.values() for w in h)


def could_produce(w: WindowStat, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> bool:
    """The window could make a production rule active (see :func:`production_quiet`): in
    daylight, trip-eligible, at the clipping level, or pinned at a limit."""
    t = thresholds
    return (_is_daylight(w, t) or _trip_eligible(w, t) or w.max_power_w >= t.clipping_fraction * w.rated_power_w
            or (not _is_down(w, t) and _pinned(w, t)))  # (pinned implies not down: the cheap test first)


_SUPPRESSED_BY_PLANT = frozenset({RULE_TRIP, RULE_UNDERPERFORMANCE, RULE_FROZEN, RULE_COMM_LOSS})


def evaluate_plant(plant_id: str, histories: Mapping[str, Sequence[WindowStat]],
                   thresholds: Thresholds = DEFAULT_THRESHOLDS,
                   now: datetime | None = None,
                   intervals: Mapping[str, timedelta] | None = None,
                   observed_intervals: Mapping[str, timedelta] | None = None,
                   silence_only: bool = False,
                   ) -> dict[AlertKey, tuple[datetime, RuleState]]:
    """Every rule for one plant (``histories``: inverter id → its windows), keyed and timed
    for :func:`advance`. Plant rules use inverter id :data:`PLANT_SCOPE`. ``intervals``:
    the reporting interval inferred earlier per inverter (for a history of one window).
    ``observed_intervals``: inverter → ``reporting_interval`` of its history (as the fold
    computes it once per inverter and moment); computed here when not given, once per
    inverter for every rule. ``silence_only``: only the rules that read silence
    (``comm_loss``, ``plant_offline``), for a moment where :func:`production_quiet` holds:
    every other rule's state is inactive then (what the fold does with it when no alert of
    the plant is open: nothing)."""
    ordered = {inv: _ordered(h) for inv, h in histories.items() if h}
    observed = dict(observed_intervals or {})
    for inv, h in ordered.items():
        if inv not in observed:
            observed[inv] = reporting_interval(h)
    alone = len(ordered) == 1  # one inverter (most plants of a residential fleet): no peers
    slots: dict[datetime, list[WindowStat]] = {}
    if not (silence_only and alone):  # the peers of every rule, and the plant outage's slots
        grouped: dict[datetime, list[WindowStat]] = defaultdict(list)
        for h in ordered.values():
            for w in h:
                grouped[w.window_start].append(w)
        slots = dict(grouped)
    out: dict[AlertKey, tuple[datetime, RuleState]] = {}
    fallback = max((h[-1].window_end for h in ordered.values()), default=now)
    # each inverter's newest sample, once: an inverter's peers' clock is the newest of the others'
    newest = {} if alone else {inv: max(w.last_ts for w in h) for inv, h in ordered.items()}
    for inv, h in ordered.items():
        peer_clock = max((ts for other, ts in newest.items() if other != inv), default=None)
        if silence_only:
            state = comm_loss_state(h, slots, thresholds, now, (intervals or {}).get(inv), observed[inv], peer_clock)
            out[(plant_id, inv, RULE_COMM_LOSS)] = (state.at or h[-1].window_end, state)
            continue
        for rule, state in evaluate_windows(h, slots, thresholds, now, (intervals or {}).get(inv),
                                            observed[inv], peer_clock).items():
            out[(plant_id, inv, rule)] = (state.at or h[-1].window_end, state)
    plant_down = None
    plant_rules = [(RULE_PLANT_OFFLINE, plant_offline_state(ordered, thresholds, now, intervals, observed))]
    if not silence_only:
        plant_rules.append((RULE_PLANT_OUTAGE, plant_outage_state(ordered, thresholds, observed, slots)))
    for rule, state in plant_rules:
        at = state.at or fallback
        if at is not None:
            out[(plant_id, PLANT_SCOPE, rule)] = (at, state)
            if state.active:
                plant_down = rule
    if plant_down is not None:  # the whole plant is down: one plant alert, not one per inverter
        for key, (at, state) in list(out.items()):
            if key[1] != PLANT_SCOPE and key[2] in _SUPPRESSED_BY_PLANT and state.active:
                out[key] = (at, RuleState(False, {**state.details, "suppressed_by": plant_down}, state.at))
    return out
