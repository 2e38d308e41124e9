"""The O&M job's Pathway graph: raw telemetry lines → validated events → 5-minute tumbling
windows per inverter (deduplicated by event id, each window emitted once when its
late-data cutoff has passed) → the per-plant alert fold → alerts (with the quarantine
beside).

The graph only declares tables. A source table has one column ``data`` holding one JSON
event per row; the sinks are the caller's. The same graph runs statically over files
(``ysh om detect``: at the end of the input every window is flushed) and streaming over
MQTT, Kafka or a folder (``ysh om follow``).

Event time: a window ``[t, t + 5 min)`` of an inverter is final when the fleet's newest
event time reaches ``t + 5 min + late_cutoff``; events for it arriving later are dropped
(Pathway's ``exactly_once_behavior``) and written to the quarantine with reason ``late``
(a valid event that is in no emitted window while its window's cutoff has passed).
Inverters whose registry entry gives a longer reporting interval (``report_interval_s``,
e.g. 15-minute loggers) get windows of that length (rounded up to whole 5 minutes),
windowed apart with the same cutoff; their clock is their own group's newest event. Each window is then evaluated once, by
:class:`ysh.om.engine.PlantFold` (the rules and the alert lifecycle, pure functions of
:mod:`ysh.om.rules`), fed per plant through a stateful reducer together with the
fleet-wide clock ticks (window ends), so a plant that goes silent is still evaluated.
The fold's state is bounded (two hours of windows, open alerts, recently resolved ones).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import itemgetter

import pandas as pd
import pathway as pw

from .engine import PlantFold
from .expected import expected_power_w
from .fleet import WINDOW_S, Plant
from .rules import DEFAULT_THRESHOLDS, Thresholds, WindowStat, window_from_samples
from .validation import (CLOCK_SKEW, POWER_ABOVE_RATED_TOLERANCE, Limits, Rejected, fast_event, night_tare_w,
                         validate_event)

#: quarantine reason of a valid event that came after its window's late-data cutoff
LATE = "late"

WINDOW = timedelta(minutes=5)
#: how long after a window's end its events are still accepted (event time)
LATE_CUTOFF = timedelta(minutes=2)


@dataclass
class OmTables:
    quarantine: pw.Table  # rejected events with a reason
    windows: pw.Table  # om_inverter_5min
    alerts: pw.Table  # om_alerts


def _hash(text: str) -> str:
    """The quarantine key of a raw line."""
    return hashlib.sha256(text.encode()).hexdigest()


_sha256 = pw.udf(_hash, deterministic=True)


def _storable(text: str) -> str:
    """Text PostgreSQL stores: lone surrogates and NUL escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


_event_id = itemgetter(0)  # a sample's event id


def _sample_order(s: tuple) -> tuple:
    """A fixed order of a window's samples, whatever the operator's (a None irradiance
    sorts first, never compared)."""
    return (s[0], s[1], s[2], s[3], s[4] is not None, s[4] or 0.0)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


