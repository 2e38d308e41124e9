"""The O&M hot path (issue 14, parts 1–2): one Python call per line takes a valid event
(``validation.fast_event``) with the validator's verdict, the clear-sky expectation of a
window is a slice of the inverter's day (``expected._clear_ac_day``) with the per-window
model's numbers, and a run into the warehouse alone reports what a run to files reports."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from ysh.om import expected, job
from ysh.om.fleet import load_plants
from ysh.om.pipeline import LATE_CUTOFF
from ysh.om.rules import DEFAULT_THRESHOLDS
from ysh.om.validation import (CLOCK_SKEW, POWER_ABOVE_RATED_TOLERANCE, Event, Limits, fast_event, night_tare_w,
                               validate_event)
from ysh.samples.om_telemetry import default_scenario, simulate

from ..conftest import REPO

PLANTS = REPO / "data" / "sample" / "om" / "plants.json"


def sample_day_lines() -> list[str]:
    """A simulated day of the sample fleet (duplicates, invalid events), and each line
    again with the values real loggers send that sit on a check's edge."""
    events = list(simulate(default_scenario("2026-01-15", 24, seed=3)))
    rng = random.Random(5)
    lines = [json.dumps(e) for e in events]
    for e in rng.sample(events, 400):
        variant = dict(e)
        field, value = rng.choice([
            ("ac_power_w", -3.0), ("ac_power_w", -50.0), ("ac_power_w", -50.5), ("ac_power_w", -1e4),
            ("dc_power_w", -3.0), ("dc_power_w", -500.0), ("ac_power_w", 7), ("ac_power_w", 1e7),
            ("energy_total_kwh", -0.001), ("energy_total_kwh", 0), ("inverter_id", "ghost"),
            ("ts", "2026-01-16T03:05:00Z"), ("ts", "2026-01-16T03:05:00.000001Z"), ("ts", "2026-01-15T12:00:00"),
            ("ts", "2026-01-15T09:00:00-03:00"), ("irradiance_wm2", 812.5), ("status_code", "E42"),
            ("status_code", True), ("temperature_c", "hot"), ("ac_power_w", None), ("event_id", ""),
        ])
        variant[field] = value
        lines.append(json.dumps(variant))
    return lines


def test_the_fast_path_takes_exactly_the_events_the_validator_takes_with_the_same_values():
    plants = load_plants(PLANTS)
    registry = {(p.plant_id, i.inverter_id): i.rated_power_w for p in plants for i in p.inverters}
    limits = {key: Limits(night_tare_w(rated), rated * POWER_ABOVE_RATED_TOLERANCE, 300)
              for key, rated in registry.items()}
    now = datetime(2026, 1, 16, 3, 0, tzinfo=timezone.utc)
    skew = min(CLOCK_SKEW, LATE_CUTOFF)
    lines = sample_day_lines()
    taken = 0
    for line in lines:
        fast = fast_event(line, limits, (now + skew).timestamp())
        verdict = validate_event(json.loads(line), registry, now, skew, DEFAULT_THRESHOLDS)
        if fast is None:  # the validator gives the reason; the fast path never refuses a valid event here
            assert not isinstance(verdict, Event), line
            continue
        taken += 1
        assert isinstance(verdict, Event), line
        assert fast == (verdict.event_id, verdict.plant_id, verdict.inverter_id, verdict.ts.timestamp(),
                        verdict.ac_power_w, verdict.energy_total_kwh, verdict.irradiance_wm2, 300), line
    assert 20_000 < taken < len(lines)  # both kinds were seen


