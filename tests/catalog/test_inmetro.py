"""The Inmetro registry: reading the published tables (CSV, spreadsheet, PDF) and the pure
matching rule (docs/catalog.md, "Inmetro registry")."""

from datetime import date

import pytest

from ysh.catalog import inmetro
from ysh.catalog.inmetro import RegistryRow

from ..conftest import REPO

SAMPLE = REPO / "data" / "sample" / "inmetro"
TODAY = date(2026, 1, 15)  # a fixed day: the sample's validities end before it and its active rows have none


def read(name: str) -> inmetro.RegistryFile:
    path = SAMPLE / name
    return inmetro.read_registry(path.read_bytes(), str(path))


def row(model: str, brand: str = "GoodWe", power_w: float | None = 5000.0, category: str = "inverter",
        situation: str | None = "active", valid_until: str | None = None, registration: str = "008120/2023"):
    return RegistryRow(category, None, brand, model, power_w, None, None, registration, situation, valid_until,
                       "registry.csv", 2)


# --- reading ------------------------------------------------------------------------


def test_the_csv_table_is_read_below_its_title_lines():
    result = read("pbe-fotovoltaico-modulos.csv")
    assert result.format == "csv" and result.problems == []
    first = result.rows[0]
    assert (first.category, first.brand, first.model, first.power_w, first.efficiency_pct, first.efficiency_class,
            first.registration, first.situation, first.line) == (
        "module", "DAH Solar", "DHN-72X16/DG", 585.0, 22.6, "A", "004512/2023", "active", 5)
    assert [r.situation for r in result.rows].count("cancelled") == 1


def test_the_spreadsheet_gives_kilowatts_in_watts_and_dates_as_iso():
    result = read("pbe-fotovoltaico-inversores.xlsx")
    assert result.format == "xlsx" and result.problems == []
    by_model = {r.model: r for r in result.rows}
    assert by_model["GW5000-DNS-30"].power_w == 5000.0
    assert by_model["IQ8P-72-2-BR"].power_w == 475.0
    assert by_model["SUN-5K-G"].valid_until == "2019-05-31"
    assert by_model["GW12KL-ET"].brand == "GoodWe"  # "GOODWE" in the table
    assert {r.category for r in result.rows} == {"inverter"}  # from the title above the header


def test_the_pdf_table_is_cut_at_its_header_columns():
    result = read("pbe-fotovoltaico-inversores.pdf")
    assert result.format == "pdf" and result.problems == []
    assert [(r.brand, r.model, r.power_w, r.registration, r.situation) for r in result.rows] == [
        ("Huawei", "SUN2000-3KTL-L1", 3000.0, "005521/2023", "active"),
        ("Huawei", "SUN2000-4KTL-L1", 4000.0, "005522/2023", "active"),
        ("GoodWe", "GW3300-XS-30", 3300.0, "008301/2024", "active"),
        ("Growatt", "MID 25KTL3-X", 25000.0, "009102/2024", "active"),
        ("Deye", "SUN-8K-G", 8000.0, "002870/2019", "cancelled"),
    ]


def test_a_pdf_cell_wrapped_onto_a_second_line_is_joined():
    lines = ["Fornecedor        Marca     Modelo              Potência (W)   Nº do Registro",
             "Growatt New       Growatt   MAX 50KTL3-XL2      50000          009900/2024",
             "Energy"]
    table = inmetro.pdf_table_lines(lines)
    assert table[1] == ["Growatt New Energy", "Growatt", "MAX 50KTL3-XL2", "50000", "009900/2024"]


def test_bad_rows_and_files_are_reported_not_raised():
    data = "Marca;Modelo;Potência (W)\nGoodWe;;5000\nGoodWe;GW5000-DNS-30;cinco mil\n".encode()
    result = inmetro.read_registry(data, "inversores.csv")
    assert result.rows == [] and result.problems == [(2, "missing_model"), (3, "unparseable_power")]
    assert inmetro.read_registry(b"nada aqui\n", "inversores.csv").problems == [(0, "no_header")]
    broken = inmetro.read_registry(b"PK\x03\x04not a zip", "inversores.xlsx")
    assert broken.rows == [] and broken.problems[0][1].startswith("unparseable_file")


def test_a_row_without_category_anywhere_is_not_guessed():
    result = inmetro.read_registry("Marca;Modelo\nGoodWe;GW5000-DNS-30\n".encode(), "tabela.csv")
    assert result.rows == [] and result.problems == [(2, "unknown_category")]


@pytest.mark.parametrize("text, expected", [("A", "active"), ("Ativo", "active"), ("C", "cancelled"),
                                            ("Cancelado", "cancelled"), ("", None), ("?", None)])
def test_the_registry_situation(text, expected):
    assert inmetro.registry_situation(text) == expected


# --- keys ---------------------------------------------------------------------------


def test_spacing_and_punctuation_do_not_matter():
    assert inmetro.match_keys("JKM550M-72HL4-V")[0] == inmetro.match_keys("JKM 550M 72HL4 V")[0] == (
        "JKM550M72HL4V", "exact")


def test_a_distributors_note_after_a_spaced_dash_or_in_parentheses_is_not_the_model():
    keys = dict(inmetro.match_keys("GW 5000-DNS-30 (16A) - AFCI", "GoodWe"))
    assert keys["GW5000DNS30"] == "annotation"
    assert dict(inmetro.match_keys("GW10K-MS-G40 - AFCI C/ RSD"))["GW10KMSG40"] == "annotation"


