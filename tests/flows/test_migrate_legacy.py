"""The ``migrate_legacy`` Prefect flow: pure mapping units, and end-to-end runs against the
real PostgreSQL of the test session inside one Prefect test harness (temporary server)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from ysh.catalog import legacy
from ysh.flows import migrate_legacy as m
from ysh.samples import legacy as sample

from ..conftest import REPO, query

LEGACY = REPO / "data" / "sample" / "legacy"
WORKBOOK = LEGACY / sample.WORKBOOK
PRICE_LIST = LEGACY / sample.PRICE_LIST
EXPECTED_REASONS = dict(Counter(reason for _, _, reason in sample.EXPECTED_QUARANTINE))


# --------------------------------------------------------------------------------------
# pure mapping
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "category"), [
    ("MF", "module"), ("mb", "module"), (" IN ", "inverter"), ("IH", "inverter"),
    ("MI", "microinverter"), ("BT", "battery"), ("OU", "other"), ("SB", "other"), ("CB", "other"),
])
def test_type_codes(code, category):
    assert legacy.legacy_category(code) == (category, None)


def test_unknown_and_empty_type_codes():
    category, detail = legacy.legacy_category("SV")
    assert category is None and "'SV'" in detail and "MF" in detail
    assert legacy.legacy_category(None) == (None, None)
    assert legacy.legacy_category("  ") == (None, None)


@pytest.mark.parametrize(("text", "number"), [
    ("1.234,56", 1234.56), ("338,68", 338.68), ("-351,48", -351.48), ("0,36", 0.36),
    ("1,234", 1.234),  # decimal comma: never a thousands separator in the legacy ERP
    ("R$ 25.146,21", 25146.21), ("5.000", 5000), ("72", 72), (299.02, 299.02), (1240.0, 1240),
])
def test_legacy_numbers_use_the_decimal_comma(text, number):
    assert legacy.legacy_number(text) == pytest.approx(number)


def test_legacy_number_hands_other_text_to_the_normalizer():
    assert legacy.legacy_number("sob consulta") == "sob consulta"
    assert legacy.legacy_number("550.5") == "550.5"
    assert legacy.legacy_number("") is None and legacy.legacy_number(None) is None
    assert isinstance(legacy.legacy_number("1.240"), int)


def test_power_units():
    assert legacy.legacy_power_w(None, "5,5") == pytest.approx(5500.0)
    assert legacy.legacy_power_w(None, 4.6) == pytest.approx(4600.0)
    assert legacy.legacy_power_w(None, 0.315) == pytest.approx(315.0)
    assert legacy.legacy_power_w("550", None) == 550
    assert legacy.legacy_power_w(545, 0.55) == 545  # POT_W wins when both are filled
    assert legacy.legacy_power_w(None, "abc") == "abc kW"
    assert legacy.legacy_power_w(None, None) is None


def test_headers_and_distributors():
    columns = legacy.map_legacy_headers(["FILIAL", "Cod Prod", "DESCRIÇÃO", "PR_VENDA", "POT_KW", "X"])
    assert columns == {"branch": "FILIAL", "sku": "Cod Prod", "description": "DESCRIÇÃO",
                       "price": "PR_VENDA", "power_kw": "POT_KW"}
    assert legacy.legacy_distributor(" fil02 ") == "casa_do_integrador"
    assert legacy.legacy_distributor("FIL09") is None


def _map(row: dict, **kwargs) -> legacy.MappedRecord:
    return legacy.map_legacy_row(row, legacy.map_legacy_headers(list(row)), default_distributor="erp", **kwargs)


def test_map_legacy_row_to_the_normalizer_record():
    mapped = _map({"COD_FILIAL": "FIL03", "COD_PROD": " in-000405 ", "DESCR": "INVERSOR SOLAREDGE SE5000H-US",
                   "FABRIC": "SOLAREDGE", "TIPO": "in", "POT_KW": "5,0", "PRECO_VENDA": "6.027,04",
                   "ESTOQUE": "4", "COD_INMETRO": "340719/2020", "UNID": "PC"})
    assert mapped.distributor == "lumen_solar_atacado" and mapped.rejection is None
    assert mapped.fields == {"sku": "in-000405", "description": "INVERSOR SOLAREDGE SE5000H-US",
                             "brand": "SOLAREDGE", "model": None, "category": "inverter", "power_w": 5000,
                             "price": 6027.04, "stock": 4, "inmetro": "340719/2020"}


def test_map_legacy_row_rejections():
    assert _map({"COD_FILIAL": "FIL09", "COD_PROD": "A1", "TIPO": "MF"}).rejection[0] == "unknown_distributor"
    assert _map({"COD_FILIAL": "", "COD_PROD": "A1", "TIPO": "MF"}).rejection[0] == "unknown_distributor"
    assert _map({"COD_FILIAL": "FIL01", "COD_PROD": "A1", "TIPO": "ZZ"}).rejection[0] == "unknown_category"
    # no SKU: left to the normalizer, which reports missing_sku first
    assert _map({"COD_FILIAL": "FIL01", "COD_PROD": None, "TIPO": "ZZ"}).rejection is None
    forced = _map({"COD_FILIAL": "FIL09", "COD_PROD": "A1", "TIPO": "MF"}, distributor="acme")
    assert forced.distributor == "acme" and forced.rejection is None
    assert _map({"COD_PROD": "A1", "TIPO": "MF"}).distributor == "erp"  # no branch column: file stem


def test_sample_export_normalizes_as_documented():
    sources = legacy.read_legacy_file(WORKBOOK) + legacy.read_legacy_file(PRICE_LIST)
    assert [s.source_file.removeprefix(legacy.LEGACY_SOURCE_PREFIX) for s in sources] == list(sample.EXPECTED_ROWS)  # LEIAME skipped
    assert {s.source_file.removeprefix(legacy.LEGACY_SOURCE_PREFIX): len(s.records) for s in sources} == sample.EXPECTED_ROWS
    produtos = sources[0]
    assert produtos.records[0].line == 4  # title row + blank row + header row
    batch = legacy.normalize_sources(sources)
    assert len(batch.items) == sample.EXPECTED_ITEMS
    assert sorted((q.source_file, q.line, q.reason) for q in batch.quarantine.values()) \
        == sorted(sample.EXPECTED_QUARANTINE)
    items = {sku: item for (_, sku), item in batch.items.items()}
    assert items["MF-000112"].distributor == "sol_nascente_distribuidora"  # " mf-000112 ", code "mf"
    assert items["MF-000111"].price_brl == 352.10  # text cell with a decimal comma
    assert items["IN-000201"].power_w == 4600.0 and items["IN-000201"].brand == "Growatt"
    assert items["IH-000207"].technology == "hybrid"
    assert items["MF-000411"].stock_units is None  # "sob consulta"
    assert items["MF-000105"].inmetro_status == "missing"
    unknown_branch = batch.quarantine[(f"legacy:{sample.WORKBOOK}#DIVERSOS", 8)]
    assert unknown_branch.distributor == "FIL09"
    assert json.loads(unknown_branch.raw)["COD_FILIAL"] == "FIL09"  # raw = the legacy row


def test_sample_generator_is_deterministic(tmp_path):
    sample.write_sample(tmp_path)
    for name in (sample.WORKBOOK, sample.PRICE_LIST):
        assert (tmp_path / name).read_bytes() == (LEGACY / name).read_bytes(), name
        assert (LEGACY / name).stat().st_size < 100_000


@pytest.mark.parametrize(("name", "content", "match"), [
    ("produtos.json", b'[{"COD_PROD": "A"}]', "not a CSV or XLSX"),
    ("antigo.xls", b"\xd0\xcf\x11\xe0", r"\.xls is not supported"),
    ("quebrado.xlsx", b"not a zip", "not an XLSX workbook"),
    ("binario.csv", b"PK\x03\x04\x00\x00", "cannot read as CSV"),
    ("vazio.csv", b"", "cannot read as CSV"),
    ("sem_preco.csv", "COD_FILIAL;COD_PROD;DESCRIÇÃO;QTD\nFIL01;A1;X;1\n".encode("latin-1"),
     r"missing required columns: price \(PRECO_VENDA/.*columns found: COD_FILIAL, COD_PROD, DESCRIÇÃO, QTD"),
])
def test_unreadable_files(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(m.LegacyFileError, match=match):
        legacy.read_legacy_file(path)


def test_sheet_without_required_columns_lists_what_it_found(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "PRODUTOS"
    wb.active.append(["COD_PROD", "DESCR", "VALOR"])
    wb.active.append(["A1", "Modulo", 10])
    wb.save(tmp_path / "x.xlsx")
    with pytest.raises(m.LegacyFileError, match=r"x\.xlsx sheet 'PRODUTOS': missing required columns: "
                                                r"price .*columns found: COD_PROD, DESCR, VALOR"):
        legacy.read_legacy_file(tmp_path / "x.xlsx")
    wb.active.delete_rows(1, 2)
    wb.active.append(["RELATORIO"])
    wb.save(tmp_path / "x.xlsx")
    with pytest.raises(m.LegacyFileError, match="no header row naming a product code column .*RELATORIO"):
        legacy.read_legacy_file(tmp_path / "x.xlsx")


def test_warehouse_tasks_retry_only_on_connection_errors():
    import psycopg
    from prefect.states import Failed

    assert m.diff_task.retries == m.upsert_task.retries == 2
    assert m.upsert_task.timeout_seconds and m.read_export_task.retries == 0
    retry = m.upsert_task.retry_condition_fn
    assert retry(None, None, Failed(data=psycopg.OperationalError("connection refused")))
    assert not retry(None, None, Failed(data=psycopg.errors.CheckViolation("price_brl")))
    assert not retry(None, None, Failed(data=ValueError("bad")))


# --------------------------------------------------------------------------------------
# end to end: Prefect (test harness) + PostgreSQL
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def _run(paths, **kwargs):
    """Run the flow; returns (report, flow_run_id)."""
    state = m.migrate_legacy(paths, return_state=True, **kwargs)
    return state.result(), state.state_details.flow_run_id


def _artifact_markdown(flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[m.ARTIFACT_KEY]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert len(artifacts) == 1
    assert artifacts[0].type == "markdown"
    return artifacts[0].data


def _items(warehouse) -> dict:
    return {(d, s): (price, ingested) for d, s, price, ingested in query(
        warehouse, "SELECT distributor, sku, price_brl, ingested_at FROM items_normalized")}


def _quarantine(warehouse) -> list[tuple]:
    return sorted(query(warehouse, "SELECT source_file, line, reason FROM items_quarantine"))


def test_migration_is_idempotent_and_reported(prefect_harness, warehouse_env):
    warehouse = warehouse_env
    report, run_id = _run([WORKBOOK, PRICE_LIST])
    assert not report.dry_run
    assert report.rows_in == sum(sample.EXPECTED_ROWS.values()) == 42
    assert report.inserted == report.items == sample.EXPECTED_ITEMS == 34
    assert (report.updated, report.unchanged) == (0, 0)
    assert report.quarantined_by_reason == EXPECTED_REASONS
    assert report.quarantine_written == 8
    assert {s.source: (s.rows, s.inserted, s.quarantined) for s in report.sources} == {
        f"legacy:{sample.WORKBOOK}#PRODUTOS": (12, 10, 2), f"legacy:{sample.WORKBOOK}#INVERSORES": (12, 10, 2),
        f"legacy:{sample.WORKBOOK}#DIVERSOS": (7, 5, 2), f"legacy:{sample.PRICE_LIST}": (11, 9, 2)}

    items = _items(warehouse)
    assert len(items) == 34
    assert items[("lumen_solar_atacado", "MF-000111")][0] == 352.10
    assert _quarantine(warehouse) == sorted(sample.EXPECTED_QUARANTINE)
    (raw,) = query(warehouse, "SELECT raw FROM items_quarantine WHERE source_file = %s AND line = 9",
                   (f"legacy:{sample.PRICE_LIST}",))[0]
    assert raw["PRECO_VENDA"] == "-351,48" and raw["COD_PROD"] == "MF-000408"
    (row,) = query(warehouse, "SELECT category, power_w, source_file, source_line, product_key "
                              "FROM items_normalized WHERE sku = 'IN-000201'")
    assert row == ("inverter", 4600.0, f"legacy:{sample.WORKBOOK}#INVERSORES", 2, "Growatt|5000MTLUS")

    markdown = _artifact_markdown(run_id)
    assert "| rows in | items | inserted | updated | upserted | unchanged | quarantined |" in markdown
    assert "| 42 | 34 | 34 | 0 | 34 | 0 | 8 | 0 |" in markdown
    assert "| power_out_of_range | 2 |" in markdown and "| unknown_distributor | 1 |" in markdown
    assert f"| legacy:{sample.WORKBOOK}#PRODUTOS | 12 | 10 | 10 | 0 | 0 | 2 |" in markdown
    assert "dry run" not in markdown

    again, run_id = _run([WORKBOOK, PRICE_LIST])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 34)
    assert (again.quarantine_written, again.quarantine_cleared, again.changed) == (0, 0, 0)
    assert again.quarantined_by_reason == EXPECTED_REASONS
    assert _items(warehouse) == items  # ingested_at untouched: nothing was rewritten
    assert "| 42 | 34 | 0 | 0 | 0 | 34 | 8 | 0 |" in _artifact_markdown(run_id)


def test_dry_run_reports_the_change_and_writes_nothing(prefect_harness, warehouse_env, tmp_path):
    warehouse = warehouse_env
    _run([WORKBOOK, PRICE_LIST])
    before_items, before_quarantine = _items(warehouse), _quarantine(warehouse)

    copy = tmp_path / sample.PRICE_LIST  # same file name: same source rows
    text = PRICE_LIST.read_bytes().decode("latin-1")
    assert text.count(";338,68;") == 1
    copy.write_bytes(text.replace(";338,68;", ";349,90;").encode("latin-1"))
    report, run_id = _run([WORKBOOK, copy], dry_run=True)
    assert report.dry_run
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 33)
    (change,) = report.changes
    assert (change.action, change.distributor, change.sku) == ("update", "sol_nascente_distribuidora", "MF-000401")
    assert change.fields == {"price_brl": (338.68, 349.9)}
    assert report.quarantine_written == 0
    assert _items(warehouse) == before_items and _quarantine(warehouse) == before_quarantine

    markdown = _artifact_markdown(run_id)
    assert markdown.startswith("# Legacy ERP migration — dry run: nothing was written")
    assert "| update | sol_nascente_distribuidora | MF-000401 | legacy:erp_export_precos.csv:2 " \
           "| price_brl: 338.68 → 349.9 |" in markdown


def test_dry_run_on_an_empty_warehouse_and_a_fixed_row(prefect_harness, warehouse_env, tmp_path):
    warehouse = warehouse_env
    report, _ = _run([PRICE_LIST], dry_run=True)
    assert (report.inserted, report.quarantine_written) == (9, 2)
    assert query(warehouse, "SELECT count(*) FROM items_normalized") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM items_quarantine") == [(0,)]

    _run([PRICE_LIST])
    fixed = tmp_path / sample.PRICE_LIST  # the refund row corrected in the ERP
    fixed.write_bytes(PRICE_LIST.read_bytes().replace(b";-351,48;", b";351,48;"))
    report, _ = _run([fixed])
    assert (report.inserted, report.updated, report.quarantine_cleared) == (1, 0, 1)
    assert report.quarantined_by_reason == {"unknown_category": 1}
    assert _quarantine(warehouse) == [(f"legacy:{sample.PRICE_LIST}", 10, "unknown_category")]
    assert query(warehouse, "SELECT price_brl FROM items_normalized WHERE sku = 'MF-000408'") == [(351.48,)]


def test_forced_distributor(prefect_harness, warehouse_env):
    report, _ = _run([WORKBOOK], distributor="acme_legado")
    assert report.inserted == 26  # the branch table is skipped: FIL09's row is an item too
    assert "unknown_distributor" not in report.quarantined_by_reason
    assert query(warehouse_env, "SELECT DISTINCT distributor FROM items_normalized") == [("acme_legado",)]


def test_bad_file_fails_the_flow_before_writing(prefect_harness, warehouse_env, tmp_path):
    bad = tmp_path / "sem_colunas.csv"
    bad.write_text("CODIGO_ANTIGO;NOME\n1;x\n", encoding="latin-1")
    with pytest.raises(m.LegacyFileError, match="missing required columns.*columns found: CODIGO_ANTIGO, NOME"):
        m.migrate_legacy([PRICE_LIST, bad])
    assert query(warehouse_env, "SELECT count(*) FROM items_normalized") == [(0,)]
    pdf = tmp_path / "export.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    with pytest.raises(m.LegacyFileError, match=r"export\.pdf: not a CSV or XLSX export"):
        m.migrate_legacy([pdf])
