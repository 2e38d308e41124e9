"""Dagster: the tariffs assets scrape a (local, recorded) CKAN portal, land, normalize
through Pipes, and the error-rate check passes or fails with its reasons."""

import json
import shutil

import dagster as dg
import pytest

from ysh.definitions import defs
from ysh.resources import SettingsResource, WarehouseResource
from ysh.tariffs import assets
from ysh.tariffs.ckan import ANEEL_RESOURCES

from ..conftest import REPO, query
from .test_ckan import SAMPLE_FILES, FakeCkan, recorded

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def portal():
    fake = FakeCkan({rid: (fields, records) for rid, fields, records in map(recorded, SAMPLE_FILES)})
    yield fake
    fake.stop()


@pytest.fixture()
def tariffs_env(warehouse_env, tmp_path, monkeypatch):
    monkeypatch.setenv("YSH_TARIFFS_LANDING_DIR", str(tmp_path / "landing"))
    return warehouse_env


def materialize(warehouse, selection=None):
    return dg.materialize(
        [*assets.defs.assets, *assets.defs.asset_checks], selection=selection,
        resources={"warehouse": WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema), "settings": SettingsResource(),
                   "pipes_subprocess_client": dg.PipesSubprocessClient()},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_definitions_have_lineage_schedule_and_slo():
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    key = dg.AssetKey
    assert graph.get(key("tarifas_raw")).parent_keys == {key("tarifas_aneel_scrape")}
    assert graph.get(key("tarifas_normalized")).parent_keys == {key("tarifas_raw")}
    assert graph.get(key("tarifas_efetivas_mensais")).parent_keys == {key("tarifas_normalized"),
                                                                      key("tarifas_bandeiras")}
    schedule = repo.get_schedule_def("tariffs_weekdays_0600")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * 1-5", "America/Sao_Paulo")
    policy = graph.get(key("tarifas_normalized")).freshness_policy
    assert (policy.deadline_cron, policy.timezone) == ("0 8 * * 1-5", "America/Sao_Paulo")


def test_scrape_land_normalize_from_the_recorded_portal(portal, tariffs_env, monkeypatch):
    monkeypatch.setenv("YSH_ANEEL_CKAN_URL", portal.url)
    monkeypatch.setenv("YSH_ANEEL_RESOURCES", json.dumps({
        "tarifas-homologadas-distribuidoras-energia-eletrica.csv": ANEEL_RESOURCES["tariffs"],
        "componentes-tarifarias-2026.csv": ANEEL_RESOURCES["fio_b"],
        "bandeira-tarifaria-acionamento.csv": ANEEL_RESOURCES["flags"]}))
    result = materialize(tariffs_env)
    assert result.success
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(meta) == {"tarifas_aneel_scrape", "tarifas_raw", "tarifas_normalized", "tarifas_bandeiras",
                         "tarifas_efetivas_mensais"}
    recorded_rows = sum(len(recorded(d)[2]) for d in SAMPLE_FILES)
    assert meta["tarifas_aneel_scrape"]["rows"].value == recorded_rows
    assert meta["tarifas_raw"]["rows"].value == query(tariffs_env, "SELECT count(*) FROM tarifas_raw")[0][0]
    assert meta["tarifas_normalized"]["utilities"].value == 1  # the recording holds CEMIG-D only
    assert meta["tarifas_bandeiras"]["months"].value == 136
    assert meta["tarifas_efetivas_mensais"]["rows"].value == query(
        tariffs_env, "SELECT count(*) FROM tarifas_efetivas_mensais")[0][0] > 0
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["tarifas_normalized_error_rate"].passed  # 2 planted bad rows of about 250: under 1 %

    # a second run changes nothing in tarifas_raw
    again = materialize(tariffs_env)
    raw = {e.asset_key.to_user_string(): e.materialization.metadata
           for e in again.get_asset_materialization_events()}["tarifas_raw"]
    assert (raw["inserted"].value, raw["updated"].value, raw["deleted"].value) == (0, 0, 0)


def test_error_rate_check_fails_with_reasons_and_removed_files_leave(tariffs_env, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(REPO / "data" / "sample" / "tariffs", landing)
    selection = dg.AssetSelection.assets("tarifas_raw", "tarifas_normalized", "tarifas_bandeiras",
                                         "tarifas_efetivas_mensais")
    result = materialize(tariffs_env, selection)
    assert result.success
    check = {c.check_name: c for c in result.get_asset_check_evaluations()}["tarifas_normalized_error_rate"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["error_rate"].value == round(15 / 712, 4)
    assert "overlapping_validity" in check.metadata["by_reason"].value

    (landing / "bandeira-tarifaria-acionamento.csv").unlink()
    assert materialize(tariffs_env, selection).success
    assert query(tariffs_env, "SELECT count(*) FROM tarifas_bandeiras") == [(0,)]
    assert query(tariffs_env, "SELECT count(*) FROM tarifas_raw WHERE dataset = 'flags'") == [(0,)]


def test_an_empty_landing_folder_fails_tarifas_raw(tariffs_env):
    result = materialize(tariffs_env, dg.AssetSelection.assets("tarifas_raw"))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no files in the tariffs landing folder" in str(failure.step_failure_data.error.message)
