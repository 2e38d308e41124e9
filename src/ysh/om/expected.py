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

import math
import os
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
import pvlib
from pvlib import spa
from pvlib.tools import _degrees_to_index

from .fleet import Plant
from .physics import dc_per_installed_w, inverter_ac, plane_of_array

AMBIENT_C = 25.0
WIND_MS = 1.0


class _Site(tuple):
    """(latitude, longitude, tilt, azimuth): what the physics needs, hashable for caching."""

    @classmethod
    def of(cls, plant: Plant) -> "_Site":
        return cls((plant.latitude, plant.longitude, plant.tilt_deg, plant.azimuth_deg))


@lru_cache(maxsize=2)
def _pvlib_grid(filename: str, name: str):
    """A dataset of one of pvlib's gridded data files (``Altitude.h5``,
    ``LinkeTurbidities.h5``), the file opened once per process: pvlib's lookups open it
    for every site, and reading one cell decompresses its chunk again each time; kept
    open, HDF5's chunk cache serves the neighbouring sites of a fleet."""
    import h5py

    handle = h5py.File(os.path.join(os.path.dirname(pvlib.__file__), "data", filename), "r")
    return handle, handle[name]


def _altitude(latitude: float, longitude: float) -> float:
    """:func:`pvlib.location.lookup_altitude`: the same cell, the same arithmetic."""
    _, grid = _pvlib_grid("Altitude.h5", "Altitude")
    alt = grid[_degrees_to_index(latitude, coordinate="latitude"), _degrees_to_index(longitude, coordinate="longitude")]
    if alt == 255:  # no data: pvlib falls back to 0
        return 0
    alt = float(alt)
    alt *= 28
    alt -= 450
    return alt


def _linke_turbidity(times: pd.DatetimeIndex, latitude: float, longitude: float) -> pd.Series:
    """:func:`pvlib.clearsky.lookup_linke_turbidity` (interpolated to the day of year):
    the same cell, the same interpolation."""
    _, grid = _pvlib_grid("LinkeTurbidities.h5", "LinkeTurbidity")
    lts = grid[_degrees_to_index(latitude, coordinate="latitude"), _degrees_to_index(longitude, coordinate="longitude")]
    turbidity = pvlib.clearsky._interpolate_turbidity(lts, times)
    turbidity /= 20.
    return turbidity


@lru_cache(maxsize=4096)
def _location(latitude: float, longitude: float) -> pvlib.location.Location:
    # the altitude pvlib would look up (``Location(latitude, longitude)``), read from the open grid
    return pvlib.location.Location(latitude, longitude, tz="UTC", altitude=_altitude(latitude, longitude))


def _day_times(day: date) -> pd.DatetimeIndex:
    return pd.date_range(datetime(day.year, day.month, day.day, tzinfo=timezone.utc), periods=24 * 60, freq="1min")


