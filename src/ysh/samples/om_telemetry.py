"""Synthetic inverter telemetry for a PV fleet, with injectable, labelled faults.

:func:`simulate` yields one event per inverter and time step, in time order::

    {"event_id": "plant-bh-01:inv-01:1768474800", "plant_id": "plant-bh-01",
     "inverter_id": "inv-01", "ts": "2026-01-15T11:00:00Z", "ac_power_w": 4210.3,
     "energy_total_kwh": 10234.118, "dc_power_w": 4391.6, "temperature_c": 41.2,
     "status_code": 0, "irradiance_wm2": 803.5}

``irradiance_wm2`` (plane of array, from the plant's sensor) is present only for plants
with ``poa_sensor``; every other field is always present in valid events.
``event_id`` is ``{plant_id}:{inverter_id}:{epoch seconds}``. ``temperature_c`` is the
inverter's internal temperature (ambient + load-dependent heating, 10 min lag).

Physics, vectorised per plant over the time index (numpy/pvlib); steps 3, 4 (cell
temperature), 5 (PVWatts DC, losses) and 6 are :mod:`ysh.om.physics`, shared with the
expected-power model of the runtime (:mod:`ysh.om.expected`):

1. Sun position (NREL SPA every 5 min, interpolated in between) and Ineichen clear sky
   with pvlib's Linke turbidity climatology and altitude lookup for the plant's coordinates.
2. Clouds: a per-plant regime process - *clear* (clear-sky index ~0.97), *broken*
   (sun/shade alternating every few minutes, with cloud-enhancement up to ~1.05) and
   *overcast* (index 0.2-0.45) - with exponential sojourn times, cloud edges smoothed
   over ~1-3 min (longer for bigger plants) and AR(1) flicker. All inverters of a plant
   share it. The mix depends on ``Scenario.sky`` (clear | variable | overcast). Beam is
   cut faster than diffuse under clouds (DNI fraction from the clear-sky index).
3. POA with :func:`pvlib.irradiance.get_total_irradiance` (Hay-Davies) for the plant's
   tilt/azimuth (azimuth clockwise from north), physical IAM on the beam.
4. Ambient temperature from a latitude/season climatology with a daily cycle; cell
   temperature with the SAPM model (open rack, glass/polymer).
5. DC: PVWatts (gamma -0.37 %/°C) for the DC kWp behind each inverter (plant kWp split
   pro rata to ratings), x (1 - :data:`DC_LOSSES`), x a static per-inverter mismatch
   (sd 1.5 %), x per-sample noise (sd 1 %).
6. AC: PVWatts inverter (part-load efficiency, 96.5 % nominal) capped at the rating, so
   plants with a high DC/AC ratio clip naturally around noon; zero below 0.5 % load.
7. ``energy_total_kwh``: a per-inverter random starting total plus the trapezoidal
   integral of the true AC power (never decreases); reported values carry a small
   measurement noise (0.2 %).

Fault semantics (interval ``[start, end)``; ``Fault.params`` in brackets):

* ``trip`` - the inverter disconnects: AC = DC = 0, counter flat, ``status_code`` 1.
* ``underperformance`` - AC and DC x ``derate`` (default 0.6): soiling, string loss...
* ``comm_loss`` - no events from the inverter; it keeps producing, so its counter has
  advanced by the missed energy when reporting resumes.
* ``frozen`` - stale data: every event repeats the last reading before ``start``
  (power, DC, temperature, status, irradiance *and* the energy counter); only
  ``event_id``/``ts`` advance. The inverter really keeps producing, so the counter jumps
  to its true value at the first event after ``end``.
* ``clipping`` - active-power limit at ``limit_fraction`` x rating (default 0.7);
  DC follows (the inverter leaves the MPP); status stays 0 (an *info* condition).
* ``outage`` - plant-wide grid outage (``inverter_id`` is None): no inverter produces;
  by default (``reporting="zeros"``: the data logger is on a UPS) every inverter keeps
  reporting AC = DC = 0 with flat counters and ``status_code`` 2 (grid lost), so it is
  told from a trip (status 1, single inverter, peers producing) and from a comm loss
  (no data, counter advances). With ``reporting="silent"`` the whole plant stops
  reporting instead, and the counters show after recovery that nothing was produced.

Faults on the same inverter (an outage covers all the plant's inverters) must not
overlap, so each event has at most one ground-truth cause.

Stream defects, for the validation stage (marked in :func:`labels`):

* ``duplicate_rate`` - fraction of events re-emitted verbatim (same ``event_id``), as an
  at-least-once bus would; the copy comes after all original events of the same step.
* ``invalid_rate`` - fraction of steps per inverter that also get one extra, bad event
  (after the duplicates of that step), derived from the valid reading with one defect:
  negative power, power 3x above the rating, ``ts`` one day in the future (relative to
  the emission step), an unknown inverter id, an unparseable ``ts`` or a missing
  ``energy_total_kwh``. Its ``event_id`` ends with ``:bad-{reason}``.

Everything is a deterministic function of the scenario; weather and noise depend only on
``seed``, the plant/inverter ids and the time grid (not on the faults), so a run with a
fault differs from the run without it only where the fault acts.
"""

