"""Bad input ends every ``ysh`` command with one line on stderr, ``error: …`` naming the
input and the problem, and exit code 2; never a traceback, and before any server starts
(the commands that would open the warehouse are pointed at a DSN nobody listens on, so
reaching it would end differently). A UTF-8 byte-order mark, as Windows tools write, is
accepted. Ctrl-C ends a command with exit code 130, without a traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from ysh.cli import app

from .conftest import REPO

QUOTE = REPO / "data" / "sample" / "proposals" / "b1_cemig_4kwp.json"
PLANTS = REPO / "data" / "sample" / "om" / "plants.json"
BOM = b"\xef\xbb\xbf"
DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = '{"a": ' + "9" * 5000 + "}"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result, *needles: str, before: tuple[str, ...] = ()) -> str:
    """``result`` ended with exit code 2 and, on stderr, one line ``error: …`` holding
    every needle (after the ``before`` lines, e.g. a deprecation notice); nothing else
    printed, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[:len(before)] == list(before)
    assert len(lines) == len(before) + 1, result.stderr
    line = lines[-1]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, line
    assert not result.stdout.strip(), result.stdout
    return line


@pytest.fixture()
def files(tmp_path):
    """Bad files of each kind, and good ones."""
    made = {
        "deep": DEEP,
        "huge_int": HUGE_INT,
        "empty": "",
        "blank": "  \n\n",
    }
    paths = {}
    for name, text in made.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(text, encoding="utf-8")
    paths["latin1"] = tmp_path / "latin1.json"
    paths["latin1"].write_bytes('[{"plant_id": "São Paulo"}]'.encode("latin-1"))
    paths["folder"] = tmp_path / "a-folder"
    paths["folder"].mkdir()
    paths["missing"] = tmp_path / "missing.json"
    return paths


# --------------------------------------------------------------------------------------
# ysh proposals evaluate
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "says"), [
    ("deep", "JSON nested too deeply"),
    ("huge_int", "an integer of more than 4300 digits"),
    ("latin1", "not UTF-8 text (byte 0xe3 on line 1)"),
    ("empty", "the proposal file is empty"),
    ("blank", "the proposal file is empty"),
    ("missing", "does not exist"),
    ("folder", "is a directory"),
])
def test_proposals_evaluate_names_a_bad_file_in_one_line(files, kind, says):
    line = one_error_line(invoke("proposals", "evaluate", files[kind]), says)
    assert files[kind].name in line


def test_proposals_evaluate_puts_every_invalid_field_on_the_one_line(tmp_path):
    data = json.loads(QUOTE.read_text())
    data["customer_class"] = "A4"
    data["generation_kwh_month"] = data["generation_kwh_month"][:11]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    one_error_line(invoke("proposals", "evaluate", bad), "invalid proposal", "customer_class",
                   "generation_kwh_month", "12 monthly values")
    bad.write_text("[1, 2]")
    one_error_line(invoke("proposals", "evaluate", bad), "bad.json: invalid proposal")


def test_a_quote_file_with_a_byte_order_mark_is_evaluated_like_one_without(tmp_path):
    with_bom = tmp_path / "windows.json"
    with_bom.write_bytes(BOM + QUOTE.read_bytes())
    plain = invoke("proposals", "evaluate", QUOTE)
    windows = invoke("proposals", "evaluate", with_bom)
    assert plain.exit_code == 0 and windows.exit_code == 0, windows.output
    assert json.loads(windows.stdout) == json.loads(plain.stdout)


def test_the_old_group_name_says_it_is_deprecated_then_the_same_one_line(files):
    one_error_line(invoke("proposal", "evaluate", files["deep"]), "JSON nested too deeply",
                   before=("`ysh proposal` is deprecated; use `ysh proposals`",))


def test_proposals_seed_checks_its_date_before_opening_the_warehouse(unreachable_warehouse):
    one_error_line(invoke("proposals", "seed", "--today", "15/01/2026"), "--today must be ISO", "'15/01/2026'")


# --------------------------------------------------------------------------------------
# ysh om detect / run / simulate / follow
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory):
    """One simulated hour of the sample fleet (a fixed past day) and the --now after it."""
    from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl

    folder = tmp_path_factory.mktemp("telemetry")
    scenario = default_scenario("2026-01-15", 1, seed=3)
    path = folder / "telemetry.jsonl"
    write_jsonl(simulate(scenario), path)
    return path, (scenario.start + timedelta(hours=1)).isoformat()


