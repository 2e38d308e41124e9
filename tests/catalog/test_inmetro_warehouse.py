"""The Inmetro registry in the catalog graph, on real shapes: the real distributor exports
(data/distributors/) normalized into a test warehouse, matched against the sample registry
(data/sample/inmetro/: some of their real models, one with another power, expired rows);
the Dagster asset and check; Hélio's product records and answers."""

import shutil
from datetime import date

import dagster as dg
import pytest

from ysh.catalog import assets, inmetro, job
from ysh.catalog.normalize import normalize_feed
from ysh.rag import records
from ysh.rag.answer import extractive_answer
from ysh.rag.evaluation import answer_contains_all, load_questions
from ysh.rag.passages import Passage
from ysh.resources import SettingsResource, WarehouseResource

from ..conftest import REPO, query, real_exports

pytestmark = pytest.mark.integration

EXPORTS = REPO / "data" / "distributors" / "exports"
SAMPLE = REPO / "data" / "sample" / "inmetro"
DEV_QUESTIONS = REPO / "data" / "sample" / "rag_eval_inmetro_dev.jsonl"


def registry_folder(tmp_path, *names):
    folder = tmp_path / "inmetro"
    folder.mkdir(exist_ok=True)
    for name in names or [p.name for p in SAMPLE.iterdir() if p.suffix in (".csv", ".xlsx", ".pdf")]:
        shutil.copy(SAMPLE / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def landed(tmp_path_factory, pg_server):
    """The real exports and the sample registry, normalized once into a warehouse."""
    from ysh import db

    tmp = tmp_path_factory.mktemp("inmetro")
    warehouse = db.Warehouse(pg_server.dsn(), "t_inmetro_real")
    db.migrate(warehouse.dsn, warehouse.schema)
    report = job.run_static([real_exports(tmp)], warehouse=warehouse, reconcile_after=True,
                            registry=job.RegistrySource(path=registry_folder(tmp)))
    yield warehouse, report
    with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
        conn.execute("DROP SCHEMA t_inmetro_real CASCADE")


def status_of(warehouse, sku):
    return query(warehouse, "SELECT inmetro_status, registration, match_rule FROM items_inmetro "
                            "WHERE distributor = 'solfacil' AND sku = %s", (sku,))[0]


def test_every_item_gets_a_status_and_the_registry_all_its_rows(landed):
    warehouse, report = landed
    assert query(warehouse, "SELECT count(*) FROM items_inmetro") == query(
        warehouse, "SELECT count(*) FROM items_normalized")
    assert report.registry_rows == 17 == query(warehouse, "SELECT count(*) FROM inmetro_registry")[0][0]
    assert report.inmetro_by_status == {"unknown": 551, "not_registered": 69, "registered": 14, "expired": 3,
                                        "power_mismatch": 2}


def test_real_models_meet_their_rows_through_the_documented_rules(landed):
    warehouse, _ = landed
    # "GW 5000-DNS-30 (16A) - AFCI" (solfacil-raw-1.csv) is the registry's GW5000-DNS-30
    assert status_of(warehouse, "600246") == ("registered", "008120/2023", "annotation")
    # "HJT HN21H-66HT" (solfacil-raw-0.csv) is HN21H-66HT
    assert status_of(warehouse, "573429") == ("registered", "007731/2024", "prefix")
    assert status_of(warehouse, "MID25KTL3-X") == ("registered", "009102/2024", "exact")  # from the PDF


def test_another_power_and_expired_rows_are_told_apart(landed):
    warehouse, _ = landed
    # OSDA 33V-MHDRZ listed at 610 W, registered at 600 W; Sofar 5KTLM-G3 5 kW vs 6 kW
    assert status_of(warehouse, "559381")[0] == "power_mismatch"
    assert status_of(warehouse, "600369")[0] == "power_mismatch"
    # Minasol MS-545: situation C; Deye SUN-5K-G: validity ended in 2019; SUN-8K-G: C (PDF)
    assert [status_of(warehouse, sku)[0] for sku in ("550010", "600076", "600079")] == ["expired"] * 3


def test_only_modules_and_inverters_are_judged(landed):
    warehouse, _ = landed
    rows = query(warehouse, "SELECT DISTINCT n.category FROM items_inmetro i JOIN items_normalized n "
                            "USING (distributor, sku) WHERE i.inmetro_status = 'unknown' ORDER BY 1")
    assert not {c for (c,) in rows} & set(inmetro.COVERED_CATEGORIES)
    assert ("cable",) in rows


def test_the_graph_agrees_with_the_pure_rule(landed):
    warehouse, _ = landed
    found = dict(((d, s), st) for d, s, st in query(
        warehouse, "SELECT distributor, sku, inmetro_status FROM items_inmetro"))
    rows = []
    for path in SAMPLE.glob("pbe-*"):
        rows += inmetro.read_registry(path.read_bytes(), str(path)).rows
    index = inmetro.RegistryIndex(rows)
    items = {(d, s): (c, b, m, p) for d, s, c, b, m, p in query(
        warehouse, "SELECT distributor, sku, category, brand, model, power_w FROM items_normalized")}
    for key, (category, brand, model, power_w) in items.items():
        assert found[key] == inmetro.match_item(index, category, brand, model, power_w, date.today()).status, key


def test_helio_records_and_answers_carry_the_status(landed):
    warehouse, _ = landed
    found = {r.path: r for r in records.records_from_warehouse(warehouse, date.today())}
    questions = load_questions(DEV_QUESTIONS)
    assert len(questions) == 3
    for question in questions:
        record = found[question.expected[0]]
        assert "Registro no INMETRO" in record.text
        answer = extractive_answer(question.question, [Passage(record.text, record.path, 1.0, title=record.title)])
        assert answer_contains_all(answer["answer"], question.answer_contains), (question.id, answer["answer"])


def test_a_new_registry_file_changes_the_status_and_a_removed_one_is_pruned(warehouse, tmp_path):
    feeds = tmp_path / "landing" / "solfacil"
    feeds.mkdir(parents=True)
    shutil.copy(EXPORTS / "solfacil" / "solfacil-panels.json", feeds)
    folder = registry_folder(tmp_path, "pbe-fotovoltaico-inversores.xlsx")
    run = dict(warehouse=warehouse, reconcile_after=True, registry=job.RegistrySource(path=folder))
    job.run_static([tmp_path / "landing"], **run)
    assert status_of(warehouse, "559376")[0] == "not_registered"  # DAH Solar, no module table yet
    shutil.copy(SAMPLE / "pbe-fotovoltaico-modulos.csv", folder)
    job.run_static([tmp_path / "landing"], **run)
    assert status_of(warehouse, "559376")[:2] == ("registered", "004512/2023")
    (folder / "pbe-fotovoltaico-inversores.xlsx").unlink()
    job.run_static([tmp_path / "landing"], **run)
    assert query(warehouse, "SELECT DISTINCT source_file FROM inmetro_registry") == [
        (str(folder / "pbe-fotovoltaico-modulos.csv"),)]


def test_without_a_landed_registry_no_status_is_written(warehouse, tmp_path):
    feeds = tmp_path / "landing" / "solfacil"
    feeds.mkdir(parents=True)
    shutil.copy(EXPORTS / "solfacil" / "solfacil-panels.json", feeds)
    (tmp_path / "inmetro").mkdir()
    report = job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True,
                            registry=job.RegistrySource(path=tmp_path / "inmetro"))
    assert report.items == 6 and report.inmetro_by_status == {}
    assert query(warehouse, "SELECT count(*) FROM items_inmetro") == [(0,)]