from __future__ import annotations

import functools
import json
import math
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import numpy as np
import pandas as pd
import pvlib
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy.signal import lfilter

from ysh.om.fleet import Plant, sample_plants
from ysh.om.physics import DC_LOSSES, dc_per_installed_w, inverter_ac, plane_of_array

try:  # orjson ships with the platform's dependencies; json is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

__all__ = [
    "DC_LOSSES",
    "FAULT_KINDS",
    "INVALID_REASONS",
    "STATUS_GRID_OUTAGE",
    "STATUS_NORMAL",
    "STATUS_TRIP",
    "Fault",
    "Scenario",
    "default_scenario",
    "labels",
    "simulate",
    "write_jsonl",
]

FAULT_KINDS = ("trip", "underperformance", "comm_loss", "frozen", "clipping", "outage")
FaultKind = Literal["trip", "underperformance", "comm_loss", "frozen", "clipping", "outage"]
INVALID_REASONS = ("negative_power", "over_rated", "future_ts", "unknown_inverter", "bad_ts",
                   "missing_field")

STATUS_NORMAL = 0
STATUS_TRIP = 1
STATUS_GRID_OUTAGE = 2


_PARAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "trip": {},
    "underperformance": {"derate": 0.6},
    "comm_loss": {},
    "frozen": {},
    "clipping": {"limit_fraction": 0.7},
    "outage": {"reporting": "zeros"},
}


def _utc(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=timezone.utc)
    if isinstance(value, str):
        value = pd.Timestamp(value).to_pydatetime()
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- scenario model ---------------------------------------------------------------------

class Fault(BaseModel):
    """One injected fault; active for timestamps in ``[start, end)`` (UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    plant_id: str
    inverter_id: str | None = None
    start: datetime
    end: datetime
    params: dict[str, float | str] = Field(default_factory=dict)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _to_utc(cls, value: Any) -> Any:
        return _utc(value)

    @model_validator(mode="after")
    def _check(self) -> "Fault":
        if self.end <= self.start:
            raise ValueError(f"end ({_iso(self.end)}) must be after start ({_iso(self.start)})")
        if self.kind == "outage" and self.inverter_id is not None:
            raise ValueError("an outage is plant-wide: inverter_id must be null")
        if self.kind != "outage" and not self.inverter_id:
            raise ValueError(f"a {self.kind} fault needs an inverter_id")
        allowed = _PARAM_DEFAULTS[self.kind]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(f"params {unknown} not valid for {self.kind} (allowed: {sorted(allowed)})")
        derate = self.params.get("derate")
        if derate is not None and not (isinstance(derate, (int, float)) and 0.0 <= derate < 1.0):
            raise ValueError(f"params.derate must be in [0, 1), got {derate!r}")
        limit = self.params.get("limit_fraction")
        if limit is not None and not (isinstance(limit, (int, float)) and 0.0 < limit < 1.0):
            raise ValueError(f"params.limit_fraction must be in (0, 1), got {limit!r}")
        reporting = self.params.get("reporting")
        if reporting is not None and reporting not in ("zeros", "silent"):
            raise ValueError(f"params.reporting must be 'zeros' or 'silent', got {reporting!r}")
        return self

    def param(self, name: str) -> Any:
        return self.params.get(name, _PARAM_DEFAULTS[self.kind][name])

    @property
    def resolved_params(self) -> dict[str, Any]:
        return {**_PARAM_DEFAULTS[self.kind], **self.params}


class Scenario(BaseModel):
    """A fleet, a time grid ``start + k * step_s`` for ``k < duration // step_s``, weather
    and noise seed, faults and stream defects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plants: list[Plant] = Field(min_length=1)
    start: datetime
    duration: timedelta
    step_s: int = Field(default=60, ge=1, le=3600)
    seed: int = 0
    sky: Literal["clear", "variable", "overcast"] = "variable"
    faults: list[Fault] = Field(default_factory=list)
    duplicate_rate: float = Field(default=0.0, ge=0.0, le=0.5)
    invalid_rate: float = Field(default=0.0, ge=0.0, le=0.5)

    @field_validator("start", mode="before")
    @classmethod
    def _start_utc(cls, value: Any) -> Any:
        return _utc(value)

    @model_validator(mode="after")
    def _check(self) -> "Scenario":
        if self.start.microsecond:
            raise ValueError("start must be a whole second")
        if self.duration.total_seconds() < self.step_s:
            raise ValueError(f"duration must cover at least one step of {self.step_s} s")
        plants = {p.plant_id: p for p in self.plants}
        if len(plants) != len(self.plants):
            raise ValueError("plants: duplicate plant_id")
        busy: dict[tuple[str, str], list[tuple[datetime, datetime, int]]] = {}
        for index, fault in enumerate(self.faults):
            where = f"faults[{index}] ({fault.kind} {fault.plant_id}/{fault.inverter_id})"
            plant = plants.get(fault.plant_id)
            if plant is None:
                raise ValueError(f"{where}: unknown plant_id {fault.plant_id!r}")
            if fault.inverter_id is not None and fault.inverter_id not in plant.inverter_ids:
                raise ValueError(f"{where}: plant {fault.plant_id!r} has no inverter {fault.inverter_id!r}")
            if fault.start < self.start or fault.end > self.end:
                raise ValueError(f"{where}: [{_iso(fault.start)}, {_iso(fault.end)}) is not inside the "
                                 f"scenario [{_iso(self.start)}, {_iso(self.end)})")
            targets = plant.inverter_ids if fault.inverter_id is None else [fault.inverter_id]
            for inverter_id in targets:
                for start, end, other in busy.get((fault.plant_id, inverter_id), []):
                    if fault.start < end and start < fault.end:
                        raise ValueError(f"{where}: overlaps faults[{other}] on inverter {inverter_id!r}")
                busy.setdefault((fault.plant_id, inverter_id), []).append((fault.start, fault.end, index))
        return self

    @property
    def n_steps(self) -> int:
        return int(self.duration.total_seconds() // self.step_s)

    @property
    def end(self) -> datetime:
        """Exclusive end of the time grid's span (``start + duration``)."""
        return self.start + self.duration

    def epochs(self) -> np.ndarray:
        return int(self.start.timestamp()) + self.step_s * np.arange(self.n_steps, dtype=np.int64)

    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.epochs(), unit="s", utc=True))

    def plant(self, plant_id: str) -> Plant:
        for plant in self.plants:
            if plant.plant_id == plant_id:
                return plant
        raise KeyError(plant_id)


