import json

import pytest

from ysh.catalog.items import CatalogItem
from ysh.catalog.normalize import (
    QuarantinedRow,
    distributor_from_path,
    normalize_feed,
)


def feed(text: str, name: str = "dist.csv", encoding: str = "utf-8"):
    return normalize_feed(text.encode(encoding), f"/landing/{name}", "dist")


HEADER = "sku;descricao;categoria;potencia;preco;estoque;inmetro\n"


def one(text_row: str, header: str = HEADER):
    result = feed(header + text_row + "\n")
    rows = result.items + result.quarantine
    assert len(rows) == 1
    return rows[0]


def test_a_clean_module_row_becomes_an_item():
    item = one("jam 550;Módulo JA Solar JAM72S30-550/MR 550W Mono PERC;Módulo;550 Wp;R$ 612,50;1.200;004567/2023")
    assert isinstance(item, CatalogItem)
    assert (item.sku, item.category, item.brand, item.model, item.power_w, item.price_brl,
            item.stock_units, item.inmetro_status, item.technology) == (
        "JAM550", "module", "JA Solar", "JAM72S30-550/MR", 550.0, 612.5, 1200, "ok", "PERC")
    assert (item.source_file, item.line, item.distributor) == ("/landing/dist.csv", 2, "dist")


@pytest.mark.parametrize(
    "row, reason",
    [
        (";Módulo JA Solar 550W;Módulo;550;100;1;", "missing_sku"),
        ("A;Módulo X;Módulo;;100;1;", "missing_power"),
        ("A;Módulo X;Módulo;abc;100;1;", "unparseable_power"),
        ("A;Módulo X;Módulo;N/D;100;1;", "unparseable_power"),
        ("A;Módulo X;Módulo;2000;100;1;", "power_out_of_range"),
        ("A;Módulo X;Módulo;4;100;1;", "power_out_of_range"),
        ("A;Inversor X;Inversor;5 W;100;1;", "power_out_of_range"),
        ("A;Inversor X;Inversor;300 kW;100;1;", "power_out_of_range"),
        ("A;Micro X;Microinversor;5 kW;100;1;", "power_out_of_range"),
        ("A;Módulo X;Módulo;550;R$ --;1;", "unparseable_price"),
        ("A;Módulo X;Módulo;550;consultar;1;", "unparseable_price"),
        ("A;Módulo X;Módulo;550;-10,00;1;", "negative_price"),
        ("A;Módulo X;Módulo;550;0,00;1;", "zero_price"),
        ("A;Instalação;Serviço de Instalação;;100;1;", "unknown_category"),
        ("A;Módulo X;Módulo;550;100;muitos;", "unparseable_stock"),
        ("A;Módulo X;Módulo;550;100;-3;", "negative_stock"),
        ("A;Módulo X;Módulo;550;100;1;;extra", "malformed_row"),
    ],
)
def test_bad_rows_are_quarantined_with_a_stable_reason(row, reason):
    result = one(row)
    assert isinstance(result, QuarantinedRow)
    assert result.reason == reason
    assert result.line == 2
    assert json.loads(result.raw)["sku"] == row.split(";")[0]


def test_power_comes_from_the_description_when_the_column_is_empty():
    item = one("A;Módulo Fotovoltaico JA Solar JAM72S30-550/MR 550W;Módulo;;100;1;")
    assert item.power_w == 550.0


def test_kilowatt_column_for_an_inverter():
    header = "sku;tipo;potencia_kw;preco\n"
    assert one("A;Inversor;5;5.100,00", header).power_w == 5000.0
    assert one("B;Módulo;0,55;600", header).power_w == 550.0


def test_batteries_and_accessories_need_no_power():
    battery = one("B1;Bateria BYD Battery-Box Premium HVS 5.1;Bateria;;R$ 21.500,00;2;")
    cable = one("C1;Cabo Solar 6mm² Preto (metro);Acessório;;R$ 9,90;500;")
    assert (battery.category, battery.brand, battery.power_w) == ("battery", "BYD", None)
    # the distributor's own category column decides ("Acessório"), not the title's word
    assert (cable.category, cable.power_w) == ("accessory", None)


def test_missing_inmetro_flags_but_keeps_the_item():
    item = one("A;Módulo JA Solar 550W;Módulo;550;100;1;")
    assert isinstance(item, CatalogItem)
    assert (item.inmetro_status, item.inmetro_registration) == ("missing", None)
    assert one("A;Módulo JA Solar 550W;Módulo;550;100;1;ABC-123").inmetro_status == "invalid"


