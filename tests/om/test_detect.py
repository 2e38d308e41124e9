"""``ysh om detect`` on a simulated day: every injected fault kind the rules cover is
found on the right inverter during its interval; invalid events are quarantined and
duplicates counted once."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from ysh.cli import app
from ysh.samples.om_telemetry import default_scenario, labels, simulate, write_jsonl

RULE_OF = {"trip": "inverter_trip", "comm_loss": "comm_loss", "underperformance": "underperformance",
           "frozen": "frozen_values", "outage": "plant_outage"}


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    folder = tmp_path_factory.mktemp("om")
    scenario = default_scenario("2026-01-15", 24, seed=3)
    events = list(simulate(scenario))
    write_jsonl(events, folder / "telemetry.jsonl")
    end = scenario.start + timedelta(hours=24)
    done = CliRunner().invoke(app, ["om", "detect", str(folder / "telemetry.jsonl"), "--out", str(folder / "out"),
                                    "--now", end.isoformat()])
    assert done.exit_code == 0, done.output
    read = lambda name: [json.loads(line) for line in (folder / "out" / name).read_text().splitlines()]  # noqa: E731
    return scenario, events, read("alerts.jsonl"), read("windows.jsonl"), read("quarantine.jsonl")


def test_each_injected_fault_is_found_on_its_inverter_during_its_interval(detected):
    scenario, _, alerts, _, _ = detected
    for fault in labels(scenario):
        if fault["kind"] not in RULE_OF:
            continue
        inverter = fault.get("inverter_id") or "*"
        start, end = ts(fault["start"]), ts(fault["end"])
        hits = [a for a in alerts if a["rule"] == RULE_OF[fault["kind"]] and a["plant_id"] == fault["plant_id"]
                and a["inverter_id"] == inverter and ts(a["opened_at"]) < end + timedelta(minutes=20)
                and (a["resolved_at"] is None or ts(a["resolved_at"]) > start)]
        assert hits, f"{fault['kind']} on {fault['plant_id']}/{inverter} not detected"


def test_invalid_events_are_quarantined_and_duplicates_count_once(detected):
    scenario, events, _, windows, quarantine = detected
    invalid = [label for label in labels(scenario) if label["kind"] == "invalid"]
    assert len(quarantine) == len(invalid)
    reasons = {q["reason"] for q in quarantine}
    assert reasons <= {"malformed", "negative_power", "power_above_rated", "future_ts", "unknown_inverter"}
    assert "future_ts" in reasons  # one day ahead of the replay's "now"
    unique = {e["event_id"] for e in events} - {q["event_id"] for q in quarantine}
    assert sum(w["samples"] for w in windows) == len(unique)
    w = next(w for w in windows if w["samples"] >= 5 and w["expected_power_w"] > 1000)
    assert 0 < w["avg_power_w"] <= w["max_power_w"] and w["performance_index"] is not None


def test_no_warning_alert_without_an_injected_fault(detected):
    """One fault, one alert: every non-info alert of the day matches an injected fault
    (clipping is info: high DC/AC plants really saturate at noon)."""
    scenario, _, alerts, _, _ = detected
    faults = [f for f in labels(scenario) if f["kind"] in RULE_OF]
    for alert in alerts:
        if alert["rule"] == "clipping":
            continue
        assert any(RULE_OF[f["kind"]] == alert["rule"] and f["plant_id"] == alert["plant_id"]
                   and (f.get("inverter_id") or "*") == alert["inverter_id"]
                   and ts(alert["opened_at"]) < ts(f["end"]) + timedelta(minutes=20) for f in faults), alert