@lru_cache(maxsize=8)
def _sun_day(day: date) -> tuple:
    """The site-independent part of NREL's SPA (Reda & Andreas 2004, as
    :func:`pvlib.spa.solar_position_numpy` computes it) for every minute of one UTC day:
    the heliocentric and geocentric terms, once per day for the whole fleet."""
    times = _day_times(day)
    unixtime = np.array((times - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta("1s"))
    delta_t = 67.0  # pvlib.solarposition.spa_python's default, which Location.get_solarposition uses
    jd = spa.julian_day(unixtime)
    jde = spa.julian_ephemeris_day(jd, delta_t)
    jc = spa.julian_century(jd)
    jce = spa.julian_ephemeris_century(jde)
    jme = spa.julian_ephemeris_millennium(jce)
    radius = spa.heliocentric_radius_vector(jme)
    theta = spa.geocentric_longitude(spa.heliocentric_longitude(jme))
    beta = spa.geocentric_latitude(spa.heliocentric_latitude(jme))
    x0, x1, x2 = spa.mean_elongation(jce), spa.mean_anomaly_sun(jce), spa.mean_anomaly_moon(jce)
    x3, x4 = spa.moon_argument_latitude(jce), spa.moon_ascending_longitude(jce)
    nutation = np.empty((2, len(x0)))
    spa.longitude_obliquity_nutation(jce, x0, x1, x2, x3, x4, nutation)
    delta_psi, delta_epsilon = nutation[0], nutation[1]
    epsilon = spa.true_ecliptic_obliquity(spa.mean_ecliptic_obliquity(jme), delta_epsilon)
    lamd = spa.apparent_sun_longitude(theta, delta_psi, spa.aberration_correction(radius))
    v = spa.apparent_sidereal_time(spa.mean_sidereal_time(jd, jc), delta_psi, epsilon)
    alpha = spa.geocentric_sun_right_ascension(lamd, epsilon, beta)
    delta = spa.geocentric_sun_declination(lamd, epsilon, beta)
    eot = spa.equation_of_time(spa.sun_mean_longitude(jme), alpha, delta_psi, epsilon)
    return times, v, alpha, delta, eot, spa.equatorial_horizontal_parallax(radius)


def _solar_position(location: pvlib.location.Location, day: date) -> pd.DataFrame:
    """``location.get_solarposition`` over the minutes of ``day`` (SPA, 12 °C, the
    pressure of the site's altitude), the same numbers, with the day's site-independent
    terms shared by every site (:func:`_sun_day`)."""
    times, *_, eot, _ = _sun_day(day)
    e, e0, gamma = _topocentric(location, day)
    return pd.DataFrame({"apparent_zenith": spa.topocentric_zenith_angle(e), "zenith": spa.topocentric_zenith_angle(e0),
                         "apparent_elevation": e, "elevation": e0, "azimuth": spa.topocentric_azimuth_angle(gamma),
                         "equation_of_time": eot}, index=times)


@lru_cache(maxsize=8)
def _extra_radiation_day(day: date) -> pd.Series:
    """``pvlib.irradiance.get_extra_radiation`` over the minutes of ``day``: it depends on
    the time only, so once per day for the whole fleet (the clear sky and the transposition
    of every site take it)."""
    return pvlib.irradiance.get_extra_radiation(_day_times(day))


def _dc_per_w(site: tuple, times: pd.DatetimeIndex, poa_measured: np.ndarray | None = None,
              solpos: pd.DataFrame | None = None, dni_extra: pd.Series | None = None) -> np.ndarray:
    """DC watts per installed DC watt at ``times`` (clear sky, or the measured POA);
    ``dni_extra``: the extraterrestrial irradiance at ``times``, when already known."""
    latitude, longitude, tilt, azimuth_deg = site
    if poa_measured is None:  # the sun's position matters only for the clear-sky irradiance
        location = _location(latitude, longitude)
        if solpos is None:
            solpos = location.get_solarposition(times)
        if dni_extra is None:
            dni_extra = pvlib.irradiance.get_extra_radiation(times)
        zenith = solpos["apparent_zenith"].to_numpy(dtype=float)
        azimuth = solpos["azimuth"].to_numpy(dtype=float)
        clear = location.get_clearsky(times, model="ineichen", solar_position=solpos, dni_extra=dni_extra,
                                      linke_turbidity=_linke_turbidity(times, location.latitude, location.longitude))
        total, effective = plane_of_array(tilt, azimuth_deg, zenith, azimuth, clear["dni"], clear["ghi"],
                                          clear["dhi"], dni_extra)
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
    day; cached per site and day: one pvlib run per plant and day).

    :func:`_dc_per_w`'s chain (``Location.get_clearsky`` with Ineichen, the airmass of
    ``Location.get_airmass``, the Linke turbidity, the transposition) on numpy arrays
    rather than pandas objects: pvlib's functions do the same element-wise arithmetic on
    either, so the numbers are pvlib's bit for bit (``tests/om/test_expected.py``), without
    pandas' overhead (about three quarters of the day's time: 4 → 1 ms per plant-day)."""
    latitude, longitude, tilt, azimuth_deg = site
    location = _location(latitude, longitude)
    with np.errstate(all="ignore"):  # as pandas' arithmetic: the night's divisions by zero and NaNs are expected
        return _clear_day_arrays(location, tilt, azimuth_deg, day)


def _clear_day_arrays(location: pvlib.location.Location, tilt: float, azimuth_deg: float, day: date) -> np.ndarray:
    apparent_zenith, azimuth = _sun_angles(location, day)
    dni_extra = _extra_radiation_values(day)
    airmass_relative = pvlib.atmosphere.get_relative_airmass(apparent_zenith, "kastenyoung1989")
    airmass_absolute = pvlib.atmosphere.get_absolute_airmass(airmass_relative,
                                                             pvlib.atmosphere.alt2pres(location.altitude))
    clear = pvlib.clearsky.ineichen(apparent_zenith, airmass_absolute,
                                    _linke_turbidity_day(day, location.latitude, location.longitude),
                                    altitude=location.altitude, dni_extra=dni_extra)
    total, effective = plane_of_array(tilt, azimuth_deg, apparent_zenith, azimuth, clear["dni"], clear["ghi"],
                                      clear["dhi"], dni_extra)
    return dc_per_installed_w(total, effective, AMBIENT_C, WIND_MS)


def _sun_angles(location: pvlib.location.Location, day: date) -> tuple[np.ndarray, np.ndarray]:
    """``(apparent_zenith, azimuth)`` of :func:`_solar_position` as arrays (the two the
    clear-sky day reads; the same arithmetic, no frame)."""
    e, _, gamma = _topocentric(location, day)
    return spa.topocentric_zenith_angle(e), spa.topocentric_azimuth_angle(gamma)


def _topocentric(location: pvlib.location.Location, day: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPA's site-dependent steps over the minutes of ``day`` (12 °C, the pressure of the
    site's altitude): ``(apparent elevation, elevation without refraction, astronomers'
    azimuth)``, from the day's site-independent terms (:func:`_sun_day`)."""
    _, v, alpha, delta, _, xi = _sun_day(day)
    lat, lon, elev = location.latitude, location.longitude, location.altitude
    pressure = pvlib.atmosphere.alt2pres(elev) / 100  # millibar
    hour_angle = spa.local_hour_angle(v, lon, alpha)
    u = spa.uterm(lat)
    x, y = spa.xterm(u, lat, elev), spa.yterm(u, lat, elev)
    delta_alpha = spa.parallax_sun_right_ascension(x, xi, hour_angle, delta)
    delta_prime = spa.topocentric_sun_declination(delta, x, y, xi, delta_alpha, hour_angle)
    hour_angle_prime = spa.topocentric_local_hour_angle(hour_angle, delta_alpha)
    e0 = spa.topocentric_elevation_angle_without_atmosphere(lat, delta_prime, hour_angle_prime)
    e = spa.topocentric_elevation_angle(e0, spa.atmospheric_refraction_correction(pressure, 12, e0, 0.5667))
    return e, e0, spa.topocentric_astronomers_azimuth(hour_angle_prime, delta_prime, lat)


