"""The O&M graph on real measured telemetry (issue 14, part 5): six days of NREL system 50's
15-minute AC power (shipped in the ``pvanalytics`` wheel) replayed through the production
graph as a lone inverter and as three sibling inverters, with a trip and a communication
loss injected on each plant; skipped when pvanalytics is not installed.

The evaluation itself (the DST-corrected series, the registry, fault injection, the
scores) lives in ``benchmarks/om_real_evaluation.py``; the days here come from its tuning
split (summer 2011). What must hold: the injected faults are found, and the untouched
real days raise no alert at all."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

pytest.importorskip("pvanalytics")

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "om_real_evaluation.py"


def _evaluation():
    spec = importlib.util.spec_from_file_location("om_real_evaluation", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("om_real_evaluation", module)  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_real_days_raise_nothing_and_injected_trip_and_comm_loss_are_found(tmp_path):
    ev = _evaluation()
    assert ev.data_dir() is not None, "pvanalytics is installed but its system 50 series is missing"
    F = ev.Fault
    faults = [  # local time is UTC−6 (MDT)
        F("trip", ev.TRIO, "inv-02", _utc(2011, 8, 6, 16), _utc(2011, 8, 6, 17, 30)),
        F("comm_loss", ev.TRIO, "inv-03", _utc(2011, 8, 7, 16), _utc(2011, 8, 7, 17, 30)),
        F("comm_loss", ev.SOLO, "inv-01", _utc(2011, 8, 7, 19), _utc(2011, 8, 7, 20)),
        F("trip", ev.SOLO, "inv-01", _utc(2011, 8, 8, 17), _utc(2011, 8, 8, 18)),
    ]
    r = ev.evaluate("tuning", first_day=date(2011, 8, 5), days=6, faults=faults, folder=tmp_path)
    assert r.days == 6 and r.events > 6 * 4 * 80  # four inverters, ~96 samples a day, real gaps aside
    # every injected fault found by its rule (solo comm loss: plant_offline), one alert each
    found = {key: s.found for key, s in r.by_fault.items()}
    assert found == {(ev.TRIO, "trip"): 1, (ev.TRIO, "comm_loss"): 1, (ev.SOLO, "comm_loss"): 1,
                     (ev.SOLO, "trip"): 1}, r.misses
    for rule in ((ev.TRIO, "inverter_trip"), (ev.TRIO, "comm_loss"), (ev.SOLO, "plant_offline"),
                 (ev.SOLO, "inverter_trip")):
        assert r.by_rule[rule].alerts == r.by_rule[rule].correct == 1, (rule, r.by_rule[rule])
    # the untouched real days: 4 of the lone inverter, 4 × 3 of the trio, and not one alert
    assert r.untouched_inverter_days == {ev.SOLO: 4, ev.TRIO: 12}
    assert r.false_on_untouched == []
    assert r.false_per_inverter_day(info=True, unexplained=False) == 0.0


def test_late_autumn_dawns_raise_nothing_and_injected_trip_and_plant_outage_are_found(tmp_path):
    """Six days of the tuning split (2011-11-28 … 12-03) on which the rules before the stop
    evidence raised seven false trips and seven false plant outages: the inverter still at
    0 W at a dark or shaded dawn (the sun at 4–6°) or fading to zero under a heavy
    overcast, while the clear sky expected 20–50 % of rated. A trip of the lone inverter
    and a stop of the three sibling inverters at once (a plant outage) are injected on
    sunny middays."""
    ev = _evaluation()
    F = ev.Fault
    faults = [  # local time is UTC−7 (MST)
        F("trip", ev.SOLO, "inv-01", _utc(2011, 11, 29, 17, 30), _utc(2011, 11, 29, 19)),
        *(F("trip", ev.TRIO, inv, _utc(2011, 12, 2, 18), _utc(2011, 12, 2, 19, 30)) for inv in ev.TRIO_INVERTERS),
    ]
    r = ev.evaluate("tuning", first_day=date(2011, 11, 28), days=6, faults=faults, folder=tmp_path)
    assert r.days == 6
    assert r.by_fault[(ev.SOLO, "trip")].found == 1, r.misses
    assert r.by_rule[(ev.SOLO, "inverter_trip")].alerts == r.by_rule[(ev.SOLO, "inverter_trip")].correct == 1
    # the whole trio stopped: one plant_outage alert, and no trip of its inverters
    assert r.by_rule[(ev.TRIO, "plant_outage")].alerts == 1
    assert (ev.TRIO, "inverter_trip") not in r.by_rule or r.by_rule[(ev.TRIO, "inverter_trip")].alerts == 0
    assert r.untouched_inverter_days == {ev.SOLO: 5, ev.TRIO: 15}
    assert r.false_on_untouched == [], [(a["rule"], a["opened_at"], why) for a, why in r.false_on_untouched]
