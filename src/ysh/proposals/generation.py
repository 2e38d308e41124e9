"""Monthly AC energy of a fixed PV array (PVWatts v5 style, with pvlib).

Chain, per hour (at the middle of the hour, see :mod:`ysh.proposals.irradiance`):

1. Sun position: :meth:`pvlib.location.Location.get_solarposition` (NREL SPA, numpy).
2. Plane of array: :func:`pvlib.irradiance.get_total_irradiance`, Perez 1990 sky diffuse
   (with ``dni_extra`` and relative airmass), albedo :data:`ALBEDO`.
3. Cover reflection: :func:`pvlib.iam.physical` on the beam component (PVWatts v5 glass).
4. Cell temperature: :func:`pvlib.temperature.sapm_cell`, ``open_rack_glass_polymer``.
5. DC: :func:`pvlib.pvsystem.pvwatts_dc`, ``pdc0`` = 1 kW, ``gamma_pdc`` = −0.37 %/°C.
6. System losses: DC × (1 − ``losses_pct``/100) (same meaning as PVWatts' 14 % default:
   soiling, wiring, mismatch, LID, nameplate, availability...).
7. Inverter: × ``inverter_efficiency`` (flat; no part-load curve, no clipping).

Azimuth convention (pvlib's): degrees clockwise from north — 0 = north, 90 = east,
180 = south, 270 = west. South of the equator, as in almost all of Brazil, the sun is
to the north, so a north-facing array (``azimuth_deg=0``) is optimal.

Generation is linear in kWp, so the expensive part is cached per site as a *yield*
(kWh per kWp per month) — in memory, and on disk under
``settings.proposals.irradiance.cache_dir / "yield"`` (one small JSON per key) when ``settings`` is
given — and then scaled by kWp.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pvlib

from ysh.kit.files import atomic_write
from ysh.proposals.irradiance import COLUMNS, IrradianceYear, finite_number

if TYPE_CHECKING:  # pragma: no cover
    from ysh.settings import Settings

log = logging.getLogger("ysh.proposals.generation")

#: Bump when the model below changes: old cached yields are then ignored.
MODEL_VERSION = 1
GAMMA_PDC = -0.0037  # 1/°C, PVWatts v5 "standard" module
ALBEDO = 0.2
TRANSPOSITION_MODEL = "perez"
TEMPERATURE_MODEL = "open_rack_glass_polymer"
TEMPERATURE_PARAMETERS = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][TEMPERATURE_MODEL]
PDC0_W = 1000.0  # one kWp

#: yields kept in memory (12 floats each): enough for every site × orientation of a
#: large batch (20,000 quotes of the sample seed have ~12,000), so a batch reads each
#: from disk once
_MEMORY_CACHE_SIZE = 32_768
_memory_cache: OrderedDict[str, tuple[float, ...]] = OrderedDict()
_memory_lock = threading.Lock()
#: id(weather.data) → (weak reference to it, digest): hashing 8,760 hours costs ~7 ms, and
#: a batch asks for the same site's yield once per orientation
_digests: dict[int, tuple[weakref.ref, str]] = {}


# --- validation -------------------------------------------------------------------------

def _number(value: object, field: str) -> float:
    return finite_number(value, field)


def validate_array(tilt_deg: object, azimuth_deg: object, losses_pct: object,
                   inverter_efficiency: object) -> tuple[float, float, float, float]:
    """Check the array parameters; ``ValueError`` names the offending field."""
    tilt = _number(tilt_deg, "tilt_deg")
    if not 0.0 <= tilt <= 90.0:
        raise ValueError(f"tilt_deg must be between 0 and 90 degrees, got {tilt}")
    azimuth = _number(azimuth_deg, "azimuth_deg")
    if not 0.0 <= azimuth < 360.0:
        raise ValueError(
            f"azimuth_deg must be in [0, 360) degrees clockwise from north (0 = north), got {azimuth}"
        )
    losses = _number(losses_pct, "losses_pct")
    if not 0.0 <= losses < 100.0:
        raise ValueError(f"losses_pct must be in [0, 100) percent, got {losses}")
    efficiency = _number(inverter_efficiency, "inverter_efficiency")
    if not 0.0 < efficiency <= 1.0:
        raise ValueError(f"inverter_efficiency must be in (0, 1], got {efficiency}")
    return tilt, azimuth, losses, efficiency


def _validate_weather(weather: IrradianceYear) -> None:
    if not isinstance(weather, IrradianceYear):
        raise ValueError(f"weather must be an IrradianceYear, got {type(weather).__name__}")
    missing = [c for c in COLUMNS if c not in weather.data.columns]
    if missing:
        raise ValueError(f"weather.data lacks columns {missing}")
    index = weather.data.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("weather.data must have a tz-aware DatetimeIndex")


# --- the model --------------------------------------------------------------------------

def compute_yield_kwh_per_kwp(weather: IrradianceYear, tilt_deg: float, azimuth_deg: float,
                              losses_pct: float, inverter_efficiency: float) -> list[float]:
    """Uncached model: AC kWh per kWp for each month Jan..Dec (see module docstring)."""
    data = weather.data
    mid = data.index.tz_convert("UTC") + pd.Timedelta(minutes=30)
    location = pvlib.location.Location(weather.latitude, weather.longitude, tz="UTC")
    solpos = location.get_solarposition(mid)
    zenith = solpos["apparent_zenith"].to_numpy()
    sun_azimuth = solpos["azimuth"].to_numpy()
    ghi = data["ghi"].to_numpy(dtype=float)
    dni = data["dni"].to_numpy(dtype=float)
    dhi = data["dhi"].to_numpy(dtype=float)
    dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(mid), dtype=float)
    airmass = np.asarray(pvlib.atmosphere.get_relative_airmass(zenith), dtype=float)

    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg, azimuth_deg, zenith, sun_azimuth, dni, ghi, dhi,
        dni_extra=dni_extra, airmass=airmass, albedo=ALBEDO, model=TRANSPOSITION_MODEL,
    )
    poa_global = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float), nan=0.0)
    poa_direct = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=float), nan=0.0)
    poa_diffuse = np.clip(poa_global - poa_direct, 0.0, None)
    poa_direct = np.clip(poa_direct, 0.0, None)
    poa_global = poa_direct + poa_diffuse

    aoi = pvlib.irradiance.aoi(tilt_deg, azimuth_deg, zenith, sun_azimuth)
    iam = np.nan_to_num(np.asarray(pvlib.iam.physical(aoi), dtype=float), nan=0.0)
    effective = poa_direct * iam + poa_diffuse

    temp_cell = pvlib.temperature.sapm_cell(
        poa_global, data["temp_air"].to_numpy(dtype=float), data["wind_speed"].to_numpy(dtype=float),
        **TEMPERATURE_PARAMETERS,
    )
    dc_w = np.clip(pvlib.pvsystem.pvwatts_dc(effective, temp_cell, PDC0_W, GAMMA_PDC), 0.0, None)
    ac_w = dc_w * (1.0 - losses_pct / 100.0) * inverter_efficiency

    hours = pd.Series(ac_w, index=data.index)
    # Each row is one hour, so W summed over hours = Wh; /1000 → kWh (per kWp, pdc0 = 1 kW).
    monthly = hours.groupby(data.index.month).sum().reindex(range(1, 13), fill_value=0.0) / 1000.0
    return [float(v) for v in monthly.to_numpy()]


# --- caching ----------------------------------------------------------------------------

def _weather_digest(weather: IrradianceYear) -> str:
    """Fingerprint of the hourly data, so a refreshed or re-modelled year is a new key
    (remembered per data frame while it lives: an IrradianceYear is not modified)."""
    data = weather.data
    known = _digests.get(id(data))
    if known is not None and known[0]() is data:
        return known[1]
    hashed = pd.util.hash_pandas_object(data[list(COLUMNS)], index=True).to_numpy()
    digest = hashlib.sha256(hashed.tobytes()).hexdigest()[:16]
    key = id(data)
    with _memory_lock:
        _digests[key] = (weakref.ref(data, lambda _, key=key: _digests.pop(key, None)), digest)
    return digest


def _cache_key(weather: IrradianceYear, tilt: float, azimuth: float, losses: float,
               efficiency: float) -> dict:
    return {
        "model": MODEL_VERSION, "latitude": round(weather.latitude, 1),
        "longitude": round(weather.longitude, 1), "source": weather.source,
        "tilt_deg": tilt, "azimuth_deg": azimuth, "losses_pct": losses,
        "inverter_efficiency": efficiency, "weather": _weather_digest(weather),
    }


def _key_id(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def yield_cache_dir(settings: "Settings") -> Path:
    return settings.proposals.irradiance.cache_dir / "yield"


def _disk_path(cache_dir: Path, key: dict) -> Path:
    return cache_dir / (f"{key['source']}_lat{key['latitude']:.1f}_lon{key['longitude']:.1f}_"
                        f"{_key_id(key)}.json")


def _read_disk(path: Path, key: dict) -> tuple[float, ...] | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        values = tuple(float(v) for v in doc["kwh_per_kwp"])
        if doc.get("key") != key or len(values) != 12 or not all(math.isfinite(v) for v in values):
            raise ValueError("key mismatch or bad values")
    except Exception as exc:
        log.warning("ignoring unreadable yield cache %s: %s", path, exc)
        return None
    return values


def _write_disk(path: Path, key: dict, values: tuple[float, ...]) -> None:
    with atomic_write(path) as fh:
        json.dump({"key": key, "kwh_per_kwp": list(values)}, fh, indent=1)


def clear_memory_cache() -> None:
    with _memory_lock:
        _memory_cache.clear()


def site_yield_kwh_per_kwp(weather: IrradianceYear, tilt_deg: float, azimuth_deg: float = 0.0,
                           losses_pct: float = 14.0, inverter_efficiency: float = 0.96, *,
                           settings: "Settings | None" = None) -> list[float]:
    """Monthly AC yield, kWh per kWp, Jan..Dec; cached in memory and (with ``settings``) on disk."""
    _validate_weather(weather)
    tilt, azimuth, losses, efficiency = validate_array(tilt_deg, azimuth_deg, losses_pct,
                                                       inverter_efficiency)
    key = _cache_key(weather, tilt, azimuth, losses, efficiency)
    key_id = _key_id(key)
    with _memory_lock:
        values = _memory_cache.get(key_id)
        if values is not None:
            _memory_cache.move_to_end(key_id)
            return list(values)

    path = _disk_path(yield_cache_dir(settings), key) if settings is not None else None
    if path is not None:
        values = _read_disk(path, key)
        if values is not None:
            log.debug("yield cache hit %s", path)
    if values is None:
        values = tuple(compute_yield_kwh_per_kwp(weather, tilt, azimuth, losses, efficiency))
        if path is not None:
            try:
                _write_disk(path, key, values)
            except OSError as exc:
                log.warning("could not write yield cache %s: %s", path, exc)
    with _memory_lock:
        _memory_cache[key_id] = values
        while len(_memory_cache) > _MEMORY_CACHE_SIZE:
            _memory_cache.popitem(last=False)
    return list(values)


def monthly_generation_kwh(weather: IrradianceYear, kwp: float, tilt_deg: float,
                           azimuth_deg: float = 0.0, losses_pct: float = 14.0,
                           inverter_efficiency: float = 0.96, *,
                           settings: "Settings | None" = None) -> list[float]:
    """AC energy (kWh) of a ``kwp`` array for each month Jan..Dec of ``weather``'s year.

    ``azimuth_deg``: clockwise from north (0 = north-facing, best in Brazil; 180 = south).
    ``losses_pct``: PVWatts-style system losses, % of DC. ``settings`` enables the on-disk
    yield cache under ``settings.proposals.irradiance.cache_dir``.
    """
    kwp_value = _number(kwp, "kwp")
    if kwp_value <= 0:
        raise ValueError(f"kwp must be > 0, got {kwp_value}")
    per_kwp = site_yield_kwh_per_kwp(weather, tilt_deg, azimuth_deg, losses_pct,
                                     inverter_efficiency, settings=settings)
    return [value * kwp_value for value in per_kwp]
