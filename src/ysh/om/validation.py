"""Validation of raw inverter telemetry events (pure Python, no I/O).

A raw event is a mapping as it arrives from the broker (JSON-decoded)::

    event_id, plant_id, inverter_id   non-empty strings
    ts                                ISO 8601 with an offset (``Z`` or ``+hh:mm``), or an aware datetime
    ac_power_w                        number (W)
    energy_total_kwh                  number (kWh), the inverter's cumulative energy counter
    dc_power_w, temperature_c,        optional numbers (absent or ``None``)
    irradiance_wm2
    status_code                       optional int or string (kept as a string)

:func:`validate_event` returns an :class:`Event` or a :class:`Rejected` with one of the
stable reason codes below. Checks run in this order and the first failure wins:

1. ``malformed``: a required field is missing, a field has the wrong type (numbers must be
   ``int``/``float``, not ``bool`` nor strings; NaN and infinities are malformed, and so is
   an integer too large for a float), a string holds a NUL or a lone surrogate, ``ts`` is
   not ISO 8601, has no UTC offset (a naive time is ambiguous, so it is not guessed) or
   lies before :data:`EARLIEST_TS` (a logger whose clock was reset: year 1 overflows the
   conversion to UTC). Whatever else goes wrong reading the event is ``malformed`` too:
   no input makes :func:`validate_event` raise.
2. ``unknown_inverter``: ``(plant_id, inverter_id)`` is not in the registry.
3. ``negative_power``: ``ac_power_w`` or ``dc_power_w`` below −max(``night_tare_w``,
   ``night_tare_fraction`` × rated) (50 W, 1 %: :class:`ysh.om.rules.Thresholds`). Above
   that a negative reading is the *night tare* (an inverter draws a few watts from the
   grid at night and many meters report it as −3 W, say): it is read as 0 W, not
   rejected.
4. ``power_above_rated``: ``ac_power_w > rated_power_w × POWER_ABOVE_RATED_TOLERANCE``
   (1.2: inverters may briefly exceed their nameplate, and some registries record the
   nominal rather than the maximum AC power; more than 20 % above is a unit or scaling
   error, e.g. kW sent as W).
5. ``negative_energy``: ``energy_total_kwh < 0`` (a cumulative counter is never negative).
6. ``future_ts``: ``ts > now + CLOCK_SKEW`` (5 minutes of allowed clock skew between the
   logger and this service).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from .rules import DEFAULT_THRESHOLDS, Thresholds

MALFORMED = "malformed"
UNKNOWN_INVERTER = "unknown_inverter"
NEGATIVE_POWER = "negative_power"
POWER_ABOVE_RATED = "power_above_rated"
FUTURE_TS = "future_ts"
NEGATIVE_ENERGY = "negative_energy"

#: Every reason code, in check order.
REASON_CODES = (MALFORMED, UNKNOWN_INVERTER, NEGATIVE_POWER, POWER_ABOVE_RATED, NEGATIVE_ENERGY, FUTURE_TS)

#: ``ac_power_w`` above ``rated × 1.2`` is rejected (see the module docstring).
POWER_ABOVE_RATED_TOLERANCE = 1.2
#: A timestamp more than 5 minutes after ``now`` is rejected.
CLOCK_SKEW = timedelta(minutes=5)
#: A timestamp before this is malformed (a reset device clock, not a measurement).
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=timezone.utc)

Registry = Mapping[tuple[str, str], float]


class Event(NamedTuple):
    """A valid telemetry event; ``ts`` is an aware datetime in UTC."""

    event_id: str
    plant_id: str
    inverter_id: str
    ts: datetime
    ac_power_w: float
    energy_total_kwh: float
    dc_power_w: float | None = None
    temperature_c: float | None = None
    status_code: str | None = None
    irradiance_wm2: float | None = None


class Rejected(NamedTuple):
    """An event that failed validation: ``reason`` is one of :data:`REASON_CODES`."""

    reason: str
    detail: str
    event_id: str | None = None
    plant_id: str | None = None
    inverter_id: str | None = None


class _Malformed(Exception):
    pass


def _string(raw: Mapping[str, Any], name: str) -> str:
    if name not in raw or raw[name] is None:
        raise _Malformed(f"missing {name}")
    value = raw[name]
    if not isinstance(value, str) or not value.strip():
        raise _Malformed(f"{name} must be a non-empty string")
    if not _clean(value):
        raise _Malformed(f"{name} holds a NUL character or a lone surrogate")
    return value


def _clean(text: str) -> bool:
    """Storable text: valid UTF-8 (no lone surrogates) and no NUL (PostgreSQL refuses it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _number(raw: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise _Malformed(f"missing {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Malformed(f"{name} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise _Malformed(f"{name} is too large") from None
    if not math.isfinite(number):
        raise _Malformed(f"{name} must be finite")
    return number


def _timestamp(raw: Mapping[str, Any]) -> datetime:
    value = raw.get("ts")
    if value is None:
        raise _Malformed("missing ts")
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Malformed(f"ts is not ISO 8601: {value!r}") from None
    else:
        raise _Malformed(f"ts must be an ISO 8601 string, got {type(value).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise _Malformed("ts has no UTC offset")
    try:
        ts = ts.astimezone(timezone.utc)
    except OverflowError:
        raise _Malformed(f"ts is out of range: {value!r}") from None
    if ts < EARLIEST_TS:
        raise _Malformed(f"ts is before {EARLIEST_TS.date().isoformat()}: {ts.isoformat()}")
    return ts


def _status(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("status_code")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Malformed(f"status_code must be an int or a string, got {type(value).__name__}")
    try:
        text = str(value)
    except ValueError:  # an integer of more than 4,300 digits
        raise _Malformed("status_code is too large") from None
    if not _clean(text) or len(text) > 64:
        raise _Malformed("status_code must be short, storable text")
    return text


def night_tare_w(rated_power_w: float, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> float:
    """The largest negative reading still taken as the night tare (W, positive)."""
    return max(thresholds.night_tare_w, thresholds.night_tare_fraction * float(rated_power_w))


def validate_event(raw: Mapping[str, Any], registry: Registry, now: datetime,
                   clock_skew: timedelta = CLOCK_SKEW,
                   thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Event | Rejected:
    """Validate one raw event against the plant registry (``(plant_id, inverter_id) →
    rated AC power in W``) at time ``now`` (aware). See the module docstring for the
    checks and their order; a night tare comes back as 0 W."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        return _validate(raw, registry, now, clock_skew, thresholds)
    except Exception as exc:  # noqa: BLE001 - no input may stop the pipeline
        return Rejected(MALFORMED, f"unreadable event: {type(exc).__name__}")


def decode_event(line: str) -> tuple | None:
    """The fields of a well-formed event line, for the pipeline's native checks:
    ``(event_id, plant_id, inverter_id, ts as epoch seconds, ac_power_w, energy_total_kwh,
    dc_power_w, irradiance_wm2)``, read by the same helpers as :func:`validate_event`;
    None when the line is not a well-formed event (not JSON, a field missing or of the
    wrong type, ...): such a line goes to :func:`validate_event` for its reason. Never
    raises. The registry and limit checks (unknown inverter, night tare, above rated,
    negative counter, future timestamp) are not made here.

    The JSON is read by orjson (a few times faster than :mod:`json`; floats correctly
    rounded, as Python's). What it reads differently never reaches a valid event from
    here: it refuses ``NaN``, ``Infinity``, overflowing numbers and lone surrogate escapes
    (None: the validator reads the line with :mod:`json` and gives the reason), and reads
    an integer beyond 64 bits as the float :func:`float` would make of it (a status code
    that is such an integer goes to the validator)."""
    try:
        raw = orjson.loads(line)
        if type(raw) is not dict:
            return None
        _status(raw)
        _number(raw, "temperature_c", required=False)
        ts = raw.get("ts")
        epoch = _epoch(ts) if type(ts) is str else _timestamp(raw).timestamp()
        return (_string(raw, "event_id"), _string(raw, "plant_id"), _string(raw, "inverter_id"),
                epoch, _number(raw, "ac_power_w", required=True),
                _number(raw, "energy_total_kwh", required=True), _number(raw, "dc_power_w", required=False),
                _number(raw, "irradiance_wm2", required=False))
    except Exception:  # noqa: BLE001 - _Malformed, RecursionError, ValueError, ...: the validator's business
        return None


@lru_cache(maxsize=65536)
def _epoch(ts: str) -> float:
    """:func:`_timestamp` of an ISO string, as epoch seconds: a fleet's loggers send the
    same timestamp text for every inverter of a minute, so it is parsed once (a refused
    one raises, and is not cached)."""
    return _timestamp({"ts": ts}).timestamp()


class Limits(NamedTuple):
    """What the fast path checks an event of one inverter against (from the registry)."""

    tare_w: float  # :func:`night_tare_w`: readings down to −tare are the night tare (0 W)
    limit_w: float  # rated × :data:`POWER_ABOVE_RATED_TOLERANCE`
    window_s: int  # the inverter's window length
    inverter_index: int = 0  # the inverter's position in the graph's registry (its window key)


def storable_id(value: Any) -> bool:
    """An id :func:`validate_event` takes (``_string``'s checks): a non-blank string with
    no NUL and no lone surrogate. A registry whose ids fail it is left to the validator."""
    return isinstance(value, str) and bool(value.strip()) and _clean(value)


def fast_fields(line: str, limits: Mapping[tuple[str, str], Limits], latest_s: float) -> tuple | None:
    """:func:`fast_event`'s checks, inlined for the pipeline's hot path (one call per line):
    ``(event_id, plant_id, inverter_id, ts as epoch seconds, ac_power_w with the night tare
    as 0 W, energy_total_kwh, irradiance_wm2, the inverter's Limits)``, or None.

    The common case is read without the helpers: a value of the exact type orjson gives
    (``float``; ``int``, which orjson keeps within 64 bits, so its float is finite; orjson
    refuses NaN and infinities, so every ``float`` it gives is finite), an event id that is
    non-blank ASCII without NUL; the plant and inverter ids are only looked up in ``limits``
    (whose ids the caller took with :func:`storable_id`). Any other value goes through the
    validator's own helpers (``_number``, ``_string``, ``_status``, ``_timestamp``), which
    take it or raise: the same verdict as :func:`decode_event`. Never raises."""
    try:
        raw = orjson.loads(line)
    except Exception:  # noqa: BLE001 - not JSON (or not as orjson reads it): the validator's business
        return None
    if type(raw) is not dict:
        return None
    try:
        get = raw.get
        value = get("status_code")
        if value is not None and type(value) is not int:
            _status(raw)
        value = get("temperature_c")
        if value is not None and type(value) is not float and type(value) is not int:
            _number(raw, "temperature_c", required=False)
        ts = get("ts")
        if type(ts) is not str:
            return None  # from JSON: missing, or not a string (``_timestamp`` refuses it)
        t = _epoch(ts)
        event_id = get("event_id")
        if type(event_id) is not str or not event_id.isascii() or "\x00" in event_id or not event_id.strip():
            event_id = _string(raw, "event_id")
        own = limits.get((get("plant_id"), get("inverter_id")))
        if own is None:
            return None
        ac = get("ac_power_w")
        if type(ac) is not float:
            ac = float(ac) if type(ac) is int else _number(raw, "ac_power_w", required=True)
        energy = get("energy_total_kwh")
        if type(energy) is not float:
            energy = float(energy) if type(energy) is int else _number(raw, "energy_total_kwh", required=True)
        dc = get("dc_power_w")
        if dc is not None and type(dc) is not float:
            dc = float(dc) if type(dc) is int else _number(raw, "dc_power_w", required=False)
        irradiance = get("irradiance_wm2")
        if irradiance is not None and type(irradiance) is not float:
            irradiance = float(irradiance) if type(irradiance) is int else _number(raw, "irradiance_wm2",
                                                                                 required=False)
    except Exception:  # noqa: BLE001 - _Malformed, an unhashable id, ...: the validator's business
        return None
    tare = own.tare_w
    if ac < -tare or (dc is not None and dc < -tare) or ac > own.limit_w or energy < 0.0 or t > latest_s:
        return None
    return (event_id, raw["plant_id"], raw["inverter_id"], t, 0.0 if ac < 0.0 else ac, energy, irradiance, own)


def fast_event(line: str, limits: Mapping[tuple[str, str], Limits], latest_s: float) -> tuple | None:
    """A line that is a valid event, read in one call: ``(event_id, plant_id, inverter_id,
    ts as epoch seconds, ac_power_w with the night tare as 0 W, energy_total_kwh,
    irradiance_wm2, window_s)``; None when it is not (not JSON, malformed, an inverter not
    in ``limits``, power below the tare limit or above the rated limit, a negative
    counter, a timestamp after ``latest_s``, epoch seconds: now + the clock skew allowed):
    :func:`validate_event` then gives the reason. The same checks as
    :func:`validate_event`, in the pipeline's hot path (:func:`fast_fields`). Never raises."""
    fields = fast_fields(line, limits, latest_s)
    if fields is None:
        return None
    return (*fields[:7], fields[7].window_s)


def _validate(raw: Mapping[str, Any], registry: Registry, now: datetime, clock_skew: timedelta,
              thresholds: Thresholds) -> Event | Rejected:
    if not isinstance(raw, Mapping):
        return Rejected(MALFORMED, f"event must be a mapping, got {type(raw).__name__}")
    def ident(name: str) -> str | None:  # for the quarantine row, when it is storable
        value = raw.get(name)
        return value if isinstance(value, str) and _clean(value) else None

    event_id, plant_id, inverter_id = ident("event_id"), ident("plant_id"), ident("inverter_id")
    try:
        event = Event(
            event_id=_string(raw, "event_id"),
            plant_id=_string(raw, "plant_id"),
            inverter_id=_string(raw, "inverter_id"),
            ts=_timestamp(raw),
            ac_power_w=_number(raw, "ac_power_w", required=True),  # type: ignore[arg-type]
            energy_total_kwh=_number(raw, "energy_total_kwh", required=True),  # type: ignore[arg-type]
            dc_power_w=_number(raw, "dc_power_w", required=False),
            temperature_c=_number(raw, "temperature_c", required=False),
            status_code=_status(raw),
            irradiance_wm2=_number(raw, "irradiance_wm2", required=False),
        )
    except _Malformed as exc:
        return Rejected(MALFORMED, str(exc), event_id, plant_id, inverter_id)

    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(reason, detail, event.event_id, event.plant_id, event.inverter_id)

    rated = registry.get((event.plant_id, event.inverter_id))
    if rated is None:
        return reject(UNKNOWN_INVERTER, f"{event.plant_id}/{event.inverter_id} is not in the plant registry")
    tare = night_tare_w(rated, thresholds)
    if event.ac_power_w < -tare:
        return reject(NEGATIVE_POWER, f"ac_power_w={event.ac_power_w} < -{tare:g} (night tare limit)")
    if event.dc_power_w is not None and event.dc_power_w < -tare:
        return reject(NEGATIVE_POWER, f"dc_power_w={event.dc_power_w} < -{tare:g} (night tare limit)")
    if event.ac_power_w < 0:
        event = event._replace(ac_power_w=0.0)
    if event.dc_power_w is not None and event.dc_power_w < 0:
        event = event._replace(dc_power_w=0.0)
    limit = float(rated) * POWER_ABOVE_RATED_TOLERANCE
    if event.ac_power_w > limit:
        return reject(POWER_ABOVE_RATED, f"ac_power_w={event.ac_power_w} > {limit:g} (rated {float(rated):g} W × "
                                         f"{POWER_ABOVE_RATED_TOLERANCE})")
    if event.energy_total_kwh < 0:
        return reject(NEGATIVE_ENERGY, f"energy_total_kwh={event.energy_total_kwh}")
    if event.ts > now + clock_skew:
        return reject(FUTURE_TS, f"ts={event.ts.isoformat()} is more than {clock_skew} after now={now.isoformat()}")
    return event