@pytest.mark.parametrize(("kind", "says"), [
    ("deep", "JSON nested too deeply"),
    ("huge_int", "an integer of more than 4300 digits"),
    ("latin1", "the plants file is not UTF-8 text"),
    ("empty", "the plants file is empty"),
    ("missing", "no such plants file"),
    ("folder", "is a folder, expected a plants file"),
])
def test_om_detect_names_a_bad_plants_file_in_one_line(files, telemetry, tmp_path, kind, says):
    path, now = telemetry
    out = tmp_path / "out"
    line = one_error_line(invoke("om", "detect", path, "--out", out, "--plants", files[kind], "--now", now), says)
    assert files[kind].name in line
    assert not out.exists()  # nothing ran


def test_om_detect_names_the_invalid_plant(tmp_path, telemetry):
    path, now = telemetry
    plants = json.loads(PLANTS.read_text())
    plants[1]["capacity_kwp"] = -3
    bad = tmp_path / "plants.json"
    bad.write_text(json.dumps(plants))
    one_error_line(invoke("om", "detect", path, "--out", tmp_path / "out", "--plants", bad, "--now", now),
                   "plant #1 (plant-sp-01)", "capacity_kwp")
    bad.write_text(json.dumps({"plants": plants}))
    one_error_line(invoke("om", "detect", path, "--out", tmp_path / "out", "--plants", bad, "--now", now),
                   "expected a JSON list of plants")


@pytest.mark.parametrize(("now", "says"), [
    ("yesterday", "not an ISO datetime: 'yesterday'"),
    ("2026-02-30T10:00:00", "not an ISO datetime"),
    ("9999-12-31T23:59:59", "out of range"),
    ("0001-01-01T00:00:00+05:00", "out of range"),
])
def test_om_detect_and_run_refuse_a_bad_now(telemetry, tmp_path, unreachable_warehouse, now, says):
    path, _ = telemetry
    one_error_line(invoke("om", "detect", path, "--out", tmp_path / "out", "--now", now), "--now", says)
    one_error_line(invoke("om", "run", path, "--now", now), "--now", says)


@pytest.mark.parametrize(("line", "says"), [
    (DEEP, "JSON nested more than 512 levels deep"),
    (HUGE_INT, "an integer of 5000 digits"),
])
def test_a_telemetry_line_the_parser_cannot_take_is_named_by_file_and_line(telemetry, tmp_path, unreachable_warehouse,
                                                                           line, says):
    good, now = telemetry
    bad = tmp_path / "hostile.jsonl"
    bad.write_text(good.read_text() + line + "\n")
    number = len(good.read_text().splitlines()) + 1
    out = tmp_path / "out"
    one_error_line(invoke("om", "detect", bad, "--out", out, "--now", now), f"hostile.jsonl:{number}: {says}")
    assert not out.exists()
    one_error_line(invoke("om", "run", tmp_path, "--now", now), f"hostile.jsonl:{number}: {says}")


def test_om_detect_refuses_an_empty_folder_and_an_out_that_is_a_file(files, telemetry, tmp_path):
    path, now = telemetry
    one_error_line(invoke("om", "detect", files["folder"], "--out", tmp_path / "out"), "no telemetry to run over",
                   "no files in")
    one_error_line(invoke("om", "detect", path, "--out", path, "--now", now), "'--out'", "is a file")
    one_error_line(invoke("om", "detect", files["missing"], "--out", tmp_path / "out"), "does not exist")


def test_om_run_and_follow_check_the_plants_before_the_warehouse(files, telemetry, unreachable_warehouse):
    path, now = telemetry
    one_error_line(invoke("om", "run", path, "--plants", files["deep"], "--now", now), "JSON nested too deeply")
    one_error_line(invoke("om", "follow", "--source", "jsonl", "--plants", files["latin1"]), "not UTF-8 text")


