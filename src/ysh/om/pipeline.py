"""The O&M job's Pathway graph: raw telemetry lines → validated, deduplicated events →
5-minute tumbling windows per inverter → rules → alerts (with the quarantine beside).

The graph only declares tables. A source table has one column ``data`` holding one
JSON event per row; the sinks are the caller's. The rules and the alert lifecycle are
the pure functions of :mod:`ysh.om.rules`, applied per plant over its windows in time
order. Replaying the same windows gives the same alerts and keys, so a restart neither
loses nor doubles any.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pathway as pw

from .expected import expected_power_w
from .fleet import Plant
from .rules import DEFAULT_THRESHOLDS, Thresholds, WindowStat, advance, evaluate_plant, window_from_samples
from .validation import Rejected, validate_event

WINDOW = timedelta(minutes=5)
#: windows of the past the rules look at when evaluating a moment (the longest rule,
#: frozen values chained over windows, needs well under this)
RULES_HORIZON = timedelta(hours=2)


@dataclass
class OmTables:
    events: pw.Table  # validated, deduplicated
    quarantine: pw.Table  # rejected events with a reason
    windows: pw.Table  # om_inverter_5min
    alerts: pw.Table  # om_alerts


@pw.udf(deterministic=True)
def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


def build_om_graph(lines: pw.Table, plants: list[Plant], *, now: datetime,
                   thresholds: Thresholds = DEFAULT_THRESHOLDS) -> OmTables:
    """``lines``: one raw JSON event per row (column ``data``). ``now`` bounds the
    ``future_ts`` check."""
    registry = {(p.plant_id, inv.inverter_id): inv.rated_power_w for p in plants for inv in p.inverters}
    by_id = {p.plant_id: p for p in plants}

    @pw.udf(deterministic=True)
    def validate(data: str) -> tuple:
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as exc:
            return (False, ("", "", "", "malformed", f"not JSON: {exc}", data[:500]))
        result = validate_event(raw, registry, now)
        if isinstance(result, Rejected):
            return (False, (result.event_id or "", result.plant_id or "", result.inverter_id or "",
                            result.reason, result.detail, data[:2000]))
        e = result
        return (True, (e.event_id, e.plant_id, e.inverter_id, e.ts, e.ac_power_w, e.energy_total_kwh,
                       e.irradiance_wm2))

    checked = lines.select(result=validate(pw.this.data))
    checked = checked.select(ok=pw.declare_type(bool, pw.this.result[0]), row=pw.declare_type(tuple, pw.this.result[1]))
    quarantine = checked.filter(~pw.this.ok).select(
        quarantine_key=_sha256(pw.declare_type(str, pw.this.row[5])),
        event_id=pw.declare_type(str, pw.this.row[0]), plant_id=pw.declare_type(str, pw.this.row[1]),
        inverter_id=pw.declare_type(str, pw.this.row[2]), reason=pw.declare_type(str, pw.this.row[3]),
        detail=pw.declare_type(str, pw.this.row[4]), raw=pw.declare_type(str, pw.this.row[5]))
    valid = checked.filter(pw.this.ok).select(
        event_id=pw.declare_type(str, pw.this.row[0]), plant_id=pw.declare_type(str, pw.this.row[1]),
        inverter_id=pw.declare_type(str, pw.this.row[2]), ts=pw.declare_type(pw.DateTimeUtc, pw.this.row[3]),
        ac_power_w=pw.declare_type(float, pw.this.row[4]),
        energy_total_kwh=pw.declare_type(float, pw.this.row[5]),
        irradiance_wm2=pw.declare_type(float | None, pw.this.row[6]))
    # the buses deliver at least once: one row per event id (duplicates are identical)
    events = valid.groupby(pw.this.event_id).reduce(
        pw.this.event_id, plant_id=pw.reducers.any(pw.this.plant_id),
        inverter_id=pw.reducers.any(pw.this.inverter_id), ts=pw.reducers.any(pw.this.ts),
        ac_power_w=pw.reducers.any(pw.this.ac_power_w), energy_total_kwh=pw.reducers.any(pw.this.energy_total_kwh),
        irradiance_wm2=pw.reducers.any(pw.this.irradiance_wm2))

    @pw.udf(deterministic=True)
    def window_stat(plant_id: str, inverter_id: str, start: pw.DateTimeUtc, end: pw.DateTimeUtc,
                    samples: tuple) -> tuple:
        plant = by_id[plant_id]
        rows = [(s[0], float(s[1]), float(s[2])) for s in samples]
        poa = [float(s[3]) for s in samples if s[3] is not None]
        start_dt, end_dt = start.to_pydatetime(), end.to_pydatetime()
        expected = expected_power_w(plant, inverter_id, start_dt, end_dt, sum(poa) / len(poa) if poa else None)
        w = window_from_samples(plant_id, inverter_id, start_dt, end_dt,
                                [(r[0].to_pydatetime(), r[1], r[2]) for r in rows], expected,
                                registry[(plant_id, inverter_id)], thresholds)
        return tuple(w._replace(expected_from_sensor=bool(poa)))

    windowed = events.windowby(
        pw.this.ts, window=pw.temporal.tumbling(duration=WINDOW),
        instance=pw.this.plant_id + "\x1f" + pw.this.inverter_id,
    ).reduce(
        plant_id=pw.reducers.any(pw.this.plant_id), inverter_id=pw.reducers.any(pw.this.inverter_id),
        window_start=pw.this._pw_window_start, window_end=pw.this._pw_window_end,
        samples=pw.reducers.tuple(pw.make_tuple(pw.this.ts, pw.this.ac_power_w, pw.this.energy_total_kwh,
                                                pw.this.irradiance_wm2)),
    )
    stats = windowed.select(stat=window_stat(pw.this.plant_id, pw.this.inverter_id, pw.this.window_start,
                                             pw.this.window_end, pw.this.samples))
    windows = stats.select(**{name: pw.declare_type(_WINDOW_TYPES[name], pw.this.stat[i])
                              for i, name in enumerate(WindowStat._fields)})

    @pw.udf(deterministic=True)
    def plant_alerts(plant_id: str, stats_: tuple) -> list[tuple]:
        return [(a.key, a.plant_id, a.inverter_id, a.rule, a.opened_at, a.resolved_at,
                 pw.Json(json.loads(json.dumps(a.details, default=_iso)))) for a in replay_alerts(
            plant_id, [WindowStat(*s) for s in stats_], thresholds)]

    per_plant = stats.select(plant_id=pw.declare_type(str, pw.this.stat[0]), stat=pw.this.stat).groupby(
        pw.this.plant_id).reduce(pw.this.plant_id, stats=pw.reducers.tuple(pw.this.stat))
    alerts = per_plant.select(alert=plant_alerts(pw.this.plant_id, pw.this.stats)).flatten(pw.this.alert).select(
        alert_key=pw.declare_type(str, pw.this.alert[0]), plant_id=pw.declare_type(str, pw.this.alert[1]),
        inverter_id=pw.declare_type(str, pw.this.alert[2]), rule=pw.declare_type(str, pw.this.alert[3]),
        opened_at=pw.declare_type(pw.DateTimeUtc, pw.this.alert[4]),
        resolved_at=pw.declare_type(pw.DateTimeUtc | None, pw.this.alert[5]),
        details=pw.declare_type(pw.Json, pw.this.alert[6]))
    return OmTables(events=events, quarantine=quarantine, windows=windows, alerts=alerts)


_WINDOW_TYPES = {
    "plant_id": str, "inverter_id": str, "window_start": pw.DateTimeUtc, "window_end": pw.DateTimeUtc,
    "samples": int, "avg_power_w": float, "min_power_w": float, "max_power_w": float, "energy_delta_kwh": float,
    "expected_power_w": float, "rated_power_w": float, "performance_index": float | None, "identical_run": int,
    "last_ts": pw.DateTimeUtc, "last_power_w": float | None, "energy_first_kwh": float | None,
    "energy_last_kwh": float | None, "expected_from_sensor": bool,
}


def _utc(value) -> datetime:
    value = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def replay_alerts(plant_id: str, windows: list[WindowStat], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list:
    """Every alert of one plant over its windows: the rules are evaluated at each window
    end, in time order, over the windows of the trailing :data:`RULES_HORIZON`, and the
    states are folded into alerts (:func:`ysh.om.rules.advance`). Open alerts have
    ``resolved_at`` None. Deterministic: the same windows give the same alerts and keys."""
    windows = sorted((w._replace(window_start=_utc(w.window_start), window_end=_utc(w.window_end),
                                 last_ts=_utc(w.last_ts)) for w in windows),
                     key=lambda w: (w.window_end, w.inverter_id))
    open_alerts: dict = {}
    done = []
    ends = sorted({w.window_end for w in windows})
    start = 0
    for end in ends:
        while windows[start].window_end <= end - RULES_HORIZON:
            start += 1
        histories: dict[str, list[WindowStat]] = {}
        for w in windows[start:]:
            if w.window_end > end:
                break
            histories.setdefault(w.inverter_id, []).append(w)
        states = evaluate_plant(plant_id, histories, thresholds, now=end)
        open_alerts, _, resolved = advance(open_alerts, states)
        done.extend(resolved)
    return sorted(done + list(open_alerts.values()), key=lambda a: (a.opened_at, a.key))
