"""The tariffs job in the warehouse: landing into tarifas_raw, the batch recompute, and
the CDC follower of tarifas_raw (a real process on a real PostgreSQL, killed with -9)."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest

from ysh import db
from ysh.kit.follower import FollowerRunning
from ysh.tariffs import job, landing
from ysh.tariffs.aneel import FileFormatError
from ysh.tariffs.pipeline import RawRowSchema
from ysh.tariffs.store import book_from_warehouse, current_tariffs

from ..conftest import REPO, drop_follower_replication, query, stop_process, wait_for
from .test_aneel import HEADER, tariff_line
from .test_book import PERIODS

pytestmark = pytest.mark.integration

SAMPLE = REPO / "data" / "sample" / "tariffs"
VALUE_COLUMNS = {
    "tarifas_normalized": "key_text, valid_from, valid_to, utility, subgroup, tusd_brl_per_kwh, te_brl_per_kwh, "
                          "tusd_brl_per_kw, source_file, line",
    "tarifas_fio_b": "key_text, valid_from, valid_to, fio_b_brl_per_kwh, source_file, line",
    "tarifas_bandeiras": "month, flag, addon_brl_per_kwh",
    "tarifas_efetivas_mensais": "utility, subgroup, month, te_brl_per_kwh, tusd_brl_per_kwh, flag, total_brl_per_kwh",
    "tarifas_quarantine": "source_file, line, reason, detail, raw",
}


def tables_state(warehouse) -> dict[str, set]:
    state = {}
    for table, columns in VALUE_COLUMNS.items():
        state[table] = {tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in row)
                        for row in query(warehouse, f"SELECT {columns} FROM {table}")}
    return state


def write_tariffs(path: Path, *lines: str) -> Path:
    path.write_bytes(("\n".join([HEADER, *lines]) + "\n").encode("latin-1"))
    return path


def land(warehouse, *paths: Path) -> list[landing.LandReport]:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return [landing.land_file(conn, p) for p in landing.feed_files(list(paths))]


def test_landing_merges_by_source_and_touches_only_changes(warehouse, tmp_path):
    path = write_tariffs(tmp_path / "tarifas.csv", *PERIODS)
    first = land(warehouse, path)[0]
    assert (first.dataset, first.rows, first.inserted, first.updated, first.deleted) == ("tariffs", 5, 5, 0, 0)
    again = land(warehouse, path)[0]
    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 5)
    assert query(warehouse, "SELECT count(DISTINCT batch_id) FROM tarifas_raw") == [(1,)]

    write_tariffs(path, *PERIODS[:3], PERIODS[3].replace("470,00", "471,00"))  # one changed, one gone
    changed = land(warehouse, path)[0]
    assert (changed.rows, changed.inserted, changed.updated, changed.deleted) == (4, 0, 1, 1)
    raw = query(warehouse, "SELECT line, record->>'VlrTUSD', batch_id FROM tarifas_raw ORDER BY line")
    assert [(line, tusd) for line, tusd, _ in raw] == [(2, "440,00"), (3, "460,00"), (4, "481,25"), (5, "471,00")]
    assert raw[3][2] == changed.batch_id and raw[0][2] == first.batch_id
    assert query(warehouse, "SELECT count(*), sum(rows) FROM tarifas_batches") == [(3, 14)]


def test_landing_refuses_a_file_that_is_not_aneel(warehouse, tmp_path):
    (tmp_path / "notas.txt").write_text("não é um arquivo da ANEEL\n")
    with pytest.raises(FileFormatError, match="notas.txt: not an ANEEL"):
        land(warehouse, tmp_path / "notas.txt")
    assert query(warehouse, "SELECT count(*) FROM tarifas_raw") == [(0,)]


def test_two_files_with_one_name_are_refused(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        write_tariffs(tmp_path / sub / "tarifas.csv", PERIODS[0])
    with pytest.raises(ValueError, match="several files named"):
        landing.feed_files([tmp_path])


def test_batch_recompute_equals_the_file_pipeline(warehouse, tmp_path):
    land(warehouse, SAMPLE)
    counts = job.run_warehouse(warehouse)
    static = job.run_static([SAMPLE], tmp_path / "out")
    assert {k: counts[t] for k, (t, _) in job.TABLES.items()} == static.counts
    assert counts["tarifas_raw"] == 712

    def jsonl(name):
        return [json.loads(line) for line in (tmp_path / "out" / name).read_text().splitlines()]

    from_files = {(t["key_text"], t["valid_from"][:10], t["te_brl_per_kwh"], t["tusd_brl_per_kwh"])
                  for t in jsonl("tarifas_normalized.jsonl")}
    in_warehouse = {(k, v.isoformat(), te, tusd) for k, v, te, tusd in query(
        warehouse, "SELECT key_text, valid_from, te_brl_per_kwh, tusd_brl_per_kwh FROM tarifas_normalized")}
    assert in_warehouse == from_files
    reasons = dict(query(warehouse, "SELECT reason, count(*) FROM tarifas_quarantine GROUP BY 1"))
    assert reasons == {"missing_key": 4, "negative_value": 2, "overlapping_validity": 4, "unknown_unit": 2,
                       "unparseable_value": 3}

    # a source removed from tarifas_raw: the next recompute deletes what came from it
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        landing.remove_source(conn, "bandeira-tarifaria-acionamento.csv")
    counts = job.run_warehouse(warehouse)
    assert (counts["tarifas_bandeiras"], counts["tarifas_efetivas_mensais"]) == (0, 398)
    assert query(warehouse, "SELECT count(*) FROM tarifas_efetivas_mensais WHERE flag IS NOT NULL "
                            "OR flag_addon_brl_per_kwh <> 0") == [(0,)]


def test_lookup_from_the_warehouse(warehouse):
    land(warehouse, SAMPLE)
    job.run_warehouse(warehouse)
    book = book_from_warehouse(warehouse)
    at = book.tariff_at("CEMIG-D", "B1", date(2026, 1, 15))
    from ysh.tariffs.load import load_paths

    assert at == load_paths([SAMPLE]).book().tariff_at("CEMIG-D", "B1", date(2026, 1, 15))
    rows = current_tariffs(book, date(2026, 1, 15))
    assert {r.utility for r in rows} == {"CEMIG-D", "COPEL-DIS", "CPFL-PAULISTA", "ENEL SP", "LIGHT SESA"}
    assert all(r.error is None and r.fio_b_brl_per_kwh for r in rows)


# ---------------------------------------------------------------------------------------
# the CDC follower
# ---------------------------------------------------------------------------------------


@pytest.fixture()
def follower(warehouse, tmp_path):
    from ysh.services.postgres import free_port

    metrics_port = free_port()
    env = {**os.environ, "YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema,
           "YSH_HOME": str(tmp_path / "home"), "YSH_METRICS_PORT": str(metrics_port), "YSH_LOG_JSON": "true"}
    log = (tmp_path / "follow.log").open("w")
    procs = []

    def start():
        proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "tariffs", "follow"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    start.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    start.log_path = tmp_path / "follow.log"
    yield start
    for proc in procs:
        stop_process(proc)
    log.close()
    drop_follower_replication(warehouse, job.FOLLOWER)


def _get(httpx, url):
    try:
        return httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return None


def b1_tariffs(warehouse, utility="CEMIG-D"):
    return query(warehouse, "SELECT valid_from::text, tusd_brl_per_kwh FROM tarifas_normalized WHERE utility = %s "
                 "AND subgroup = 'B1' AND subclass = 'Residencial' AND unit = 'MWh' AND base = 'aplicacao' "
                 "ORDER BY valid_from", (utility,))


def test_follower_reflects_inserts_updates_deletes_and_survives_kill_9(warehouse, tmp_path, follower):
    land(warehouse, SAMPLE)
    stale = write_tariffs(tmp_path / "stale.csv", PERIODS[0].replace("CEMIG-D", "GONE"))
    land(warehouse, stale)
    job.run_warehouse(warehouse)  # an earlier batch wrote GONE's row
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        landing.remove_source(conn, "stale.csv")
    proc = follower()
    wait_for(lambda: query(warehouse, "SELECT count(*) FROM tarifas_normalized")[0][0] == 476, 120,
             "the initial snapshot normalized, without the row of the removed source")
    wait_for(lambda: query(warehouse, "SELECT count(*) FROM tarifas_efetivas_mensais")[0][0] == 398, 60, "monthly")
    wait_for(lambda: job.FOLLOWER.streaming(warehouse), 60, "the follower streaming")
    with pytest.raises(FollowerRunning):
        job.run_warehouse(warehouse)  # a batch would race the follower

    # observability: Prometheus metrics of the outputs and the CDC stream, JSON log lines
    import httpx

    metrics = wait_for(lambda: _get(httpx, follower.metrics_url), 30, "the metrics endpoint")
    assert 'ysh_pipeline_rows_total{change="insert",pipeline="tariffs",table="tarifas_normalized"}' in metrics
    logged = [json.loads(line) for line in follower.log_path.read_text().splitlines() if line.startswith("{")]
    assert any(entry.get("logger") == "ysh.cdc" and "snapshot of" in entry["message"] for entry in logged)

    # a new utility file: inserts
    extra = write_tariffs(tmp_path / "extra.csv", *[p.replace("CEMIG-D", "EQUATORIAL PA") for p in PERIODS[:3]])
    land(warehouse, extra)
    wait_for(lambda: len(b1_tariffs(warehouse, "EQUATORIAL PA")) == 3, 30, "inserted rows")
    # an update of one raw row
    write_tariffs(extra, *[p.replace("CEMIG-D", "EQUATORIAL PA") for p in PERIODS[:2]],
                  PERIODS[2].replace("CEMIG-D", "EQUATORIAL PA").replace("481,25", "500,00"))
    land(warehouse, extra)
    wait_for(lambda: b1_tariffs(warehouse, "EQUATORIAL PA")[-1] == ("2025-05-28", 0.5), 30, "updated row")
    # an overlapping row is quarantined together with the row it overlaps; removing it heals
    write_tariffs(extra, *[p.replace("CEMIG-D", "EQUATORIAL PA") for p in PERIODS[:2]],
                  PERIODS[2].replace("CEMIG-D", "EQUATORIAL PA").replace("481,25", "500,00"),
                  tariff_line(utility="EQUATORIAL PA", start="2026-01-01", end="2026-12-31"))
    land(warehouse, extra)
    wait_for(lambda: query(warehouse, "SELECT count(*) FROM tarifas_quarantine WHERE source_file = 'extra.csv' "
                                      "AND reason = 'overlapping_validity'")[0][0] == 2, 30, "overlap quarantined")
    assert len(b1_tariffs(warehouse, "EQUATORIAL PA")) == 2

    os.kill(proc.pid, signal.SIGKILL)  # a crash, then changes while nobody follows
    proc.wait(10)
    write_tariffs(extra, *[p.replace("CEMIG-D", "EQUATORIAL PA") for p in PERIODS[:2]])
    land(warehouse, extra)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        landing.remove_source(conn, "bandeira-tarifaria-acionamento.csv")
    proc = follower()
    wait_for(lambda: len(b1_tariffs(warehouse, "EQUATORIAL PA")) == 2
             and query(warehouse, "SELECT count(*) FROM tarifas_bandeiras")[0][0] == 0
             and query(warehouse, "SELECT count(*) FROM tarifas_quarantine WHERE source_file = 'extra.csv'")[0][0] == 0,
             60, "changes made while down")

    # what the follower holds equals a full recompute from tarifas_raw: nothing lost, nothing doubled
    def settled():  # unchanged for a second: the monthly table follows the flags a commit later
        before = tables_state(warehouse)
        time.sleep(1.0)
        return before if tables_state(warehouse) == before else None

    followed = wait_for(settled, 30, "a settled state")
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    wait_for(lambda: not job.FOLLOWER.active(warehouse), 30, "the slot released")
    job.run_warehouse(warehouse)
    assert tables_state(warehouse) == followed


def test_a_license_key_selects_pathways_native_reader(warehouse, monkeypatch):
    """No license here, so the native reader cannot run; what is checked is the choice
    and the arguments it gets (the ysh.cdc path is exercised by the follower test)."""
    import pathway as pw

    calls = []
    monkeypatch.setattr(pw, "set_license_key", lambda key: calls.append(("key", key)))
    monkeypatch.setattr(pw.io.postgres, "read", lambda *args, **kwargs: calls.append(("read", args, kwargs)))
    job.FOLLOWER.read(warehouse, license_key="LICENSE-FROM-ENV")
    publication, _ = job.FOLLOWER.names(warehouse.schema)
    assert calls[0] == ("key", "LICENSE-FROM-ENV")
    _, args, kwargs = calls[1]
    assert args[1:] == ("tarifas_raw", RawRowSchema)
    assert (kwargs["publication_name"], kwargs["schema_name"], kwargs["mode"]) == (
        publication, warehouse.schema, "streaming")
    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        conn.execute(f'DROP PUBLICATION "{publication}"')