def test_om_detect_and_run_use_the_operators_thresholds(telemetry, tmp_path, unreachable_warehouse, monkeypatch):
    """A batch pass reads YSH_OM_THRESHOLDS as the follower does: a misspelled threshold
    is refused before anything runs, and a valid override changes the alerts."""
    from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl
    from ysh.settings import get_settings

    path, now = telemetry
    monkeypatch.setenv("YSH_OM_THRESHOLDS", '{"under_windowz": 4}')
    get_settings.cache_clear()
    one_error_line(invoke("om", "run", path, "--now", now), "YSH_OM_THRESHOLDS", "under_windowz")
    one_error_line(invoke("om", "detect", path, "--out", tmp_path / "x", "--now", now), "under_windowz")
    noon = default_scenario("2026-01-15T14:00:00", 1, seed=3)  # 11:00 in Brasília: daylight
    path, now = tmp_path / "noon.jsonl", (noon.start + timedelta(hours=1)).isoformat()
    write_jsonl(simulate(noon), path)
    alerts = {}
    strict = '{"under_pi_max": 5.0, "under_peer_ratio_max": 5.0, "under_windows": 1}'  # everyone underperforms
    for name, overrides in (("default", "{}"), ("strict", strict)):
        monkeypatch.setenv("YSH_OM_THRESHOLDS", overrides)
        get_settings.cache_clear()
        done = invoke("om", "detect", path, "--out", tmp_path / name, "--now", now)
        assert done.exit_code == 0, done.output
        alerts[name] = (tmp_path / name / "alerts.jsonl").read_text().count("\n")
    windows = (tmp_path / "default" / "windows.jsonl").read_text()
    assert windows == (tmp_path / "strict" / "windows.jsonl").read_text() and windows
    assert alerts["strict"] > alerts["default"]


def test_a_plants_file_with_a_byte_order_mark_gives_the_same_windows(telemetry, tmp_path):
    path, now = telemetry
    with_bom = tmp_path / "plants.json"
    with_bom.write_bytes(BOM + PLANTS.read_bytes())
    runs = {}
    for name, plants in (("plain", PLANTS), ("bom", with_bom)):
        done = invoke("om", "detect", path, "--out", tmp_path / name, "--plants", plants, "--now", now)
        assert done.exit_code == 0, done.output
        runs[name] = (tmp_path / name / "windows.jsonl").read_text()
    assert runs["bom"] == runs["plain"] and runs["plain"].count("\n") > 0


def test_om_simulate_refuses_bad_arguments_in_one_line(files, tmp_path):
    out = tmp_path / "events.jsonl"
    one_error_line(invoke("om", "simulate", "--out", out, "--start", "15/01/2026"), "--start",
                   "not an ISO date or datetime")
    one_error_line(invoke("om", "simulate", "--out", files["folder"]), "'--out'", "is a directory")
    one_error_line(invoke("om", "simulate", "--out", out, "--plants", files["huge_int"]), "4300 digits")
    fleet = json.loads(PLANTS.read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps(fleet[:1]))  # valid, but without the plants the faults are placed on
    one_error_line(invoke("om", "simulate", "--out", out, "--plants", other, "--hours", "1"),
                   "the simulated faults need the sample fleet's plant and inverter ids")
    assert not out.exists()


# --------------------------------------------------------------------------------------
# ysh tariffs, rag eval, flows run, services up, settings, usage
# --------------------------------------------------------------------------------------


def test_tariffs_commands_refuse_bad_input_in_one_line(files, tmp_path, unreachable_warehouse):
    one_error_line(invoke("tariffs", "at", "CEMIG-D", "B1", "2026-01-15", "--data", files["folder"]),
                   "no ANEEL files to read")
    one_error_line(invoke("tariffs", "at", "CEMIG-D", "B1", "2026-01-15", "--data", files["missing"]),
                   "'--data'", "does not exist")
    one_error_line(invoke("tariffs", "at", "CEMIG-D", "B1", "2026-02-30"), "DATE must be ISO")
    one_error_line(invoke("tariffs", "load", files["folder"], "--out", tmp_path / "out"), "no ANEEL files to read")
    one_error_line(invoke("tariffs", "load", files["deep"], "--out", files["deep"]), "'--out'", "is a file")
    one_error_line(invoke("tariffs", "land", files["folder"]), "no ANEEL files to read")  # before the warehouse
    one_error_line(invoke("tariffs", "current", "--on", "tomorrow"), "--on must be ISO")  # before the warehouse