@lru_cache(maxsize=8)
def _extra_radiation_values(day: date) -> np.ndarray:
    """:func:`_extra_radiation_day` as an array."""
    values = _extra_radiation_day(day).to_numpy(dtype=float)
    values.flags.writeable = False
    return values


def _linke_turbidity_day(day: date, latitude: float, longitude: float) -> np.ndarray:
    """:func:`_linke_turbidity` over the minutes of ``day`` as an array: pvlib interpolates
    the monthly values to the day of the year, one value for the whole day (the same
    ``np.interp`` on one element as on 1,440 equal ones)."""
    _, grid = _pvlib_grid("LinkeTurbidities.h5", "LinkeTurbidity")
    lts = grid[_degrees_to_index(latitude, coordinate="latitude"), _degrees_to_index(longitude, coordinate="longitude")]
    lts_concat = np.concatenate([[lts[-1]], lts, [lts[0]]])
    leap = (day.year % 4 == 0 and day.year % 100 != 0) or day.year % 400 == 0
    middles = pvlib.clearsky._calendar_month_middles(2016 if leap else 2015)
    value = np.interp(np.array([day.timetuple().tm_yday]), middles, lts_concat)
    value /= 20.
    return np.full(24 * 60, value[0])


@lru_cache(maxsize=16384)
def _clear_ac_day(site: tuple, dc_kw: float, rated_w: float, day: date) -> np.ndarray:
    """Clear-sky AC power [W] of one inverter (``dc_kw`` of modules, rated ``rated_w``),
    every minute of one UTC day: the same element-wise arithmetic as :func:`_ac` on a
    slice, once per inverter and day instead of once per window."""
    curve = inverter_ac(_clear_day(site, day) * dc_kw * 1000.0, rated_w)[0]
    curve.flags.writeable = False  # shared by every window of the day
    return curve


