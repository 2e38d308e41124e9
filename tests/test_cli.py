"""One CLI grammar across the jobs: ``run`` is one batch pass, ``follow`` streams until
stopped, ``serve`` is the HTTP API. The verbs it replaced are hidden but still work,
after one deprecation line on stderr; the help texts say what each command does now.

The hidden aliases are proven by calls that fail fast inside the new verb's own code (a
bad ``--landing``, an unreachable warehouse, a broken JSON file): the old and the new
invocation must end the same way, the old one with the deprecation line first."""

from __future__ import annotations

import re
import shutil

import pytest
from typer.testing import CliRunner

from ysh.cli import app

from .conftest import SAMPLE_CATALOG, query


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def listed(*group: str) -> set[str]:
    """The commands ``ysh GROUP --help`` lists (hidden ones are not)."""
    result = invoke(*group, "--help")
    assert result.exit_code == 0, result.output
    panel = result.stdout[result.stdout.index("Commands"):]
    return set(re.findall(r"^│ ([a-z][\w-]*) ", panel, flags=re.MULTILINE))


def flat(text: str) -> str:
    """Text without the error box's frame and line wrapping."""
    return " ".join(text.replace("│", " ").split())


def same_ending(old, new, line: str, old_verb: str, new_verb: str) -> None:
    """``old`` printed ``line`` first on stderr and then ended exactly like ``new``."""
    first, _, rest = old.stderr.partition("\n")
    assert first == line
    assert (old.exit_code, old.stdout) == (new.exit_code, new.stdout)
    assert rest.replace(old_verb, new_verb) == new.stderr
    assert type(old.exception) is type(new.exception) and str(old.exception) == str(new.exception)


def test_ysh_help_lists_the_five_jobs_the_flows_and_what_demo_does_now():
    top = listed()
    assert {"catalog", "tariffs", "proposals", "om", "rag", "flows", "demo"} <= top
    assert "proposal" not in top  # the old group name: hidden
    demo = invoke("demo", "--help").stdout
    assert "five jobs" in demo and "two jobs" not in demo
    for part in ("Dagster", "quotes", "O&M", "Hélio"):
        assert part in demo
    assert "`run` is one batch pass" in invoke("--help").stdout


def test_catalog_follow_replaces_watch(tmp_path):
    assert {"run", "follow", "normalize"} <= listed("catalog") and "watch" not in listed("catalog")
    old_help = invoke("catalog", "watch", "--help")
    assert old_help.exit_code == 0 and "Deprecated: use `ysh catalog follow`" in old_help.stdout
    assert "--landing" in old_help.stdout  # the options of follow
    not_a_folder = tmp_path / "feed.csv"
    not_a_folder.write_text("sku;price\n")
    new = invoke("catalog", "follow", "--landing", str(not_a_folder))
    old = invoke("catalog", "watch", "--landing", str(not_a_folder))
    assert new.exit_code == 2 and f"{not_a_folder} is not a folder" in flat(new.stderr)
    same_ending(old, new, "`ysh catalog watch` is deprecated; use `ysh catalog follow`", "watch", "follow")


def test_tariffs_run_replaces_normalize(unreachable_warehouse):
    assert {"run", "follow", "load"} <= listed("tariffs") and "normalize" not in listed("tariffs")
    assert "Deprecated: use `ysh tariffs run`" in invoke("tariffs", "normalize", "--help").stdout
    new = invoke("tariffs", "run")
    old = invoke("tariffs", "normalize")
    assert new.exit_code == 1 and "Connection refused" in str(new.exception)  # it went for the warehouse
    same_ending(old, new, "`ysh tariffs normalize` is deprecated; use `ysh tariffs run`", "normalize", "run")


def test_proposals_is_the_group_and_proposal_still_works(tmp_path):
    assert {"run", "follow", "evaluate", "seed"} <= listed("proposals")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    new = invoke("proposals", "evaluate", str(broken))
    old = invoke("proposal", "evaluate", str(broken))
    assert new.exit_code == 2 and "not valid JSON" in new.stderr
    same_ending(old, new, "`ysh proposal` is deprecated; use `ysh proposals`", "proposal ", "proposals ")


def test_om_run_is_batch_and_follow_streams(monkeypatch, tmp_path):
    from ysh.settings import get_settings

    assert {"run", "follow", "detect", "simulate"} <= listed("om")
    assert "--source" in invoke("om", "follow", "--help").stdout
    assert "--source" not in invoke("om", "run", "--help").stdout
    # a call written for the old streaming `om run` fails loudly, naming the new verb
    old = invoke("om", "run", "--source", "mqtt")
    assert old.exit_code == 2
    assert old.stderr.strip() == ("`ysh om run` is one batch pass over JSONL files; to stream from mqtt use "
                                  "`ysh om follow --source mqtt`")
    monkeypatch.setenv("YSH_OM_SOURCE", "kafka")
    get_settings.cache_clear()
    try:
        configured = invoke("om", "run")
    finally:
        monkeypatch.delenv("YSH_OM_SOURCE")
        get_settings.cache_clear()
    assert configured.exit_code == 2 and "to stream from kafka use `ysh om follow`" in configured.stderr
    follow = invoke("om", "follow", "--source", "carrier-pigeon")  # rejected before any server is reached
    assert follow.exit_code == 2 and "--source must be one of jsonl, mqtt, kafka" in follow.stderr
    empty = tmp_path / "replay"
    empty.mkdir()
    nothing = invoke("om", "run", str(empty))  # before the warehouse opens
    assert nothing.exit_code == 1 and "no telemetry to run over" in nothing.stdout


def test_rag_serves_the_api_and_flows_run_or_serve():
    assert {"serve", "eval"} <= listed("rag")
    assert "/v2/answer" in invoke("rag", "serve", "--help").stdout
    assert {"run", "serve", "list"} <= listed("flows")


@pytest.mark.integration
def test_om_run_is_one_batch_pass_into_the_warehouse(warehouse_env, tmp_path):
    from datetime import timedelta

    from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl

    scenario = default_scenario("2026-01-15", 3, seed=3)
    write_jsonl(simulate(scenario), tmp_path / "replay" / "telemetry.jsonl")
    now = (scenario.start + timedelta(hours=3)).isoformat()
    done = invoke("om", "run", str(tmp_path / "replay"), "--now", now)
    assert done.exit_code == 0, done.output
    windows = int(re.search(r"→ (\d+) windows", done.stdout).group(1))
    assert windows > 0
    assert query(warehouse_env, "SELECT count(*) FROM om_inverter_5min") == [(windows,)]
    assert query(warehouse_env, "SELECT count(*) FROM om_plants") == [(6,)]


@pytest.mark.integration
def test_catalog_run_is_one_batch_pass_and_refuses_an_empty_landing_area(warehouse_env, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy2(SAMPLE_CATALOG / "fotovolt_sul.jsonl", landing)
    done = invoke("catalog", "run", "--landing", str(landing))
    assert done.exit_code == 0, done.output
    items = query(warehouse_env, "SELECT count(*) FROM items_normalized")[0][0]
    assert items > 0
    assert query(warehouse_env, "SELECT count(*) FROM products")[0][0] > 0
    (landing / "fotovolt_sul.jsonl").unlink()
    empty = invoke("catalog", "run", "--landing", str(landing))
    assert empty.exit_code == 1 and "no feed files" in empty.stdout
    assert query(warehouse_env, "SELECT count(*) FROM items_normalized") == [(items,)]  # nothing deleted