def test_a_technology_word_or_a_series_name_before_the_code_is_a_prefix():
    assert dict(inmetro.match_keys("HJT HN21H-66HT"))["HN21H66HT"] == "prefix"
    assert dict(inmetro.match_keys("MAC 36KTL3-XL", "Growatt"))["36KTL3XL"] == "prefix"
    # a brand's own code prefix is part of the model
    assert "5000DNS30" not in dict(inmetro.match_keys("GW 5000-DNS-30", "GoodWe"))


def test_unhyphenated_power_codes_are_not_variants_of_each_other():
    # GW5000-NS and GW5K-NS may name one product, but no documented rule says so: no match
    index = inmetro.RegistryIndex([row("GW5000-NS")])
    assert index.candidates("GoodWe", "GW5K-NS") == []


# --- status -------------------------------------------------------------------------


def match(rows, category="inverter", brand="GoodWe", model="GW5000-DNS-30", power_w=5000.0):
    return inmetro.match_item(inmetro.RegistryIndex(rows), category, brand, model, power_w, TODAY)


def test_a_registered_model():
    found = match([row("GW5000-DNS-30")], model="GW 5000-DNS-30 (16A) - AFCI")
    assert (found.status, found.rule, found.row.registration) == ("registered", "annotation", "008120/2023")


def test_the_brand_is_compared_canonically_and_must_agree():
    assert match([row("GW5000-DNS-30", brand="GOODWE")]).status == "registered"
    assert match([row("GW5000-DNS-30", brand="Growatt")]).status == "not_registered"


def test_a_model_in_no_row_is_not_registered():
    assert match([row("GW3300-XS-30", power_w=3300.0)]).status == "not_registered"


def test_a_cancelled_or_lapsed_registration_is_expired():
    assert match([row("GW5000-DNS-30", situation="cancelled")]).status == "expired"
    assert match([row("GW5000-DNS-30", valid_until="2019-05-31")]).status == "expired"


def test_a_listed_power_other_than_the_registered_one_is_a_mismatch():
    assert match([row("5KTLM-G3", brand="Sofar", power_w=6000.0)], brand="Sofar", model="5KTLM-G3").status == (
        "power_mismatch")
    # within 1 %: the same power written differently
    assert match([row("GW5000-DNS-30", power_w=5000.0)], power_w=4990.0).status == "registered"
    # a listed power the item does not state cannot differ
    assert match([row("GW5000-DNS-30")], power_w=None).status == "registered"


def test_an_active_row_wins_over_an_expired_one_of_the_same_model():
    old = row("GW5000-DNS-30", situation="cancelled", registration="000001/2019")
    new = row("GW5000-DNS-30", registration="008120/2023")
    assert match([old, new]).row.registration == "008120/2023"


def test_the_closest_rule_wins():
    exact = row("MID 25KTL3-X", brand="Growatt", power_w=25000.0, registration="009102/2024")
    series = row("MIC 25KTL3-X", brand="Growatt", power_w=25000.0, registration="000777/2024")
    found = match([exact, series], brand="Growatt", model="MID 25KTL3-X", power_w=25000.0)
    assert (found.rule, found.row.registration) == ("exact", "009102/2024")


def test_a_module_never_matches_an_inverter_row():
    assert match([row("GW5000-DNS-30")], category="module").status == "not_registered"


@pytest.mark.parametrize("category", ["cable", "structure", "kit", "battery", "accessory"])
def test_categories_the_registry_does_not_cover_are_unknown(category):
    assert match([row("GW5000-DNS-30")], category=category).status == "unknown"


def test_an_item_without_a_model_cannot_be_looked_up():
    assert match([row("GW5000-DNS-30")], model=None).status == "unknown"


# --- Hélio's product records ----------------------------------------------------------


def offer(status, **extra):
    return {"distributor": "solfacil", "sku": "1", "category": "inverter", "brand": "Sofar", "model": "5KTLM-G3",
            "power_w": 5000.0, "price_brl": 3000.0, "stock_units": 2, "inmetro_status": "missing",
            "inmetro_registry_status": status, "inmetro_registry_registration": "007402/2023",
            "inmetro_registry_model": "5KTLM-G3", "inmetro_registry_power_w": 6000.0, **extra}


@pytest.mark.parametrize("status, says", [
    ("registered", "Registro no INMETRO: sim, registrado (nº 007402/2023"),
    ("not_registered", "Registro no INMETRO: não"),
    ("expired", "Registro no INMETRO: vencido ou cancelado (nº 007402/2023"),
    ("power_mismatch", "potência registrada de 6 kW, diferente da anunciada (5 kW)"),
])
def test_a_product_record_says_what_the_registry_says(status, says):
    from ysh.rag.records import render_product

    product = {"product_key": "Sofar|5KTLMG3", "brand": "Sofar", "model": "5KTLM-G3", "category": "inverter",
               "power_w": 5000.0, "offers": 1, "distributors": 1, "min_price_brl": 3000.0}
    assert says in render_product(product, [offer(status)])


def test_a_record_not_judged_keeps_the_typed_number_check():
    from ysh.rag.records import render_item

    text = render_item(offer(None, inmetro_status="ok"))
    assert "INMETRO regular" in text and "Registro no INMETRO" not in text
    assert "Registro no INMETRO" not in render_item(offer("unknown", category="cable"))