def test_the_fast_path_reads_the_night_tare_as_zero_and_never_raises():
    limits = {("p1", "inv-1"): Limits(50.0, 7200.0, 300)}
    base = {"event_id": "e", "plant_id": "p1", "inverter_id": "inv-1", "ts": "2026-01-15T22:00:00Z",
            "energy_total_kwh": 10.0}
    latest = datetime(2026, 1, 16, tzinfo=timezone.utc).timestamp()
    assert fast_event(json.dumps({**base, "ac_power_w": -3.0}), limits, latest)[4] == 0.0
    assert fast_event(json.dumps({**base, "ac_power_w": -51.0}), limits, latest) is None
    for pill in ("[" * 100_000 + "]" * 100_000, "9" * 5000, '{"ac_power_w": ' + "9" * 5000 + "}", "\x00", ""):
        assert fast_event(pill, limits, latest) is None
    # the bound is inclusive, as the validator's: ts ≤ now + skew
    at_bound = datetime(2026, 1, 15, 22, 0, tzinfo=timezone.utc).timestamp()
    assert fast_event(json.dumps({**base, "ac_power_w": 1.0}), limits, at_bound) is not None
    assert fast_event(json.dumps({**base, "ac_power_w": 1.0}), limits, at_bound - 1.0) is None


def test_a_windows_clear_sky_expectation_is_the_per_window_model_bit_for_bit():
    """Every 5-minute window of a day (and the 15-minute ones) of every inverter of the
    sample fleet: the slice of the cached daily AC curve gives the numbers the model gave
    per window (the clear-sky DC of the minutes, through the inverter, averaged)."""
    plants = load_plants(PLANTS)
    day = datetime(2026, 1, 15, tzinfo=timezone.utc)
    for plant in plants:
        site = expected._Site.of(plant)
        dc = expected._clear_day(site, day.date())
        for inverter in plant.inverters:
            for length in (5, 15):
                for first in range(0, 24 * 60, length):
                    start = day + timedelta(minutes=first)
                    reference = float(np.mean(expected._ac(plant, inverter.inverter_id, dc[first:first + length])))
                    got = expected.expected_power_w(plant, inverter.inverter_id, start,
                                                    start + timedelta(minutes=length))
                    assert got == reference, (plant.plant_id, inverter.inverter_id, start, length)


@pytest.mark.integration
def test_a_run_into_the_warehouse_alone_reports_the_events_and_windows_of_a_run_to_files(warehouse, tmp_path):
    from ysh.samples.om_telemetry import write_jsonl

    scenario = default_scenario("2026-01-15", 12, seed=4)
    write_jsonl(simulate(scenario), tmp_path / "telemetry.jsonl")
    now = scenario.start + timedelta(hours=12)
    to_files = job.run_detect([tmp_path / "telemetry.jsonl"], PLANTS, tmp_path / "out", now=now)
    alone = job.run_detect([tmp_path / "telemetry.jsonl"], PLANTS, None, now=now, warehouse=warehouse)
    windows = [json.loads(line) for line in (tmp_path / "out" / "windows.jsonl").read_text().splitlines()]
    assert alone.windows == to_files.windows == len(windows) > 0
    assert alone.events == to_files.events == sum(w["samples"] for w in windows)
    assert (alone.alerts_by_rule, alone.quarantine_by_reason) == (to_files.alerts_by_rule,
                                                                  to_files.quarantine_by_reason)


def test_a_windows_samples_do_not_depend_on_the_order_or_the_copies_of_the_lines(tmp_path):
    """The window call deduplicates by event id in a fixed order (its fast path: no
    copies, the event ids' order): the same lines reversed and with exact copies give
    the same windows; copies of an event id that differ keep the same one whatever the
    order (the last in the full sample order: here the higher power)."""
    events = [e for e in simulate(default_scenario("2026-01-15", 8, seed=3, invalid_rate=0.0, duplicate_rate=0.0))
              if e["ts"] >= "2026-01-15T10:00:00Z"]
    lines = [json.dumps(e) for e in events]
    copies = lines[::40]
    conflicting = [json.dumps({**e, "ac_power_w": e["ac_power_w"] + 1.0}) for e in events[5::97]
                   if e["ac_power_w"] > 100]
    assert conflicting
    now = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)

    def windows(name: str, content: list[str]) -> list[dict]:
        (tmp_path / f"{name}.jsonl").write_text("\n".join(content) + "\n")
        job.run_detect([tmp_path / f"{name}.jsonl"], PLANTS, tmp_path / name, now=now)
        return [json.loads(line) for line in (tmp_path / name / "windows.jsonl").read_text().splitlines()]

    plain = windows("plain", lines)
    assert plain == windows("reversed", lines[::-1] + copies)
    mixed = windows("conflicting", lines + conflicting)
    assert mixed == windows("conflicting-reversed", (lines + conflicting)[::-1])
    assert mixed != plain and len(mixed) == len(plain)
    raised = {(e["plant_id"], e["inverter_id"]) for e in map(json.loads, conflicting)}
    assert all(m["max_power_w"] >= p["max_power_w"] for m, p in zip(mixed, plain)
               if (p["plant_id"], p["inverter_id"]) in raised)


