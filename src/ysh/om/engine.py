"""The alert engine of one plant, as an incremental fold (pure Python, no I/O).

:class:`PlantFold` holds what the rules need to go on: the plant's windows of the
trailing :data:`RULES_HORIZON` (plus nothing older), the alerts open now, the alerts
resolved by the last step, and the last moment evaluated. :meth:`PlantFold.step`
takes the windows that arrived (each window once, when its late-data cutoff has passed)
and the fleet's clock ticks (the window ends seen anywhere in the fleet, so a plant that
went silent is still evaluated), evaluates the rules at every new moment in time order
(:func:`ysh.om.rules.evaluate_plant`) and folds the states into alerts
(:func:`ysh.om.rules.advance`).

State is bounded: windows older than the horizon are dropped, and so is a resolved
alert after the step that resolved it (the sinks keep the last version of each alert
and ignore its retraction). ``step`` never modifies its input fold (Pathway may evaluate
expressions on an old state again to retract them), it returns a new one.

Replaying the same windows gives the same alerts with the same keys (an alert key is
plant, inverter, rule and the opening moment), whether they arrive at once (``ysh om
detect``) or one 5-minute batch at a time (``ysh om follow``): that is what makes a restart
neither lose nor double an alert.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from .rules import DEFAULT_THRESHOLDS, Alert, Thresholds, WindowStat, advance, evaluate_plant, reporting_interval
from .rules.evaluate import could_produce, production_quiet

#: windows of the past the rules look at when evaluating a moment (the longest rule,
#: frozen values chained over windows, needs well under this); loggers reporting less
#: often get ``frozen_samples + 2`` of their windows (:meth:`PlantFold.horizon`)
RULES_HORIZON = timedelta(hours=2)


def utc(value):
    """A Pathway/pandas timestamp, a datetime or an ISO string, as an aware UTC datetime
    (naive ones are taken as UTC); None stays None."""
    if value is None:
        return None
    if type(value) is datetime and value.tzinfo is timezone.utc:
        return value  # what ``astimezone(timezone.utc)`` returns for it (the windows of the graph come so)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    value = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _normalized(w: WindowStat) -> WindowStat:
    start, end, last = w.window_start, w.window_end, w.last_ts
    if (type(start) is datetime and start.tzinfo is timezone.utc and type(end) is datetime
            and end.tzinfo is timezone.utc and type(last) is datetime and last.tzinfo is timezone.utc):
        return w  # what ``utc`` returns for each (the graph's windows come so): no copy
    return w._replace(window_start=utc(start), window_end=utc(end), last_ts=utc(last))


class PlantFold:
    """The alert state of one plant; see the module docstring."""

    __slots__ = ("plant_id", "thresholds", "keep_resolved", "lag", "windows", "open_alerts", "resolved",
                 "last_end", "pending", "clock", "intervals", "_ends", "_horizon", "_spacings", "_producing",
                 "_by_inverter")

    def __init__(self, plant_id: str, thresholds: Thresholds = DEFAULT_THRESHOLDS,
                 keep_resolved: bool = False, lag: timedelta = timedelta(0)):
        self.plant_id = plant_id
        self.thresholds = thresholds
        #: keep every resolved alert (a replay that wants the whole history); else only
        #: those resolved by the last step
        self.keep_resolved = keep_resolved
        #: how long a moment waits for the windows of inverters that reported recently
        #: but not yet for it (a bus delivering one inverter's data late); 0: no wait
        self.lag = lag
        self.windows: list[WindowStat] = []  # sorted by (window_end, inverter_id)
        self.open_alerts: dict = {}
        self.resolved: list[Alert] = []
        self.last_end: datetime | None = None
        self.pending: set[datetime] = set()  # moments not evaluated yet
        self.clock: datetime | None = None  # the newest moment seen (fleet-wide)
        #: each inverter's reporting interval, as last inferred from ≥ 2 of its windows:
        #: kept beyond the horizon, for a logger's first report after a silence
        self.intervals: dict[str, timedelta] = {}
        #: per step: the window ends of ``windows`` (for bisect) and the horizon
        self._ends: list[datetime] | None = None
        self._horizon: timedelta | None = None
        #: per step: id(window) → its spacing after the inverter's previous window, and
        #: inverter → its window length, for inverters whose windows all have one length
        self._spacings: tuple[dict[int, timedelta], dict[str, timedelta]] | None = None
        #: per step: how many of ``windows[:i]`` could make a production rule active
        #: (:func:`ysh.om.rules.evaluate.could_produce`), for a moment's night test
        self._producing: list[int] | None = None
        #: per step: inverter → (its windows in the fold's order, their ends), to cut a
        #: moment's histories by bisection instead of regrouping every window of the horizon
        self._by_inverter: dict[str, tuple[list[WindowStat], list[datetime]]] | None = None

    def _copy(self) -> PlantFold:
        new = PlantFold(self.plant_id, self.thresholds, self.keep_resolved, self.lag)
        new.windows, new.open_alerts = list(self.windows), dict(self.open_alerts)
        new.resolved = list(self.resolved) if self.keep_resolved else []
        new.last_end = self.last_end
        new.pending, new.clock = set(self.pending), self.clock
        new.intervals = dict(self.intervals)
        return new

    def step(self, windows: Iterable[WindowStat] = (), ticks: Iterable[datetime] = ()) -> PlantFold:
        """A new fold with ``windows`` added and the new moments (their ends and ``ticks``
        later than the last moment evaluated) evaluated in time order, each as soon as it
        is complete: every inverter that reported within the horizon before it has its
        window for it, or the fleet's clock passed it by ``lag``. A window ending at or
        before the last moment evaluated (later than that) only informs later moments."""
        new = self._copy()
        arrived = [_normalized(w) for w in windows]
        moments = {w.window_end for w in arrived} | {utc(t) for t in ticks}
        if moments:
            newest = max(moments)
            new.clock = newest if new.clock is None else max(new.clock, newest)
        new.pending |= {m for m in moments if new.last_end is None or m > new.last_end}
        new.windows = sorted(new.windows + arrived, key=lambda w: (w.window_end, w.inverter_id))
        # the windows do not change while the moments are evaluated: their ends (for bisect,
        # so a moment looks at its horizon only, not at every window of a plant-year
        # replayed at once) and the horizon are computed once per step
        new._ends = [w.window_end for w in new.windows]
        new._horizon = new._compute_horizon()
        new._spacings = _spacings(new.windows)
        counts, producing = [0], 0
        for w in new.windows:
            producing += could_produce(w, new.thresholds)
            counts.append(producing)
        new._producing = counts
        by_inverter: dict[str, tuple[list[WindowStat], list[datetime]]] = {}
        for w in new.windows:
            entry = by_inverter.get(w.inverter_id)
            if entry is None:
                by_inverter[w.inverter_id] = entry = ([], [])
            entry[0].append(w)
            entry[1].append(w.window_end)
        new._by_inverter = by_inverter
        try:
            for end in sorted(new.pending):
                if not new._complete(end):
                    break
                new.pending.discard(end)
                new._evaluate(end)
            if new.last_end is not None:
                floor = new.last_end - new._horizon
                new.windows = new.windows[bisect.bisect_right(new._ends, floor):]
        finally:
            new._ends = new._horizon = new._spacings = new._producing = new._by_inverter = None
        return new

    def horizon(self) -> timedelta:
        """How far back the rules look: :data:`RULES_HORIZON`, longer when the plant has
        long windows (a 15-minute logger's frozen run needs ``frozen_samples`` windows)."""
        horizon = getattr(self, "_horizon", None)  # a fold pickled before these slots existed has none
        return horizon if horizon is not None else self._compute_horizon()

    def _compute_horizon(self) -> timedelta:
        longest = max((w.window_end - w.window_start for w in self.windows), default=timedelta(0))
        return max(RULES_HORIZON, (self.thresholds.frozen_samples + 2) * longest)

    def _between(self, floor: datetime, end: datetime) -> list[WindowStat]:
        """The windows ending in ``(floor, end]``, in order."""
        if getattr(self, "_ends", None) is None:
            return [w for w in self.windows if floor < w.window_end <= end]
        return self.windows[bisect.bisect_right(self._ends, floor):bisect.bisect_right(self._ends, end)]

    def _quiet(self, floor: datetime, end: datetime, histories: dict[str, list[WindowStat]]) -> bool:
        """:func:`production_quiet` over the windows ending in ``(floor, end]`` (from the
        counts of the step, without looking at each window again)."""
        counts = getattr(self, "_producing", None)
        if counts is None or getattr(self, "_ends", None) is None:
            return production_quiet(histories, self.thresholds)
        lo, hi = bisect.bisect_right(self._ends, floor), bisect.bisect_right(self._ends, end)
        return counts[hi] == counts[lo]

    def _complete(self, end: datetime) -> bool:
        """Every inverter that reported within the horizon and is due at ``end`` has its
        window for it (due: its reporting interval has passed since its last window, so a
        logger reporting every 15 minutes is not waited for at the moments between)."""
        if not self.lag or self.clock >= end + self.lag:
            return True
        floor = end - self.horizon()
        by_inverter: dict[str, list[WindowStat]] = {}
        present = set()
        for w in self._between(floor, end):
            if w.window_end < end:
                by_inverter.setdefault(w.inverter_id, []).append(w)
            else:
                present.add(w.inverter_id)
        due = set()
        for inverter, history in by_inverter.items():
            last = history[-1]
            interval = reporting_interval(history)
            if end - last.window_end >= interval - (last.window_end - last.window_start) / 2:
                due.add(inverter)
        return bool(present) and due <= present

    def _histories(self, floor: datetime, end: datetime) -> dict[str, list[WindowStat]]:
        """Inverter → its windows ending in ``(floor, end]``, in order; the inverters in the
        order of their first such window in the fold's order (by end, then inverter)."""
        by_inverter = getattr(self, "_by_inverter", None)
        if by_inverter is None:
            histories: dict[str, list[WindowStat]] = {}
            for w in self._between(floor, end):
                histories.setdefault(w.inverter_id, []).append(w)
            return histories
        spans = []
        for inverter, (windows, ends) in by_inverter.items():
            lo = bisect.bisect_right(ends, floor)
            hi = bisect.bisect_right(ends, end, lo)
            if hi > lo:
                spans.append((ends[lo], inverter, windows[lo:hi]))
        if len(spans) > 1:
            spans.sort(key=_first_window)
        return {inverter: history for _, inverter, history in spans}

    def _evaluate(self, end: datetime) -> None:
        floor = end - self.horizon()
        histories = self._histories(floor, end)
        self.last_end = end
        if not histories:  # nothing heard within the horizon: no new information, keep the alerts as they are
            return
        # each inverter's reporting interval, once per moment for the fold and every rule
        observed = {inverter: self._interval(inverter, history) for inverter, history in histories.items()}
        for inverter, history in histories.items():
            if len(history) >= 2:
                self.intervals[inverter] = observed[inverter]
        # a night (no production rule can be active) with no alert open: the other rules'
        # inactive states would change nothing, so only the silence rules are evaluated
        quiet = not self.open_alerts and self._quiet(floor, end, histories)
        states = evaluate_plant(self.plant_id, histories, self.thresholds, now=end, intervals=self.intervals,
                                observed_intervals=observed, silence_only=quiet)
        self.open_alerts, opened, resolved = advance(self.open_alerts, states, self.thresholds.resolve_after)
        for alert in opened:  # when the rules saw it (opened_at is when it started)
            self.open_alerts[(alert.plant_id, alert.inverter_id, alert.rule)] = alert._replace(
                details={**alert.details, "detected_at": end})
        self.resolved.extend(resolved)

    def _interval(self, inverter: str, history: list[WindowStat]) -> timedelta:
        """``reporting_interval(history)`` (``history``: the inverter's windows of one
        moment, in the fold's order), from the spacings computed once per step when the
        inverter's windows all have one length (then the fold's order is
        :func:`ysh.om.rules.model._ordered`'s, and each window's predecessor in the history
        is its predecessor in the step): the same value, without recomputing each spacing
        at every moment of the horizon."""
        cached = getattr(self, "_spacings", None)
        if cached is None or inverter not in cached[1]:
            return reporting_interval(history)
        spacing, lengths = cached
        length = lengths[inverter]
        if len(history) < 2:
            return length
        return max(length, statistics.median([spacing[id(w)] for w in history[1:]]))

    def alerts(self) -> list[Alert]:
        """The open alerts and those resolved by the last step (all resolved ones with
        ``keep_resolved``), by opening time."""
        return sorted(self.resolved + list(self.open_alerts.values()), key=lambda a: (a.opened_at, a.key))


def _first_window(span: tuple) -> tuple:
    return span[0], span[1]


def _spacings(windows: list[WindowStat]) -> tuple[dict[int, timedelta], dict[str, timedelta]]:
    """For :meth:`PlantFold._interval`: id(window) → ``(last_ts − the previous window's
    last_ts) / samples`` (``reporting_interval``'s spacing, the previous window being the
    inverter's previous one in ``windows``), and inverter → window length, for the
    inverters whose windows all have one length (their order by end is their order by
    start)."""
    spacing: dict[int, timedelta] = {}
    lengths: dict[str, timedelta] = {}
    previous: dict[str, WindowStat] = {}
    mixed: set[str] = set()
    for w in windows:
        inverter = w.inverter_id
        length = w.window_end - w.window_start
        before = previous.get(inverter)
        if before is None:
            lengths[inverter] = length
        else:
            if lengths.get(inverter) != length:
                mixed.add(inverter)
            spacing[id(w)] = (w.last_ts - before.last_ts) / max(w.samples, 1)
        previous[inverter] = w
    for inverter in mixed:
        lengths.pop(inverter, None)
    return spacing, lengths


def replay_alerts(plant_id: str, windows: list[WindowStat], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                  ticks: Iterable[datetime] = ()) -> list[Alert]:
    """Every alert of one plant over ``windows`` at once (open alerts have
    ``resolved_at`` None). Deterministic: the same windows give the same alerts and keys."""
    return PlantFold(plant_id, thresholds, keep_resolved=True).step(windows, ticks).alerts()
