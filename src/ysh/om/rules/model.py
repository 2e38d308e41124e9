"""The rules' vocabulary: rule names, severities, :class:`Thresholds`, the window
(:class:`WindowStat`), verdicts and alerts, and the window helpers every rule shares
(daylight, down, peers, contiguity, the reporting interval). Pure Python, no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from datetime import datetime, timedelta
from typing import Any, NamedTuple


RULE_TRIP = "inverter_trip"
RULE_UNDERPERFORMANCE = "underperformance"
RULE_COMM_LOSS = "comm_loss"
RULE_FROZEN = "frozen_values"
RULE_CLIPPING = "clipping"
RULE_POWER_LIMITED = "power_limited"
RULE_PLANT_OFFLINE = "plant_offline"
RULE_PLANT_OUTAGE = "plant_outage"

INVERTER_RULES = (RULE_TRIP, RULE_UNDERPERFORMANCE, RULE_COMM_LOSS, RULE_FROZEN, RULE_CLIPPING,
                  RULE_POWER_LIMITED)
PLANT_RULES = (RULE_PLANT_OFFLINE, RULE_PLANT_OUTAGE)
SEVERITY = {
    RULE_TRIP: "critical", RULE_PLANT_OUTAGE: "critical", RULE_PLANT_OFFLINE: "critical",
    RULE_COMM_LOSS: "warning", RULE_UNDERPERFORMANCE: "warning", RULE_FROZEN: "warning",
    RULE_CLIPPING: "info", RULE_POWER_LIMITED: "info",
}
#: rules whose condition flickers with the sky: their alerts close only after
#: ``Thresholds.resolve_after`` of clear verdicts (one fault, one alert)
HYSTERESIS_RULES = frozenset({RULE_UNDERPERFORMANCE, RULE_CLIPPING, RULE_POWER_LIMITED})
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
    # real telemetry (issue 14)
    night_tare_w: float = 50.0
    night_tare_fraction: float = 0.01
    limit_counter_tolerance: float = 0.20
    resolve_after: timedelta = timedelta(minutes=30)
    comm_loss_intervals: int = 3
    # a stop judged without peers or an irradiance sensor (issue 14, part 5)
    stop_tare_fraction: float = 0.002
    stop_from_fraction: float = 0.08
    stop_min_duration: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        # the window counts are runs the rules read back: a run of none judges nothing
        # (underperformance over 0 windows would read an empty list)
        small = [f"{name}={getattr(self, name)}" for name in _WINDOW_COUNTS if getattr(self, name) < 1]
        if small:
            raise ValueError(f"O&M thresholds must be at least 1: {', '.join(small)}")


#: the integer thresholds that are runs of windows or samples the rules read back
#: (``comm_loss_intervals`` is a multiplier, 0 allowed; ``limit_memory_windows`` a memory)
_WINDOW_COUNTS = ("under_windows", "frozen_samples", "clipping_windows")


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
    #: (time, details) of the first clear verdict while the alert waits out
    #: ``resolve_after`` (:func:`advance`); internal, not stored
    clearing: tuple[datetime, dict[str, Any]] | None = None


AlertKey = tuple[str, str, str]
Peers = Mapping[datetime, Sequence[WindowStat]]




def performance_index(avg_power_w: float, expected_power_w: float, rated_power_w: float,
                      thresholds: Thresholds = DEFAULT_THRESHOLDS) -> float | None:
    """``avg / expected``; ``None`` when expected < ``pi_floor_fraction`` × rated (≈ night)."""
    if expected_power_w <= 0 or expected_power_w < thresholds.pi_floor_fraction * rated_power_w:
        return None
    return avg_power_w / expected_power_w


def identical_run(powers: list[float]) -> int:
    """How many of the last values of ``powers`` (≥ 1) equal the last one."""
    last, run = powers[-1], 0
    for p in reversed(powers):
        if p != last:
            break
        run += 1
    return run


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
    run = identical_run(powers)
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


def _at_tare(w: WindowStat, t: Thresholds) -> bool:
    """Every sample at the inverter's tare (≤ ``stop_tare_fraction`` of rated): what a
    stopped inverter reports; a running one under heavy cloud still gives 0.5–3 %."""
    return w.rated_power_w > 0 and w.max_power_w <= t.stop_tare_fraction * w.rated_power_w


class _Moment(NamedTuple):
    """One time slot of an inverter (its window) or of a plant (its inverters' windows at
    one start), as :func:`stop_evidence` reads it."""

    start: datetime
    end: datetime
    down: bool  # ≤ ``trip_output_fraction`` of rated (every inverter of a plant slot)
    at_tare: bool  # ≤ ``stop_tare_fraction`` of rated (every inverter of a plant slot)
    output_fraction: float  # max power / rated (a plant slot: the median over its inverters)


def _moment(w: WindowStat, t: Thresholds) -> _Moment:
    return _Moment(w.window_start, w.window_end, _is_down(w, t), _at_tare(w, t),
                   w.max_power_w / w.rated_power_w if w.rated_power_w > 0 else 0.0)


def stop_evidence(moments: Sequence[_Moment], t: Thresholds, interval: timedelta | None = None,
                  ) -> tuple[bool | None, dict[str, Any]]:
    """Whether the output *stopped* (a trip, an outage) rather than faded (dusk, a horizon,
    heavy cloud, an inverter still asleep at a dark dawn), judged from the output alone —
    for an inverter with no producing peer and no irradiance sensor, or a whole plant
    without a sensor, where the clear-sky expectation cannot tell a stop from the weather.

    ``moments`` are in time order and end at the moment judged, which is down. The *stop*
    is the run of contiguous down moments (contiguous at ``interval``, the reporting
    interval) ending there. It is a stop when (1) the moment just before the run, adjacent
    to it, produced ≥ ``stop_from_fraction`` of rated (the sun was out and the inverter
    ran), (2) the run's first moment is at the tare (≤ ``stop_tare_fraction``: it fell
    straight from production to standby, which a cloud or a setting sun does not do) and
    (3) the run has lasted ≥ ``stop_min_duration``. Returns ``(True, details)``, ``(False,
    details with a reason)``, or ``(None, details)`` when the run began before the first
    moment given (the rules' horizon) or follows a gap in the data: undecided, an open
    alert stays as it is (a trip with its reporting lost for a while must not resolve)."""
    if not moments or not moments[-1].down:
        return False, {"reason": "not_down"}
    i = len(moments) - 1
    while i > 0 and moments[i - 1].down and _contiguous_moments(moments[i - 1], moments[i], interval):
        i -= 1
    first, last = moments[i], moments[-1]
    details: dict[str, Any] = {"since": first.start, "stopped_s": (last.end - first.start).total_seconds(),
                               "evidence": "stop_from_production"}
    if i == 0:
        return None, {**details, "reason": "stop_began_before_the_horizon"}
    before = moments[i - 1]
    details["output_before"] = round(before.output_fraction, 4)
    if not _contiguous_moments(before, first, interval):
        # data missing just before the run: whether it stopped from production (or was
        # already down through the gap) is not known here; an open alert stays as it is
        return None, {**details, "reason": "gap_before_the_stop"}
    if before.output_fraction < t.stop_from_fraction:
        return False, {**details, "reason": "faded_not_stopped"}
    if not first.at_tare:
        return False, {**details, "reason": "not_at_tare"}
    if last.end - first.start < t.stop_min_duration:
        return False, {**details, "reason": "too_short"}
    return True, details


def _contiguous_moments(a: _Moment, b: _Moment, interval: timedelta | None) -> bool:
    gap = b.start - a.end
    return gap == timedelta(0) or (interval is not None and timedelta(0) < gap < interval)


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


def _contiguous(a: WindowStat, b: WindowStat, interval: timedelta | None = None) -> bool:
    """``b`` follows ``a`` with no report missing in between: adjacent windows, or, for a
    logger reporting every ``interval`` (longer than the window), less than one interval
    between the windows (a 15-minute logger fills one 5-minute window in three)."""
    gap = b.window_start - a.window_end
    return gap == timedelta(0) or (interval is not None and timedelta(0) < gap < interval)


def reporting_interval(history: Iterable[WindowStat], known: timedelta | None = None) -> timedelta:
    """How often the inverter's data arrives, from its windows: the window length, or the
    observed spacing when longer (median over consecutive windows with data of the time
    between their last samples per sample of the later one; a logger reporting every 15
    minutes into 5-minute windows gives 15 minutes). Gaps (lost data) are outliers the
    median ignores. With a single window (a logger's first report of the day) there is
    no spacing: ``known`` (what an earlier evaluation inferred), else the window length."""
    ordered = _ordered(history)
    if not ordered:
        return known or timedelta(minutes=5)
    length = min(w.window_end - w.window_start for w in ordered)
    spacings = [(b.last_ts - a.last_ts) / max(b.samples, 1) for a, b in zip(ordered, ordered[1:])]
    if not spacings:
        return max(length, known) if known is not None else length
    return max(length, statistics.median(spacings))


def _interval_with_known(observed: timedelta, windows: int, known: timedelta | None) -> timedelta:
    """``reporting_interval(history, known)`` from ``observed`` = ``reporting_interval(history)``
    (computed once by the caller) and the number of ``windows`` in ``history``."""
    if windows == 0:
        return known or timedelta(minutes=5)
    if windows == 1 and known is not None:
        return max(observed, known)
    return observed


def silence_limit(history: Iterable[WindowStat], t: Thresholds, known: timedelta | None = None,
                  observed: timedelta | None = None) -> timedelta:
    """The silence that counts as lost for this inverter: ``comm_loss_after``, or
    ``comm_loss_intervals`` reporting intervals of a slower logger
    (:func:`reporting_interval`, ``known``: the interval inferred earlier). ``observed``:
    ``reporting_interval(history)`` when the caller has it already (the same result,
    computed once per inverter and moment instead of once per rule)."""
    if observed is None:
        interval = reporting_interval(history, known)
    else:
        history = history if isinstance(history, Sequence) else list(history)
        interval = _interval_with_known(observed, len(history), known)
    return max(t.comm_loss_after, t.comm_loss_intervals * interval)


class _OrderedWindows(list):
    """A list of windows already sorted by :func:`_ordered` (so the next rule handed it
    does not sort it again). Slices and copies are plain lists."""

    __slots__ = ()


_window_start = attrgetter("window_start")  # (a C function: the key of every sort of windows)


def _ordered(history: Iterable[WindowStat]) -> list[WindowStat]:
    """``history`` sorted by window start (stable); a list this function returned before
    comes back as it is."""
    if type(history) is _OrderedWindows:
        return history  # type: ignore[return-value]
    return _OrderedWindows(sorted(history, key=_window_start))


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
    # the flatness first: most windows are not flat, and it is the cheapest test
    return (w.min_power_w >= (1.0 - t.limit_flat_fraction) * w.max_power_w
            and w.samples >= 2 and w.rated_power_w > 0 and not _is_down(w, t)
            and w.max_power_w < t.clipping_fraction * w.rated_power_w and not _stale(w, t))