def test_the_fast_path_reads_odd_values_as_the_validator_does():
    """The inlined fast path (``validation.fast_fields``) takes only the common types
    itself and hands every other value to the validator's helpers: the same verdict and
    values as :func:`validate_event` on ids that are not ASCII, blank or hold a NUL, ids
    that are not strings (a list: unhashable), numbers as bools, big integers or strings,
    status codes and temperatures of every type."""
    registry = {("p1", "inv-1"): 6000.0}
    limits = {("p1", "inv-1"): Limits(night_tare_w(6000.0), 6000.0 * POWER_ABOVE_RATED_TOLERANCE, 300)}
    now = datetime(2026, 1, 16, 3, 0, tzinfo=timezone.utc)
    latest = (now + min(CLOCK_SKEW, LATE_CUTOFF)).timestamp()
    base = {"event_id": "e-1", "plant_id": "p1", "inverter_id": "inv-1", "ts": "2026-01-15T12:00:00Z",
            "ac_power_w": 1000.5, "energy_total_kwh": 10.25}
    odd = {
        "event_id": ["é-1", "  ", "", "a\x00b", "\ud800", 7, None, ["x"], " e "],
        "plant_id": [["p1"], {"a": 1}, 1, "p1 ", None],
        "ac_power_w": [True, 7, 2 ** 63, 2 ** 64 - 1, "1000", None, -3, -60, -61, 7200, 7200.5, 0],
        "energy_total_kwh": [False, 0, -0.0, -1, 2 ** 70, "1"],
        "dc_power_w": [None, True, -3, -51.0, "x", 5],
        "irradiance_wm2": [None, 812, 812.5, True, "812", -5.0],
        "status_code": [None, 0, True, 2 ** 63, "E42", "x" * 65, "\x00", 1.5, [], "é"],
        "temperature_c": [None, 25, 25.5, True, "hot", []],
        "ts": ["2026-01-15T12:00:00.000001Z", "2026-01-15T12:00:00", 1768478400, None, "2026-01-16T03:04:59Z",
               "2026-01-16T03:05:00Z", "2026-01-16T03:05:00.000001Z"],
    }
    checked = 0
    for field, values in odd.items():
        for value in values:
            event = {**base, field: value}
            for line in (json.dumps(event), json.dumps({k: v for k, v in event.items() if v is not None})):
                try:
                    raw = json.loads(line)
                except ValueError:
                    continue
                fast = fast_event(line, limits, latest)
                verdict = validate_event(raw, registry, now, min(CLOCK_SKEW, LATE_CUTOFF), DEFAULT_THRESHOLDS)
                if fast is None:
                    # the fast path may refuse a valid event only for a value orjson reads otherwise (a big int)
                    assert not isinstance(verdict, Event) or field in ("energy_total_kwh", "status_code"), line
                    continue
                checked += 1
                assert isinstance(verdict, Event), line
                assert fast == (verdict.event_id, verdict.plant_id, verdict.inverter_id, verdict.ts.timestamp(),
                                verdict.ac_power_w, verdict.energy_total_kwh, verdict.irradiance_wm2, 300), line
    assert checked > 30