def expected_power_w(plant: Plant, inverter_id: str, start: datetime, end: datetime,
                     poa_wm2: float | None = None) -> float:
    """Mean expected AC power [W] of one inverter over ``[start, end)``. Given ``poa_wm2``
    (the window's mean measured plane-of-array irradiance), that drives the model at the
    window's middle; else the clear-sky model is averaged minute by minute."""
    if poa_wm2 is not None:
        return _from_poa(plant, inverter_id, poa_wm2)
    minutes = []
    site = _Site.of(plant)
    t = start.astimezone(timezone.utc)
    end = end.astimezone(timezone.utc)
    first = t.hour * 60 + t.minute
    count = math.ceil((end - t).total_seconds() / 60.0)
    if t.second == 0 and t.microsecond == 0 and 0 < count and first + count <= 24 * 60:
        # the usual window (whole minutes within one UTC day): a slice of the day's grid
        curve = _clear_ac_day(site, plant.dc_kw_per_inverter[inverter_id], plant.inverter(inverter_id).rated_power_w,
                              t.date())
        # np.mean's own arithmetic (numpy's sum, then one division), without its overhead
        return float(curve[first:first + count].sum() / count)
    while t < end:
        minutes.append(_clear_day(site, t.date())[t.hour * 60 + t.minute])  # the minute t falls in
        t += timedelta(minutes=1)
    if not minutes:
        return 0.0
    return float(np.mean(_ac(plant, inverter_id, np.array(minutes, dtype=float))))


def _from_poa(plant: Plant, inverter_id: str, poa_wm2: float) -> float:
    """The model driven by a measured plane-of-array irradiance [W/m²] (the time does not
    enter: ``_dc_per_w`` with a measured POA reads no sun position)."""
    measured = np.clip(np.asarray([poa_wm2], dtype=float), 0.0, None)
    return float(_ac(plant, inverter_id, dc_per_installed_w(measured, measured, AMBIENT_C, WIND_MS))[0])


#: 1970-01-01 as a proleptic Gregorian ordinal (``date.fromordinal``)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def clear_sky_key(plant: Plant, inverter_id: str) -> tuple:
    """What the clear-sky day of one inverter depends on (site, DC kW behind it, rating):
    computed once per inverter by a caller that asks for many of its windows."""
    return _Site.of(plant), plant.dc_kw_per_inverter[inverter_id], plant.inverter(inverter_id).rated_power_w


def expected_power_at(plant: Plant, inverter_id: str, start_s: float, end_s: float,
                      poa_wm2: float | None = None, key: tuple | None = None) -> float:
    """:func:`expected_power_w` of the window ``[start_s, end_s)`` given in epoch seconds
    (the graph's window bounds), the same number: the usual window (whole minutes within
    one UTC day) is the slice of the inverter's clear-sky day, found from the epoch seconds
    without making datetimes; any other goes to :func:`expected_power_w`. ``key``:
    :func:`clear_sky_key` of the inverter, when the caller keeps it."""
    if poa_wm2 is not None:
        return _from_poa(plant, inverter_id, poa_wm2)
    if start_s.is_integer() and end_s > start_s:
        day, second = divmod(int(start_s), 86400)
        first, rest = divmod(second, 60)
        count = math.ceil((end_s - start_s) / 60.0)
        if rest == 0 and first + count <= 24 * 60:
            site, dc_kw, rated_w = key or clear_sky_key(plant, inverter_id)
            curve = _clear_ac_day(site, dc_kw, rated_w, date.fromordinal(_EPOCH_ORDINAL + day))
            return float(curve[first:first + count].sum() / count)
    return expected_power_w(plant, inverter_id, datetime.fromtimestamp(start_s, tz=timezone.utc),
                            datetime.fromtimestamp(end_s, tz=timezone.utc))