def test_description_only_feed_infers_brand_model_category_and_power():
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"referencia": "fv-1", "produto": "Módulo Fotovoltaico JA Solar JAM72S30-550/MR 550W Mono PERC", "preco_brl": "612,50", "qtd": 3},
        {"referencia": "inv-1", "produto": "Inversor Growatt MIN-5000TL-X 5kW Monofásico 2 MPPT", "preco_brl": 5100, "qtd": 1},
        {"referencia": "mi-1", "produto": "Microinversor Hoymiles HMS-2000-4T 2000W", "preco_brl": "2.399,00", "qtd": 10},
    ])
    result = normalize_feed(data.encode(), "/landing/fotovolt.jsonl", "fotovolt")
    got = [(i.sku, i.category, i.brand, i.model, i.power_w, i.price_brl) for i in result.items]
    assert got == [
        ("FV-1", "module", "JA Solar", "JAM72S30-550/MR", 550.0, 612.5),
        ("INV-1", "inverter", "Growatt", "MIN-5000TL-X", 5000.0, 5100.0),
        ("MI-1", "microinverter", "Hoymiles", "HMS-2000-4T", 2000.0, 2399.0),
    ]
    inverter = result.items[1]
    assert (inverter.phases, inverter.mppt_count, inverter.technology) == (1, 2, "string")


def test_json_numbers_are_not_read_as_thousands():
    data = json.dumps([{"sku": "a", "category": "module", "power_w": 550, "price": 1.234}]).encode()
    item = normalize_feed(data, "/l/x.json", "x").items[0]
    assert item.price_brl == 1.23


def test_duplicate_skus_last_one_wins_and_are_counted():
    result = feed(HEADER + "a 1;Módulo JA Solar 550W;Módulo;550;100;1;\n"
                  "B;Módulo JA Solar 550W;Módulo;550;200;1;\n"
                  "A1;Módulo JA Solar 550W;Módulo;550;300;1;\n")
    assert result.duplicate_skus == 1
    assert [(i.sku, i.price_brl, i.line) for i in result.items] == [("B", 200.0, 3), ("A1", 300.0, 4)]


def test_sql_ish_text_is_stored_verbatim():
    item = one("X1;\"Módulo JA Solar 550W Robert'); DROP TABLE items;--\";Módulo;550;100;1;")
    assert "DROP TABLE items;--" in item.description


def test_datasheet_columns_are_parsed():
    header = "cod;nome;tipo;pmax;valor;voc;isc;vmp;imp;eficiencia;tecnologia\n"
    item = one("M1;JA Solar JAM72S30-550/MR;Módulo;550,0;600;49,90;14,00;41,96;13,11;21,3%;Mono PERC", header)
    assert (item.voc_v, item.isc_a, item.vmp_v, item.imp_a, item.efficiency_pct, item.technology) == (
        49.9, 14.0, 41.96, 13.11, 21.3, "PERC")


def test_unreadable_file_becomes_one_quarantined_row():
    result = normalize_feed(b'[{"sku": "a"', "/l/broken.json", "broken")
    assert result.items == []
    assert [(q.reason, q.line) for q in result.quarantine] == [("unparseable_file", 0)]


def test_every_record_is_accounted_for():
    result = feed(HEADER + "A;Módulo JA Solar 550W;Módulo;550;100;1;\n"
                  ";sem sku;Módulo;550;100;1;\n"
                  "A;Módulo JA Solar 550W;Módulo;550;90;1;\n")
    assert result.rows == len(result.items) + len(result.quarantine) + result.duplicate_skus


def test_distributor_is_the_subfolder_or_the_stem():
    assert distributor_from_path("/land/acme/2026-11-25.csv", "/land") == "acme"
    assert distributor_from_path("/land/acme.csv", "/land") == "acme"
    assert distributor_from_path("/elsewhere/beta.json", "/land") == "beta"
    assert distributor_from_path("/x/gamma.jsonl") == "gamma"