# --- random streams ---------------------------------------------------------------------

def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, *keys]))


_STREAM_CLOUDS, _STREAM_AMBIENT, _STREAM_INVERTER, _STREAM_INJECT = 1, 2, 3, 4


# --- weather ----------------------------------------------------------------------------

#: per-sky weights of the next cloud regime (clear, broken, overcast)
_SKY_WEIGHTS = {
    "clear": (0.90, 0.08, 0.02),
    "variable": (0.45, 0.35, 0.20),
    "overcast": (0.05, 0.20, 0.75),
}
_REGIME_MEAN_S = (5400.0, 3600.0, 7200.0)
_REGIME_SD = (0.012, 0.05, 0.04)


def _cloud_index(rng: np.random.Generator, n: int, step_s: int, sky: str,
                 capacity_kwp: float) -> np.ndarray:
    """Clear-sky index per step (see module docstring)."""
    total = n * step_s
    sample_t = step_s * np.arange(n, dtype=float)
    base = np.empty(n)
    sd = np.empty(n)
    weights = np.asarray(_SKY_WEIGHTS[sky])
    t = 0.0
    regime = int(rng.choice(3, p=weights))
    while t < total:
        length = rng.exponential(_REGIME_MEAN_S[regime])
        t_end = min(total, t + max(length, 300.0))
        if regime == 1:  # broken clouds: alternate sun and shade
            u = t
            sunny = bool(rng.random() < 0.5)
            while u < t_end:
                dur = rng.exponential(240.0 if sunny else 180.0) + 30.0
                level = rng.uniform(1.0, 1.06) if sunny else rng.uniform(0.28, 0.6)
                i0, i1 = np.searchsorted(sample_t, [u, min(u + dur, t_end)])
                base[i0:i1] = level
                sd[i0:i1] = _REGIME_SD[1]
                u += dur
                sunny = not sunny
        else:
            level = rng.normal(0.97, 0.01) if regime == 0 else rng.uniform(0.2, 0.45)
            i0, i1 = np.searchsorted(sample_t, [t, t_end])
            base[i0:i1] = level
            sd[i0:i1] = _REGIME_SD[regime]
        t = t_end
        regime = int(rng.choice(3, p=weights))
    edge_tau = 60.0 * (1.0 + capacity_kwp / 250.0)
    a = math.exp(-step_s / edge_tau)
    smooth = lfilter([1.0 - a], [1.0, -a], base, zi=[a * base[0]])[0]
    phi = math.exp(-step_s / 120.0)
    flicker = lfilter([math.sqrt(1.0 - phi * phi)], [1.0, -phi], rng.standard_normal(n),
                      zi=[phi * rng.standard_normal()])[0]
    return np.clip(smooth + sd * flicker, 0.03, 1.3)