# --- Dagster ---------------------------------------------------------------------------


def test_dagster_lands_the_registry_upstream_of_the_catalog_and_checks_the_unmatched_share(
        tmp_path, monkeypatch, warehouse_env):
    landing = tmp_path / "landing" / "solfacil"
    landing.mkdir(parents=True)
    for name in ("solfacil-panels.json", "solfacil-inverters.json"):
        shutil.copy(EXPORTS / "solfacil" / name, landing)
    monkeypatch.setenv("YSH_CATALOG_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("YSH_CATALOG_INMETRO_DIR", str(registry_folder(tmp_path)))
    resources = {"warehouse": WarehouseResource(dsn=warehouse_env.dsn, schema_name=warehouse_env.schema),
                 "settings": SettingsResource(), "pipes_subprocess_client": dg.PipesSubprocessClient()}
    selection = dg.AssetSelection.assets("catalog_raw", "catalog_inmetro_raw", "catalog_normalized")
    result = dg.materialize([*assets.defs.assets, *assets.defs.asset_checks], resources=resources,
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, selection=selection)
    assert result.success
    materialized = {e.asset_key.to_user_string(): e.materialization.metadata
                    for e in result.get_asset_materialization_events()}
    raw = materialized["catalog_inmetro_raw"]
    assert (raw["files"].value, raw["rows"].value, raw["modules"].value, raw["inverters"].value) == (3, 17, 6, 11)
    assert materialized["catalog_normalized"]["inmetro_registry_rows"].value == 17
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    unmatched = checks["catalog_normalized_inmetro_unmatched"]
    share = unmatched.metadata["unmatched_share"].value
    # most of Solfácil's inverters are in no row of the small sample: above the 50 % warning
    assert share > 0.5 and not unmatched.passed and unmatched.severity == dg.AssetCheckSeverity.WARN
    monkeypatch.setenv("YSH_CATALOG_INMETRO_UNMATCHED_WARN", "0.95")
    from ysh.settings import get_settings

    get_settings.cache_clear()
    again = assets.catalog_normalized_inmetro_unmatched(
        warehouse=WarehouseResource(dsn=warehouse_env.dsn, schema_name=warehouse_env.schema))
    assert again.passed and again.metadata["unmatched_share"].value == share
