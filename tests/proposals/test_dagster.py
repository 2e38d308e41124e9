"""Dagster: the proposals assets evaluate the quotes through Pipes; lineage, schedule, checks."""

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
    schedule = repo.get_schedule_def("proposals_0800_1400_2000")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 8,14,20 * * *", "America/Sao_Paulo")


def test_materializing_the_proposals_assets(platform, monkeypatch):
    warehouse, settings = platform
    seed(warehouse)
    monkeypatch.setenv("YSH_IRRADIANCE_OFFLINE", "true")
    monkeypatch.setenv("YSH_IRRADIANCE_CACHE_DIR", str(settings.irradiance_cache))
    result = dg.materialize(
        [*assets.ASSETS, *assets.CHECKS],
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