# --- hostile inputs (none may crash a run) ---------------------------------------------
@pytest.mark.parametrize(
    "row, reason",
    [
        ("A;Módulo X;Módulo;550;100;" + "9" * 400 + ";", "unparseable_stock"),
        ("A;Módulo X;Módulo;550;" + "9" * 400 + ";1;", "unparseable_price"),
        ("A;Módulo X;Módulo;" + "9" * 400 + ";100;1;", "unparseable_power"),
        ("A;Módulo X;Módulo;550;R$ 1,234;1;", "unparseable_price"),
        ("A;Módulo X;Módulo;550;100;1,000;", "unparseable_stock"),
    ],
)
def test_overflowing_and_ambiguous_numbers_are_quarantined(row, reason):
    assert one(row).reason == reason


def test_json_nan_and_infinity_are_quarantined_not_stored():
    data = b'[{"sku": "a", "category": "module", "power_w": 550, "price": NaN},' \
           b' {"sku": "b", "category": "module", "power_w": 550, "price": 10, "stock": Infinity},' \
           b' {"sku": "c", "category": "module", "power_w": 1e400, "price": 10}]'
    result = normalize_feed(data, "/l/x.json", "x")
    assert [(q.line, q.reason) for q in result.quarantine] == [
        (1, "unparseable_price"), (2, "unparseable_stock"), (3, "unparseable_power")]
    assert all(json.loads(q.raw) for q in result.quarantine)


def test_an_unexpected_error_quarantines_the_row_not_the_run(monkeypatch):
    from ysh.catalog import normalize as n

    def broken(text):
        raise RuntimeError("rule bug")

    monkeypatch.setattr(n.p, "parse_price_brl", broken)
    result = feed(HEADER + "A;Módulo JA Solar 550W;Módulo;550;100;1;\n")
    assert [(q.reason, q.detail) for q in result.quarantine] == [("internal_error", "RuntimeError: rule bug")]


def test_json_integral_float_sku_and_stock():
    data = json.dumps([{"sku": 12345.0, "category": "module", "power_w": 550, "price": 10, "stock": 3.0}]).encode()
    item = normalize_feed(data, "/l/x.json", "x").items[0]
    assert (item.sku, item.stock_units) == ("12345", 3)


def test_an_empty_first_synonym_column_falls_back_to_the_next():
    result = feed("sku;categoria;potencia;preco;valor\nA;Módulo;550;;612,50\n")
    assert result.items[0].price_brl == 612.5


def test_price_header_with_currency_and_power_header_in_kw():
    result = feed("Código;Tipo;Potência Nominal (kW);Preço (R$)\nA;Inversor;5;5.100,00\n")
    assert (result.items[0].power_w, result.items[0].price_brl) == (5000.0, 5100.0)


def test_empty_and_binary_files_are_quarantined_as_files():
    assert [(q.reason, q.line) for q in normalize_feed(b"", "/l/e.csv", "e").quarantine] == [("empty_file", 0)]
    xlsx = normalize_feed(b"PK\x03\x04" + b"\x00" * 20, "/l/tabela.xlsx", "t").quarantine
    assert [(q.reason, q.line) for q in xlsx] == [("unparseable_file", 0)]


def test_inmetro_year_is_judged_as_of_the_feed_date():
    from datetime import date

    data = (HEADER + "A;Módulo JA Solar 550W;Módulo;550;100;1;004567/2026\n").encode()
    assert normalize_feed(data, "/l/x.csv", "x", as_of=date(2026, 3, 1)).items[0].inmetro_status == "ok"
    assert normalize_feed(data, "/l/x.csv", "x", as_of=date(2025, 12, 31)).items[0].inmetro_status == "invalid"


def test_unknown_brands_in_different_case_are_one_product():
    result = feed("sku;marca;modelo;categoria;potencia;preco\nA;ACME SOLAR;AC-550;Módulo;550;100\n"
                  "B;acme solar;ac 550;Módulo;550;110\n")
    assert {i.product_key for i in result.items} == {"Acme Solar|AC550"}


def test_hidden_lock_and_temporary_files_are_not_feeds():
    from ysh.catalog.landing import is_feed_path

    root = "/home/u/.ysh/landing/catalog"
    assert is_feed_path(f"{root}/acme.csv", root)
    assert is_feed_path(f"{root}/acme/2026-11-25.csv", root)
    assert not is_feed_path(f"{root}/.~lock.acme.csv#", root)
    assert not is_feed_path(f"{root}/~$acme.xlsx", root)
    assert not is_feed_path(f"{root}/.incoming/acme.csv", root)
    assert not is_feed_path(f"{root}/acme.csv.tmp", root)
    assert is_feed_path("catalog/acme.csv", "catalog/")