def _ambient_c(rng: np.random.Generator, times: pd.DatetimeIndex, latitude: float,
               longitude: float, step_s: int) -> np.ndarray:
    doy = times.dayofyear.to_numpy(dtype=float)
    hours_utc = (times.hour.to_numpy() + times.minute.to_numpy() / 60.0 + times.second.to_numpy() / 3600.0)
    solar_hour = (hours_utc + longitude / 15.0) % 24.0
    mean = float(np.clip(24.0 + 0.6 * (latitude + 16.0), 15.0, 27.5))
    season = 2.5 * np.cos(2.0 * np.pi * (doy - 15.0) / 365.25)  # warmest mid-January
    daily = 5.0 * np.sin(2.0 * np.pi * (solar_hour - 9.0) / 24.0)  # peak ~15 h solar time
    phi = math.exp(-step_s / 7200.0)
    drift = lfilter([math.sqrt(1.0 - phi * phi)], [1.0, -phi], rng.standard_normal(len(times)),
                    zi=[phi * rng.standard_normal()])[0]
    return mean + season + daily + 0.8 * drift


@functools.lru_cache(maxsize=256)
def _altitude(latitude: float, longitude: float) -> float:
    try:
        return float(pvlib.location.lookup_altitude(latitude, longitude))
    except Exception:  # pragma: no cover - data file missing
        return 0.0


_SOLAR_STRIDE_S = 300


def _solar_position(location: pvlib.location.Location, times: pd.DatetimeIndex, step_s: int) -> pd.DataFrame:
    """NREL SPA at most every 5 minutes; in between, the (apparent) sun direction is
    interpolated as a unit vector (no azimuth wrap-around); vs SPA at every step the error
    is < 0.01° with the sun more than 1° above the horizon (< 0.5° below that)."""
    stride = _SOLAR_STRIDE_S // step_s
    n = len(times)
    if stride <= 1 or n <= 4 * stride:
        return location.get_solarposition(times)
    index = np.arange(0, n, stride)
    if index[-1] != n - 1:
        index = np.append(index, n - 1)
    coarse = location.get_solarposition(times[index])
    x = np.arange(n, dtype=float)
    zen = np.radians(coarse["apparent_zenith"].to_numpy(dtype=float))
    azi = np.radians(coarse["azimuth"].to_numpy(dtype=float))
    east = np.interp(x, index, np.sin(zen) * np.sin(azi))
    north = np.interp(x, index, np.sin(zen) * np.cos(azi))
    up = np.interp(x, index, np.cos(zen))
    norm = np.sqrt(east * east + north * north + up * up)
    apparent_zenith = np.degrees(np.arccos(np.clip(up / norm, -1.0, 1.0)))
    azimuth = np.degrees(np.arctan2(east, north)) % 360.0
    refraction = np.interp(x, index, (coarse["zenith"] - coarse["apparent_zenith"]).to_numpy(dtype=float))
    zenith = apparent_zenith + refraction
    return pd.DataFrame({"apparent_zenith": apparent_zenith, "zenith": zenith,
                         "apparent_elevation": 90.0 - apparent_zenith, "elevation": 90.0 - zenith,
                         "azimuth": azimuth}, index=times)


@dataclass
class _PlantFrames:
    plant: Plant
    ac: np.ndarray  # (n, m) reported values
    dc: np.ndarray
    temperature: np.ndarray
    energy: np.ndarray
    status: np.ndarray
    irradiance: np.ndarray | None  # (n, m) when the plant has a sensor
    emit: np.ndarray  # (n, m) bool
    true_ac: np.ndarray  # (n, m) AC actually produced (before measurement noise/staleness)
    poa: np.ndarray  # (n,) true plane-of-array irradiance


def _fault_slice(fault: Fault, scenario: Scenario) -> slice:
    t0 = scenario.start
    i0 = math.ceil((fault.start - t0).total_seconds() / scenario.step_s)
    i1 = math.ceil((fault.end - t0).total_seconds() / scenario.step_s)
    return slice(max(i0, 0), min(i1, scenario.n_steps))


def _emit_mask(scenario: Scenario, plant: Plant) -> np.ndarray:
    emit = np.ones((scenario.n_steps, len(plant.inverters)), dtype=bool)
    column = {inv: j for j, inv in enumerate(plant.inverter_ids)}
    for fault in scenario.faults:
        if fault.plant_id != plant.plant_id:
            continue
        rows = _fault_slice(fault, scenario)
        if fault.kind == "comm_loss":
            emit[rows, column[fault.inverter_id]] = False
        elif fault.kind == "outage" and fault.param("reporting") == "silent":
            emit[rows, :] = False
    return emit


