"""``ysh om detect`` on a simulated day: every injected fault kind the rules cover is
found on the right inverter during its interval; invalid events are quarantined and
duplicates counted once."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from ysh.cli import app
from ysh.kit.files import data_path
from ysh.om.job import run_detect
from ysh.samples.om_telemetry import default_scenario, labels, simulate, write_jsonl

PLANTS = data_path("sample", "om", "plants.json")

RULE_OF = {"trip": "inverter_trip", "comm_loss": "comm_loss", "underperformance": "underperformance",
           "frozen": "frozen_values", "outage": "plant_outage"}


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory):
    """``ysh om detect`` (the production path: static windows) over a simulated day:
    (scenario, events, folder, the replay's "now")."""
    folder = tmp_path_factory.mktemp("om")
    scenario = default_scenario("2026-01-15", 24, seed=3)
    events = list(simulate(scenario))
    write_jsonl(events, folder / "telemetry.jsonl")
    end = scenario.start + timedelta(hours=24)
    done = CliRunner().invoke(app, ["om", "detect", str(folder / "telemetry.jsonl"), "--out", str(folder / "out"),
                                    "--now", end.isoformat()])
    assert done.exit_code == 0, done.output
    return scenario, events, folder, end


@pytest.fixture(scope="module")
def detected(detect_run):
    scenario, events, folder, _ = detect_run
    read = lambda name: [json.loads(line) for line in (folder / "out" / name).read_text().splitlines()]  # noqa: E731
    return scenario, events, read("alerts.jsonl"), read("windows.jsonl"), read("quarantine.jsonl")


OUTPUTS = ("windows.jsonl", "alerts.jsonl", "quarantine.jsonl")


def test_detect_with_static_windows_equals_the_streaming_window_operator(detect_run):
    """``ysh om detect`` reads finite files, so it windows them with the static operator (a
    groupby on the window slot); the streaming operator (``windowby`` with the late-data
    cutoff) over the same file gives the same windows, alerts and quarantine, line for
    line (the day has duplicates, invalid events and every fault kind)."""
    scenario, _, folder, end = detect_run
    run_detect([folder / "telemetry.jsonl"], PLANTS, folder / "streaming", now=end, static_windows=False)
    for name in OUTPUTS:
        static = (folder / "out" / name).read_text().splitlines()
        assert static, name
        assert static == (folder / "streaming" / name).read_text().splitlines(), name


def test_static_and_streaming_windows_agree_on_sparse_loggers_and_lines_out_of_order(tmp_path):
    """The same on a file whose lines are not in time order (two files, the later hours
    first) and where two plants' loggers report every 15 minutes (their interval is
    inferred by the rules): nothing in a finite file is late for either operator."""
    scenario = default_scenario("2026-01-15", 12, seed=5)
    events = list(simulate(scenario))
    sparse = {"plant-bh-01", "plant-cps-01"}
    events = [e for e in events if not (e.get("plant_id") in sparse and isinstance(e.get("ts"), str)
                                        and len(e["ts"]) == 20 and int(e["ts"][14:16]) % 15)]
    half = len(events) // 2
    write_jsonl(events[half:], tmp_path / "in" / "a-late-hours.jsonl")
    write_jsonl(events[:half], tmp_path / "in" / "b-early-hours.jsonl")
    end = scenario.start + timedelta(hours=12)
    static = run_detect([tmp_path / "in"], PLANTS, tmp_path / "static", now=end)
    streaming = run_detect([tmp_path / "in"], PLANTS, tmp_path / "streaming", now=end, static_windows=False)
    assert static.windows > 0 and static.alerts_by_rule
    for name in OUTPUTS:
        assert (tmp_path / "static" / name).read_text() == (tmp_path / "streaming" / name).read_text(), name
    sparse_windows = [json.loads(x) for x in (tmp_path / "static" / "windows.jsonl").read_text().splitlines()
                      if json.loads(x)["plant_id"] in sparse]
    assert sparse_windows and max(w["samples"] for w in sparse_windows) == 1


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


def test_detect_in_two_pathway_processes_gives_the_same_outputs(detect_run):
    """``YSH_PATHWAY_PROCESSES=2``: ``ysh om detect`` respawns under ``pathway spawn``; the
    windows and the fold are sharded by inverter and plant, process 0 gathers and writes:
    the same windows, alerts and quarantine as one process, line for line."""
    import os
    import subprocess
    import sys

    _, _, folder, end = detect_run
    # small chunks of lines, so that both processes read and validate some
    env = {**os.environ, "YSH_PATHWAY_PROCESSES": "2", "YSH_OM_CHUNK_BYTES": "4096"}
    done = subprocess.run([sys.executable, "-m", "ysh.cli", "om", "detect", str(folder / "telemetry.jsonl"),
                           "--out", str(folder / "two"), "--now", end.isoformat()],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("windows in") == 1  # one report, from process 0
    for name in OUTPUTS:
        one = (folder / "out" / name).read_text().splitlines()
        assert one and one == (folder / "two" / name).read_text().splitlines(), name
