"""The O&M hot path (issue 14, parts 1–2): one Python call per line takes a valid event
(``validation.fast_event``) with the validator's verdict, the clear-sky expectation of a
window is a slice of the inverter's day (``expected._clear_ac_day``) with the per-window
model's numbers, and a run into the warehouse alone reports what a run to files reports."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import numpy as np
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