def _simulate_plant(scenario: Scenario, plant: Plant, times: pd.DatetimeIndex) -> _PlantFrames:
    n, m, step = len(times), len(plant.inverters), scenario.step_s
    plant_key = _crc(plant.plant_id)

    # sun and clear sky
    location = pvlib.location.Location(plant.latitude, plant.longitude, tz="UTC",
                                       altitude=_altitude(plant.latitude, plant.longitude))
    solpos = _solar_position(location, times, step)
    clear = location.get_clearsky(times, model="ineichen", solar_position=solpos)
    zenith = solpos["apparent_zenith"].to_numpy(dtype=float)
    sun_azimuth = solpos["azimuth"].to_numpy(dtype=float)
    cosz = np.clip(np.cos(np.radians(zenith)), 0.0, None)

    # clouds
    k = _cloud_index(_rng(scenario.seed, plant_key, _STREAM_CLOUDS), n, step, scenario.sky,
                     plant.capacity_kwp)
    ghi_cs = clear["ghi"].to_numpy(dtype=float)
    dni_cs = clear["dni"].to_numpy(dtype=float)
    beam = np.clip((k - 0.25) / 0.7, 0.0, 1.0) ** 1.3
    ghi = ghi_cs * k
    dni = dni_cs * beam
    dhi = np.clip(ghi - dni * cosz, 0.0, None)

    # plane of array (ysh.om.physics)
    dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(times), dtype=float)
    poa_global, effective = plane_of_array(plant.tilt_deg, plant.azimuth_deg, zenith, sun_azimuth,
                                           dni, ghi, dhi, dni_extra)

    # temperatures, DC per installed W (ysh.om.physics)
    ambient_rng = _rng(scenario.seed, plant_key, _STREAM_AMBIENT)
    t_air = _ambient_c(ambient_rng, times, plant.latitude, plant.longitude, step)
    wind = np.clip(2.0 + 0.7 * ambient_rng.standard_normal(n), 0.3, None)
    dc_per_w = dc_per_installed_w(poa_global, effective, t_air, wind)

    # per inverter
    rated = np.array([inv.rated_power_w for inv in plant.inverters], dtype=float)
    dc_w = np.array([plant.dc_kw_per_inverter[inv.inverter_id] * 1000.0 for inv in plant.inverters])
    mismatch = np.empty(m)
    process = np.empty((n, m))
    meas_ac = np.empty((n, m))
    meas_dc = np.empty((n, m))
    meas_t = np.empty((n, m))
    offsets = np.empty(m)
    for j, inv in enumerate(plant.inverters):
        rng = _rng(scenario.seed, plant_key, _STREAM_INVERTER, _crc(inv.inverter_id))
        mismatch[j] = np.clip(rng.normal(1.0, 0.015), 0.96, 1.03)
        offsets[j] = round(inv.rated_power_kw * rng.uniform(150.0, 6000.0), 3)
        process[:, j] = rng.standard_normal(n)
        meas_ac[:, j] = rng.standard_normal(n)
        meas_dc[:, j] = rng.standard_normal(n)
        meas_t[:, j] = rng.standard_normal(n)
    dc = np.outer(dc_per_w, dc_w) * mismatch * (1.0 + 0.01 * process)
    dc = np.clip(dc, 0.0, None)
    ac, running = inverter_ac(dc, rated)
    dc = np.where(running, dc, 0.0)
    status = np.full((n, m), STATUS_NORMAL, dtype=np.int64)

    # faults acting on the physics
    column = {inv: j for j, inv in enumerate(plant.inverter_ids)}
    frozen: list[tuple[slice, int]] = []
    for fault in scenario.faults:
        if fault.plant_id != plant.plant_id:
            continue
        rows = _fault_slice(fault, scenario)
        cols = slice(None) if fault.inverter_id is None else column[fault.inverter_id]
        if fault.kind == "trip":
            ac[rows, cols] = 0.0
            dc[rows, cols] = 0.0
            status[rows, cols] = STATUS_TRIP
        elif fault.kind == "outage":
            ac[rows, cols] = 0.0
            dc[rows, cols] = 0.0
            status[rows, cols] = STATUS_GRID_OUTAGE
        elif fault.kind == "underperformance":
            derate = float(fault.param("derate"))
            ac[rows, cols] *= derate
            dc[rows, cols] *= derate
        elif fault.kind == "clipping":
            j = column[fault.inverter_id]
            limit = float(fault.param("limit_fraction")) * rated[j]
            before = ac[rows, j]
            after = np.minimum(before, limit)
            ratio = np.divide(after, before, out=np.ones_like(before), where=before > 0)
            ac[rows, j] = after
            dc[rows, j] *= ratio
        elif fault.kind == "frozen":
            frozen.append((rows, column[fault.inverter_id]))

    # inverter temperature: ambient + heating with load, first-order lag of ~10 min
    target = t_air[:, None] + 3.0 + 24.0 * (ac / rated)
    a = math.exp(-step / 600.0)
    temperature = lfilter([1.0 - a], [1.0, -a], target, axis=0, zi=(a * target[0])[None, :])[0]
    temperature = temperature + 0.15 * meas_t

    # energy counter: trapezoidal integral of the true AC power
    increments = np.zeros((n, m))
    increments[1:] = (ac[1:] + ac[:-1]) * (step / 2.0 / 3.6e6)
    energy = np.round(offsets + np.cumsum(increments, axis=0), 3)

    ac_rep = np.round(ac * (1.0 + 0.002 * meas_ac), 1)
    dc_rep = np.round(dc * (1.0 + 0.003 * meas_dc), 1)
    temp_rep = np.round(temperature, 1)
    irradiance = None
    if plant.poa_sensor:
        sensor_rng = _rng(scenario.seed, plant_key, _STREAM_AMBIENT, 1)
        reading = np.round(np.clip(poa_global * (1.0 + 0.005 * sensor_rng.standard_normal(n)), 0.0, None), 1)
        irradiance = np.repeat(reading[:, None], m, axis=1)
    status_rep = status.copy()
    energy_rep = energy.copy()
    for rows, j in frozen:
        if rows.start >= rows.stop:
            continue
        ref = rows.start - 1 if rows.start > 0 else rows.start
        for array in (ac_rep, dc_rep, temp_rep, energy_rep, status_rep) + ((irradiance,) if irradiance is not None else ()):
            array[rows, j] = array[ref, j]

    return _PlantFrames(plant=plant, ac=ac_rep, dc=dc_rep, temperature=temp_rep, energy=energy_rep,
                        status=status_rep, irradiance=irradiance, emit=_emit_mask(scenario, plant),
                        true_ac=ac, poa=poa_global)


