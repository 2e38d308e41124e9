"""The O&M job's Pathway graph: raw telemetry lines → validated events → 5-minute tumbling
windows per inverter (deduplicated by event id, each window emitted once when its
late-data cutoff has passed) → the per-plant alert fold → alerts (with the quarantine
beside).

The graph only declares tables. A source table has one column ``data``: a JSON event per
row, a bus message per row (streaming: a datalogger's buffer of lines, split in the graph)
or a chunk of a file's lines (``packed``, the static runs); the sinks are the caller's.
The same graph runs statically over files (``ysh om detect``: at the end of the input
every window is flushed) and streaming over MQTT, Kafka or a folder (``ysh om follow``).
Lines are validated in one Python call per row and grouped by window there, so the
engine carries one row per window part, not per event.

Event time: a window ``[t, t + 5 min)`` of an inverter is final when its stream's newest
event time reaches ``t + 5 min + late_cutoff``; events for it arriving later are dropped
(Pathway's ``exactly_once_behavior``) and written to the quarantine with reason ``late``
(a valid event that is in no emitted window while its window's cutoff has passed). A
stream is one event-time clock: the whole input for files and MQTT, **each partition**
for a Kafka topic (``partitions``): Kafka orders a partition, not a topic, and reads a
backlog partition by partition, so one partition may be hours of event time ahead of
another; each partition's windows close, its late events are judged, and its plants'
folds are ticked by its own clock.
Inverters whose registry entry gives a longer reporting interval (``report_interval_s``,
e.g. 15-minute loggers) get windows of that length (rounded up to whole 5 minutes),
windowed apart with the same cutoff; their clock is their own group's newest event. Each window is then evaluated once, by
:class:`ysh.om.engine.PlantFold` (the rules and the alert lifecycle, pure functions of
:mod:`ysh.om.rules`), fed per plant through a stateful reducer together with the
clock ticks of its stream (window ends), so a plant that goes silent is still evaluated.
The fold's state is bounded (two hours of windows, open alerts, recently resolved ones).
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import itemgetter

import pandas as pd
import pathway as pw

from .engine import PlantFold
from .expected import clear_sky_key, expected_power_at
from .fleet import WINDOW_S, Plant
from .rules import DEFAULT_THRESHOLDS, Thresholds, WindowStat, performance_index
from .rules.model import identical_run
from .chunks import NOT_UTF8, lines_of, message_lines
from .validation import (CLOCK_SKEW, POWER_ABOVE_RATED_TOLERANCE, Limits, Rejected, fast_fields, night_tare_w,
                         storable_id, validate_event)

#: quarantine reason of a valid event that came after its window's late-data cutoff
LATE = "late"
#: what the per-line call makes of a line (the first value of its tuple)
VALID, REJECTED, BLANK = 1, 0, -1

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


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
#: a static window's key: inverter index × 2³² + the window's slot (epoch seconds // its length)
_SLOTS = 1 << 32


def _ns(epoch: float) -> int:
    """The instant ``_at(epoch)`` as Pathway stores a ``DateTimeUtc`` (integer ns since
    the epoch: Pathway's own conversion of that datetime, microseconds × 1000), without
    making the datetime for a whole second (every window bound, most samples)."""
    if epoch.is_integer():
        return int(epoch) * 1_000_000_000
    return ((_at(epoch) - _EPOCH) // _MICROSECOND) * 1000


def _ns_at(ns: int) -> datetime:
    """The datetime of a ``_ns`` value (exactly ``_at`` of its epoch seconds)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


_sample_t = itemgetter(1)  # a sample's epoch seconds


def _window_row(samples: tuple) -> tuple:
    """What :func:`ysh.om.rules.window_from_samples` computes from a window's samples
    ``(event_id, t, ac_power_w, energy_total_kwh, irradiance_wm2)``, one per event id (the
    buses deliver at least once: of an event id's copies the last in a fixed order is
    kept, whatever the operator's order), read from the epoch seconds: ``(samples, avg, min, max, energy delta, identical run,
    last t, last power, first counter, last counter, mean irradiance or None)``. The
    samples in time order as the reference orders them (epoch seconds of microsecond
    timestamps sort as their datetimes do; the sort is stable), the sum in that order: the
    same numbers, bit for bit (``tests/om/test_hot_path.py``)."""
    ordered = sorted(samples, key=_event_id)
    if len({s[0] for s in ordered}) != len(ordered):  # copies of an event id: the last in the full order is kept
        ordered = list({s[0]: s for s in sorted(samples, key=_sample_order)}.values())
    rows = sorted(ordered, key=_sample_t) if len(ordered) > 1 else ordered
    powers = [float(s[2]) for s in rows]
    last = powers[-1]
    run = identical_run(powers)
    first_counter, last_counter = float(rows[0][3]), float(rows[-1][3])
    poa = [float(s[4]) for s in ordered if s[4] is not None]
    return (len(rows), sum(powers) / len(powers), min(powers), max(powers), last_counter - first_counter, run,
            rows[-1][1], last, first_counter, last_counter, sum(poa) / len(poa) if poa else None)


def _window_stat(row: tuple) -> WindowStat:
    """The fold's :class:`WindowStat` from a window row of the graph (``window_stat``'s
    tuple: the instants as integer ns)."""
    return WindowStat(row[0], row[1], _ns_at(row[2]), _ns_at(row[3]), row[4], row[5], row[6], row[7], row[8],
                      row[9], row[10], row[11], row[12], _ns_at(row[13]), row[14], row[15], row[16], row[17])


def build_om_graph(lines: pw.Table, plants: list[Plant], *, now: datetime | None = None,
                   thresholds: Thresholds = DEFAULT_THRESHOLDS, late_cutoff: timedelta = LATE_CUTOFF,
                   evaluation_lag: timedelta = timedelta(0), late_events: bool = True,
                   static: bool = False, partitions: Sequence[int] | None = None, packed: bool = False) -> OmTables:
    """``lines``: raw telemetry in column ``data``: one JSON event per row (a line), or in
    a streaming run a bus message per row (text or bytes: its lines are split in the graph,
    :func:`ysh.om.chunks.message_lines`), or with ``packed`` a chunk of a file's lines;
    blank lines are skipped.
    ``now`` bounds the ``future_ts`` check (None: the wall clock when the event is validated, for streaming).
    ``alerts`` holds the open alerts and those resolved by the latest step of their
    plant's fold: a resolved alert is retracted later, so its sinks keep the last version
    of each alert key and ignore retractions. ``evaluation_lag``: how long the rules wait, in event time, for the
    window of an inverter that reported recently but is late for a moment (a bus that
    delivers one inverter's data behind the others); 0 for a static run, where every
    window is there at the end. ``late_events``: quarantine the events dropped after
    their window's cutoff (reason ``late``; one join per valid event — off only to
    measure what it costs). ``static``: the whole input is there before any window is
    needed (``ysh om detect``, ``ysh om run`` over files): every window is final at the end
    of the input, so the windows are a plain ``groupby`` on one integer key (the
    inverter and the window's slot; no event-time cutoff, nothing can be late) instead of
    ``windowby`` with ``exactly_once_behavior``; the windows and alerts are the same.
    ``partitions`` (streaming from Kafka): the topic's partitions ``lines`` come from, in an
    int column ``partition``: one event-time clock per partition (its own window groups,
    late-event check and fleet ticks; a partition not listed, e.g. one added to the topic
    while running, shares the first one's clock). None or one partition: one clock.
    ``packed`` (static only): ``lines`` holds chunks of whole lines (column ``data``,
    bytes: :class:`ysh.om.chunks.TelemetryChunksSubject`) instead of one line per row;
    the lines of a chunk are validated in one Python call and grouped there by window,
    so the engine carries one row per window and chunk instead of one per event (the
    same windows, alerts and quarantine; a line that is not UTF-8 is quarantined as
    ``malformed`` where the per-line reader drops it)."""
    if packed and not static:
        raise ValueError("packed chunks of lines need static=True (a finite input)")
    registry = {(p.plant_id, inv.inverter_id): inv.rated_power_w for p in plants for inv in p.inverters}
    window_s = {(p.plant_id, inv.inverter_id): inv.window_s for p in plants for inv in p.inverters}
    lengths = sorted(set(window_s.values())) or [WINDOW_S]
    by_id = {p.plant_id: p for p in plants}
    # an inverter is a number in the graph (its window key, its window operator's instance)
    inverters = [(p, inv.inverter_id, inv.window_s, float(inv.rated_power_w), clear_sky_key(p, inv.inverter_id))
                 for p in plants for inv in p.inverters]
    index = {(p.plant_id, inverter_id): k for k, (p, inverter_id, *_) in enumerate(inverters)}
    # a device clock running ahead moves the fleet's event time, and with it every window's
    # cutoff: with no more skew allowed than the cutoff, a window still closes no earlier
    # than its end in true time, so on-time data of the other inverters is never dropped
    skew = min(CLOCK_SKEW, late_cutoff)

    # the fast path takes registry ids the validator takes (any other goes to the validator)
    limits = {key: Limits(night_tare_w(rated, thresholds), float(rated) * POWER_ABOVE_RATED_TOLERANCE, window_s[key],
                          index[key])
              for key, rated in registry.items() if storable_id(key[0]) and storable_id(key[1])}
    wall_clock = now is None
    latest_s = 0.0 if wall_clock else (now + skew).timestamp()  # wall clock: now + skew, per line
    skew_s = skew.total_seconds()
    keep_line = not static and late_events  # the late-event quarantine needs the raw line
    clocks = list(dict.fromkeys(partitions or ())) if not static else []
    if len(clocks) < 2:
        clocks = []  # one clock: the graph has no partition column

    def reject(data: str) -> tuple:
        """The quarantine row of a line the fast path refused (the validator gives the
        reason; no line may stop the pipeline: poison pills such as integers of > 4,300
        digits, deep nesting, NUL characters), ``(BLANK,)`` for a blank line (skipped, as
        the sources' blank lines always were), or the valid event's fields when the fast
        path refused a line the validator takes."""
        if not data.strip():
            return (BLANK,)
        if data.startswith(NOT_UTF8):  # the reader found bytes that are not UTF-8
            # keyed by the marked text: a UTF-8 line that reads like its \xNN text keeps its own row
            return (REJECTED, ("", "", "", "malformed", "not UTF-8 (raw shows the bytes that are not as \\xNN)",
                               _storable(data[len(NOT_UTF8):][:500]), _hash(data)))
        try:
            raw = json.loads(data)
        except RecursionError:
            return (REJECTED, ("", "", "", "malformed", "not JSON: nested too deeply", _storable(data[:500]),
                            _hash(data)))
        except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
            return (REJECTED, ("", "", "", "malformed", _storable(f"not JSON: {exc}"), _storable(data[:500]),
                            _hash(data)))
        result = validate_event(raw, registry, now or datetime.now(timezone.utc), skew, thresholds)
        if isinstance(result, Rejected):
            return (REJECTED, (*(_storable(v) for v in (result.event_id or "", result.plant_id or "",
                                                      result.inverter_id or "", result.reason, result.detail,
                                                      data[:2000])), _hash(data)))
        e = result
        key = (e.plant_id, e.inverter_id)
        return (VALID, e.event_id, e.ts.timestamp(), e.ac_power_w, e.energy_total_kwh, e.irradiance_wm2,
                index[key], window_s[key])

    def fields_of(data: str, latest: float) -> tuple:
        """A line → ``(VALID, event_id, t, ac_power_w, energy_total_kwh, irradiance_wm2,
        inverter index, window length)`` by the fast path, else as :func:`reject` says."""
        fields = fast_fields(data, limits, latest)
        if fields is None:
            return reject(data)
        event_id, _, _, t, ac, energy, irradiance, own = fields
        return (VALID, event_id, t, ac, energy, irradiance, own.inverter_index, own.window_s)

    if static:
        @pw.udf(deterministic=True)
        def classify(data: str) -> tuple:
            """One Python call per line (Pathway 0.33 has no native string → JSON, and its
            connectors' JSON parsers drop a line they cannot parse with a log line: a poison
            pill would vanish): a valid event → ``(VALID, window key, sample)``, the window
            key an integer (the inverter's index × 2³² + the window's slot), the sample
            ``(event_id, t, ac_power_w, energy_total_kwh, irradiance_wm2)``; a blank line →
            ``(BLANK,)``; anything else → ``(REJECTED, quarantine row)``."""
            checked = fields_of(data, latest_s)
            if checked[0] != VALID:
                return checked
            _, event_id, t, ac, energy, irradiance, k, length = checked
            return (VALID, k * _SLOTS + int(t // float(length)), (event_id, t, ac, energy, irradiance))
    else:
        @pw.udf(deterministic=True)
        def classify_message(data: bytes | str) -> tuple:
            """A streaming row (a bus message, which may carry a datalogger's buffer of
            lines, or a line of a followed file) → ``(parts, quarantine rows)``: its lines
            (:func:`ysh.om.chunks.message_lines`) validated as the static call does, the
            valid samples grouped by inverter and window slot. A part: ``(inverter index,
            its newest event time, window length, plant_id, inverter_id, samples pickled,
            part id, its events pickled for the late check: (event_id, t, line), its window's
            end)``; the window operator and the late check see one row per part, not per
            event."""
            latest = time.time() + skew_s if wall_clock else latest_s
            groups: dict[tuple[int, int], tuple[list, list]] = {}
            rejected = []
            for line in message_lines(data):
                checked = fields_of(line, latest)
                if checked[0] == VALID:
                    _, event_id, t, ac, energy, irradiance, k, length = checked
                    key = (k, int(t // float(length)))
                    group = groups.get(key)
                    if group is None:
                        group = groups[key] = ([], [])
                    group[0].append((event_id, t, ac, energy, irradiance))
                    if keep_line:
                        group[1].append((event_id, t, line))
                elif checked[0] == REJECTED:
                    rejected.append(checked[1])
            parts = []
            for (k, slot), (samples, events) in groups.items():
                plant, inverter_id, length, *_ = inverters[k]
                parts.append((k, max(map(_sample_t, samples)), length, plant.plant_id, inverter_id, _dumps(samples),
                              _part_id(samples) if keep_line else "", _dumps(events) if keep_line else b"",
                              float((slot + 1) * length)))
            return tuple(parts), tuple(rejected)

    @pw.udf(deterministic=True)
    def classify_chunk(data: bytes) -> tuple:
        """The lines of a chunk → ``(((window key, samples), …), (quarantine row, …))``:
        each valid event's sample (as the per-line ``classify`` makes it) grouped by its
        window key, the group pickled (see ``_dumps``); blank lines skipped."""
        groups: dict[int, list] = {}
        rejected = []
        for line in lines_of(data):
            checked = fields_of(line, latest_s)
            if checked[0] == VALID:
                _, event_id, t, ac, energy, irradiance, k, length = checked
                key = k * _SLOTS + int(t // float(length))
                sample = (event_id, t, ac, energy, irradiance)
                group = groups.get(key)
                if group is None:
                    groups[key] = [sample]
                else:
                    group.append(sample)
            elif checked[0] == REJECTED:
                rejected.append(checked[1])
        return tuple((key, _dumps(samples)) for key, samples in groups.items()), tuple(rejected)

    carried = {"partition": pw.this.partition} if clocks else {}
    if packed:
        parts = lines.select(r=classify_chunk(pw.this.data))
        rejected = parts.select(row=pw.declare_type(tuple, pw.this.r[1])).flatten(pw.this.row)
    elif static:
        checked = lines.select(r=classify(pw.this.data))
        rejected = checked.filter(pw.declare_type(int, pw.this.r[0]) == REJECTED).select(
            row=pw.declare_type(tuple, pw.this.r[1]))
    else:
        parts = lines.select(r=classify_message(pw.this.data), **carried)
        rejected = parts.select(row=pw.declare_type(tuple, pw.this.r[1])).flatten(pw.this.row)
    rejected = rejected.select(
        quarantine_key=pw.declare_type(str, pw.this.row[6]), event_id=pw.declare_type(str, pw.this.row[0]),
        plant_id=pw.declare_type(str, pw.this.row[1]), inverter_id=pw.declare_type(str, pw.this.row[2]),
        reason=pw.declare_type(str, pw.this.row[3]), detail=pw.declare_type(str, pw.this.row[4]),
        raw=pw.declare_type(str, pw.this.row[5]))
    if packed:  # one row per window and chunk: (key, samples)
        events = parts.select(w=pw.declare_type(tuple, pw.this.r[0])).flatten(pw.this.w).select(
            key=pw.declare_type(int, pw.this.w[0]), samples=pw.declare_type(bytes, pw.this.w[1]))
    elif static:
        valid = checked.filter(pw.declare_type(int, pw.this.r[0]) == VALID)
        events = valid.select(key=pw.declare_type(int, pw.this.r[1]), sample=pw.declare_type(tuple, pw.this.r[2]))
    else:  # one row per part: (inverter, window) of one message
        events = parts.select(p=pw.declare_type(tuple, pw.this.r[0]), **carried).flatten(pw.this.p).select(
            inverter=pw.declare_type(int, pw.this.p[0]), t=pw.declare_type(float, pw.this.p[1]),
            window_s=pw.declare_type(int, pw.this.p[2]), plant_id=pw.declare_type(str, pw.this.p[3]),
            inverter_id=pw.declare_type(str, pw.this.p[4]), sample=pw.declare_type(bytes, pw.this.p[5]),
            **({"part_id": pw.declare_type(str, pw.this.p[6]), "events": pw.declare_type(bytes, pw.this.p[7]),
                "end": pw.declare_type(float, pw.this.p[8])} if keep_line else {}), **carried)

    def window_row(k: int, start: float, samples: tuple) -> tuple:
        """The window's row: its columns with the instants as integer ns (Pathway's
        ``DateTimeUtc``; made native in the graph, not converted datetime by datetime),
        the :class:`WindowStat` fields in order (the fold makes it back: no pickled object
        on the way)."""
        plant, inverter_id, length, rated, model = inverters[k]
        end = start + float(length)
        # one sample per event id (an event id has one ts, so all its copies fall in this window)
        n, avg, lo, hi, delta, run, last_t, last, first_counter, last_counter, poa = _window_row(samples)
        expected = expected_power_at(plant, inverter_id, start, end, poa, model)
        return (plant.plant_id, inverter_id, _ns(start), _ns(end), n, avg, lo, hi,
                delta, expected, rated, performance_index(avg, expected, rated, thresholds), run, _ns(last_t), last,
                first_counter, last_counter, poa is not None)

    cutoff_s = late_cutoff.total_seconds()

    def window_group(group: pw.Table, length_s: int, clock: int = 0) -> tuple[pw.Table, pw.Table | None]:
        """The group's windows of ``length_s`` (streaming: ``windowby`` with the late-data
        cutoff: the group's newest event time is its clock), and its late events as
        quarantine rows. ``clock``: the group's stream (its place in ``clocks``)."""
        windowed = group.windowby(
            pw.this.t, window=pw.temporal.tumbling(duration=float(length_s)),
            instance=pw.this.inverter,
            behavior=pw.temporal.exactly_once_behavior(shift=cutoff_s),
        ).reduce(
            inverter=pw.reducers.any(pw.this.inverter), window_start=pw.this._pw_window_start,
            samples=pw.reducers.tuple(pw.this.sample),
            **({"part_ids": pw.reducers.tuple(pw.this.part_id)} if keep_line else {}),
        )
        if clocks:
            windowed = windowed.with_columns(clock=clock)
        return windowed, (_late_events(group, windowed, length_s, cutoff_s) if late_events else None)

    if static:  # every inverter's window slot is computed per event (its own length): one groupby
        if packed:  # a window's samples come in one part per chunk that held some of them
            windowed = events.groupby(pw.this.key).reduce(pw.this.key, samples=pw.reducers.tuple(pw.this.samples))
        else:
            windowed = events.groupby(pw.this.key).reduce(pw.this.key, samples=pw.reducers.tuple(pw.this.sample))

        @pw.udf(deterministic=True)
        def window_stat(key: int, samples: tuple) -> tuple:
            k, slot = divmod(key, _SLOTS)
            return window_row(k, float(slot * inverters[k][2]), _join_parts(samples) if packed else samples)

        stats = windowed.select(r=window_stat(pw.this.key, pw.this.samples))
        lates = []
    else:
        groups = [(events, lengths[0])] if len(lengths) == 1 else [
            (events.filter(pw.this.window_s == length), length) for length in lengths]
        if clocks:  # one window group per partition (and length): each its own event-time clock
            groups = [(group.filter(_of_partition(pw.this.partition, clocks, i)), length, i)
                      for group, length in groups for i in range(len(clocks))]
        parts = [window_group(*group) for group in groups]
        windowed = parts[0][0] if len(parts) == 1 else pw.Table.concat_reindex(*(w for w, _ in parts))
        lates = [late for _, late in parts if late is not None]

        @pw.udf(deterministic=True)
        def window_stat(k: int, start: float, samples: tuple) -> tuple:
            return window_row(k, start, _join_parts(samples))

        stats = windowed.select(r=window_stat(pw.this.inverter, pw.this.window_start, pw.this.samples),
                                **({"clock": pw.this.clock} if clocks else {}))
    quarantine = pw.Table.concat_reindex(rejected, *lates) if lates else rejected
    # a bus redelivers the same raw line: one quarantine row per line
    quarantine = quarantine.groupby(pw.this.quarantine_key).reduce(
        pw.this.quarantine_key, **{c: pw.reducers.any(pw.this[c]) for c in
                                   ("event_id", "plant_id", "inverter_id", "reason", "detail", "raw")})
    windows = stats.select(**{name: _window_column(name, pw.this.r[i]) for i, name in enumerate(WindowStat._fields)})
    stats = stats.select(plant_id=pw.declare_type(str, pw.this.r[0]), window_end=pw.declare_type(int, pw.this.r[3]),
                         stat=pw.this.r, **({"clock": pw.this.clock} if clocks else {}))

    if clocks:
        # each partition's clock: its window ends, for the plants seen on it (a plant's
        # events are all on one partition; one seen on two, after the topic was given more
        # partitions, gets both clocks)
        ends = stats.groupby(pw.this.clock, pw.this.window_end).reduce(pw.this.clock, pw.this.window_end)
        members = stats.groupby(pw.this.plant_id, pw.this.clock).reduce(pw.this.plant_id, pw.this.clock)
        ticks = ends.join(members, pw.left.clock == pw.right.clock).select(
            plant_id=pw.right.plant_id, stat=pw.declare_type(tuple | None, None),
            ticks=pw.declare_type(tuple | None, pw.make_tuple(pw.left.window_end)))
    else:
        # the fleet's clock: every window end seen anywhere, for every plant
        ends = stats.groupby(pw.this.window_end).reduce(pw.this.window_end, one=1)
        registry_table = pw.debug.table_from_pandas(pd.DataFrame({"plant_id": sorted(by_id), "one": 1}))
        if static:  # a finite input: all the ends, once per plant (not one row per plant and end)
            ends = ends.groupby(pw.this.one).reduce(pw.this.one, ticks=pw.reducers.tuple(pw.this.window_end))
        else:
            ends = ends.select(pw.this.one, ticks=pw.make_tuple(pw.this.window_end))
        ticks = ends.join(registry_table, pw.left.one == pw.right.one).select(
            plant_id=pw.right.plant_id, stat=pw.declare_type(tuple | None, None),
            ticks=pw.declare_type(tuple | None, pw.left.ticks))
    feed = pw.Table.concat_reindex(
        stats.select(pw.this.plant_id, stat=pw.declare_type(tuple | None, pw.this.stat),
                     ticks=pw.declare_type(tuple | None, None)),
        ticks)

    @pw.reducers.stateful_many
    def fold(state, rows):
        # rows: ([plant_id, window row, ticks], count); windows are final, so only insertions
        # come (a static run's tuple of ticks is retracted only to be replaced by a longer one)
        current = state.value if state is not None else None
        plant_id = None
        arrived, moments = [], []
        for (plant_id, row, tick_ends), count in rows:
            if count <= 0:
                continue
            if row is not None:
                arrived.append(_window_stat(row))
            if tick_ends is not None:
                moments.extend(_ns_at(tick) for tick in tick_ends)
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


#: a window's part of one chunk travels as one bytes value (pickled by ``classify_chunk``
#: in this process, never read from input): a tuple of tuples is converted value by
#: value each time it crosses into the engine and back (≈ 8 % of a static run)
_dumps = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
_loads = pickle.loads


def _join_parts(parts: tuple) -> list:
    """A window's samples from its parts (one per chunk that held some)."""
    return _loads(parts[0]) if len(parts) == 1 else [s for part in parts for s in _loads(part)]


def _of_partition(partition: pw.ColumnExpression, clocks: list[int], i: int) -> pw.ColumnExpression:
    """Whether an event of ``partition`` belongs to clock ``i`` (native): partition
    ``clocks[i]``; the first clock also takes any partition not in ``clocks``."""
    if i:
        return partition == clocks[i]
    return functools.reduce(operator.and_, [partition != p for p in clocks[1:]])


def _part_id(samples: list) -> str:
    """A part's id: its event ids (sorted, with repeats): a message delivered again gives
    the same parts, so a copy that came after its window closed is matched by the part the
    window holds."""
    ids = "".join(f"{len(i)}:{i}" for i in sorted(s[0] for s in samples))  # length-prefixed: unambiguous
    return hashlib.blake2b(ids.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _late_events(events: pw.Table, windowed: pw.Table, length_s: int, cutoff_s: float) -> pw.Table:
    """Quarantine rows (reason ``late``) for the events of the parts of ``events`` (the
    events of one message in one window) that are in no emitted window of ``windowed``
    although their window has closed (its end + ``cutoff_s`` passed by the group's newest
    event time): Pathway's window operator dropped them.

    Each part is released once, when its group's clock passes its window's cutoff, by
    Pathway's buffer operator: the one ``windowby`` itself holds the window's rows in
    until that moment, fed the same parts and the same threshold (window start + length +
    cutoff, summed in the same order), so it releases a part at the same engine time as
    the window takes it. A released part that no emitted window holds is late; a part
    that arrives after its cutoff is released at once. The operator keeps the waiting
    parts ordered by threshold: a clock move touches only what it releases. (Comparing
    the clock with every waiting part recomputed all of them at every engine batch: with
    an hour of cutoff, hours of a fleet's events per batch. Comparing it with the window
    ends that had parts waiting kept every end that ever got a late part: quadratic in the
    late windows, 26.8 s of CPU for 3,980 late events in 4,000 batches against 0.3 s for
    480 in 500.)"""
    members = windowed.select(part_id=pw.this.part_ids).flatten(pw.this.part_id)
    members = members.groupby(pw.this.part_id).reduce(pw.this.part_id)
    threshold = float(length_s) + cutoff_s  # as windowby: start + (duration + shift)
    released = events._buffer((pw.this.end - float(length_s)) + threshold, pw.this.t)
    late = released.join_left(members, pw.left.part_id == pw.right.part_id).select(
        *pw.left, member=pw.right.part_id).filter(pw.this.member.is_none()).without(pw.this.member)
    # a late part's events that its window holds anyway (a logger re-sending its buffer with
    # newer readings appended: another part, the same events) are not late
    held = windowed.select(pw.this.inverter, end=pw.this.window_start + float(length_s), held=pw.this.samples)
    late = late.join_left(held, pw.left.inverter == pw.right.inverter, pw.left.end == pw.right.end).select(
        *pw.left, held=pw.right.held)

    @pw.udf(deterministic=True)
    def late_rows(packed: bytes, end: float, held: tuple | None) -> tuple:
        detail = (f"window [{_at(end - length_s).isoformat()}, {_at(end).isoformat()}) closed at "
                  f"{_at(end + cutoff_s).isoformat()} (event time); the event came after that")
        in_window = {s[0] for s in _join_parts(held)} if held else set()
        return tuple((_hash(line), event_id, detail, _storable(line[:2000]))
                     for event_id, _, line in _loads(packed) if event_id not in in_window)

    late = late.select(pw.this.plant_id, pw.this.inverter_id,
                       q=late_rows(pw.this.events, pw.this.end, pw.this.held)).flatten(pw.this.q)
    return late.select(
        quarantine_key=pw.declare_type(str, pw.this.q[0]), event_id=pw.declare_type(str, pw.this.q[1]),
        plant_id=pw.this.plant_id, inverter_id=pw.this.inverter_id, reason=LATE,
        detail=pw.declare_type(str, pw.this.q[2]), raw=pw.declare_type(str, pw.this.q[3]))


def _window_column(name: str, value: pw.ColumnExpression) -> pw.ColumnExpression:
    """A column of ``om_inverter_5min`` from its place in the window row: the instants
    (integer ns there) as ``DateTimeUtc``, natively."""
    kind = _WINDOW_TYPES[name]
    if kind is pw.DateTimeUtc:
        return pw.declare_type(int, value).dt.utc_from_timestamp(unit="ns")
    return pw.declare_type(kind, value)


_WINDOW_TYPES = {
    "plant_id": str, "inverter_id": str, "window_start": pw.DateTimeUtc, "window_end": pw.DateTimeUtc,
    "samples": int, "avg_power_w": float, "min_power_w": float, "max_power_w": float, "energy_delta_kwh": float,
    "expected_power_w": float, "rated_power_w": float, "performance_index": float | None, "identical_run": int,
    "last_ts": pw.DateTimeUtc, "last_power_w": float | None, "energy_first_kwh": float | None,
    "energy_last_kwh": float | None, "expected_from_sensor": bool,
}
