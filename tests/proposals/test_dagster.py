"""Dagster: the proposals assets evaluate the quotes through Pipes; lineage, automation, checks."""

import dagster as dg
import pytest

from ysh.definitions import defs
from ysh.proposals import assets
from ysh.resources import WarehouseResource

from ..conftest import query
from .conftest import seed

pytestmark = pytest.mark.integration


def test_lineage_and_schedule():
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("propostas_enriched")).parent_keys}
    assert parents == {"propostas_raw", "catalog_normalized", "tarifas_normalized"}
    assert graph.get(dg.AssetKey("kpis_b1_b3")).parent_keys == {dg.AssetKey("propostas_analytics")}
    sensor = repo.get_sensor_def("proposals_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    for key in ("propostas_enriched", "propostas_analytics", "kpis_b1_b3"):
        assert graph.get(dg.AssetKey(key)).automation_condition == assets.REFRESH


def _at(day: int, hour: int, minute: int = 0):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo("America/Sao_Paulo"))


def _materialized(instance, *keys):
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(key))


def test_the_refresh_runs_on_its_cron_only_when_an_upstream_changed():
    instance = dg.DagsterInstance.ephemeral()
    evaluated = {"propostas_enriched", "propostas_analytics", "kpis_b1_b3"}

    def tick(when, cursor):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=when, cursor=cursor)
        requested = {k for k in evaluated if result.get_num_requested(dg.AssetKey(k))}
        return requested, result.cursor

    requested, cursor = tick(_at(2, 7, 50), None)
    assert requested == set()  # never evaluated, but no cron tick yet
    requested, cursor = tick(_at(2, 8, 1), cursor)
    assert requested == evaluated  # missing: the first tick evaluates them
    _materialized(instance, *evaluated)
    requested, cursor = tick(_at(2, 8, 5), cursor)
    assert requested == set()  # same tick, handled
    requested, cursor = tick(_at(2, 14, 1), cursor)
    assert requested == set()  # a tick, but nothing upstream changed
    _materialized(instance, "tarifas_normalized")  # a new tariff lands
    requested, cursor = tick(_at(2, 15, 0), cursor)
    assert requested == set()  # changed, but between ticks: wait for 20:00
    requested, cursor = tick(_at(2, 20, 1), cursor)
    assert requested == evaluated


def test_materializing_the_proposals_assets(platform, monkeypatch):
    warehouse, settings = platform
    seed(warehouse)
    monkeypatch.setenv("YSH_IRRADIANCE_OFFLINE", "true")
    monkeypatch.setenv("YSH_IRRADIANCE_CACHE_DIR", str(settings.proposals.irradiance.cache_dir))
    result = dg.materialize(
        [*assets.defs.assets, *assets.defs.asset_checks],
        resources={"warehouse": WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema),
                   "pipes_subprocess_client": dg.PipesSubprocessClient()},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(meta) == {"propostas_raw", "propostas_enriched", "propostas_analytics", "kpis_b1_b3"}
    assert meta["propostas_raw"]["quote"].value == 4
    assert (meta["propostas_enriched"]["quotes"].value, meta["propostas_enriched"]["without_tariff"].value) == (4, 1)
    assert (meta["propostas_analytics"]["evaluated"].value, meta["propostas_analytics"]["errors"].value) == (2, 2)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    # q3's utility has no tariffs: the check says so; the KPIs of the evaluated ones are consistent
    assert checks == {"propostas_enriched_have_tariffs": False, "propostas_analytics_kpis_present": True}
    assert query(warehouse, "SELECT count(*) FROM kpis_b1_b3") == [(3,)]
