"""Expected AC power of an inverter: the plant's clear-sky model, or its measured
plane-of-array irradiance when the plant reports one (pure Python + pvlib).

The model is the simulator's physics (:mod:`ysh.om.physics`, shared with
:mod:`ysh.samples.om_telemetry`) without clouds or noise:
- Ineichen clear sky with the Linke turbidity climatology;
- Hay-Davies transposition to the plant's tilt and azimuth, and the physical IAM;
- SAPM cell temperature at 25 °C ambient and 1 m/s wind;
- PVWatts DC (γ −0.37 %/°C), the DC losses, then PVWatts AC capped at the inverter's
  rating.

On a cloudy day the clear-sky value overstates what is possible, so the rules compare
inverters with their peers. A measured irradiance takes the clouds into account.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
import pvlib

from .fleet import Plant
from .physics import dc_per_installed_w, inverter_ac, plane_of_array

AMBIENT_C = 25.0
WIND_MS = 1.0


class _Site(tuple):
    """(latitude, longitude, tilt, azimuth): what the physics needs, hashable for caching."""

    @classmethod
    def of(cls, plant: Plant) -> "_Site":
        return cls((plant.latitude, plant.longitude, plant.tilt_deg, plant.azimuth_deg))


def _dc_per_w(site: tuple, times: pd.DatetimeIndex, poa_measured: np.ndarray | None = None) -> np.ndarray:
    """DC watts per installed DC watt at ``times`` (clear sky, or the measured POA)."""
    latitude, longitude, tilt, azimuth_deg = site
    if poa_measured is None:  # the sun's position matters only for the clear-sky irradiance
        location = pvlib.location.Location(latitude, longitude, tz="UTC")
        solpos = location.get_solarposition(times)
        zenith = solpos["apparent_zenith"].to_numpy(dtype=float)
        azimuth = solpos["azimuth"].to_numpy(dtype=float)
        clear = location.get_clearsky(times, model="ineichen", solar_position=solpos)
        total, effective = plane_of_array(tilt, azimuth_deg, zenith, azimuth, clear["dni"], clear["ghi"],
                                          clear["dhi"], pvlib.irradiance.get_extra_radiation(times))
    else:
        total = effective = np.clip(np.asarray(poa_measured, dtype=float), 0.0, None)
    return dc_per_installed_w(total, effective, AMBIENT_C, WIND_MS)


def _ac(plant: Plant, inverter_id: str, dc_per_w: np.ndarray) -> np.ndarray:
    inverter = plant.inverter(inverter_id)
    dc = dc_per_w * plant.dc_kw_per_inverter[inverter_id] * 1000.0
    return inverter_ac(dc, inverter.rated_power_w)[0]


@lru_cache(maxsize=8192)
def _clear_day(site: tuple, day: date) -> np.ndarray:
    """Clear-sky DC per installed W, every minute of one UTC day (index = minute of the
    day; cached per site and day: one pvlib run per plant and day)."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    times = pd.date_range(start, periods=24 * 60, freq="1min")
    return _dc_per_w(site, times)


def expected_power_w(plant: Plant, inverter_id: str, start: datetime, end: datetime,
                     poa_wm2: float | None = None) -> float:
    """Mean expected AC power [W] of one inverter over ``[start, end)``. Given ``poa_wm2``
    (the window's mean measured plane-of-array irradiance), that drives the model at the
    window's middle; else the clear-sky model is averaged minute by minute."""
    if poa_wm2 is not None:
        middle = pd.DatetimeIndex([start + (end - start) / 2])
        return float(_ac(plant, inverter_id, _dc_per_w(_Site.of(plant), middle, np.array([poa_wm2])))[0])
    minutes = []
    site = _Site.of(plant)
    t = start.astimezone(timezone.utc)
    end = end.astimezone(timezone.utc)
    while t < end:
        minutes.append(_clear_day(site, t.date())[t.hour * 60 + t.minute])  # the minute t falls in
        t += timedelta(minutes=1)
    if not minutes:
        return 0.0
    return float(np.mean(_ac(plant, inverter_id, np.array(minutes, dtype=float))))
