"""Plants file: the sample fleet, validation errors naming plant and field, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ysh.om.fleet import (DC_AC_MAX, DC_AC_MIN, Inverter, Plant, PlantsFileError, dump_plants,
                          load_plants, parse_plants, sample_plants)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "om" / "plants.json"


def _raw() -> list[dict]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "plants.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_sample_file_is_the_sample_fleet():
    plants = load_plants(SAMPLE)
    assert plants == sample_plants()
    assert len(plants) == 6
    assert len({p.plant_id for p in plants}) == 6
    residential = [p for p in plants if len(p.inverters) == 1]
    commercial = [p for p in plants if 2 <= len(p.inverters) <= 4]
    mini = [p for p in plants if len(p.inverters) == 6]
    assert len(residential) == 2 and all(5 <= p.capacity_kwp <= 10 for p in residential)
    assert len(commercial) == 3 and all(50 <= p.capacity_kwp <= 75 for p in commercial)
    assert len(mini) == 1 and 450 <= mini[0].capacity_kwp <= 550
    for plant in plants:
        assert plant.plant_id.startswith("plant-")
        assert plant.inverter_ids == [f"inv-{i:02d}" for i in range(1, len(plant.inverters) + 1)]
        assert DC_AC_MIN <= plant.dc_ac_ratio <= DC_AC_MAX
        assert sum(plant.dc_kw_per_inverter.values()) == pytest.approx(plant.capacity_kwp)
        assert plant.azimuth_deg <= 30 or plant.azimuth_deg >= 330  # roughly north-facing


def test_dump_load_round_trip(tmp_path):
    plants = sample_plants()
    path = dump_plants(plants, tmp_path / "sub" / "plants.json")
    assert load_plants(path) == plants
    assert path.read_text(encoding="utf-8").endswith("\n")


@pytest.mark.parametrize(
    "index, mutate, field, words",
    [
        (2, lambda p: p.update(latitude=12.5), "latitude", ["less than or equal to 6", "12.5"]),
        (1, lambda p: p.update(longitude=-20.0), "longitude", ["-28"]),
        (0, lambda p: p.update(tilt_deg=95), "tilt_deg", ["90"]),
        (0, lambda p: p.update(azimuth_deg=360), "azimuth_deg", ["less than 360"]),
        (3, lambda p: p.update(capacity_kwp=0), "capacity_kwp", ["greater than 0"]),
        (3, lambda p: p.pop("tilt_deg"), "tilt_deg", ["required"]),
        (4, lambda p: p.update(inverters=[]), "inverters", ["at least 1"]),
        (5, lambda p: p["inverters"][3].update(rated_power_w=-5), "inverters[3].rated_power_w",
         ["greater than 0"]),
        (5, lambda p: p["inverters"][1].update(inverter_id="inv-01"), "inverters",
         ["duplicate inverter_id", "inv-01"]),
        (4, lambda p: p.update(capacity_kwp=200), "capacity_kwp", ["DC/AC ratio 3.33", "outside"]),
        (4, lambda p: p.update(capacity_kwp=30), "capacity_kwp", ["DC/AC ratio 0.50"]),
        (2, lambda p: p.update(colour="blue"), "colour", ["not permitted"]),
    ],
)
def test_validation_errors_name_plant_and_field(tmp_path, index, mutate, field, words):
    data = _raw()
    mutate(data[index])
    path = _write(tmp_path, data)
    with pytest.raises(PlantsFileError) as info:
        load_plants(path)
    error = info.value
    message = str(error)
    plant_id = data[index]["plant_id"]
    assert str(path) in message
    assert f"plant #{index} ({plant_id})" in message
    assert f"field {field!r}" in message
    for word in words:
        assert word in message
    assert (error.plant_index, error.plant_id, error.field) == (index, plant_id, field)


def test_duplicate_plant_and_file_level_errors(tmp_path):
    data = _raw()
    data[4]["plant_id"] = data[1]["plant_id"]
    with pytest.raises(PlantsFileError, match=r"plant #4 \(plant-sp-01\): field 'plant_id': duplicate of plant #1"):
        load_plants(_write(tmp_path, data))
    with pytest.raises(PlantsFileError, match="expected a JSON list"):
        load_plants(_write(tmp_path, {"plants": data}))
    with pytest.raises(PlantsFileError, match="empty"):
        load_plants(_write(tmp_path, []))
    with pytest.raises(PlantsFileError, match=r"plant #0: expected an object"):
        parse_plants(["plant-x"])
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("[{", encoding="utf-8")
    with pytest.raises(PlantsFileError, match="not valid JSON"):
        load_plants(bad_json)
    with pytest.raises(PlantsFileError, match="cannot read"):
        load_plants(tmp_path / "missing.json")


def test_models_and_helpers():
    plant = Plant(plant_id="plant-x", capacity_kwp=12.0, latitude=-15.8, longitude=-47.9, tilt_deg=15,
                  azimuth_deg=0, inverters=[Inverter(inverter_id="a", rated_power_w=6000),
                                            Inverter(inverter_id="b", rated_power_w=4000)])
    assert plant.ac_capacity_w == 10000
    assert plant.dc_ac_ratio == pytest.approx(1.2)
    assert plant.dc_kw_per_inverter == pytest.approx({"a": 7.2, "b": 4.8})
    assert plant.inverter("b").rated_power_kw == 4.0
    assert plant.poa_sensor is False and plant.name is None
    with pytest.raises(KeyError):
        plant.inverter("c")
    with pytest.raises(ValueError, match="':'"):
        Plant(plant_id="plant:x", capacity_kwp=5, latitude=-15, longitude=-47, tilt_deg=10, azimuth_deg=0,
              inverters=[{"inverter_id": "a", "rated_power_w": 5000}])
