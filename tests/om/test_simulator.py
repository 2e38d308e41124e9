"""Telemetry simulator: determinism, physics, energy counter, faults, stream defects, labels."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pvlib
import pytest
from pydantic import ValidationError

from ysh.om.fleet import Inverter, Plant, sample_plants
from ysh.samples.om_telemetry import (FAULT_KINDS, INVALID_REASONS, STATUS_GRID_OUTAGE, STATUS_NORMAL,
                              STATUS_TRIP, Fault, Scenario, default_scenario, labels, simulate,
                              write_jsonl)

DAY = "2026-01-15"  # summer in Brazil
NOON = datetime(2026, 1, 15, 12, tzinfo=timezone.utc)  # 09:00 in Brasília
REQUIRED = {"event_id", "plant_id", "inverter_id", "ts", "ac_power_w", "energy_total_kwh",
            "dc_power_w", "temperature_c", "status_code"}


def _ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _series(events) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for event in events:
        out[(event["plant_id"], event["inverter_id"])].append(event)
    return out


def _daily_kwh_per_kwp(events, plant: Plant) -> float:
    series = _series(events)
    total = sum(series[(plant.plant_id, inv)][-1]["energy_total_kwh"]
                - series[(plant.plant_id, inv)][0]["energy_total_kwh"] for inv in plant.inverter_ids)
    return total / plant.capacity_kwp


@pytest.fixture(scope="module")
def faulty():
    """Default scenario on a clear day (faults must then be unambiguous), and the same
    scenario without faults or stream defects as the counterfactual."""
    scenario = default_scenario(DAY, 24, seed=0, sky="clear", duplicate_rate=0.0, invalid_rate=0.0)
    clean = scenario.model_copy(update={"faults": []})
    return scenario, list(simulate(scenario)), list(simulate(clean))


# --- determinism and schema ---------------------------------------------------------------

def test_same_seed_same_events_other_seed_differs():
    scenario = default_scenario(NOON, 6, seed=7, duplicate_rate=0.01, invalid_rate=0.01)
    first = list(simulate(scenario))
    assert first == list(simulate(Scenario.model_validate(scenario.model_dump())))
    assert labels(scenario) == labels(Scenario.model_validate_json(scenario.model_dump_json()))
    other = list(simulate(scenario.model_copy(update={"seed": 8})))
    assert {e["event_id"] for e in first if ":bad-" not in e["event_id"]} == \
        {e["event_id"] for e in other if ":bad-" not in e["event_id"]}
    assert first != other


def test_event_schema_order_and_ids():
    plants = sample_plants()
    scenario = Scenario(plants=plants, start=f"{DAY}T12:00:00Z", duration=timedelta(hours=2), step_s=30)
    events = list(simulate(scenario))
    assert len(events) == scenario.n_steps * sum(len(p.inverters) for p in plants) == 240 * 17
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps) and stamps[0] == f"{DAY}T12:00:00Z"
    assert stamps[-1] == f"{DAY}T13:59:30Z"
    sensor = {p.plant_id: p.poa_sensor for p in plants}
    for event in events[:200]:
        assert REQUIRED <= set(event)
        assert ("irradiance_wm2" in event) == sensor[event["plant_id"]]
        epoch = int(_ts(event["ts"]).timestamp())
        assert event["event_id"] == f"{event['plant_id']}:{event['inverter_id']}:{epoch}"
        assert isinstance(event["status_code"], int) and isinstance(event["ac_power_w"], float)


# --- physics -------------------------------------------------------------------------------

def test_daylight_shape_and_clear_vs_overcast():
    plant = Plant(plant_id="plant-test", capacity_kwp=10.0, latitude=-19.92, longitude=-43.94,
                  tilt_deg=20, azimuth_deg=0, poa_sensor=True,
                  inverters=[Inverter(inverter_id="inv-01", rated_power_w=10000)])
    start = datetime(2026, 1, 15, 3, tzinfo=timezone.utc)
    clear = list(simulate(Scenario(plants=[plant], start=start, duration=timedelta(days=1), sky="clear", seed=3)))
    overcast = list(simulate(Scenario(plants=[plant], start=start, duration=timedelta(days=1),
                                      sky="overcast", seed=3)))
    times = pd.DatetimeIndex([_ts(e["ts"]) for e in clear])
    elevation = pvlib.solarposition.get_solarposition(times, plant.latitude, plant.longitude)[
        "apparent_elevation"].to_numpy()
    ac = np.array([e["ac_power_w"] for e in clear])
    dc = np.array([e["dc_power_w"] for e in clear])
    irradiance = np.array([e["irradiance_wm2"] for e in clear])
    night = elevation < -1.0
    assert night.sum() > 500
    assert np.all(ac[night] == 0) and np.all(dc[night] == 0) and np.all(irradiance[night] == 0)
    assert np.all(ac[elevation > 15] > 0)
    assert ac.max() <= 10000 * 1.01 and np.all(dc >= ac)
    # north-facing array south of the equator: production centred on solar noon
    noon = times[int(np.argmax(elevation))]
    weights = ac / ac.sum()
    centroid = times[0] + pd.Timedelta(seconds=float(np.sum(weights * (times - times[0]).total_seconds())))
    assert abs((centroid - noon).total_seconds()) < 20 * 60
    assert abs((times[int(np.argmax(ac))] - noon).total_seconds()) < 90 * 60
    assert irradiance.max() == pytest.approx(1050, rel=0.2)
    temperature = np.array([e["temperature_c"] for e in clear])
    assert 10 < temperature.min() and temperature.max() < 75
    assert temperature[np.argmax(ac)] > temperature[night].mean() + 10
    clear_yield = _daily_kwh_per_kwp(clear, plant)
    overcast_yield = _daily_kwh_per_kwp(overcast, plant)
    assert 3.5 <= clear_yield <= 6.5
    assert overcast_yield < 0.75 * clear_yield


@pytest.mark.parametrize("day", ["2026-01-15", "2026-06-15", "2026-09-20"])
def test_daily_yield_plausible_for_brazil(day):
    plants = sample_plants()
    scenario = Scenario(plants=plants, start=f"{day}T03:00:00Z", duration=timedelta(days=1), sky="clear",
                        step_s=120, seed=11)
    events = list(simulate(scenario))
    for plant in plants:
        assert 3.5 <= _daily_kwh_per_kwp(events, plant) <= 6.5, plant.plant_id
    variable = list(simulate(scenario.model_copy(update={"sky": "variable"})))
    yields = [_daily_kwh_per_kwp(variable, plant) for plant in plants]
    assert 1.5 <= float(np.mean(yields)) <= 6.0


def test_natural_clipping_and_inverter_spread():
    """High DC/AC ratios clip at the rating on a clear summer noon; peers differ by a few %."""
    plants = sample_plants()
    scenario = Scenario(plants=plants, start=f"{DAY}T14:00:00Z", duration=timedelta(hours=2), sky="clear")
    series = _series(simulate(scenario))
    bh = np.array([e["ac_power_w"] for e in series[("plant-bh-01", "inv-01")]])  # DC/AC 1.38
    assert np.mean(np.abs(bh - 6000) < 0.01 * 6000) > 0.5
    assert bh.max() < 6000 * 1.01
    peers = np.array([[e["ac_power_w"] for e in series[("plant-gyn-01", inv)]] for inv in plants[5].inverter_ids])
    ratio = peers / np.median(peers, axis=0)
    assert np.all(np.abs(ratio - 1) < 0.08)
    assert ratio.std() > 0.002


def test_energy_counter_monotonic_and_integrates_ac():
    scenario = Scenario(plants=sample_plants(), start=f"{DAY}T03:00:00Z", duration=timedelta(days=1),
                        step_s=60, seed=5)
    for (plant_id, inverter_id), events in _series(simulate(scenario)).items():
        energy = np.array([e["energy_total_kwh"] for e in events])
        ac = np.array([e["ac_power_w"] for e in events])
        assert np.all(np.diff(energy) >= 0), (plant_id, inverter_id)
        assert energy[0] > 100  # starts from a running total
        integral = np.sum((ac[1:] + ac[:-1]) / 2) * 60 / 3.6e6
        assert energy[-1] - energy[0] == pytest.approx(integral, rel=0.005, abs=0.01), (plant_id, inverter_id)


# --- faults --------------------------------------------------------------------------------

def _active(fault: Fault, event: dict) -> bool:
    return (event["plant_id"] == fault.plant_id
            and (fault.inverter_id is None or event["inverter_id"] == fault.inverter_id)
            and fault.start <= _ts(event["ts"]) < fault.end)


def _fault(scenario: Scenario, kind: str) -> Fault:
    (fault,) = [f for f in scenario.faults if f.kind == kind]
    return fault


def test_default_scenario_has_one_fault_of_each_kind_in_daylight():
    scenario = default_scenario(DAY, 24, seed=0)
    assert scenario.start == datetime(2026, 1, 15, 3, tzinfo=timezone.utc)
    assert sorted(f.kind for f in scenario.faults) == sorted(FAULT_KINDS)
    targets = set()
    for fault in scenario.faults:
        plant = scenario.plant(fault.plant_id)
        inverters = plant.inverter_ids if fault.inverter_id is None else [fault.inverter_id]
        for inverter in inverters:
            assert (fault.plant_id, inverter) not in targets
            targets.add((fault.plant_id, inverter))
        times = pd.DatetimeIndex([fault.start, fault.end - timedelta(minutes=1)])
        elevation = pvlib.solarposition.get_solarposition(times, plant.latitude, plant.longitude)["elevation"]
        assert (elevation > 20).all(), fault
        assert timedelta(minutes=20) <= fault.end - fault.start <= timedelta(hours=4)
    assert scenario.duplicate_rate > 0 and scenario.invalid_rate > 0


def test_faults_act_only_inside_their_interval(faulty):
    scenario, events, clean = faulty
    baseline = {e["event_id"]: e for e in clean}
    seen = set()
    for event in events:
        seen.add(event["event_id"])
        active = [f for f in scenario.faults if _active(f, event)]
        if active:
            continue
        reference = baseline[event["event_id"]]
        for key in ("ac_power_w", "dc_power_w", "status_code", "irradiance_wm2"):
            assert event.get(key) == reference.get(key), (event, reference)
    missing = set(baseline) - seen
    comm = _fault(scenario, "comm_loss")
    assert missing and all(_active(comm, baseline[i]) for i in missing)


def test_trip(faulty):
    scenario, events, clean = faulty
    fault = _fault(scenario, "trip")
    inside = [e for e in events if _active(fault, e)]
    assert len(inside) == (fault.end - fault.start) // timedelta(seconds=scenario.step_s)
    assert all(e["ac_power_w"] == 0 and e["dc_power_w"] == 0 and e["status_code"] == STATUS_TRIP for e in inside)
    assert len({e["energy_total_kwh"] for e in inside}) == 1
    peers = [e for e in events if e["plant_id"] == fault.plant_id and e["inverter_id"] != fault.inverter_id
             and fault.start <= _ts(e["ts"]) < fault.end]
    assert all(e["ac_power_w"] > 1000 and e["status_code"] == STATUS_NORMAL for e in peers)
    expected = [e for e in clean if _active(fault, e)]
    assert min(e["ac_power_w"] for e in expected) > 1000
    assert not any(e["status_code"] == STATUS_TRIP for e in events if not _active(fault, e))


def test_underperformance(faulty):
    scenario, events, clean = faulty
    fault = _fault(scenario, "underperformance")
    baseline = {e["event_id"]: e for e in clean}
    ratios = [e["ac_power_w"] / baseline[e["event_id"]]["ac_power_w"] for e in events if _active(fault, e)]
    assert len(ratios) > 60
    assert np.median(ratios) == pytest.approx(0.6, abs=0.01)
    assert all(e["status_code"] == STATUS_NORMAL for e in events if _active(fault, e))


def test_comm_loss_gap_and_counter_keeps_running(faulty):
    scenario, events, clean = faulty
    fault = _fault(scenario, "comm_loss")
    mine = [e for e in events if e["plant_id"] == fault.plant_id and e["inverter_id"] == fault.inverter_id]
    assert not any(_active(fault, e) for e in mine)
    before = [e for e in mine if _ts(e["ts"]) < fault.start][-1]
    after = [e for e in mine if _ts(e["ts"]) >= fault.end][0]
    assert _ts(before["ts"]) == fault.start - timedelta(seconds=scenario.step_s)
    assert _ts(after["ts"]) == fault.end
    minutes = (fault.end - fault.start).total_seconds() / 60
    # the inverter kept producing during the gap: the counter advanced by tens of kWh
    assert after["energy_total_kwh"] - before["energy_total_kwh"] > 0.5 * 75 * minutes / 60 * 0.5
    assert after == {e["event_id"]: e for e in clean}[after["event_id"]]
    peers = {e["inverter_id"] for e in events if e["plant_id"] == fault.plant_id and _active(
        fault.model_copy(update={"inverter_id": None}), e)}
    assert peers == set(scenario.plant(fault.plant_id).inverter_ids) - {fault.inverter_id}


def test_frozen_repeats_last_reading(faulty):
    scenario, events, clean = faulty
    fault = _fault(scenario, "frozen")
    mine = [e for e in events if e["plant_id"] == fault.plant_id and e["inverter_id"] == fault.inverter_id]
    inside = [e for e in mine if _active(fault, e)]
    before = [e for e in mine if _ts(e["ts"]) < fault.start][-1]
    after = [e for e in mine if _ts(e["ts"]) >= fault.end][0]
    assert len(inside) > 10 and before["ac_power_w"] > 1000
    strip = lambda e: {k: v for k, v in e.items() if k not in ("event_id", "ts")}  # noqa: E731
    assert all(strip(e) == strip(before) for e in inside)
    assert len({e["event_id"] for e in inside}) == len(inside)
    # outside the fault, consecutive daylight readings are never identical
    daylight = [e for e in mine if not _active(fault, e) and e["ac_power_w"] > 1000]
    values = [e["ac_power_w"] for e in daylight]
    assert len(set(values)) > 0.95 * len(values)
    # the real inverter kept producing: the counter catches up after the fault
    assert after == {e["event_id"]: e for e in clean}[after["event_id"]]
    assert after["energy_total_kwh"] > before["energy_total_kwh"] + 5


def test_clipping_caps_at_limit(faulty):
    scenario, events, clean = faulty
    fault = _fault(scenario, "clipping")
    rated = scenario.plant(fault.plant_id).inverter(fault.inverter_id).rated_power_w
    limit = fault.param("limit_fraction") * rated
    baseline = {e["event_id"]: e for e in clean}
    inside = [e for e in events if _active(fault, e)]
    assert all(e["ac_power_w"] <= limit * 1.01 for e in inside)
    capped = [e for e in inside if baseline[e["event_id"]]["ac_power_w"] > limit * 1.03]
    assert len(capped) > 30
    assert all(abs(e["ac_power_w"] - limit) < 0.01 * limit for e in capped)
    assert all(e["dc_power_w"] < baseline[e["event_id"]]["dc_power_w"] for e in capped)
    assert all(e["status_code"] == STATUS_NORMAL for e in inside)


def test_outage_plant_wide_zeros(faulty):
    scenario, events, clean = faulty
    fault = _fault(scenario, "outage")
    plant = scenario.plant(fault.plant_id)
    inside = [e for e in events if _active(fault, e)]
    steps = (fault.end - fault.start) // timedelta(seconds=scenario.step_s)
    assert len(inside) == steps * len(plant.inverters)
    assert all(e["ac_power_w"] == 0 and e["dc_power_w"] == 0 and e["status_code"] == STATUS_GRID_OUTAGE
               for e in inside)
    for inverter, series in _series(inside).items():
        assert len({e["energy_total_kwh"] for e in series}) == 1, inverter
    assert all(e["ac_power_w"] > 1000 for e in clean if _active(fault, e))
    assert {e["status_code"] for e in events if not _active(fault, e)} <= {STATUS_NORMAL, STATUS_TRIP}


def test_silent_outage_and_counter_tells_it_from_comm_loss():
    plants = sample_plants()
    start = datetime(2026, 1, 15, 14, tzinfo=timezone.utc)
    outage = Fault(kind="outage", plant_id="plant-cwb-01", start=start + timedelta(minutes=30),
                   end=start + timedelta(minutes=90), params={"reporting": "silent"})
    comm = Fault(kind="comm_loss", plant_id="plant-cps-01", inverter_id="inv-01",
                 start=start + timedelta(minutes=30), end=start + timedelta(minutes=90))
    scenario = Scenario(plants=plants, start=start, duration=timedelta(hours=2), sky="clear",
                        faults=[outage, comm])
    series = _series(simulate(scenario))
    for fault in (outage, comm):
        plant = scenario.plant(fault.plant_id)
        for inverter in ([fault.inverter_id] if fault.inverter_id else plant.inverter_ids):
            mine = series[(fault.plant_id, inverter)]
            assert not any(_active(fault, e) for e in mine)
            before = [e for e in mine if _ts(e["ts"]) < fault.start][-1]
            after = [e for e in mine if _ts(e["ts"]) >= fault.end][0]
            gained = after["energy_total_kwh"] - before["energy_total_kwh"]
            one_step_kwh = plant.inverter(inverter).rated_power_w * 60 / 3.6e6
            if fault.kind == "outage":
                assert gained <= 1.01 * one_step_kwh  # only the two half-steps at the edges
            else:
                assert gained > 20 * one_step_kwh


# --- stream defects ------------------------------------------------------------------------

def test_duplicates_identical_and_labelled():
    scenario = default_scenario(NOON, 4, seed=2, duplicate_rate=0.05, invalid_rate=0.0)
    events = list(simulate(scenario))
    counts = Counter(e["event_id"] for e in events)
    duplicated = {i for i, c in counts.items() if c > 1}
    assert set(counts.values()) <= {1, 2}
    assert 0.03 < len(duplicated) / len(counts) < 0.07
    first: dict[str, int] = {}
    for position, event in enumerate(events):
        if event["event_id"] in first:
            original = events[first[event["event_id"]]]
            assert event == original and event["ts"] == original["ts"]
        else:
            first[event["event_id"]] = position
    truth = [lab for lab in labels(scenario) if lab["kind"] == "duplicate"]
    assert {lab["event_id"] for lab in truth} == duplicated
    assert len(truth) == len(duplicated)


def test_invalid_events_present_and_labelled():
    scenario = default_scenario(NOON, 4, seed=3, duplicate_rate=0.0, invalid_rate=0.05)
    events = list(simulate(scenario))
    bad = [e for e in events if ":bad-" in e["event_id"]]
    truth = {lab["event_id"]: lab for lab in labels(scenario) if lab["kind"] == "invalid"}
    assert {e["event_id"] for e in bad} == set(truth)
    assert len(bad) == len(truth) and len({e["event_id"] for e in events}) == len(events)
    assert {lab["reason"] for lab in truth.values()} == set(INVALID_REASONS)
    plants = {p.plant_id: p for p in scenario.plants}
    for event in bad:
        label = truth[event["event_id"]]
        reason = label["reason"]
        plant = plants[event["plant_id"]]
        assert event["inverter_id"] == label["inverter_id"] and event["event_id"].endswith(f":bad-{reason}")
        if reason == "negative_power":
            assert event["ac_power_w"] < 0
        elif reason == "over_rated":
            assert event["ac_power_w"] > 2.5 * plant.inverter(event["inverter_id"]).rated_power_w
        elif reason == "future_ts":
            assert _ts(event["ts"]) == _ts(label["ts"]) + timedelta(days=1)
        elif reason == "unknown_inverter":
            assert event["inverter_id"] not in plant.inverter_ids
        elif reason == "bad_ts":
            with pytest.raises(ValueError):
                _ts(event["ts"])
        elif reason == "missing_field":
            assert "energy_total_kwh" not in event
    valid = [e for e in events if ":bad-" not in e["event_id"]]
    clean = list(simulate(scenario.model_copy(update={"invalid_rate": 0.0})))
    assert valid == clean


# --- labels, validation, JSONL -------------------------------------------------------------

def test_labels_match_scenario():
    scenario = default_scenario(DAY, 24, seed=0, duplicate_rate=0.0, invalid_rate=0.0)
    truth = labels(scenario)
    assert len(truth) == len(scenario.faults) == 6
    for label, fault in zip(truth, scenario.faults):
        assert label["kind"] == fault.kind and label["plant_id"] == fault.plant_id
        assert label["inverter_id"] == fault.inverter_id
        assert _ts(label["start"]) == fault.start and _ts(label["end"]) == fault.end
        assert label["severity"] == ("info" if fault.kind == "clipping" else "fault")
        plant = scenario.plant(fault.plant_id)
        assert label["inverter_ids"] == (plant.inverter_ids if fault.kind == "outage" else [fault.inverter_id])
    by_kind = {lab["kind"]: lab for lab in truth}
    assert by_kind["underperformance"]["params"] == {"derate": 0.6}
    assert by_kind["clipping"]["params"] == {"limit_fraction": 0.7}
    assert by_kind["outage"]["params"] == {"reporting": "zeros"}
    json.dumps(truth)  # serialisable as is
    default = Fault(kind="underperformance", plant_id="p", inverter_id="i", start=DAY + "T12:00:00Z",
                    end=DAY + "T13:00:00", params={})
    assert default.param("derate") == 0.6 and default.end.tzinfo is not None


def _base(**changes) -> dict:
    fault = {"kind": "trip", "plant_id": "plant-cps-01", "inverter_id": "inv-01",
             "start": f"{DAY}T14:00:00Z", "end": f"{DAY}T15:00:00Z"}
    fault.update(changes)
    return fault


@pytest.mark.parametrize(
    "faults, message",
    [
        ([_base(kind="outage")], "inverter_id must be null"),
        ([_base(inverter_id=None)], "needs an inverter_id"),
        ([_base(end=f"{DAY}T13:00:00Z")], "must be after start"),
        ([_base(plant_id="plant-xx")], "unknown plant_id"),
        ([_base(inverter_id="inv-09")], "has no inverter"),
        ([_base(end=f"{DAY}T23:00:00Z")], "is not inside the scenario"),
        ([_base(), _base(kind="frozen", start=f"{DAY}T14:30:00Z", end=f"{DAY}T16:00:00Z")], "overlaps faults"),
        ([_base(), _base(kind="outage", inverter_id=None, start=f"{DAY}T14:59:00Z")], "overlaps faults"),
        ([_base(params={"derate": 0.5})], "not valid for trip"),
        ([_base(kind="underperformance", params={"derate": 1.5})], "derate"),
        ([_base(kind="clipping", params={"limit_fraction": 0})], "limit_fraction"),
        ([_base(kind="outage", inverter_id=None, params={"reporting": "maybe"})], "reporting"),
        ([_base(kind="smoke")], "kind"),
    ],
)
def test_scenario_validation(faults, message):
    with pytest.raises(ValidationError, match=message):
        Scenario(plants=sample_plants(), start=f"{DAY}T12:00:00Z", duration=timedelta(hours=6), faults=faults)


def test_adjacent_faults_are_fine_and_bad_grids_rejected():
    Scenario(plants=sample_plants(), start=f"{DAY}T12:00:00Z", duration=timedelta(hours=6),
             faults=[_base(), _base(kind="frozen", start=f"{DAY}T15:00:00Z", end=f"{DAY}T16:00:00Z")])
    with pytest.raises(ValidationError, match="at least one step"):
        Scenario(plants=sample_plants(), start=f"{DAY}T12:00:00Z", duration=timedelta(seconds=30))
    with pytest.raises(ValidationError, match="whole second"):
        Scenario(plants=sample_plants(), start=f"{DAY}T12:00:00.5Z", duration=timedelta(hours=1))


def test_write_jsonl_round_trip(tmp_path):
    scenario = default_scenario(NOON, 3, seed=1, duplicate_rate=0.01, invalid_rate=0.01)
    events = list(simulate(scenario))
    path = tmp_path / "out" / "telemetry.jsonl"
    assert write_jsonl(iter(events), path) == len(events)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == events
