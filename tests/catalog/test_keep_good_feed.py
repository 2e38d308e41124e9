"""Keep the last good feed (issue 15): a broken or badly shrunk re-upload of a real
distributor export is held. Its previous version's items and products stay in PostgreSQL,
the new version is one quarantined row (line 0) with its reason, and a
``catalog_feed_held`` notice waits in the outbox; an accepted shrink goes through. The same
in a batch run (``run_static`` / ``ysh catalog run``) and in the streaming follower
(``ysh catalog follow``), across its restarts."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys

import pytest

from ysh.catalog import job
from ysh.catalog.normalize import normalize_feed
from ysh.catalog.versions import FEED_SHRUNK, GoodVersion, NewVersion, judge

from ..conftest import REPO, query, stop_process, wait_for
from .feeds_fixture import rewrite

REAL = REPO / "data" / "distributors" / "exports"  # October 2025 storefront exports: fotus, solfacil


# ----------------------------------------------------------------------------- the rule


GOOD = GoodVersion("a" * 64, items=200, modified_at_s=1_760_000_000)


@pytest.mark.parametrize(("new", "accept_shrink", "held"), [
    (NewVersion("b" * 64, 0, "unparseable_file", "a spreadsheet"), False, "unparseable_file"),
    (NewVersion("b" * 64, 0, "empty_file"), True, "empty_file"),  # accepting a shrink never takes a broken file
    (NewVersion("b" * 64, 99, None), False, FEED_SHRUNK),  # 50.5 % fewer
    (NewVersion("b" * 64, 100, None), False, None),  # exactly half: taken
    (NewVersion("b" * 64, 60, None), True, None),
    (NewVersion("b" * 64, 500, None), False, None),
    (NewVersion("a" * 64, 0, None), False, None),  # the same bytes as the good version
])
def test_the_rule_holds_broken_and_badly_shrunk_versions(new, accept_shrink, held):
    verdict = judge(new, GOOD, accept_shrink=accept_shrink)
    assert verdict.hold == held
    if held:
        assert "kept the previous version (200 items" in verdict.detail


def test_without_a_good_version_a_broken_feed_is_taken_and_quarantined_as_before():
    assert judge(NewVersion("b" * 64, 0, "empty_file"), None).hold is None


def test_the_shrink_threshold_is_a_parameter():
    shrunk = NewVersion("b" * 64, 150, None)  # 25 % fewer
    assert judge(shrunk, GOOD).hold is None
    assert judge(shrunk, GOOD, max_shrink=0.2).hold == FEED_SHRUNK


# ----------------------------------------------------------------------------- broken versions


def truncated(data: bytes, share: float) -> bytes:
    return data[: int(len(data) * share)]


def shrunk(data: bytes, keep: float) -> bytes:
    """The header and the first ``keep`` share of the rows (one row per line)."""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[: 1 + int((len(lines) - 1) * keep)])


def xlsx_of(data: bytes) -> bytes:
    """The feed as a real spreadsheet (what a distributor gets by "Save as" in Excel)."""
    import csv

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in csv.reader(io.StringIO(data.decode("utf-8")), delimiter=","):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def land_real_exports(landing):
    shutil.copytree(REAL, landing)
    return {p.name: p for p in landing.rglob("*") if p.is_file()}


ITEMS = "SELECT (to_jsonb(i) - 'ingested_at')::text FROM items_normalized i ORDER BY distributor, sku"
PRODUCTS = "SELECT (to_jsonb(p) - 'updated_at')::text FROM products p ORDER BY product_key"


def catalog(warehouse):
    return query(warehouse, ITEMS), query(warehouse, PRODUCTS)


def file_rows(warehouse):
    """source_file name → (reason, detail) of its line-0 quarantine row."""
    return {os.path.basename(f): (reason, detail) for f, reason, detail in query(
        warehouse, "SELECT source_file, reason, detail FROM items_quarantine WHERE line = 0")}


def held_notices(warehouse):
    return query(warehouse, "SELECT alert_key, summary, status FROM ops_alerts_sent WHERE kind = 'catalog_feed_held' "
                            "ORDER BY alert_key")


def items_of(warehouse, name):
    return query(warehouse, "SELECT count(*) FROM items_normalized WHERE source_file LIKE %s", (f"%/{name}",))[0][0]


@pytest.mark.integration
def test_a_batch_run_holds_broken_and_shrunk_versions_and_takes_an_accepted_shrink(warehouse, tmp_path):
    landing = tmp_path / "landing"
    paths = land_real_exports(landing)
    job.run_static([landing], warehouse=warehouse, reconcile_after=True)
    good = catalog(warehouse)
    assert len(good[0]) == 639 and len(good[1]) > 0
    assert query(warehouse, "SELECT count(*) FROM catalog_feed_versions") == [(18,)]

    kitpl = paths["fotus-raw-kitpl.csv"].read_bytes()
    rewrite(paths["solfacil-inverters.json"], truncated(paths["solfacil-inverters.json"].read_bytes(), 0.5))
    rewrite(paths["fotus-kits.csv"], b"")
    rewrite(paths["fotus-kits-hibridos.csv"], xlsx_of(paths["fotus-kits-hibridos.csv"].read_bytes()))
    rewrite(paths["fotus-raw-kitpl.csv"], shrunk(kitpl, 0.3))  # 70 % of its rows gone
    rewrite(paths["solfacil-raw-1.csv"], truncated(paths["solfacil-raw-1.csv"].read_bytes(), 0.4))
    (landing / "fotus" / "new-upload.csv").write_bytes(b"")  # broken, but no good version to keep

    report = job.run_static([landing], warehouse=warehouse, reconcile_after=True)

    assert catalog(warehouse) == good  # every item and product as the good versions had them
    held = {os.path.basename(f): reason for f, reason in report.held.items()}
    assert held == {"solfacil-inverters.json": "unparseable_file", "fotus-kits.csv": "empty_file",
                    "fotus-kits-hibridos.csv": "unparseable_file", "fotus-raw-kitpl.csv": "feed_shrunk",
                    "solfacil-raw-1.csv": "feed_shrunk"}
    rows = file_rows(warehouse)
    assert {name: reason for name, (reason, _) in rows.items()} == {**held, "new-upload.csv": "empty_file"}
    assert "invalid JSON" in rows["solfacil-inverters.json"][1]
    assert "spreadsheet" in rows["fotus-kits-hibridos.csv"][1]
    assert rows["fotus-raw-kitpl.csv"][1].startswith("67 items instead of 223 (70% fewer")
    assert "kept the previous version (221 items" in rows["fotus-kits.csv"][1]
    assert query(warehouse, "SELECT count(*) FROM catalog_feed_files WHERE held_reason IS NOT NULL") == [(5,)]
    notices = held_notices(warehouse)
    assert len(notices) == 5 and all(status == "pending" for *_, status in notices)
    assert any("fotus-raw-kitpl.csv" in summary and "feed_shrunk" in summary for _, summary, _ in notices)

    # seen again by the next run: still held, not announced twice
    job.run_static([landing], warehouse=warehouse, reconcile_after=True)
    assert catalog(warehouse) == good
    assert held_notices(warehouse) == notices

    # a shrink accepted goes through (the broken files stay held: accepting a shrink takes no broken file)
    report = job.run_static([landing], warehouse=warehouse, reconcile_after=True, accept_shrink=True)
    assert sorted(os.path.basename(f) for f in report.held) == [
        "fotus-kits-hibridos.csv", "fotus-kits.csv", "solfacil-inverters.json"]
    assert items_of(warehouse, "fotus-raw-kitpl.csv") == 67
    assert "fotus-raw-kitpl.csv" not in file_rows(warehouse)
    assert catalog(warehouse)[0] != good[0]
    # ... and becomes the good version the next one is judged against
    assert query(warehouse, "SELECT items FROM catalog_feed_versions WHERE source_file LIKE '%%/fotus-raw-kitpl.csv'") \
        == [(67,)]

    # a good version lands: taken, the hold ends
    rewrite(paths["fotus-kits.csv"], (REAL / "fotus" / "fotus-kits.csv").read_bytes())
    job.run_static([landing], warehouse=warehouse, reconcile_after=True)
    assert "fotus-kits.csv" not in file_rows(warehouse)
    assert items_of(warehouse, "fotus-kits.csv") == 221

    # a held feed removed: its rows go, and so does its kept version
    paths["solfacil-inverters.json"].unlink()
    job.run_static([landing], warehouse=warehouse, reconcile_after=True)
    assert items_of(warehouse, "solfacil-inverters.json") == 0
    assert query(warehouse, "SELECT count(*) FROM catalog_feed_versions WHERE source_file LIKE "
                            "'%%/solfacil-inverters.json'") == [(0,)]


@pytest.mark.integration
def test_ysh_catalog_run_reports_a_held_feed_and_takes_a_shrink_with_the_flag(warehouse_env, tmp_path):
    from typer.testing import CliRunner

    from ysh.cli import app

    landing = tmp_path / "landing"
    feed = land_real_exports(landing)["fotus-raw-kitpl.csv"]
    shutil.rmtree(landing / "solfacil")
    assert CliRunner().invoke(app, ["catalog", "run", "--landing", str(landing)]).exit_code == 0
    rewrite(feed, shrunk(feed.read_bytes(), 0.3))
    held = CliRunner().invoke(app, ["catalog", "run", "--landing", str(landing)])
    assert held.exit_code == 0, held.output
    assert "held (feed_shrunk)" in held.output and "fotus-raw-kitpl.csv" in held.output
    assert items_of(warehouse_env, "fotus-raw-kitpl.csv") == 223
    taken = CliRunner().invoke(app, ["catalog", "run", "--landing", str(landing), "--accept-shrink"])
    assert taken.exit_code == 0, taken.output
    assert "held (" not in taken.output
    assert items_of(warehouse_env, "fotus-raw-kitpl.csv") == 67


# ----------------------------------------------------------------------------- streaming


@pytest.fixture()
def follower(warehouse, tmp_path):
    """``start(*flags)`` starts ``ysh catalog follow`` on ``tmp_path/landing``; every
    process started is stopped at the end."""
    landing = tmp_path / "landing"
    env = {**os.environ, "YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema}
    procs, logs = [], []

    def start(*flags: str):
        log_path = tmp_path / f"follow-{len(procs)}.log"
        log = log_path.open("w")
        logs.append(log)
        proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "catalog", "follow", "--landing", str(landing),
                                 *flags], env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc, log_path

    yield landing, start
    for proc in procs:
        stop_process(proc)
    for log in logs:
        log.close()


def caught_up(log_path) -> bool:
    return "caught up" in log_path.read_text()


@pytest.mark.integration
def test_the_follower_holds_a_broken_and_a_shrunk_version_across_restarts(follower, warehouse):
    landing, start = follower
    proc, log_path = start()
    paths = land_real_exports(landing)
    expected_files = len(paths)
    wait_for(lambda: query(warehouse, "SELECT count(*) FROM catalog_feed_versions") == [(expected_files,)]
             and query(warehouse, "SELECT count(*) FROM items_normalized") == [(639,)], timeout=120,
             what="the real exports in the warehouse")
    wait_for(lambda: caught_up(log_path), what="start-up reconciliation")
    good = catalog(warehouse)
    feed = paths["fotus-raw-kitpl.csv"]
    original = feed.read_bytes()

    # an .xlsx saved over the CSV
    rewrite(feed, xlsx_of(original))
    wait_for(lambda: file_rows(warehouse).get("fotus-raw-kitpl.csv", ("",))[0] == "unparseable_file",
             what="the spreadsheet held")
    wait_for(lambda: len(held_notices(warehouse)) == 1, what="the notice")
    assert catalog(warehouse) == good
    assert "fotus-raw-kitpl.csv" in held_notices(warehouse)[0][1]

    # then a copy that lost 70 % of its rows
    rewrite(feed, shrunk(original, 0.3))
    wait_for(lambda: file_rows(warehouse).get("fotus-raw-kitpl.csv", ("",))[0] == "feed_shrunk",
             what="the shrunk copy held")
    wait_for(lambda: len(held_notices(warehouse)) == 2, what="the second notice")
    assert catalog(warehouse) == good

    # a restart re-reads the landing area: the held version stays held, nothing is pruned
    proc.kill()
    proc.wait(10)
    proc, log_path = start()
    wait_for(lambda: caught_up(log_path), timeout=120, what="reconciliation after the restart")
    assert catalog(warehouse) == good
    assert file_rows(warehouse)["fotus-raw-kitpl.csv"][0] == "feed_shrunk"
    assert len(held_notices(warehouse)) == 2
    assert proc.poll() is None

    # restarted with --accept-shrink, the shrunk version goes through
    proc.send_signal(signal.SIGINT)
    proc.wait(20)
    proc, log_path = start("--accept-shrink")
    wait_for(lambda: items_of(warehouse, "fotus-raw-kitpl.csv") == 67, timeout=120, what="the shrink taken")
    wait_for(lambda: "fotus-raw-kitpl.csv" not in file_rows(warehouse), what="the hold released")
    assert proc.poll() is None


def test_the_shrunk_and_truncated_copies_are_what_the_tests_say():
    """The figures the tests above assert, from the normalizer itself."""
    kitpl = (REAL / "fotus" / "fotus-raw-kitpl.csv").read_bytes()
    assert len(normalize_feed(kitpl, "fotus-raw-kitpl.csv", "fotus").items) == 223
    assert len(normalize_feed(shrunk(kitpl, 0.3), "fotus-raw-kitpl.csv", "fotus").items) == 67
    raw1 = (REAL / "solfacil" / "solfacil-raw-1.csv").read_bytes()
    assert len(normalize_feed(truncated(raw1, 0.4), "solfacil-raw-1.csv", "solfacil").items) < 83 / 2
