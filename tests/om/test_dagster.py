"""Dagster: the O&M assets over a real warehouse: the daily summary of a simulated day
(alerts by rule, MTTR, availability) and the observed health of the stream."""

import json
from datetime import date, datetime, timedelta

import dagster as dg
import pytest

from ysh.definitions import defs
from ysh.om import assets, job
from ysh.om.daily import day_bounds
from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl
from ysh.resources import WarehouseResource

from ..conftest import REPO, query

pytestmark = pytest.mark.integration

PLANTS = REPO / "data" / "sample" / "om" / "plants.json"


def resources(warehouse):
    return {"warehouse": WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema)}


def test_definitions_have_the_daily_schedule_and_the_stream_freshness():
    repo = defs.get_repository_def()
    schedule = repo.get_schedule_def("om_daily_0600")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "America/Sao_Paulo")
    assert repo.get_schedule_def("om_stream_5min").cron_schedule == "*/5 * * * *"
    stream = repo.asset_graph.get(dg.AssetKey("om_inverters_stream"))
    assert stream.freshness_policy.fail_window.to_timedelta() == timedelta(minutes=30)
    assert repo.asset_graph.get(dg.AssetKey("om_alerts_daily")).parent_keys == {dg.AssetKey("om_inverters_stream")}


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


def test_the_stream_health_is_observed_and_checked(warehouse):
    instance = dg.DagsterInstance.ephemeral()

    def observe():
        return dg.materialize([assets.om_inverters_stream, assets.om_stream_alive], resources=resources(warehouse),
                              instance=instance, raise_on_error=False)

    never = observe()
    assert not never.success  # no stream: the observation fails (and freshness will flag it)
    query(warehouse, "INSERT INTO om_stream_status (pipeline, source, pid, started_at, heartbeat_at, "
                     "last_batch_at, last_window_end) VALUES ('om', 'mqtt', 4242, now() - interval '1 hour', "
                     "now() - interval '5 seconds', now() - interval '20 seconds', now() - interval '7 minutes') "
                     "RETURNING 1")
    health = assets.stream_health(WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema))
    assert health["source"] == "mqtt" and 5 <= health["heartbeat_age_s"] < 60 and 420 <= health["lag_s"] < 480
    alive = observe()
    assert alive.success
    metadata = alive.asset_materializations_for_node("om_inverters_stream")[0].metadata
    assert metadata["pid"].value == 4242 and metadata["source"].value == "mqtt"
    (evaluation,) = alive.get_asset_check_evaluations()
    assert evaluation.passed
    query(warehouse, "UPDATE om_stream_status SET heartbeat_at = now() - interval '5 minutes', "
                     "last_batch_at = now() - interval '15 minutes' RETURNING 1")
    stalled = observe()
    assert not stalled.success