@pytest.fixture()
def nobody_url():
    from ysh.services.postgres import free_port

    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(("kind", "says"), [
    ("deep", "JSON nested too deeply"),
    ("huge_int", "not an eval question"),
    ("latin1", "the questions file is not UTF-8 text"),
    ("empty", "the questions file is empty"),
    ("missing", "no such questions file"),
])
def test_rag_eval_checks_the_questions_file_before_asking_anyone(files, nobody_url, kind, says):
    line = one_error_line(invoke("rag", "eval", "--url", nobody_url, "--questions", files[kind]), says)
    assert files[kind].name in line


def test_rag_eval_refuses_a_file_as_docs_and_a_folder_as_questions(files, nobody_url):
    one_error_line(invoke("rag", "eval", "--docs", files["deep"]), "--docs", "not a folder")
    one_error_line(invoke("rag", "eval", "--url", nobody_url, "--questions", files["folder"]), "is a directory")


def test_rag_eval_accepts_a_questions_file_with_a_byte_order_mark(tmp_path, nobody_url):
    """The file passes the check and the command goes on to ask the service (here nobody
    answers: the run fails later, not on the file)."""
    questions = tmp_path / "questions.jsonl"
    questions.write_bytes(BOM + b'{"id": "q1", "question": "Qual o prazo?", "expected": ["lei.md"]}\n')
    done = invoke("rag", "eval", "--url", nobody_url, "--questions", questions)
    assert done.exit_code == 1 and "error:" not in done.output
    assert "miss q1" in done.stdout  # the question was read and asked


def test_flows_run_checks_the_parameters_before_the_flow_runs():
    one_error_line(invoke("flows", "run", "backup", "--param", "dsn=postgresql://x"),
                   "flow backup", "unexpected keyword argument 'dsn'", "its parameters: settings, now")
    one_error_line(invoke("flows", "run", "restore"), "flow restore", "missing a required argument: 'name'")
    one_error_line(invoke("flows", "run", "backup", "--param", "now=soon"), "flow backup", "invalid parameters",
                   "now")
    one_error_line(invoke("flows", "run", "nope"), "unknown flow 'nope'")


def test_services_up_checks_the_names_before_starting_anything(unreachable_warehouse):
    one_error_line(invoke("services", "up", "--with", "mqtt,redis"), "--with", "unknown service 'redis'")


def test_a_bad_setting_is_one_line(monkeypatch):
    from ysh.settings import get_settings

    monkeypatch.setenv("YSH_OM_THRESHOLDS", "{not json")
    get_settings.cache_clear()
    try:
        one_error_line(invoke("om", "simulate", "--help"), "settings: YSH_OM_THRESHOLDS")
    finally:
        monkeypatch.delenv("YSH_OM_THRESHOLDS")
        get_settings.cache_clear()


def test_usage_errors_are_one_line_too(files):
    one_error_line(invoke("om", "detect", "--bogus"), "No such option: --bogus", "om detect --help")
    one_error_line(invoke("om", "nope"), "No such command 'nope'")
    one_error_line(invoke("--bogus"), "No such option: --bogus")
    one_error_line(invoke("rag", "serve", "--port", "70000"), "'--port'")


# --------------------------------------------------------------------------------------
# the real process: stderr as a user sees it, Ctrl-C
# --------------------------------------------------------------------------------------


def ysh(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "ysh.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)


def test_the_process_prints_one_line_for_hostile_json(files, tmp_path, telemetry):
    path, now = telemetry
    bad = tmp_path / "hostile.jsonl"
    bad.write_text(DEEP + "\n")
    for args in (("proposals", "evaluate", files["deep"]),
                 ("om", "detect", bad, "--out", tmp_path / "out", "--now", now),
                 ("om", "detect", path, "--out", tmp_path / "out", "--plants", files["huge_int"], "--now", now)):
        done = ysh(*args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "panicked" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: "), done.stderr


def test_ctrl_c_ends_a_command_with_130_and_no_traceback(tmp_path):
    out = tmp_path / "events.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "ysh.cli", "om", "simulate", "--out", str(out), "--speedup", "1", "--hours", "24"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # pytest may run with SIGINT ignored
    try:
        for _ in range(1200):  # at most about two minutes to start (imports, the simulated fleet)
            if out.exists():  # the file is open: the command is pacing events in real time
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("the simulation never started")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip() == "interrupted"