# --- stream defects ---------------------------------------------------------------------

@dataclass
class _Injections:
    duplicate: list[np.ndarray]  # per plant (n, m) bool
    invalid: list[np.ndarray]  # per plant (n, m) int: -1 none, else index in INVALID_REASONS


def _injections(scenario: Scenario) -> _Injections:
    duplicates, invalid = [], []
    n = scenario.n_steps
    for plant in scenario.plants:
        emit = _emit_mask(scenario, plant)
        rng = _rng(scenario.seed, _crc(plant.plant_id), _STREAM_INJECT)
        m = len(plant.inverters)
        dup = (rng.random((n, m)) < scenario.duplicate_rate) & emit
        bad = (rng.random((n, m)) < scenario.invalid_rate) & emit
        reason = rng.integers(0, len(INVALID_REASONS), size=(n, m))
        duplicates.append(dup)
        invalid.append(np.where(bad, reason, -1))
    return _Injections(duplicates, invalid)


def _ghost_id(plant: Plant, inverter_id: str) -> str:
    ghost = f"ghost-{inverter_id}"
    while ghost in plant.inverter_ids:
        ghost += "x"
    return ghost


def _invalid_event(event: dict, reason: str, plant: Plant, rated_w: float, epoch: int) -> dict:
    bad = dict(event)
    if reason == "negative_power":
        bad["ac_power_w"] = -round(abs(event["ac_power_w"]) + 0.05 * rated_w, 1)
    elif reason == "over_rated":
        bad["ac_power_w"] = round(3.0 * rated_w + abs(event["ac_power_w"]), 1)
    elif reason == "future_ts":
        bad["ts"] = _iso(datetime.fromtimestamp(epoch + 86400, tz=timezone.utc))
    elif reason == "unknown_inverter":
        bad["inverter_id"] = _ghost_id(plant, event["inverter_id"])
    elif reason == "bad_ts":
        bad["ts"] = "not-a-timestamp"
    elif reason == "missing_field":
        del bad["energy_total_kwh"]
    bad["event_id"] = f"{plant.plant_id}:{bad['inverter_id']}:{epoch}:bad-{reason}"
    return bad


# --- public API -------------------------------------------------------------------------

