"""The expected-power model's shared sun grid: the solar position of one UTC day is
computed once for the fleet (the site-independent part of SPA) and finished per site; it
must give pvlib's own numbers, bit for bit, so no window or alert changes with it."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pvlib
import pytest

from ysh.om import expected
from ysh.om.fleet import load_plants

PLANTS = load_plants(Path(__file__).resolve().parents[2] / "data" / "sample" / "om" / "plants.json")
DAYS = [date(2025, 3, 1), date(2025, 6, 21), date(2025, 12, 21)]


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_shared_sun_grid_gives_pvlibs_solar_position(day):
    times = expected._day_times(day)
    for plant in PLANTS:
        location = pvlib.location.Location(plant.latitude, plant.longitude, tz="UTC")
        theirs = location.get_solarposition(times)
        ours = expected._solar_position(expected._location(plant.latitude, plant.longitude), day)
        for column in ("apparent_zenith", "zenith", "azimuth", "apparent_elevation", "equation_of_time"):
            assert np.array_equal(ours[column].to_numpy(), theirs[column].to_numpy()), (plant.plant_id, column)


def test_clear_day_equals_the_per_site_pvlib_chain():
    day = DAYS[1]
    times = expected._day_times(day)
    for plant in PLANTS:
        site = expected._Site.of(plant)
        location = pvlib.location.Location(plant.latitude, plant.longitude, tz="UTC")
        reference = expected._dc_per_w(site, times, solpos=location.get_solarposition(times))
        assert np.array_equal(expected._clear_day(site, day), reference), plant.plant_id


def test_a_window_is_the_mean_of_its_minutes_wherever_it_falls():
    """Aligned 5- and 15-minute windows (a slice of the day's grid), a window crossing
    midnight and one starting between minutes (minute by minute) give the mean over the
    minutes they cover, and a daylight window expects power, a night one none."""
    plant = PLANTS[0]
    inverter = plant.inverters[0]
    site = expected._Site.of(plant)

    def by_minute(start, end):
        values, t = [], start
        while t < end:
            values.append(expected._clear_day(site, t.date())[t.hour * 60 + t.minute])
            t += timedelta(minutes=1)
        return float(np.mean(expected._ac(plant, inverter.inverter_id, np.array(values))))

    noon = datetime(2025, 6, 21, 15, 0, tzinfo=timezone.utc)  # midday in Brazil
    for start, length in [(noon, 5), (noon, 15), (datetime(2025, 6, 21, 23, 55, tzinfo=timezone.utc), 15),
                          (noon + timedelta(seconds=30), 5)]:
        end = start + timedelta(minutes=length)
        assert expected.expected_power_w(plant, inverter.inverter_id, start, end) == by_minute(start, end)
    assert expected.expected_power_w(plant, inverter.inverter_id, noon, noon + timedelta(minutes=5)) > 0.2 * \
        inverter.rated_power_w
    night = datetime(2025, 6, 21, 4, 0, tzinfo=timezone.utc)
    assert expected.expected_power_w(plant, inverter.inverter_id, night, night + timedelta(minutes=5)) == 0.0


def test_the_open_grids_give_pvlibs_altitude_and_linke_turbidity():
    """pvlib opens its HDF5 grids for every site; the model keeps them open (one plant-day
    of the clear sky is a few milliseconds, and the lookups were a third of it): the same
    cells, the same arithmetic, over the sample fleet, sites all over Brazil, the grid's
    edges and a cell with no altitude data (the sea: pvlib's 0)."""
    rng = np.random.default_rng(3)
    sites = [(p.latitude, p.longitude) for p in PLANTS]
    sites += [(float(lat), float(lon)) for lat, lon in zip(rng.uniform(-34, 5, 200), rng.uniform(-74, -34, 200))]
    sites += [(-90.0, -180.0), (90.0, 180.0), (0.0, 0.0), (-30.0, -30.0)]
    times = expected._day_times(DAYS[0])
    for lat, lon in sites:
        theirs = pvlib.location.lookup_altitude(lat, lon)
        ours = expected._altitude(lat, lon)
        assert ours == theirs and type(ours) is type(theirs), (lat, lon)
        turbidity = pvlib.clearsky.lookup_linke_turbidity(times, lat, lon)
        assert turbidity.equals(expected._linke_turbidity(times, lat, lon)), (lat, lon)


def test_clear_day_equals_pvlibs_chain_with_its_own_lookups():
    """The whole clear-sky day against pvlib looking the altitude and the turbidity up
    itself (``Location(lat, lon)``, ``get_clearsky`` without a turbidity)."""
    day = DAYS[2]
    times = expected._day_times(day)
    for plant in PLANTS:
        location = pvlib.location.Location(plant.latitude, plant.longitude, tz="UTC")
        solpos = location.get_solarposition(times)
        dni_extra = pvlib.irradiance.get_extra_radiation(times)
        clear = location.get_clearsky(times, model="ineichen", solar_position=solpos, dni_extra=dni_extra)
        total, effective = expected.plane_of_array(
            plant.tilt_deg, plant.azimuth_deg, solpos["apparent_zenith"].to_numpy(dtype=float),
            solpos["azimuth"].to_numpy(dtype=float), clear["dni"], clear["ghi"], clear["dhi"], dni_extra)
        reference = expected.dc_per_installed_w(total, effective, expected.AMBIENT_C, expected.WIND_MS)
        assert np.array_equal(expected._clear_day(expected._Site.of(plant), day), reference), plant.plant_id


def test_the_numpy_clear_day_is_pvlibs_chain_on_sites_all_over_brazil_and_odd_days():
    """The clear-sky day runs pvlib's functions on arrays (no pandas objects): the same
    numbers as pvlib's own chain (its lookups, its frames), bit for bit, on random sites,
    tilts and azimuths, a leap day, the ends of a year and the middles of months (where the
    turbidity's interpolation has its knots)."""
    rng = np.random.default_rng(14)
    days = [date(2028, 2, 29), date(2027, 1, 1), date(2026, 12, 31), date(2026, 1, 16), date(2026, 7, 16)]
    for k in range(40):
        lat, lon = float(rng.uniform(-33.5, 5)), float(rng.uniform(-73.5, -34.8))
        tilt, azimuth = float(rng.uniform(0, 40)), float(rng.uniform(0, 360))
        day = days[k % len(days)]
        times = expected._day_times(day)
        location = pvlib.location.Location(lat, lon, tz="UTC")
        solpos = location.get_solarposition(times)
        dni_extra = pvlib.irradiance.get_extra_radiation(times)
        clear = location.get_clearsky(times, model="ineichen", solar_position=solpos, dni_extra=dni_extra)
        total, effective = expected.plane_of_array(
            tilt, azimuth, solpos["apparent_zenith"].to_numpy(dtype=float), solpos["azimuth"].to_numpy(dtype=float),
            clear["dni"], clear["ghi"], clear["dhi"], dni_extra)
        reference = expected.dc_per_installed_w(total, effective, expected.AMBIENT_C, expected.WIND_MS)
        assert np.array_equal(expected._clear_day((lat, lon, tilt, azimuth), day), reference), (lat, lon, day)
