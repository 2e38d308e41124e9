"""Dagster: the catalog assets materialize through Pipes, checks run and can fail."""

import dagster as dg
import pytest

from ysh.catalog import assets
from ysh.definitions import defs
from ysh.resources import SettingsResource, WarehouseResource

from ..conftest import query
from .feeds_fixture import write_feeds

pytestmark = pytest.mark.integration


@pytest.fixture()
def landing(tmp_path, monkeypatch, warehouse_env):
    folder = tmp_path / "landing"
    write_feeds(folder)
    monkeypatch.setenv("YSH_CATALOG_LANDING_DIR", str(folder))
    return folder


def resources(warehouse):
    return {"warehouse": WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema), "settings": SettingsResource(),
            "pipes_subprocess_client": dg.PipesSubprocessClient()}


def materialize_all(warehouse):
    return dg.materialize([*assets.defs.assets, *assets.defs.asset_checks], resources=resources(warehouse),
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_definitions_load_with_lineage_schedule_and_sensor():
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    normalized = dg.AssetKey("catalog_normalized")
    assert graph.get(normalized).parent_keys == {dg.AssetKey("catalog_raw"), dg.AssetKey("catalog_inmetro_raw")}
    assert graph.get(dg.AssetKey("catalog_products")).parent_keys == {normalized}
    schedule = repo.get_schedule_def("catalog_daily")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "America/Sao_Paulo")
    assert repo.get_sensor_def("catalog_landing_sensor").job_name == "catalog_job"


def test_materializing_all_catalog_assets_runs_checks(landing, warehouse_env):
    result = materialize_all(warehouse_env)
    assert result.success
    materialized = {e.asset_key.to_user_string(): e.materialization.metadata
                    for e in result.get_asset_materialization_events()}
    assert set(materialized) == {"catalog_raw", "catalog_inmetro_raw", "catalog_normalized", "catalog_products",
                                 "catalog_embeddings"}
    assert materialized["catalog_raw"]["files"].value == 3
    assert materialized["catalog_normalized"]["items"].value == 5
    assert materialized["catalog_normalized"]["quarantined"].value == 4
    assert "negative_price" in materialized["catalog_normalized"]["quarantine_by_reason"].value
    assert materialized["catalog_products"]["products"].value == 3
    checks = {c.check_name: (c.passed, c.severity) for c in result.get_asset_check_evaluations()}
    assert checks == {
        "catalog_normalized_unique_keys": (True, dg.AssetCheckSeverity.ERROR),
        "catalog_normalized_power_in_range": (True, dg.AssetCheckSeverity.ERROR),
        # 4 of 9 sample rows are bad on purpose: far above the 5% warning threshold
        "catalog_normalized_quarantine_rate": (False, dg.AssetCheckSeverity.WARN),
        # no Inmetro registry landed here: no item has a status (tests/catalog/test_inmetro_dagster.py)
        "catalog_normalized_inmetro_unmatched": (False, dg.AssetCheckSeverity.WARN),
        "catalog_products_offers_match_items": (True, dg.AssetCheckSeverity.ERROR),
    }
    assert query(warehouse_env, "SELECT count(*) FROM items_normalized") == [(5,)]


def test_power_check_fails_on_an_implausible_module(landing, warehouse_env):
    assert materialize_all(warehouse_env).success
    query_sql = "UPDATE items_normalized SET power_w = 5000 WHERE sku = 'SN001' RETURNING sku"
    assert query(warehouse_env, query_sql) == [("SN001",)]
    result = assets.catalog_normalized_power_in_range(warehouse=resources(warehouse_env)["warehouse"])
    assert not result.passed
    assert result.metadata["out_of_range"].value == 1


def test_a_failing_blocking_check_stops_products(landing, warehouse_env, monkeypatch):
    # make the uniqueness check see a duplicate: two spellings of one SKU
    assert materialize_all(warehouse_env).success
    query(warehouse_env, "INSERT INTO items_normalized SELECT distributor, 'SN 001', category, brand, model,"
                         " description, power_w, price_brl, stock_units, inmetro_registration, inmetro_status,"
                         " efficiency_pct, technology, voc_v, isc_a, vmp_v, imp_a, mppt_count, phases,"
                         " max_dc_voltage_v, product_key, source_file, source_line, now() FROM items_normalized"
                         " WHERE sku = 'SN001' RETURNING sku")
    check = assets.catalog_normalized_unique_keys(warehouse=resources(warehouse_env)["warehouse"])
    assert not check.passed
    # run the check and products only: the blocking check must keep products from running
    result = dg.materialize(
        [*assets.defs.assets, *assets.defs.asset_checks], resources=resources(warehouse_env),
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        selection=dg.AssetSelection.assets("catalog_products")
        | dg.AssetSelection.checks(assets.catalog_normalized_unique_keys),
    )
    assert not result.success
    assert [e.asset_key for e in result.get_asset_materialization_events()] == []
    evaluations = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in evaluations] == [("catalog_normalized_unique_keys", False)]
    steps = [(e.event_type_value, e.step_key) for e in result.all_events if e.step_key]
    # the check failed as a blocking step, and catalog_products never started
    assert ("STEP_FAILURE", "catalog_normalized_catalog_normalized_unique_keys") in steps
    assert not [step for step in steps if step[1] == "catalog_products"]


def test_sensor_requests_a_run_only_when_the_landing_area_changes(landing, warehouse_env):
    with dg.build_sensor_context(cursor=None, resources={"settings": SettingsResource()}) as context:
        first = assets.catalog_landing_sensor(context)
        assert isinstance(first, dg.RunRequest)
        again = assets.catalog_landing_sensor(context)
        assert isinstance(again, dg.SkipReason)
        (landing / "nova.csv").write_text("sku;categoria;potencia;preco\nN1;Módulo;550;500\n")
        third = assets.catalog_landing_sensor(context)
        assert isinstance(third, dg.RunRequest) and third.run_key != first.run_key
        # removing it again returns to the first state: that must still trigger a run
        (landing / "nova.csv").unlink()
        fourth = assets.catalog_landing_sensor(context)
        assert isinstance(fourth, dg.RunRequest)
        assert len({first.run_key, third.run_key, fourth.run_key}) == 3
        # hidden and lock files are not feeds: no run
        (landing / ".~lock.sol_nascente.csv#").write_text("x")
        assert isinstance(assets.catalog_landing_sensor(context), dg.SkipReason)