def simulate(scenario: Scenario) -> Iterator[dict]:
    """Events of ``scenario`` in time order (at each step: plants and inverters in file
    order, then that step's duplicates, then its invalid events)."""
    times = scenario.times()
    epochs = scenario.epochs().tolist()
    stamps = list(times.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frames = [_simulate_plant(scenario, plant, times) for plant in scenario.plants]
    inject = _injections(scenario)

    columns = []  # (plant, inverter, rated, id prefix, lists..., emit list)
    for frame in frames:
        plant = frame.plant
        for j, inv in enumerate(plant.inverters):
            columns.append((
                plant, inv.inverter_id, inv.rated_power_w, f"{plant.plant_id}:{inv.inverter_id}:",
                frame.ac[:, j].tolist(), frame.energy[:, j].tolist(), frame.dc[:, j].tolist(),
                frame.temperature[:, j].tolist(), frame.status[:, j].tolist(),
                frame.irradiance[:, j].tolist() if frame.irradiance is not None else None,
                frame.emit[:, j].tolist(),
            ))
    dup_any = np.zeros(scenario.n_steps, dtype=bool)
    bad_any = np.zeros(scenario.n_steps, dtype=bool)
    dup_cols = np.concatenate(inject.duplicate, axis=1)
    bad_cols = np.concatenate(inject.invalid, axis=1)
    dup_any |= dup_cols.any(axis=1)
    bad_any |= (bad_cols >= 0).any(axis=1)

    for k in range(scenario.n_steps):
        epoch, ts = epochs[k], stamps[k]
        snapshot = bool(dup_any[k] or bad_any[k])  # keep copies: consumers may mutate events
        step_events: list[dict | None] = []
        for plant, inverter_id, _rated, prefix, ac, energy, dc, temp, status, irr, emit in columns:
            if not emit[k]:
                if snapshot:
                    step_events.append(None)
                continue
            event = {
                "event_id": f"{prefix}{epoch}", "plant_id": plant.plant_id, "inverter_id": inverter_id,
                "ts": ts, "ac_power_w": ac[k], "energy_total_kwh": energy[k], "dc_power_w": dc[k],
                "temperature_c": temp[k], "status_code": status[k],
            }
            if irr is not None:
                event["irradiance_wm2"] = irr[k]
            if snapshot:
                step_events.append(dict(event))
            yield event
        if not snapshot:
            continue
        if dup_any[k]:
            for c in np.flatnonzero(dup_cols[k]).tolist():
                yield dict(step_events[c])  # type: ignore[arg-type]
        if bad_any[k]:
            for c in np.flatnonzero(bad_cols[k] >= 0).tolist():
                plant, _inv, rated, *_ = columns[c]
                yield _invalid_event(step_events[c], INVALID_REASONS[int(bad_cols[k, c])],  # type: ignore[arg-type]
                                     plant, rated, epoch)


def labels(scenario: Scenario) -> list[dict]:
    """Ground truth: one entry per fault (``kind`` in :data:`FAULT_KINDS`, ``plant_id``,
    ``inverter_id`` (None for an outage), ``inverter_ids`` (affected), ``start``/``end``
    (ISO UTC, end exclusive), ``params`` with defaults, ``severity``), in scenario order;
    then one entry per invalid event (``kind`` "invalid", ``reason``, ``event_id``,
    ``plant_id``, ``inverter_id`` as emitted, ``ts`` of the emission step), then one per
    duplicated event (``kind`` "duplicate", ``event_id``, ...); each group in stream order."""
    out: list[dict] = []
    for fault in scenario.faults:
        plant = scenario.plant(fault.plant_id)
        out.append({
            "kind": fault.kind,
            "plant_id": fault.plant_id,
            "inverter_id": fault.inverter_id,
            "inverter_ids": plant.inverter_ids if fault.inverter_id is None else [fault.inverter_id],
            "start": _iso(fault.start),
            "end": _iso(fault.end),
            "params": fault.resolved_params,
            "severity": "info" if fault.kind == "clipping" else "fault",
        })
    if scenario.duplicate_rate <= 0 and scenario.invalid_rate <= 0:
        return out
    inject = _injections(scenario)
    epochs = scenario.epochs()
    invalid_rows: list[tuple[int, int, int, dict]] = []
    duplicate_rows: list[tuple[int, int, int, dict]] = []
    column = 0
    for p, plant in enumerate(scenario.plants):
        for j, inv in enumerate(plant.inverters):
            for k in np.flatnonzero(inject.duplicate[p][:, j]).tolist():
                epoch = int(epochs[k])
                duplicate_rows.append((k, 0, column, {
                    "kind": "duplicate", "event_id": f"{plant.plant_id}:{inv.inverter_id}:{epoch}",
                    "plant_id": plant.plant_id, "inverter_id": inv.inverter_id,
                    "ts": _iso(datetime.fromtimestamp(epoch, tz=timezone.utc))}))
            for k in np.flatnonzero(inject.invalid[p][:, j] >= 0).tolist():
                epoch = int(epochs[k])
                reason = INVALID_REASONS[int(inject.invalid[p][k, j])]
                inverter_id = _ghost_id(plant, inv.inverter_id) if reason == "unknown_inverter" else inv.inverter_id
                invalid_rows.append((k, 1, column, {
                    "kind": "invalid", "reason": reason,
                    "event_id": f"{plant.plant_id}:{inverter_id}:{epoch}:bad-{reason}",
                    "plant_id": plant.plant_id, "inverter_id": inverter_id,
                    "ts": _iso(datetime.fromtimestamp(epoch, tz=timezone.utc))}))
            column += 1
    out.extend(row[3] for row in sorted(invalid_rows, key=lambda r: (r[0], r[2])))
    out.extend(row[3] for row in sorted(duplicate_rows, key=lambda r: (r[0], r[2])))
    return out


def write_jsonl(events: Iterable[dict], path: str | Path) -> int:
    """Write events as JSON lines (UTF-8); returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    chunk: list[bytes] = []
    with path.open("wb") as fh:
        if _orjson is not None:
            dumps = _orjson.dumps
            for event in events:
                chunk.append(dumps(event))
                count += 1
                if len(chunk) >= 8192:
                    fh.write(b"\n".join(chunk) + b"\n")
                    chunk.clear()
        else:  # pragma: no cover
            for event in events:
                chunk.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
                count += 1
                if len(chunk) >= 8192:
                    fh.write(b"\n".join(chunk) + b"\n")
                    chunk.clear()
        if chunk:
            fh.write(b"\n".join(chunk) + b"\n")
    return count


#: (kind, plant index in the sample fleet, inverter or None, start/end as fractions of the
#: plant's daylight span (sun elevation > 20°) on the scenario's first day, params)
_DEFAULT_FAULTS: tuple[tuple[str, str, str | None, float, float, dict], ...] = (
    ("trip", "plant-cps-01", "inv-02", 0.15, 0.25, {}),
    ("comm_loss", "plant-gyn-01", "inv-03", 0.20, 0.30, {}),
    ("underperformance", "plant-cwb-01", "inv-01", 0.30, 0.55, {"derate": 0.6}),
    ("clipping", "plant-gyn-01", "inv-05", 0.35, 0.65, {"limit_fraction": 0.7}),
    ("frozen", "plant-cps-01", "inv-04", 0.55, 0.62, {}),
    ("outage", "plant-rj-01", None, 0.70, 0.80, {"reporting": "zeros"}),
)


def default_scenario(start: datetime | date | str | None = None, hours: float = 24.0, seed: int = 0, *,
                     plants: list[Plant] | None = None, step_s: int = 60, sky: str = "variable",
                     duplicate_rate: float = 0.002, invalid_rate: float = 0.0005) -> Scenario:
    """The sample fleet with one fault of each kind, on six different inverters, placed in
    daylight (sun elevation > 20°) of the scenario's first day.

    ``start``: a datetime (naive = UTC) or a date, which means 03:00 UTC (local midnight
    in Brasília time, UTC-3); default: today's date. ``plants``: another fleet holding the
    plant/inverter ids of :data:`_DEFAULT_FAULTS` (default :func:`sample_plants`)."""
    if start is None:
        start = datetime.now(timezone.utc).date()
    if isinstance(start, str):
        start = pd.Timestamp(start).to_pydatetime() if "T" in start or " " in start else date.fromisoformat(start)
    if isinstance(start, date) and not isinstance(start, datetime):
        start = datetime.combine(start, time(3, 0), tzinfo=timezone.utc)
    start = _utc(start).replace(microsecond=0)
    plants = plants if plants is not None else sample_plants()
    duration = timedelta(hours=hours)
    draft = Scenario(plants=plants, start=start, duration=duration, step_s=step_s, seed=seed, sky=sky)
    times = draft.times()
    by_id = {p.plant_id: p for p in plants}
    faults = []
    for kind, plant_id, inverter_id, f0, f1, params in _DEFAULT_FAULTS:
        plant = by_id[plant_id]
        elevation = pvlib.solarposition.get_solarposition(times, plant.latitude, plant.longitude)[
            "apparent_elevation"].to_numpy()
        day = np.flatnonzero(elevation > 20.0)
        if day.size:
            # first contiguous daylight run
            breaks = np.flatnonzero(np.diff(day) > 1)
            a, b = int(day[0]), int(day[breaks[0]] if breaks.size else day[-1]) + 1
        else:  # no daylight in the scenario: faults go in the middle (undetectable by design)
            a, b = 0, len(times)
        span = b - a
        i0 = a + int(round(f0 * span))
        i1 = max(i0 + 1, a + int(round(f1 * span)))
        i1 = min(i1, len(times))
        i0 = min(i0, i1 - 1)
        t0 = times[i0].to_pydatetime()
        t1 = draft.start + timedelta(seconds=i1 * step_s)
        faults.append(Fault(kind=kind, plant_id=plant_id, inverter_id=inverter_id, start=t0, end=t1,
                            params=params))
    return Scenario(plants=plants, start=start, duration=duration, step_s=step_s, seed=seed, sky=sky,
                    faults=faults, duplicate_rate=duplicate_rate, invalid_rate=invalid_rate)
