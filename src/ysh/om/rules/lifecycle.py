"""The alert lifecycle (open, hold through noise, resolve), MTTR and availability.
Pure Python, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from .model import (
    Alert, AlertKey, DEFAULT_THRESHOLDS, GAP_OUTAGE, HYSTERESIS_RULES, PLANT_SCOPE, RULE_COMM_LOSS,
    RULE_PLANT_OFFLINE, RuleState, SEVERITY, Thresholds, WindowStat, _is_daylight, _is_down,
)


def alert_key(plant_id: str, inverter_id: str, rule: str, opened_at: datetime) -> str:
    """Stable identity of an alert: ``plant|inverter|rule|opened_at (ISO, UTC)``."""
    return f"{plant_id}|{inverter_id}|{rule}|{opened_at.isoformat()}"


def advance(open_alerts: Mapping[AlertKey, Alert], states: Mapping[AlertKey, tuple[datetime, RuleState]],
            resolve_after: timedelta = DEFAULT_THRESHOLDS.resolve_after,
            ) -> tuple[dict[AlertKey, Alert], list[Alert], list[Alert]]:
    """Fold rule states into alerts: an active state without an open alert opens one
    (``opened_at`` = the state's time; ``details`` = severity + the state's details); an
    active state with an open alert changes nothing (one alert per incident); an inactive
    state closes the open alert (``resolved_at`` = its time, ``details.resolution`` = its
    details) unless it is older than the alert's opening (a stale, replayed state).

    One fault, one alert:

    * an inactive state that was *suppressed* (``details.suppressed_by``: another rule
      explains the symptom, e.g. a trip reads zero) or *undecided* (``details.undecided``:
      the rule cannot tell from the windows it holds, e.g. a stop that began before its
      horizon) neither opens nor closes an alert;
    * an alert of :data:`HYSTERESIS_RULES` (conditions that flicker with passing clouds)
      closes only once its rule has been clear for ``resolve_after`` (state time): it then
      resolves at the first clear verdict, with that verdict's details; an active
      verdict before that keeps it open (the same alert, the same key).

    Pure and idempotent: the inputs are not modified, and applying the same states again
    to the returned open alerts opens and resolves nothing. Returns
    ``(open_alerts, opened, resolved)``; the lists are in key order."""
    current = dict(open_alerts)
    opened: list[Alert] = []
    resolved: list[Alert] = []
    if not current and not any(state.active for _, state in states.values()):
        return current, opened, resolved  # nothing open, nothing active: nothing to do (most moments)
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
            elif alert.clearing is not None:  # the condition is back before the alert closed
                current[key] = alert._replace(clearing=None)
        elif alert is not None and at >= alert.opened_at:
            if "suppressed_by" in state.details or state.details.get("undecided"):
                continue
            resolved_at, resolution = at, dict(state.details)
            if key[2] in HYSTERESIS_RULES and resolve_after > timedelta(0):
                resolved_at, resolution = alert.clearing or (at, resolution)
                if at - resolved_at < resolve_after:
                    if alert.clearing is None:
                        current[key] = alert._replace(clearing=(at, resolution))
                    continue
            done = alert._replace(resolved_at=resolved_at, clearing=None,
                                  details={**alert.details, "resolution": resolution})
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
    """Per plant: share of daylight inverter-time (windows with expected ≥
    ``daylight_fraction`` of rated, weighted by their length: a 15-minute logger's window
    counts three 5-minute ones) that was available. A window with data is unavailable
    when the inverter is down in it (max power ≤ ``trip_output_fraction`` of rated — the
    trip / plant-outage condition). Gaps without data count through resolved
    ``comm_loss`` (that inverter) and ``plant_offline`` (every inverter of the plant)
    alerts whose gap classified as ``outage``: ``round(gap / window length)`` unavailable
    daylight windows of that inverter (of each inverter for the plant) each.
    ``None`` for a plant without daylight windows."""
    t = thresholds
    total: dict[str, float] = defaultdict(float)
    available: dict[str, float] = defaultdict(float)
    lengths: dict[str, dict[str, timedelta]] = defaultdict(dict)  # plant → inverter → window length
    for w in windows:
        length = w.window_end - w.window_start
        lengths[w.plant_id].setdefault(w.inverter_id, length)
        total.setdefault(w.plant_id, 0.0)
        if not _is_daylight(w, t):
            continue
        total[w.plant_id] += length.total_seconds()
        if not _is_down(w, t):
            available[w.plant_id] += length.total_seconds()
    for alert in alerts:
        if alert.rule not in (RULE_COMM_LOSS, RULE_PLANT_OFFLINE) or _gap_classification(alert) != GAP_OUTAGE:
            continue
        gap = alert.details["resolution"]["last_gap"]
        mine = lengths.get(alert.plant_id) or {alert.inverter_id: timedelta(minutes=5)}
        wanted = mine.values() if alert.inverter_id == PLANT_SCOPE else [
            mine.get(alert.inverter_id, timedelta(minutes=5))]
        total[alert.plant_id] += sum(round((gap["until"] - gap["since"]) / length) * length.total_seconds()
                                     for length in wanted)
    return {plant: (available[plant] / n if n else None) for plant, n in total.items()}
