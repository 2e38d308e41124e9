"""Telemetry event validation: a good event and every reason code, at the boundaries."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from ysh.om.validation import (
    FUTURE_TS, MALFORMED, NEGATIVE_ENERGY, NEGATIVE_POWER, POWER_ABOVE_RATED, REASON_CODES, UNKNOWN_INVERTER,
    Event, Rejected, validate_event,
)

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
REGISTRY = {("p1", "inv-1"): 10_000.0, ("p1", "inv-2"): 5_000.0}


def raw(**overrides):
    event = {
        "event_id": "e-1", "plant_id": "p1", "inverter_id": "inv-1", "ts": "2026-01-15T11:59:00Z",
        "ac_power_w": 4200.5, "energy_total_kwh": 12345.6,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()


def test_good_event_is_typed_and_utc():
    result = validate_event(raw(ts="2026-01-15T08:59:00-03:00", dc_power_w=4400, temperature_c=41.5,
                                status_code=512, irradiance_wm2=None), REGISTRY, NOW)
    assert isinstance(result, Event)
    assert result.ts == datetime(2026, 1, 15, 11, 59, tzinfo=timezone.utc)
    assert result.ts.utcoffset() == timedelta(0)
    assert result.ac_power_w == 4200.5 and isinstance(result.dc_power_w, float)
    assert result.status_code == "512" and result.irradiance_wm2 is None


def test_optional_fields_may_be_absent():
    result = validate_event(raw(), REGISTRY, NOW)
    assert isinstance(result, Event)
    assert (result.dc_power_w, result.temperature_c, result.status_code, result.irradiance_wm2) == (None,) * 4


@pytest.mark.parametrize("overrides", [
    {"event_id": _DROP},
    {"plant_id": ""},
    {"inverter_id": 7},
    {"ts": _DROP},
    {"ts": "15/01/2026 11:59"},
    {"ts": "2026-01-15T11:59:00"},  # naive: ambiguous
    {"ts": 1768478340},
    {"ac_power_w": _DROP},
    {"ac_power_w": "4200"},
    {"ac_power_w": True},
    {"ac_power_w": math.nan},
    {"energy_total_kwh": math.inf},
    {"energy_total_kwh": None},
    {"dc_power_w": "x"},
    {"status_code": 1.5},
])
def test_malformed(overrides):
    result = validate_event(raw(**overrides), REGISTRY, NOW)
    assert isinstance(result, Rejected) and result.reason == MALFORMED


def test_not_a_mapping_is_malformed():
    assert validate_event(["e-1"], REGISTRY, NOW).reason == MALFORMED  # type: ignore[arg-type]


def test_unknown_inverter():
    result = validate_event(raw(inverter_id="inv-9"), REGISTRY, NOW)
    assert result == Rejected(UNKNOWN_INVERTER, result.detail, "e-1", "p1", "inv-9")


@pytest.mark.parametrize("overrides", [{"ac_power_w": -100.1}, {"dc_power_w": -101}])
def test_negative_power(overrides):  # beyond the night tare (max(50 W, 1 % of 10 kW) = 100 W)
    assert validate_event(raw(**overrides), REGISTRY, NOW).reason == NEGATIVE_POWER


def test_zero_power_is_valid():
    assert isinstance(validate_event(raw(ac_power_w=0), REGISTRY, NOW), Event)


def test_power_above_rated_tolerance_boundary():
    assert isinstance(validate_event(raw(inverter_id="inv-2", ac_power_w=6000.0), REGISTRY, NOW), Event)
    result = validate_event(raw(inverter_id="inv-2", ac_power_w=6000.1), REGISTRY, NOW)
    assert result.reason == POWER_ABOVE_RATED


def test_future_ts_clock_skew_boundary():
    assert isinstance(validate_event(raw(ts="2026-01-15T12:05:00Z"), REGISTRY, NOW), Event)
    assert validate_event(raw(ts="2026-01-15T12:05:01Z"), REGISTRY, NOW).reason == FUTURE_TS


def test_negative_energy():
    assert validate_event(raw(energy_total_kwh=-0.001), REGISTRY, NOW).reason == NEGATIVE_ENERGY


def test_reason_codes_are_stable():
    assert REASON_CODES == ("malformed", "unknown_inverter", "negative_power", "power_above_rated",
                            "negative_energy", "future_ts")


def test_now_must_be_aware():
    with pytest.raises(ValueError):
        validate_event(raw(), REGISTRY, datetime(2026, 1, 15, 12, 0))
