"""ysh.proposals.generation: PVWatts monthly energy and its per-site yield cache."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ysh.proposals import generation as gen
from ysh.proposals import irradiance as ir
from ysh.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BH = (-19.92, -43.94)
SAO_PAULO = (-23.55, -46.63)


@pytest.fixture(scope="module")
def bh_modelled() -> ir.IrradianceYear:
    return ir.modelled_year(*BH)


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    gen.clear_memory_cache()
    yield
    gen.clear_memory_cache()


def settings_for(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, home=tmp_path / "home", irradiance_offline=True,
                    irradiance_cache_dir=tmp_path / "cache")


def test_twelve_values_and_plausible_specific_yield(bh_modelled):
    months = gen.monthly_generation_kwh(bh_modelled, kwp=1.0, tilt_deg=20, azimuth_deg=0, losses_pct=14)
    assert len(months) == 12 and all(isinstance(v, float) for v in months)
    assert all(v > 0 for v in months)
    # Belo Horizonte, modelled year: real BR yields are ~1,350-1,550 kWh/kWp/year
    assert 1300 < sum(months) < 1600


def test_sao_paulo_modelled_yield_plausible():
    year = ir.modelled_year(*SAO_PAULO)
    assert 1250 < sum(gen.site_yield_kwh_per_kwp(year, 20, 0, 14)) < 1650


def test_recorded_nasa_year_gives_plausible_yield():
    payload = json.loads(gzip.decompress((FIXTURES / "nasa_power_hourly_2023_lat-19.9_lon-43.9.json.gz").read_bytes()))
    data, detail = ir.parse_nasa_power(payload)
    year = ir.IrradianceYear("nasa_power", -19.9, -43.9, data, detail)
    assert 1300 < sum(gen.monthly_generation_kwh(year, 1.0, 20)) < 1700


def test_linear_in_kwp(bh_modelled):
    one = gen.monthly_generation_kwh(bh_modelled, 3.3, 20)
    two = gen.monthly_generation_kwh(bh_modelled, 6.6, 20)
    assert two == [2 * v for v in one]  # exactly: the same per-kWp yield, scaled
    per_kwp = gen.site_yield_kwh_per_kwp(bh_modelled, 20)
    assert gen.monthly_generation_kwh(bh_modelled, 1.0, 20) == per_kwp


def test_north_facing_beats_south_facing(bh_modelled):
    north = sum(gen.site_yield_kwh_per_kwp(bh_modelled, 20, azimuth_deg=0))
    south = sum(gen.site_yield_kwh_per_kwp(bh_modelled, 20, azimuth_deg=180))
    east = sum(gen.site_yield_kwh_per_kwp(bh_modelled, 20, azimuth_deg=90))
    assert north > east > south
    assert north > 1.1 * south


def test_tilt_changes_seasonal_shape_more_than_total(bh_modelled):
    flat = gen.site_yield_kwh_per_kwp(bh_modelled, 0)
    tilted = gen.site_yield_kwh_per_kwp(bh_modelled, 20)
    assert abs(sum(tilted) / sum(flat) - 1) < 0.08
    june, july, december = 5, 6, 11
    assert tilted[june] > 1.15 * flat[june] and tilted[july] > 1.15 * flat[july]  # winter gains
    assert tilted[december] < flat[december]  # summer sun is high, tilt loses a little


def test_losses_scale_output(bh_modelled):
    lossy = gen.site_yield_kwh_per_kwp(bh_modelled, 20, losses_pct=14)
    lossless = gen.site_yield_kwh_per_kwp(bh_modelled, 20, losses_pct=0)
    for a, b in zip(lossy, lossless):
        assert a / b == pytest.approx(0.86, rel=1e-12)
    ideal_inverter = gen.site_yield_kwh_per_kwp(bh_modelled, 20, losses_pct=0, inverter_efficiency=1.0)
    assert sum(lossless) / sum(ideal_inverter) == pytest.approx(0.96, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kwp": 0}, "kwp"),
        ({"kwp": -1.5}, "kwp"),
        ({"kwp": float("nan")}, "kwp"),
        ({"kwp": "big"}, "kwp"),
        ({"tilt_deg": -1}, "tilt_deg"),
        ({"tilt_deg": 91}, "tilt_deg"),
        ({"azimuth_deg": 360}, "azimuth_deg"),
        ({"azimuth_deg": -10}, "azimuth_deg"),
        ({"losses_pct": 100}, "losses_pct"),
        ({"losses_pct": -0.1}, "losses_pct"),
        ({"inverter_efficiency": 0}, "inverter_efficiency"),
        ({"inverter_efficiency": 1.2}, "inverter_efficiency"),
    ],
)
def test_invalid_inputs_name_the_field(bh_modelled, kwargs, field):
    args = {"kwp": 5.0, "tilt_deg": 20.0, "azimuth_deg": 0.0, "losses_pct": 14.0, "inverter_efficiency": 0.96}
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        gen.monthly_generation_kwh(bh_modelled, **args)


def test_bounds_are_accepted(bh_modelled):
    assert len(gen.site_yield_kwh_per_kwp(bh_modelled, 90, azimuth_deg=359.9, losses_pct=99.9)) == 12
    assert len(gen.site_yield_kwh_per_kwp(bh_modelled, 0, azimuth_deg=0, losses_pct=0)) == 12


def test_memory_cache_avoids_recomputation(bh_modelled, monkeypatch):
    calls = []
    real = gen.compute_yield_kwh_per_kwp

    def counting(*args):
        calls.append(args[1:])
        return real(*args)

    monkeypatch.setattr(gen, "compute_yield_kwh_per_kwp", counting)
    for kwp in (1.0, 4.4, 10.0):
        gen.monthly_generation_kwh(bh_modelled, kwp, 20)
    assert len(calls) == 1
    gen.monthly_generation_kwh(bh_modelled, 4.4, 25)  # another tilt is another key
    assert len(calls) == 2


def test_disk_cache_is_reused(bh_modelled, tmp_path, monkeypatch):
    settings = settings_for(tmp_path)
    first = gen.monthly_generation_kwh(bh_modelled, 5.0, 20, settings=settings)
    files = list((tmp_path / "cache" / "yield").glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("modelled_lat-19.9_lon-43.9_")
    doc = json.loads(files[0].read_text())
    assert doc["key"]["tilt_deg"] == 20.0 and doc["key"]["source"] == "modelled"
    assert len(doc["kwh_per_kwp"]) == 12

    gen.clear_memory_cache()  # as in a new process

    def must_not_run(*args, **kwargs):
        raise AssertionError("yield was recomputed instead of read from the disk cache")

    monkeypatch.setattr(gen, "compute_yield_kwh_per_kwp", must_not_run)
    again = gen.monthly_generation_kwh(bh_modelled, 5.0, 20, settings=settings)
    assert again == first
    assert [2 * v for v in gen.monthly_generation_kwh(bh_modelled, 2.5, 20, settings=settings)] == first
    # a different array is a different key and does need the model
    with pytest.raises(AssertionError, match="recomputed"):
        gen.monthly_generation_kwh(bh_modelled, 5.0, 20, losses_pct=10, settings=settings)


def test_disk_cache_keyed_by_weather_data(bh_modelled, tmp_path):
    settings = settings_for(tmp_path)
    gen.site_yield_kwh_per_kwp(bh_modelled, 20, settings=settings)
    brighter = ir.IrradianceYear(bh_modelled.source, bh_modelled.latitude, bh_modelled.longitude,
                                 bh_modelled.data.assign(ghi=bh_modelled.data["ghi"] * 1.05),
                                 bh_modelled.detail)
    gen.clear_memory_cache()
    gen.site_yield_kwh_per_kwp(brighter, 20, settings=settings)
    assert len(list((tmp_path / "cache" / "yield").glob("*.json"))) == 2


def test_corrupt_disk_cache_is_recomputed(bh_modelled, tmp_path):
    settings = settings_for(tmp_path)
    expected = gen.site_yield_kwh_per_kwp(bh_modelled, 20, settings=settings)
    (path,) = (tmp_path / "cache" / "yield").glob("*.json")
    path.write_text("{ truncated")
    gen.clear_memory_cache()
    assert gen.site_yield_kwh_per_kwp(bh_modelled, 20, settings=settings) == expected
    assert json.loads(path.read_text())["kwh_per_kwp"] == expected