def test_a_window_row_is_the_reference_window_bit_for_bit():
    """The graph computes a window from epoch seconds (``pipeline._window_row``, the
    instants as integer ns): the same ``WindowStat`` as ``rules.window_from_samples`` over
    the samples as datetimes, on random windows with copies of event ids (equal and
    differing), ties in time, fractional timestamps and irradiance present or not; the
    integer ns are Pathway's own conversion of the datetime."""
    from pathway.internals.utils.convert import _datetime_to_rust

    from ysh.om.pipeline import _at, _ns, _ns_at, _window_row
    from ysh.om.rules import window_from_samples

    rng = random.Random(9)
    start = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc).timestamp()
    for _ in range(3000):
        n = rng.randint(1, 12)
        samples = []
        for k in range(n):
            t = start + rng.choice([0, 60, 60, 120, 299, rng.randint(0, 299) + rng.randint(0, 999_999) / 1e6])
            eid = f"e{rng.randint(0, n)}"
            samples.append((eid, t, rng.choice([0.0, 1000.0, 1000.0, rng.uniform(0, 5000)]),
                            rng.choice([10.0, 10.5, rng.uniform(0, 100)]),
                            rng.choice([None, 800.0, rng.uniform(0, 1000)])))
        if rng.random() < 0.3:
            samples += rng.sample(samples, rng.randint(1, len(samples)))  # exact copies
        rng.shuffle(samples)
        count, avg, lo, hi, delta, run, last_t, last, first_counter, last_counter, poa = _window_row(
            tuple(samples))
        # the reference: one sample per event id (the last of its copies in the full order), as datetimes
        unique = {s[0]: s for s in sorted(samples, key=lambda s: (s[0], s[1], s[2], s[3], s[4] is not None,
                                                                 s[4] or 0.0))}.values()
        unique = sorted(unique, key=lambda s: s[0])
        reference = window_from_samples("p", "i", _at(start), _at(start + 300), [(_at(s[1]), s[2], s[3]) for s in unique],
                                        0.0, 5000.0)
        poas = [s[4] for s in unique if s[4] is not None]
        assert (count, avg, lo, hi, delta, run, _ns_at(_ns(last_t)), last, first_counter, last_counter) == (
            reference.samples, reference.avg_power_w, reference.min_power_w, reference.max_power_w,
            reference.energy_delta_kwh, reference.identical_run, reference.last_ts, reference.last_power_w,
            reference.energy_first_kwh, reference.energy_last_kwh)
        assert poa == (sum(poas) / len(poas) if poas else None)
        assert _ns(last_t) == _datetime_to_rust(_at(last_t))[0]


def test_the_expected_power_of_a_window_from_epoch_seconds_is_the_models():
    """``expected.expected_power_at`` (the window's bounds as epoch seconds, the graph's)
    gives ``expected_power_w``'s number on aligned 5- and 15-minute windows of a whole day,
    a window crossing midnight, one starting between minutes, and with a measured
    irradiance."""
    plants = load_plants(PLANTS)
    day = datetime(2026, 1, 15, tzinfo=timezone.utc)
    for plant in plants[:3]:
        inverter = plant.inverters[0].inverter_id
        key = expected.clear_sky_key(plant, inverter)
        for length in (5, 15):
            for first in range(0, 24 * 60, length):
                start = day + timedelta(minutes=first)
                end = start + timedelta(minutes=length)
                want = expected.expected_power_w(plant, inverter, start, end)
                assert expected.expected_power_at(plant, inverter, start.timestamp(), end.timestamp()) == want
                assert expected.expected_power_at(plant, inverter, start.timestamp(), end.timestamp(), key=key) == want
        for start, end in [(day + timedelta(hours=23, minutes=55), day + timedelta(hours=24, minutes=10)),
                           (day + timedelta(hours=15, seconds=30), day + timedelta(hours=15, minutes=5, seconds=30))]:
            assert expected.expected_power_at(plant, inverter, start.timestamp(), end.timestamp()) == \
                expected.expected_power_w(plant, inverter, start, end)
        for poa in (-1.0, 0.0, 250.0, 812.5, 1100.0):  # the model at the window's middle, driven by the sensor
            noon = day + timedelta(hours=15)
            middle = pd.DatetimeIndex([noon + timedelta(minutes=2.5)])
            want = float(expected._ac(plant, inverter, expected._dc_per_w(expected._Site.of(plant), middle,
                                                                          np.array([poa])))[0])
            assert expected.expected_power_w(plant, inverter, noon, noon + timedelta(minutes=5), poa) == want
            assert expected.expected_power_at(plant, inverter, noon.timestamp(), noon.timestamp() + 300, poa) == want
