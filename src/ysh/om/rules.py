"""O&M rules over 5-minute inverter windows, and the alert lifecycle (pure Python, no I/O).

Inputs are :class:`WindowStat` rows (one per inverter and 5-minute tumbling window, the
``om_inverter_5min`` table). Rule functions look at one inverter's ordered window history
plus its *peers* (the plant's other inverters) at the same window starts, and return a
:class:`RuleState` (``active``, ``details``, ``at`` = the time the verdict refers to).
:func:`advance` folds rule states into open/resolved :class:`Alert` s.

Thresholds (:class:`Thresholds`, fractions are of the inverter's rated AC power):

==========================  ========  =====================================================
field                       default   meaning
==========================  ========  =====================================================
daylight_fraction           0.10      a window is *daylight* when expected ≥ 10 % of rated
pi_floor_fraction           0.01      PI = avg/expected is ``None`` when expected < 1 % rated
trip_expected_fraction      0.20      trip needs expected ≥ 20 % of rated …
trip_output_fraction        0.01      … while no sample exceeds 1 % of rated (max power) …
trip_peer_min_pi            0.50      … and the median PI of the *producing* peers ≥ 0.5
                                      (a peer is producing when its max power > 1 % of
                                      rated, so a second tripped inverter does not hide
                                      the first; no peer window → "alone": expected high
                                      is enough; peers all down → ``plant_outage``)
under_pi_max                0.75      underperforming window: PI < 0.75 (only counted when
                                      producing peers' median PI ≥ 0.75 or there are none:
                                      a plant-wide low PI is weather/model, not the inverter)
under_peer_ratio_max        0.80      … or specific power (avg/rated) < 0.8 × median of the
                                      producing peers' specific power
under_windows               3         … for the last 3 daylight windows (night windows are
                                      skipped, so the verdict holds overnight)
comm_loss_after             15 min    silence (since the last sample) that counts as lost
gap_data_min_fraction       0.50      after a gap: counter advanced ≥ 50 % of the reference
                                      energy → ``data_gap`` (it produced, only data was lost)
gap_outage_max_fraction     0.10      counter advanced < 10 % of the reference → ``outage``;
                                      in between → ``partial_outage``
counter_resolution_kwh      0.1       reference energy below this → ``unknown`` (the
                                      counter cannot tell; e.g. a night-time gap)
frozen_samples              10        frozen: ≥ 10 consecutive identical ac_power_w readings
                                      in daylight windows (runs at clipping level excluded)
clipping_fraction           0.98      clipping: max power ≥ 98 % of rated …
clipping_windows            2         … in ≥ 2 consecutive windows (severity info)
night_silence_after         16 h      a silence that began outside daylight (loggers that
                                      sleep at night) counts as comm loss / plant offline
                                      only after this long, unless producing peers report
frozen_counter_fraction     0.10      a frozen run at clipping level is still frozen when
                                      the counter advanced < 10 % of what the value implies
limit_flat_fraction         0.01      active-power limit (export limit, curtailment): ≥ 2
                                      contiguous windows with min ≥ 99 % of max, same level
                                      (± 1 %), below the clipping level …
limit_margin                0.05      … while the available power (peers' specific power,
                                      else expected) is ≥ 5 % above that level …
limit_swing_fraction        0.02      … and moved by ≥ 2 % of rated (or sat at the peers'
                                      rating); then underperformance judges against the
                                      limit and clipping reports ``export_limit``
limit_memory_windows        12        the limit stays known while the output touches it at
                                      least once every 12 windows (clouds under it)
==========================  ========  =====================================================

Rules needing production (trip, underperformance, frozen) judge the last window in which
they can be evaluated, so a verdict holds through the night: one incident is one alert,
not one per day. Clipping and communication rules use the latest data.

Communication loss vs outage: while an inverter is silent ≥ ``comm_loss_after`` and some
peer reported after that point, ``comm_loss`` is active (opened at last sample + 15 min).
If no inverter of the plant reports, it is the site's ``plant_offline`` (inverter ``"*"``).
When data resumes, the energy counter across the gap (first counter reading of the
resumed window − last reading before the gap) is compared with a *reference* energy: the
producing peers' actual specific power over the gap slots (× own rating), or, for slots
without peers, the mean expected power of the two bracketing windows. The state that
resolves the alert carries ``last_gap.classification`` (``data_gap``, ``partial_outage``,
``outage`` or ``unknown`` when the counter readings are missing or went backwards).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

RULE_TRIP = "inverter_trip"
RULE_UNDERPERFORMANCE = "underperformance"
RULE_COMM_LOSS = "comm_loss"
RULE_FROZEN = "frozen_values"
RULE_CLIPPING = "clipping"
RULE_PLANT_OFFLINE = "plant_offline"
RULE_PLANT_OUTAGE = "plant_outage"

INVERTER_RULES = (RULE_TRIP, RULE_UNDERPERFORMANCE, RULE_COMM_LOSS, RULE_FROZEN, RULE_CLIPPING)
PLANT_RULES = (RULE_PLANT_OFFLINE, RULE_PLANT_OUTAGE)
SEVERITY = {
    RULE_TRIP: "critical", RULE_PLANT_OUTAGE: "critical", RULE_PLANT_OFFLINE: "critical",
    RULE_COMM_LOSS: "warning", RULE_UNDERPERFORMANCE: "warning", RULE_FROZEN: "warning",
    RULE_CLIPPING: "info",
}
#: ``inverter_id`` of plant-level alerts.
PLANT_SCOPE = "*"

GAP_DATA = "data_gap"
GAP_PARTIAL = "partial_outage"
GAP_OUTAGE = "outage"
GAP_UNKNOWN = "unknown"


@dataclass(frozen=True)
class Thresholds:
    """Rule thresholds; see the module docstring for the meaning of each field."""

    daylight_fraction: float = 0.10
    pi_floor_fraction: float = 0.01
    trip_expected_fraction: float = 0.20
    trip_output_fraction: float = 0.01
    trip_peer_min_pi: float = 0.50
    under_pi_max: float = 0.75
    under_peer_ratio_max: float = 0.80
    under_windows: int = 3
    comm_loss_after: timedelta = timedelta(minutes=15)
    gap_data_min_fraction: float = 0.50
    gap_outage_max_fraction: float = 0.10
    counter_resolution_kwh: float = 0.1
    frozen_samples: int = 10
    clipping_fraction: float = 0.98
    clipping_windows: int = 2
    night_silence_after: timedelta = timedelta(hours=16)
    frozen_counter_fraction: float = 0.10
    limit_flat_fraction: float = 0.01
    limit_margin: float = 0.05
    limit_swing_fraction: float = 0.02
    limit_memory_windows: int = 12


DEFAULT_THRESHOLDS = Thresholds()


class WindowStat(NamedTuple):
    """One inverter's 5-minute window (``om_inverter_5min``).

    ``energy_delta_kwh`` is the counter's last minus first reading inside the window.
    ``performance_index`` is ``avg_power_w / expected_power_w``, ``None`` when expected is
    below ``pi_floor_fraction`` of rated (see :func:`performance_index`).
    ``identical_run`` is the number of consecutive samples, counted back from the
    window's last sample (in ``ts`` order), whose ``ac_power_w`` equals that last
    sample's value exactly (≥ 1 when the window has samples). Runs longer than a window
    are chained by :func:`frozen_state` through contiguous, entirely constant windows.
    ``last_power_w`` (the last sample's value) and ``energy_first_kwh`` /
    ``energy_last_kwh`` (first/last counter readings) are optional: without them frozen
    runs chain only through windows with min = max, and gaps classify as ``unknown``.
    """

    plant_id: str
    inverter_id: str
    window_start: datetime
    window_end: datetime
    samples: int
    avg_power_w: float
    min_power_w: float
    max_power_w: float
    energy_delta_kwh: float
    expected_power_w: float
    rated_power_w: float
    performance_index: float | None
    identical_run: int
    last_ts: datetime
    last_power_w: float | None = None
    energy_first_kwh: float | None = None
    energy_last_kwh: float | None = None
    expected_from_sensor: bool = False  # expected power from measured irradiance (else clear sky)


class RuleState(NamedTuple):
    """A rule's verdict: ``at`` is the time it refers to (used as opened/resolved time)."""

    active: bool
    details: dict[str, Any]
    at: datetime | None = None


class Alert(NamedTuple):
    """One incident of one rule on one inverter (``inverter_id == "*"`` for the plant)."""

    plant_id: str
    inverter_id: str
    rule: str
    opened_at: datetime
    resolved_at: datetime | None
    details: dict[str, Any]
    key: str


AlertKey = tuple[str, str, str]
Peers = Mapping[datetime, Sequence[WindowStat]]


# --------------------------------------------------------------------------- windows


def performance_index(avg_power_w: float, expected_power_w: float, rated_power_w: float,
                      thresholds: Thresholds = DEFAULT_THRESHOLDS) -> float | None:
    """``avg / expected``; ``None`` when expected < ``pi_floor_fraction`` × rated (≈ night)."""
    if expected_power_w <= 0 or expected_power_w < thresholds.pi_floor_fraction * rated_power_w:
        return None
    return avg_power_w / expected_power_w


def window_from_samples(plant_id: str, inverter_id: str, window_start: datetime, window_end: datetime,
                        samples: Iterable[tuple[datetime, float, float]], expected_power_w: float,
                        rated_power_w: float, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> WindowStat:
    """Aggregate ``(ts, ac_power_w, energy_total_kwh)`` samples (any order, ≥ 1) into a
    :class:`WindowStat` — the reference definition of every field."""
    rows = sorted(samples, key=lambda s: s[0])
    if not rows:
        raise ValueError("a window needs at least one sample")
    powers = [p for _, p, _ in rows]
    last = powers[-1]
    run = 0
    for p in reversed(powers):
        if p != last:
            break
        run += 1
    avg = sum(powers) / len(powers)
    return WindowStat(
        plant_id, inverter_id, window_start, window_end, len(rows), avg, min(powers), max(powers),
        rows[-1][2] - rows[0][2], expected_power_w, rated_power_w,
        performance_index(avg, expected_power_w, rated_power_w, thresholds), run, rows[-1][0],
        last, rows[0][2], rows[-1][2],
    )


def _is_daylight(w: WindowStat, t: Thresholds) -> bool:
    return w.rated_power_w > 0 and w.expected_power_w >= t.daylight_fraction * w.rated_power_w


def _trip_eligible(w: WindowStat, t: Thresholds) -> bool:
    return w.rated_power_w > 0 and w.expected_power_w >= t.trip_expected_fraction * w.rated_power_w


def _is_down(w: WindowStat, t: Thresholds) -> bool:
    return w.max_power_w <= t.trip_output_fraction * w.rated_power_w


def _peers_at(peers: Peers, w: WindowStat) -> list[WindowStat]:
    return [p for p in peers.get(w.window_start, ()) if p.inverter_id != w.inverter_id]


def _producing(peer_windows: Sequence[WindowStat], t: Thresholds) -> list[WindowStat]:
    return [p for p in peer_windows if p.rated_power_w > 0 and not _is_down(p, t)]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _last_value(w: WindowStat) -> float | None:
    if w.last_power_w is not None:
        return w.last_power_w
    return w.max_power_w if w.min_power_w == w.max_power_w else None


def _contiguous(a: WindowStat, b: WindowStat) -> bool:
    return a.window_end == b.window_start


def _ordered(history: Iterable[WindowStat]) -> list[WindowStat]:
    return sorted(history, key=lambda w: w.window_start)


def _known(value: float | None) -> bool:
    return value is not None and value == value  # not None, not NaN


def _counter_advance(first: WindowStat, last: WindowStat, value_w: float) -> tuple[float, float] | None:
    """(counter advance, energy ``value_w`` would give) in kWh from ``first``'s first counter
    reading to ``last``'s last one; None when a reading is missing or NaN."""
    if not (_known(first.energy_first_kwh) and _known(last.energy_last_kwh)):
        return None
    hours = (last.last_ts - first.window_start).total_seconds() / 3600
    return last.energy_last_kwh - first.energy_first_kwh, value_w * hours / 1000  # type: ignore[operator]


def _entirely_constant(w: WindowStat) -> bool:
    return w.samples >= 2 and w.identical_run >= w.samples


def _stale(w: WindowStat, t: Thresholds) -> bool:
    """Every sample of the window identical and the counter does not show the production
    that value implies (or there is no counter): stale data, not a measurement."""
    if not _entirely_constant(w):
        return False
    value = _last_value(w) or 0.0
    advance = _counter_advance(w, w, value)
    return advance is None or advance[1] <= 0 or advance[0] < t.gap_data_min_fraction * advance[1]


def _available_fraction(w: WindowStat, peers: Peers | None, t: Thresholds) -> tuple[float, str] | None:
    """What the inverter could deliver, as a fraction of its rating, and from where: the
    producing peers' median specific power (``peers``), else expected / rated
    (``expected``)."""
    producing = _producing(_peers_at(peers, w), t) if peers else []
    if producing:
        return statistics.median(p.avg_power_w / p.rated_power_w for p in producing), "peers"
    return (w.expected_power_w / w.rated_power_w, "expected") if w.rated_power_w > 0 else None


def _pinned(w: WindowStat, t: Thresholds) -> bool:
    """Output held flat (min ≥ (1 − ``limit_flat_fraction``) × max) above the trip level and
    below the clipping level, and not stale data."""
    return (w.samples >= 2 and w.rated_power_w > 0 and not _is_down(w, t) and not _stale(w, t)
            and w.max_power_w < t.clipping_fraction * w.rated_power_w
            and w.min_power_w >= (1.0 - t.limit_flat_fraction) * w.max_power_w)


def _limit_levels(windows: Sequence[WindowStat], peers: Peers | None, t: Thresholds,
                  ) -> list[tuple[float, datetime] | None]:
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
    run: list[WindowStat] = []
    level: float | None = None
    since: datetime | None = None
    touched = 0
    for i, w in enumerate(windows):
        if _pinned(w, t):
            if run and _contiguous(run[-1], w) and abs(w.max_power_w - run[0].max_power_w) <= (
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


# --------------------------------------------------------------------------- inverter rules


def trip_state(history: Sequence[WindowStat], peers: Peers,
               thresholds: Thresholds = DEFAULT_THRESHOLDS) -> RuleState:
    """Inverter trip: judged on the last window with expected ≥ ``trip_expected_fraction``
    of rated. Active when its max power ≤ ``trip_output_fraction`` of rated and the
    producing peers' median PI ≥ ``trip_peer_min_pi`` (a peer is producing when its max
    power > ``trip_output_fraction`` of its rating; no peer window at all → the inverter
    is alone and expected high is enough; peers that are all down → ``plant_outage``).
    ``details.since`` is the start of the run of down, eligible windows."""
    t = thresholds
    eligible = [w for w in _ordered(history) if _trip_eligible(w, t)]
    if not eligible:
        return RuleState(False, {"reason": "no_production_expected"})
    w = eligible[-1]
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
    since = w.window_start
    for prev in reversed(eligible[:-1]):
        if not _is_down(prev, t):
            break
        since = prev.window_start
    return RuleState(True, {**details, "since": since}, w.window_end)


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
                           thresholds: Thresholds = DEFAULT_THRESHOLDS) -> RuleState:
    """Underperformance: the last ``under_windows`` daylight windows (night windows and
    gaps skipped) are all underperforming: PI < ``under_pi_max`` (when producing peers'
    median PI ≥ ``under_pi_max`` or there are no producing peers) or specific power <
    ``under_peer_ratio_max`` × the producing peers' median specific power. Not judged
    (they break a run): windows where the inverter is down (trip, outage) and stale
    windows (frozen data). Under an active-power limit (export limit, curtailment: see
    :func:`_limit_levels`) the references are capped at the limit, so a held output is
    not underperformance (the clipping rule reports the limit)."""
    t = thresholds
    daylight = [w for w in _ordered(history) if _is_daylight(w, t)]
    if len(daylight) < t.under_windows:
        return RuleState(False, {"reason": "not_enough_daylight_windows", "windows": len(daylight)},
                         daylight[-1].window_end if daylight else None)
    recent = daylight[-t.under_windows:]
    if not any(w.expected_from_sensor for w in recent) and not any(
            _producing(_peers_at(peers, w), t) for w in recent):
        # clear-sky expectation only and nobody to compare with: clouds look the same
        return RuleState(False, {"reason": "not_observable", "detail": "no producing peers and no irradiance "
                                 "sensor: a cloudy sky cannot be told from underperformance"}, daylight[-1].window_end)
    limits = _limit_levels(daylight, peers, t)
    verdicts = [_underperforming(w, peers, t, limit[0] if limit else None) for w, limit in zip(daylight, limits)]
    last = verdicts[-t.under_windows:]
    details = {"windows": [d for _, d in last]}
    at = daylight[-1].window_end
    if not all(low for low, _ in last):
        return RuleState(False, details, at)
    since_index = len(daylight) - 1
    while since_index > 0 and verdicts[since_index - 1][0]:
        since_index -= 1
    return RuleState(True, {**details, "since": daylight[since_index].window_start}, at)


def frozen_state(history: Sequence[WindowStat], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> RuleState:
    """Frozen values: the run of identical ``ac_power_w`` readings ending at the last
    daylight window, chained back through contiguous daylight windows that are entirely
    constant at the same value, is ≥ ``frozen_samples``. A run at ≥ ``clipping_fraction``
    of rated is a clipping plateau, not frozen data — unless the energy counter says
    otherwise: over the run's entirely constant windows it advanced less than
    ``frozen_counter_fraction`` of what the value implies (a stale logger repeats the
    counter too; a clipping inverter's counter runs at the rating). A run at ≤
    ``trip_output_fraction`` of rated is a stopped inverter (zeros repeat), for the trip
    and plant-outage rules, not frozen data."""
    t = thresholds
    ordered = _ordered(history)
    index = next((i for i in range(len(ordered) - 1, -1, -1) if _is_daylight(ordered[i], t)), None)
    if index is None:
        return RuleState(False, {"reason": "no_daylight_window"})
    w = ordered[index]
    value = _last_value(w)
    run = w.identical_run
    since = w.window_start
    current = w
    constant_from = w if _entirely_constant(w) else None  # earliest entirely constant window of the run
    while value is not None and current.identical_run >= current.samples and index > 0:
        prev = ordered[index - 1]
        if not (_contiguous(prev, current) and _is_daylight(prev, t) and _last_value(prev) == value):
            break
        run += prev.identical_run
        since = prev.window_start
        current, index = prev, index - 1
        if _entirely_constant(prev):
            constant_from = prev
    details: dict[str, Any] = {"value_w": value, "run": run, "since": since}
    if value is not None and value <= t.trip_output_fraction * w.rated_power_w:
        # a stopped inverter reads zero, again and again: the trip / outage rules' case
        return RuleState(False, {**details, "reason": "at_zero"}, w.window_end)
    if value is not None and value >= t.clipping_fraction * w.rated_power_w:
        advance = _counter_advance(constant_from, w, value) if constant_from is not None else None
        counter_flat = (advance is not None and advance[1] >= t.counter_resolution_kwh
                        and advance[0] < t.frozen_counter_fraction * advance[1])
        if not counter_flat:
            return RuleState(False, {**details, "reason": "at_clipping_level"}, w.window_end)
        details["counter_kwh"] = round(advance[0], 6)  # type: ignore[index]
    return RuleState(run >= t.frozen_samples, details, w.window_end)


def clipping_state(history: Sequence[WindowStat], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                   peers: Peers | None = None) -> RuleState:
    """Clipping (info): max power ≥ ``clipping_fraction`` of rated in each of the last
    ``clipping_windows`` windows, which are contiguous (``details.kind`` = ``rating``); or
    the output held at an active-power limit below the rating (export limit,
    curtailment; ``kind`` = ``export_limit``, ``level_w``): the last ``clipping_windows``
    windows are pinned at a limit established by :func:`_limit_levels` (``peers`` give
    the available power; without them, the expected power)."""
    t = thresholds
    ordered = _ordered(history)
    if not ordered:
        return RuleState(False, {})
    at = ordered[-1].window_end
    tail = ordered[-t.clipping_windows:]
    def at_limit(w: WindowStat) -> bool:
        return w.max_power_w >= t.clipping_fraction * w.rated_power_w

    contiguous = len(tail) == t.clipping_windows and all(_contiguous(a, b) for a, b in zip(tail, tail[1:]))
    clipped = contiguous and all(at_limit(w) for w in tail)
    details: dict[str, Any] = {"max_power_w": [w.max_power_w for w in tail],
                               "rated_power_w": ordered[-1].rated_power_w}
    if clipped:
        since_index = len(ordered) - t.clipping_windows
        while (since_index > 0 and _contiguous(ordered[since_index - 1], ordered[since_index])
               and at_limit(ordered[since_index - 1])):
            since_index -= 1
        return RuleState(True, {**details, "kind": "rating", "since": ordered[since_index].window_start}, at)
    if contiguous:
        limits = _limit_levels(ordered, peers, t)
        level = limits[-1]
        if level is not None and all(
                _pinned(w, t) and abs(w.max_power_w - level[0]) <= t.limit_flat_fraction * level[0] for w in tail):
            return RuleState(True, {**details, "kind": "export_limit", "level_w": level[0], "since": level[1]}, at)
    return RuleState(False, details, at)


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
                    now: datetime | None = None) -> RuleState:
    """Communication loss of one inverter: silent (no sample) for ≥ ``comm_loss_after``
    up to the evaluation clock — the latest of ``now``, the peers' last samples and its
    own — while at least one peer has a sample after ``last_ts + comm_loss_after``.
    Opened at ``last_ts + comm_loss_after``. A silence shared by the whole plant is
    :func:`plant_offline_state`'s. Once data resumed, the inactive state carries the
    latest gap's ``last_gap`` classification and ``at`` = the resumed window's start."""
    t = thresholds
    ordered = _ordered(history)
    if not ordered:
        return RuleState(False, {"reason": "no_data"})
    own = ordered[-1]
    peer_list = [p for ws in peers.values() for p in ws if p.inverter_id != own.inverter_id]
    clock = max([own.last_ts] + [p.last_ts for p in peer_list] + ([now] if now is not None else []))
    silent = clock - own.last_ts
    if silent >= t.comm_loss_after:
        later = [p for p in peer_list if p.last_ts >= own.last_ts + t.comm_loss_after]
        reporting = sorted({p.inverter_id for p in later})
        details = {"since": own.last_ts, "silent_s": silent.total_seconds(), "peers_reporting": reporting}
        expected = _is_daylight(own, t) or any(_is_daylight(p, t) for p in later) or silent >= t.night_silence_after
        if reporting and not expected:  # went quiet at night with its peers still logging zeros
            return RuleState(False, {**details, "reason": "night"}, own.window_end)
        if reporting:
            return RuleState(True, details, own.last_ts + t.comm_loss_after)
        return RuleState(False, {**details, "reason": "plant_silent"}, own.window_end)
    for before, after in reversed(list(zip(ordered, ordered[1:]))):
        if after.window_start - before.last_ts >= t.comm_loss_after:
            if any(p.last_ts >= before.last_ts + t.comm_loss_after and p.window_start < after.window_start
                   for p in peer_list):
                return RuleState(False, {"last_gap": classify_gap(before, after, peer_list, t)}, after.window_start)
            break
    return RuleState(False, {}, own.window_end)


def evaluate_windows(history: Sequence[WindowStat], peers: Peers, thresholds: Thresholds = DEFAULT_THRESHOLDS,
                     now: datetime | None = None) -> dict[str, RuleState]:
    """All inverter rules for one inverter. ``peers`` maps window start → the plant's
    windows at that start (the inverter's own windows there are ignored). While a trip is
    active, underperformance and frozen values are reported inactive (``suppressed_by``);
    while frozen values are active, underperformance and clipping are: one fault, one alert."""
    ordered = _ordered(history)
    states = {
        RULE_TRIP: trip_state(ordered, peers, thresholds),
        RULE_UNDERPERFORMANCE: underperformance_state(ordered, peers, thresholds),
        RULE_COMM_LOSS: comm_loss_state(ordered, peers, thresholds, now),
        RULE_FROZEN: frozen_state(ordered, thresholds),
        RULE_CLIPPING: clipping_state(ordered, thresholds, peers),
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
    return states


# --------------------------------------------------------------------------- plant rules


def _plant_gaps(histories: Mapping[str, Sequence[WindowStat]], after: timedelta) -> list[tuple[datetime, datetime]]:
    windows = sorted((w for h in histories.values() for w in h), key=lambda w: w.window_start)
    gaps = []
    latest: datetime | None = None
    for w in windows:
        if latest is not None and w.window_start - latest >= after:
            gaps.append((latest, w.window_start))
        latest = w.last_ts if latest is None else max(latest, w.last_ts)
    return gaps


def plant_offline_state(histories: Mapping[str, Sequence[WindowStat]], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                        now: datetime | None = None) -> RuleState:
    """The whole site is silent: no inverter has a sample for ≥ ``comm_loss_after`` before
    ``now`` (without ``now`` this cannot fire: silence needs a clock), and the silence began
    in daylight (or has lasted ``night_silence_after``: loggers that sleep at night are not
    offline). Once data resumed,
    each inverter's gap is classified (:func:`classify_gap`) and combined: all
    ``data_gap`` → ``data_gap``, all ``outage`` → ``outage``, unknown ones ignored, any
    other mix → ``partial_outage``."""
    t = thresholds
    ordered = {inv: _ordered(h) for inv, h in histories.items() if h}
    if not ordered:
        return RuleState(False, {"reason": "no_data"})
    latest = max(h[-1].last_ts for h in ordered.values())
    if now is not None and now - latest >= t.comm_loss_after:
        details = {"since": latest, "silent_s": (now - latest).total_seconds(), "inverters": sorted(ordered)}
        if any(_is_daylight(h[-1], t) for h in ordered.values()) or now - latest >= t.night_silence_after:
            return RuleState(True, details, latest + t.comm_loss_after)
        # the site went quiet outside daylight: loggers that sleep at night do that
        return RuleState(False, {**details, "reason": "night"}, max(h[-1].window_end for h in ordered.values()))
    gaps = _plant_gaps(ordered, t.comm_loss_after)
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


def plant_outage_state(histories: Mapping[str, Sequence[WindowStat]],
                       thresholds: Thresholds = DEFAULT_THRESHOLDS) -> RuleState:
    """Plant outage: at the last window start where ≥ 2 inverters report and all are in
    daylight (expected ≥ ``daylight_fraction`` of rated: with an irradiance sensor under
    an overcast sky expected may stay below the trip level), every one of them is down (max power
    ≤ ``trip_output_fraction`` of rated) — a plant-wide trip (grid fault, breaker), which
    the per-inverter trip rule deliberately does not report."""
    t = thresholds
    slots: dict[datetime, list[WindowStat]] = defaultdict(list)
    for h in histories.values():
        for w in h:
            slots[w.window_start].append(w)
    eligible = [s for s in sorted(slots) if len(slots[s]) >= 2 and all(_is_daylight(w, t) for w in slots[s])]
    if not eligible:
        return RuleState(False, {"reason": "no_production_expected"})
    last = eligible[-1]
    at = max(w.window_end for w in slots[last])
    if not all(_is_down(w, t) for w in slots[last]):
        return RuleState(False, {"clear_since": last}, at)
    since = last
    for s in reversed(eligible[:-1]):
        if not all(_is_down(w, t) for w in slots[s]):
            break
        since = s
    return RuleState(True, {"since": since, "inverters": sorted(w.inverter_id for w in slots[last])}, at)


_SUPPRESSED_BY_PLANT = frozenset({RULE_TRIP, RULE_UNDERPERFORMANCE, RULE_FROZEN, RULE_COMM_LOSS})


def evaluate_plant(plant_id: str, histories: Mapping[str, Sequence[WindowStat]],
                   thresholds: Thresholds = DEFAULT_THRESHOLDS,
                   now: datetime | None = None) -> dict[AlertKey, tuple[datetime, RuleState]]:
    """Every rule for one plant (``histories``: inverter id → its windows), keyed and timed
    for :func:`advance`. Plant rules use inverter id :data:`PLANT_SCOPE`."""
    ordered = {inv: _ordered(h) for inv, h in histories.items() if h}
    slots: dict[datetime, list[WindowStat]] = defaultdict(list)
    for h in ordered.values():
        for w in h:
            slots[w.window_start].append(w)
    out: dict[AlertKey, tuple[datetime, RuleState]] = {}
    fallback = max((h[-1].window_end for h in ordered.values()), default=now)
    for inv, h in ordered.items():
        for rule, state in evaluate_windows(h, slots, thresholds, now).items():
            out[(plant_id, inv, rule)] = (state.at or h[-1].window_end, state)
    plant_down = None
    for rule, state in ((RULE_PLANT_OFFLINE, plant_offline_state(ordered, thresholds, now)),
                        (RULE_PLANT_OUTAGE, plant_outage_state(ordered, thresholds))):
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


# --------------------------------------------------------------------------- lifecycle


def alert_key(plant_id: str, inverter_id: str, rule: str, opened_at: datetime) -> str:
    """Stable identity of an alert: ``plant|inverter|rule|opened_at (ISO, UTC)``."""
    return f"{plant_id}|{inverter_id}|{rule}|{opened_at.isoformat()}"


def advance(open_alerts: Mapping[AlertKey, Alert], states: Mapping[AlertKey, tuple[datetime, RuleState]],
            ) -> tuple[dict[AlertKey, Alert], list[Alert], list[Alert]]:
    """Fold rule states into alerts: an active state without an open alert opens one
    (``opened_at`` = the state's time; ``details`` = severity + the state's details); an
    active state with an open alert changes nothing (one alert per incident); an inactive
    state closes the open alert (``resolved_at`` = its time, ``details.resolution`` = its
    details) unless it is older than the alert's opening (a stale, replayed state).

    Pure and idempotent: the inputs are not modified, and applying the same states again
    to the returned open alerts opens and resolves nothing. Returns
    ``(open_alerts, opened, resolved)``; the lists are in key order."""
    current = dict(open_alerts)
    opened: list[Alert] = []
    resolved: list[Alert] = []
    for key, (at, state) in sorted(states.items(), key=lambda kv: tuple(str(part) for part in kv[0])):
        alert = current.get(key)
        if state.active:
            if alert is None:
                plant_id, inverter_id, rule = key
                alert = Alert(plant_id, inverter_id, rule, at, None,
                              {"severity": SEVERITY.get(rule, "warning"), **state.details},
                              alert_key(plant_id, inverter_id, rule, at))
                current[key] = alert
                opened.append(alert)
        elif alert is not None and at >= alert.opened_at:
            done = alert._replace(resolved_at=at, details={**alert.details, "resolution": dict(state.details)})
            del current[key]
            resolved.append(done)
    return current, opened, resolved


def mttr(alerts: Iterable[Alert], rules: Iterable[str] | None = None) -> timedelta | None:
    """Mean time to resolve (``resolved_at − opened_at``) of the resolved alerts, optionally
    only those of ``rules``; ``None`` when none is resolved."""
    wanted = set(rules) if rules is not None else None
    durations = [a.resolved_at - a.opened_at for a in alerts
                 if a.resolved_at is not None and (wanted is None or a.rule in wanted)]
    if not durations:
        return None
    return sum(durations, timedelta(0)) / len(durations)


def _gap_classification(alert: Alert) -> str | None:
    resolution = alert.details.get("resolution") or {}
    return (resolution.get("last_gap") or {}).get("classification")


def availability(windows: Iterable[WindowStat], alerts: Iterable[Alert] = (),
                 thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, float | None]:
    """Per plant: share of daylight inverter-windows (expected ≥ ``daylight_fraction`` of
    rated) that were available. A window with data is unavailable when the inverter is
    down in it (max power ≤ ``trip_output_fraction`` of rated — the trip / plant-outage
    condition). Gaps without data count through resolved ``comm_loss`` (that inverter)
    and ``plant_offline`` (every inverter of the plant) alerts whose gap classified as
    ``outage``: ``round(gap / window length)`` unavailable daylight windows each.
    ``None`` for a plant without daylight windows."""
    t = thresholds
    total: dict[str, int] = defaultdict(int)
    available: dict[str, int] = defaultdict(int)
    inverters: dict[str, set[str]] = defaultdict(set)
    lengths: dict[str, timedelta] = {}
    for w in windows:
        inverters[w.plant_id].add(w.inverter_id)
        lengths.setdefault(w.plant_id, w.window_end - w.window_start)
        total.setdefault(w.plant_id, 0)
        if not _is_daylight(w, t):
            continue
        total[w.plant_id] += 1
        if not _is_down(w, t):
            available[w.plant_id] += 1
    for alert in alerts:
        if alert.rule not in (RULE_COMM_LOSS, RULE_PLANT_OFFLINE) or _gap_classification(alert) != GAP_OUTAGE:
            continue
        gap = alert.details["resolution"]["last_gap"]
        length = lengths.get(alert.plant_id, timedelta(minutes=5))
        slots = round((gap["until"] - gap["since"]) / length)
        count = len(inverters[alert.plant_id]) if alert.inverter_id == PLANT_SCOPE else 1
        total[alert.plant_id] += slots * max(count, 1)
    return {plant: (available[plant] / n if n else None) for plant, n in total.items()}