def build_om_graph(lines: pw.Table, plants: list[Plant], *, now: datetime | None = None,
                   thresholds: Thresholds = DEFAULT_THRESHOLDS, late_cutoff: timedelta = LATE_CUTOFF,
                   evaluation_lag: timedelta = timedelta(0), late_events: bool = True,
                   static: bool = False) -> OmTables:
    """``lines``: one raw JSON event per row (column ``data``). ``now`` bounds the
    ``future_ts`` check (None: the wall clock when the event is validated, for streaming).
    ``alerts`` holds the open alerts and those resolved by the latest step of their
    plant's fold: a resolved alert is retracted later, so its sinks keep the last version
    of each alert key and ignore retractions. ``evaluation_lag``: how long the rules wait, in event time, for the
    window of an inverter that reported recently but is late for a moment (a bus that
    delivers one inverter's data behind the others); 0 for a static run, where every
    window is there at the end. ``late_events``: quarantine the events dropped after
    their window's cutoff (reason ``late``; one join per valid event — off only to
    measure what it costs). ``static``: the whole input is there before any window is
    needed (``ysh om detect``, ``ysh om run`` over files): every window is final at the end
    of the input, so the windows are a plain ``groupby`` on the window's slot (no
    event-time cutoff, nothing can be late) instead of ``windowby`` with
    ``exactly_once_behavior``; the windows and alerts are the same."""
    registry = {(p.plant_id, inv.inverter_id): inv.rated_power_w for p in plants for inv in p.inverters}
    window_s = {(p.plant_id, inv.inverter_id): inv.window_s for p in plants for inv in p.inverters}
    lengths = sorted(set(window_s.values())) or [WINDOW_S]
    by_id = {p.plant_id: p for p in plants}
    # a device clock running ahead moves the fleet's event time, and with it every window's
    # cutoff: with no more skew allowed than the cutoff, a window still closes no earlier
    # than its end in true time, so on-time data of the other inverters is never dropped
    skew = min(CLOCK_SKEW, late_cutoff)

    limits = {key: Limits(night_tare_w(rated, thresholds), float(rated) * POWER_ABOVE_RATED_TOLERANCE, window_s[key])
              for key, rated in registry.items()}
    wall_clock = now is None
    latest_s = 0.0 if wall_clock else (now + skew).timestamp()  # wall clock: now + skew, per line
    skew_s = skew.total_seconds()
    keep_line = not static and late_events  # the late-event quarantine needs the raw line

    @pw.udf(deterministic=True)
    def classify(data: str) -> tuple:
        """One Python call per line (Pathway 0.33 has no native string → JSON, and its
        connectors' JSON parsers drop a line they cannot parse with a log line: a poison
        pill would vanish): a valid event → ``(True, plant, inverter, window start,
        sample)`` (streaming: ``(True, plant, inverter, 0.0, sample, t, window_s,
        event_id)``, windowed on ``t``); anything else → ``(False, quarantine row)``."""
        fields = fast_event(data, limits, time.time() + skew_s if wall_clock else latest_s)
        if fields is None:  # the full validator gives the reason (or takes the rare valid line
            # the fast path refuses); no line may stop the pipeline (poison pills: integers
            # of > 4,300 digits, deep nesting, NUL characters, ...)
            try:
                raw = json.loads(data)
            except RecursionError:
                return (False, ("", "", "", "malformed", "not JSON: nested too deeply", _storable(data[:500]),
                                _hash(data)))
            except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
                return (False, ("", "", "", "malformed", _storable(f"not JSON: {exc}"), _storable(data[:500]),
                                _hash(data)))
            result = validate_event(raw, registry, now or datetime.now(timezone.utc), skew, thresholds)
            if isinstance(result, Rejected):
                return (False, (*(_storable(v) for v in (result.event_id or "", result.plant_id or "",
                                                          result.inverter_id or "", result.reason, result.detail,
                                                          data[:2000])), _hash(data)))
            e = result
            fields = (e.event_id, e.plant_id, e.inverter_id, e.ts.timestamp(), e.ac_power_w, e.energy_total_kwh,
                      e.irradiance_wm2, window_s[(e.plant_id, e.inverter_id)])
        event_id, plant_id, inverter_id, t, ac, energy, irradiance, length = fields
        # only what the window needs crosses the window operator, as one value per event
        if static:
            return (True, plant_id, inverter_id, float(int(t // float(length)) * length),
                    (event_id, t, ac, energy, irradiance))
        return (True, plant_id, inverter_id, 0.0, (event_id, t, ac, energy, irradiance), t, length, event_id)

    checked = lines.select(pw.this.data, r=classify(pw.this.data)) if keep_line else \
        lines.select(r=classify(pw.this.data))
    rejected = checked.filter(~pw.declare_type(bool, pw.this.r[0])).select(
        row=pw.declare_type(tuple, pw.this.r[1]))
    rejected = rejected.select(
        quarantine_key=pw.declare_type(str, pw.this.row[6]), event_id=pw.declare_type(str, pw.this.row[0]),
        plant_id=pw.declare_type(str, pw.this.row[1]), inverter_id=pw.declare_type(str, pw.this.row[2]),
        reason=pw.declare_type(str, pw.this.row[3]), detail=pw.declare_type(str, pw.this.row[4]),
        raw=pw.declare_type(str, pw.this.row[5]))
    valid = checked.filter(pw.declare_type(bool, pw.this.r[0]))
    if static:  # every window is final at the end of the input: a plain groupby on the slot
        events = valid.select(plant_id=pw.declare_type(str, pw.this.r[1]),
                              inverter_id=pw.declare_type(str, pw.this.r[2]),
                              window_start=pw.declare_type(float, pw.this.r[3]),
                              sample=pw.declare_type(tuple, pw.this.r[4]))
    else:
        events = valid.select(plant_id=pw.declare_type(str, pw.this.r[1]),
                              inverter_id=pw.declare_type(str, pw.this.r[2]),
                              sample=pw.declare_type(tuple, pw.this.r[4]), t=pw.declare_type(float, pw.this.r[5]),
                              window_s=pw.declare_type(int, pw.this.r[6]),
                              **({"event_id": pw.declare_type(str, pw.this.r[7]), "data": pw.this.data}
                                 if keep_line else {}))

    @pw.udf(deterministic=True)
    def window_stat(plant_id: str, inverter_id: str, start: float, samples: tuple) -> tuple:
        """The window's columns, its end (epoch seconds, the fleet's clock) and the
        :class:`WindowStat` itself for the fold (wrapped: no conversion on the way)."""
        plant = by_id[plant_id]
        end = start + float(window_s[(plant_id, inverter_id)])
        # the buses deliver at least once: one sample per event id (an event id has one
        # ts, so all its copies fall in this window), in a fixed order, whatever the operator's
        ordered = sorted(samples, key=_event_id)
        if len({s[0] for s in ordered}) == len(ordered):  # no copies (the usual case): the order is the event ids'
            unique = ordered
        else:  # of an event id's copies, the last in the full order is kept
            unique = list({s[0]: s for s in sorted(samples, key=_sample_order)}.values())
        rows = [(_at(s[1]), float(s[2]), float(s[3])) for s in unique]
        poa = [float(s[4]) for s in unique if s[4] is not None]
        start_dt, end_dt = _at(start), _at(end)
        expected = expected_power_w(plant, inverter_id, start_dt, end_dt, sum(poa) / len(poa) if poa else None)
        w = window_from_samples(plant_id, inverter_id, start_dt, end_dt, rows, expected,
                                registry[(plant_id, inverter_id)], thresholds)._replace(expected_from_sensor=bool(poa))
        return (*w, end, pw.wrap_py_object(w))

    cutoff_s = late_cutoff.total_seconds()

    def window_group(group: pw.Table, length_s: int) -> tuple[pw.Table, pw.Table | None]:
        """The group's windows of ``length_s`` (streaming: ``windowby`` with the late-data
        cutoff), and its late events as quarantine rows."""
        windowed = group.windowby(
            pw.this.t, window=pw.temporal.tumbling(duration=float(length_s)),
            instance=pw.this.plant_id + "\x1f" + pw.this.inverter_id,
            behavior=pw.temporal.exactly_once_behavior(shift=cutoff_s),
        ).reduce(
            plant_id=pw.reducers.any(pw.this.plant_id), inverter_id=pw.reducers.any(pw.this.inverter_id),
            window_start=pw.this._pw_window_start, samples=pw.reducers.tuple(pw.this.sample),
        )
        return windowed, (_late_events(group, windowed, length_s, cutoff_s) if late_events else None)

    if static:  # every inverter's window slot is computed per event (its own length): one groupby
        windowed = events.groupby(pw.this.plant_id, pw.this.inverter_id, pw.this.window_start).reduce(
            pw.this.plant_id, pw.this.inverter_id, pw.this.window_start,
            samples=pw.reducers.tuple(pw.this.sample))
        lates = []
    else:
        groups = [(events, lengths[0])] if len(lengths) == 1 else [
            (events.filter(pw.this.window_s == length), length) for length in lengths]
        parts = [window_group(group, length) for group, length in groups]
        windowed = parts[0][0] if len(parts) == 1 else pw.Table.concat_reindex(*(w for w, _ in parts))
        lates = [late for _, late in parts if late is not None]
    quarantine = pw.Table.concat_reindex(rejected, *lates) if lates else rejected
    # a bus redelivers the same raw line: one quarantine row per line
    quarantine = quarantine.groupby(pw.this.quarantine_key).reduce(
        pw.this.quarantine_key, **{c: pw.reducers.any(pw.this[c]) for c in
                                   ("event_id", "plant_id", "inverter_id", "reason", "detail", "raw")})
    stats = windowed.select(pw.this.plant_id, r=window_stat(
        pw.this.plant_id, pw.this.inverter_id, pw.this.window_start, pw.this.samples))
    n = len(WindowStat._fields)
    windows = stats.select(**{name: pw.declare_type(_WINDOW_TYPES[name], pw.this.r[i])
                              for i, name in enumerate(WindowStat._fields)})
    stats = stats.select(pw.this.plant_id, window_end=pw.declare_type(float, pw.this.r[n]),
                         stat=pw.declare_type(pw.PyObjectWrapper, pw.this.r[n + 1]))

    # the fleet's clock: every window end seen anywhere, for every plant
    ends = stats.groupby(pw.this.window_end).reduce(pw.this.window_end, one=1)
    registry_table = pw.debug.table_from_pandas(pd.DataFrame({"plant_id": sorted(by_id), "one": 1}))
    if static:  # a finite input: all the ends, once per plant (not one row per plant and end)
        ends = ends.groupby(pw.this.one).reduce(pw.this.one, ticks=pw.reducers.tuple(pw.this.window_end))
    else:
        ends = ends.select(pw.this.one, ticks=pw.make_tuple(pw.this.window_end))
    ticks = ends.join(registry_table, pw.left.one == pw.right.one).select(
        plant_id=pw.right.plant_id, stat=pw.declare_type(pw.PyObjectWrapper | None, None),
        ticks=pw.declare_type(tuple | None, pw.left.ticks))
    feed = pw.Table.concat_reindex(
        stats.select(pw.this.plant_id, stat=pw.declare_type(pw.PyObjectWrapper | None, pw.this.stat),
                     ticks=pw.declare_type(tuple | None, None)),
        ticks)

    @pw.reducers.stateful_many
    def fold(state, rows):
        # rows: ([plant_id, stat, ticks], count); windows are final, so only insertions come
        # (a static run's tuple of ticks is retracted only to be replaced by a longer one)
        current = state.value if state is not None else None
        plant_id = None
        arrived, moments = [], []
        for (plant_id, stat, tick_ends), count in rows:
            if count <= 0:
                continue
            if stat is not None:
                arrived.append(stat.value)
            if tick_ends is not None:
                moments.extend(_at(tick) for tick in tick_ends)
        if current is None:
            current = PlantFold(plant_id, thresholds, lag=evaluation_lag)
        return pw.wrap_py_object(current.step(arrived, moments))

    def alert_rows(state) -> tuple:
        return tuple((a.key, a.plant_id, a.inverter_id, a.rule, a.opened_at, a.resolved_at,
                      pw.Json(json.loads(json.dumps(a.details, default=_iso)))) for a in state.value.alerts())

    folds = feed.groupby(pw.this.plant_id).reduce(
        pw.this.plant_id, state=fold(pw.this.plant_id, pw.this.stat, pw.this.ticks))
    alerts = folds.select(alert=pw.apply_with_type(alert_rows, tuple, pw.this.state)).flatten(pw.this.alert).select(
        alert_key=pw.declare_type(str, pw.this.alert[0]), plant_id=pw.declare_type(str, pw.this.alert[1]),
        inverter_id=pw.declare_type(str, pw.this.alert[2]), rule=pw.declare_type(str, pw.this.alert[3]),
        opened_at=pw.declare_type(pw.DateTimeUtc, pw.this.alert[4]),
        resolved_at=pw.declare_type(pw.DateTimeUtc | None, pw.this.alert[5]),
        details=pw.declare_type(pw.Json, pw.this.alert[6]))
    alerts = alerts.with_id_from(pw.this.alert_key)
    return OmTables(quarantine=quarantine, windows=windows, alerts=alerts)


@pw.udf(deterministic=True)
def _storable_udf(text: str) -> str:
    return _storable(text[:2000])


@pw.udf(deterministic=True)
def _event_ids(samples: tuple) -> list[str]:
    return sorted({s[0] for s in samples})


def _late_events(events: pw.Table, windowed: pw.Table, length_s: int, cutoff_s: float) -> pw.Table:
    """Quarantine rows (reason ``late``) for the valid events of ``events`` that are in no
    emitted window of ``windowed`` although their window's cutoff (window end +
    ``cutoff_s``) has passed the group's newest event time: Pathway's window operator
    dropped them. Only events not in an emitted window are compared with the clock (the
    current windows' events and the late ones), so the work per clock tick stays small."""
    members = windowed.select(event_id=_event_ids(pw.this.samples)).flatten(pw.this.event_id)
    members = members.groupby(pw.this.event_id).reduce(pw.this.event_id)
    clock = events.reduce(t_max=pw.reducers.max(pw.this.t))
    unmatched = events.join_left(members, pw.left.event_id == pw.right.event_id).select(
        *pw.left, member=pw.right.event_id).filter(pw.this.member.is_none())

    @pw.udf(deterministic=True)
    def detail(t: float, t_max: float) -> str:
        end = (math.floor(t / length_s) + 1) * length_s
        return (f"window [{_at(end - length_s).isoformat()}, {_at(end).isoformat()}) closed at "
                f"{_at(end + cutoff_s).isoformat()} (event time); it came when the clock was {_at(t_max).isoformat()}")

    @pw.udf(deterministic=True)
    def closed(t: float, t_max: float) -> bool:
        return (math.floor(t / length_s) + 1) * length_s + cutoff_s <= t_max

    late = unmatched.select(*pw.this, t_max=clock.ix_ref(context=unmatched).t_max).filter(
        closed(pw.this.t, pw.this.t_max))
    return late.select(
        quarantine_key=_sha256(pw.this.data), event_id=pw.this.event_id, plant_id=pw.this.plant_id,
        inverter_id=pw.this.inverter_id, reason=LATE, detail=detail(pw.this.t, pw.this.t_max),
        raw=_storable_udf(pw.this.data))


_WINDOW_TYPES = {
    "plant_id": str, "inverter_id": str, "window_start": pw.DateTimeUtc, "window_end": pw.DateTimeUtc,
    "samples": int, "avg_power_w": float, "min_power_w": float, "max_power_w": float, "energy_delta_kwh": float,
    "expected_power_w": float, "rated_power_w": float, "performance_index": float | None, "identical_run": int,
    "last_ts": pw.DateTimeUtc, "last_power_w": float | None, "energy_first_kwh": float | None,
    "energy_last_kwh": float | None, "expected_from_sensor": bool,
}
