"""Dagster: the O&M assets over a real warehouse: the daily summary of a simulated day
(alerts by rule, MTTR, availability), and the running stream as an observable asset whose
checks pass while it writes and fail when it stalls or stops (a real `ysh om follow`)."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest

from ysh.definitions import defs
from ysh.om import assets, job
from ysh.om.daily import day_bounds
from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl
from ysh.resources import WarehouseResource

from ..conftest import REPO, query, wait_for

pytestmark = pytest.mark.integration

PLANTS = REPO / "data" / "sample" / "om" / "plants.json"


def resources(warehouse):
    return {"warehouse": WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema)}


STREAM = dg.AssetKey("om_inverters_stream")


def test_definitions_have_the_daily_schedule_and_the_stream_as_an_observation_with_checks():
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    schedule = repo.get_schedule_def("om_daily_0600")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "America/Sao_Paulo")
    graph = repo.asset_graph
    stream = graph.get(STREAM)
    assert stream.is_observable and not stream.is_materializable  # a service: observed, never computed
    assert graph.get(dg.AssetKey("om_alerts_daily")).parent_keys == {STREAM}  # lineage kept
    assert {k.name for k in graph.get_check_keys_for_assets({STREAM})} == {"om_stream_alive", "om_stream_fresh"}
    assert repo.get_sensor_def("om_stream_automation").default_status == dg.DefaultSensorStatus.RUNNING
    assert repo.get_job("om_stream_observe").asset_layer.executable_asset_keys == {STREAM}


def test_the_stream_is_observed_every_five_minutes():
    om = dg.Definitions(assets=[assets.om_inverters_stream], resources={"warehouse": WarehouseResource()})
    instance = dg.DagsterInstance.ephemeral()
    first = datetime(2026, 1, 15, 12, 1, tzinfo=timezone.utc)  # a simulated clock, never the wall clock

    def requested(at, cursor):
        result = dg.evaluate_automation_conditions(defs=om, instance=instance, cursor=cursor, evaluation_time=at)
        return result.total_requested, result.cursor

    n, cursor = requested(first, None)
    assert n == 0  # no tick has passed since the first evaluation
    n, cursor = requested(first + timedelta(minutes=3), cursor)  # 12:04: the 12:00 tick was before the start
    assert n == 0
    n, cursor = requested(first + timedelta(minutes=5), cursor)  # 12:06: the 12:05 tick passed
    assert n == 1
    n, cursor = requested(first + timedelta(minutes=6), cursor)  # 12:07: no new tick
    assert n == 0


@pytest.mark.parametrize("health, expected", [
    ({}, (False, dg.AssetCheckSeverity.WARN)),
    ({"batch_age_s": None}, (False, dg.AssetCheckSeverity.ERROR)),
    ({"batch_age_s": 30.0}, (True, dg.AssetCheckSeverity.ERROR)),
    ({"batch_age_s": 600.0}, (True, dg.AssetCheckSeverity.ERROR)),
    ({"batch_age_s": 601.0}, (False, dg.AssetCheckSeverity.WARN)),
    ({"batch_age_s": 1800.0}, (False, dg.AssetCheckSeverity.WARN)),
    ({"batch_age_s": 1801.0}, (False, dg.AssetCheckSeverity.ERROR)),
])
def test_stream_freshness_warns_after_ten_minutes_and_errs_after_thirty(health, expected):
    assert assets.stream_freshness(health)[:2] == expected


def test_the_daily_summary_of_a_simulated_day(warehouse, tmp_path):
    scenario = default_scenario("2026-01-15", 24, seed=3)  # 03:00 UTC = local midnight
    write_jsonl(simulate(scenario), tmp_path / "day.jsonl")
    job.run_detect([tmp_path / "day.jsonl"], PLANTS, tmp_path / "out", now=scenario.start + timedelta(hours=25),
                   warehouse=warehouse)
    result = dg.materialize([assets.om_alerts_daily], partition_key="2026-01-15", resources=resources(warehouse),
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    start, end = day_bounds(date(2026, 1, 15))
    alerts = [json.loads(x) for x in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    today = [a for a in alerts if start <= datetime.fromisoformat(a["opened_at"]) < end]
    rows = {p: (n, by_rule, resolved, mttr, avail) for p, n, by_rule, resolved, mttr, avail in query(
        warehouse, "SELECT plant_id, alerts, alerts_by_rule, resolved, mttr_minutes, availability "
                   "FROM om_alerts_daily WHERE day = '2026-01-15'")}
    n, by_rule, resolved, mttr, avail = rows["*"]
    assert n == len(today) and by_rule["inverter_trip"] == 1 and by_rule["comm_loss"] == 1
    assert resolved == sum(1 for a in today if a["resolved_at"])
    spans = [(datetime.fromisoformat(a["resolved_at"]) - datetime.fromisoformat(a["opened_at"])).total_seconds() / 60
             for a in today if a["resolved_at"] and a["rule"] != "clipping"]
    assert mttr == pytest.approx(sum(spans) / len(spans), abs=0.05)
    # the plant with the trip lost availability; a plant without faults did not
    assert rows["plant-cps-01"][4] < 1.0 and 0.9 < avail < 1.0
    metadata = result.asset_materializations_for_node("om_alerts_daily")[0].metadata
    assert metadata["alerts"].value == n and "plant-cps-01" in metadata["plants"].value
    again = dg.materialize([assets.om_alerts_daily], partition_key="2026-01-15", resources=resources(warehouse),
                           instance=dg.DagsterInstance.ephemeral())
    assert again.success and query(warehouse, "SELECT count(*) FROM om_alerts_daily")[0][0] == len(rows)


def follow(warehouse, home, folder, log) -> subprocess.Popen:
    """A real `ysh om follow --source jsonl` over ``folder``, writing to the test warehouse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YSH_")}
    env.update(YSH_HOME=str(home), YSH_POSTGRES_DSN=warehouse.dsn, YSH_POSTGRES_SCHEMA=warehouse.schema,
               YSH_OM_REPLAY_DIR=str(folder), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "ysh.cli", "om", "follow", "--source", "jsonl"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def observe(warehouse, instance):
    """The ``om_stream_observe`` job of the merged definitions (observation + its checks)."""
    merged = dg.Definitions.merge(assets.defs, dg.Definitions(resources=resources(warehouse)))
    result = merged.resolve_job_def("om_stream_observe").execute_in_process(instance=instance)
    (observation,) = result.asset_observations_for_node("om_inverters_stream")
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    return observation, checks


def test_a_stream_that_never_ran_is_observed_and_fails_its_checks(warehouse):
    observation, checks = observe(warehouse, dg.DagsterInstance.ephemeral())
    assert observation.metadata["status"].value == "never ran" and observation.data_version is None
    assert {name: (c.passed, c.severity) for name, c in checks.items()} == {
        "om_stream_alive": (False, dg.AssetCheckSeverity.WARN), "om_stream_fresh": (False, dg.AssetCheckSeverity.WARN)}


def test_a_running_stream_is_observed_fresh_then_stale_once_it_stops(warehouse, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    folder, home, log = tmp_path / "telemetry", tmp_path / "home", tmp_path / "run.log"
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(hours=2)  # an hour that ended
    write_jsonl(simulate(default_scenario(start, 1, seed=5)), folder / "part-1.jsonl")
    proc = follow(warehouse, home, folder, log)
    try:
        seen = []

        def settled():  # the file replayed: a batch of windows written, and no other for 3 seconds
            if proc.poll() is not None:
                raise AssertionError(f"ysh om follow exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            seen.append(query(warehouse, "SELECT last_batch_at FROM om_stream_status WHERE last_batch_at IS NOT NULL"))
            time.sleep(3)
            return len(seen) > 1 and seen[-1] and seen[-1] == seen[-2]

        wait_for(settled, timeout=180, what="the stream's batches of windows")
        observation, checks = observe(warehouse, instance)
        (last_batch, last_end, windows), = query(
            warehouse, "SELECT last_batch_at, last_window_end, (SELECT count(*) FROM om_inverter_5min) "
                       "FROM om_stream_status")
        metadata = observation.metadata
        assert metadata["status"].value == "beating" and metadata["source"].value == "jsonl"
        assert metadata["pid"].value == proc.pid and windows > 0
        assert metadata["last_window_end"].value == last_end.timestamp()
        assert metadata["dagster/last_updated_timestamp"].value == last_batch.timestamp()
        assert observation.data_version == last_batch.isoformat()  # what the service last wrote
        assert checks["om_stream_alive"].passed and checks["om_stream_fresh"].passed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    # stopped: it beats no more and writes nothing; the warehouse's clock moves on (aged here:
    # the test does not wait half an hour)
    query(warehouse, "UPDATE om_stream_status SET heartbeat_at = heartbeat_at - interval '15 minutes', "
                     "last_batch_at = last_batch_at - interval '15 minutes' RETURNING 1")
    observation, checks = observe(warehouse, instance)
    assert observation.metadata["status"].value == "silent"
    assert not checks["om_stream_alive"].passed
    assert (checks["om_stream_fresh"].passed, checks["om_stream_fresh"].severity) == (False, dg.AssetCheckSeverity.WARN)
    assert observation.data_version == (last_batch - timedelta(minutes=15)).isoformat()
    query(warehouse, "UPDATE om_stream_status SET last_batch_at = last_batch_at - interval '30 minutes' RETURNING 1")
    _, checks = observe(warehouse, instance)
    fresh = checks["om_stream_fresh"]
    assert (fresh.passed, fresh.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "no window for 45 minutes" in fresh.metadata["reason"].value


def test_instances_that_split_the_kafka_topic_are_judged_by_the_worst_one(warehouse):
    """Two instances own half the partitions each: one keeps writing, the other stalled 45
    minutes ago. The stream is observed with both, and is not fresh."""
    from ysh import db

    with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
        conn.execute("DELETE FROM om_stream_status")
        conn.execute(
            "INSERT INTO om_stream_status (pipeline, source, pid, started_at, heartbeat_at, last_batch_at, "
            "last_window_end, kafka_partitions) VALUES "
            "('om-p0-1', 'kafka', 101, now() - interval '2 hours', now(), now() - interval '1 minute', "
            " now() - interval '3 minutes', '{0,1}'), "
            "('om-p2-3', 'kafka', 102, now() - interval '2 hours', now() - interval '45 minutes', "
            " now() - interval '45 minutes', now() - interval '47 minutes', '{2,3}')")
    try:
        observation, checks = observe(warehouse, dg.DagsterInstance.ephemeral())
        metadata = observation.metadata
        assert metadata["instances"].value == 2 and metadata["pid"].value == "101,102"
        assert metadata["lag_s"].value > 45 * 60  # the instance furthest behind
        assert not checks["om_stream_alive"].passed  # one of them stopped beating
        assert not checks["om_stream_fresh"].passed
        assert checks["om_stream_fresh"].severity == dg.AssetCheckSeverity.ERROR
    finally:
        with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
            conn.execute("DELETE FROM om_stream_status")
