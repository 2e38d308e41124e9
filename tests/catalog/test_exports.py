"""Storefront export shapes beyond the October 2025 files: other scrapers' headers, menus
and breadcrumbs, wide rows of several products, SKUs in text, kits written as text."""

import json

import pytest

from ysh.catalog import exports as x
from ysh.catalog.kits import components_from_text
from ysh.catalog.normalize import normalize_feed


def feed(text: str, name: str = "scrape.csv"):
    return normalize_feed(text.encode("utf-8"), name, "loja")


# a category page scraped by another extension: Material UI class names, a menu row, a
# breadcrumb, a filter bar, a zero-width cell, prices with non-breaking spaces
MUI_PAGE = (
    "MuiTypography-root,MuiTypography-root 2,MuiTypography-root 3,MuiLink href,jss12\n"
    "Início > Inversores > Growatt,,,,\n"
    "Inversores (42),Módulos (120),Baterias (8),,\n"
    "Ordenar por,Menor preço,Maior preço,,\n"
    "INVERSOR GROWATT MIN 5000TL-X 5KW MONO 220V SKU#: 289244,\"R$\u00a05.149,90\",Disponível,"
    "https://loja.example.com.br/inversor-growatt-min-5000tl-x-289244,\u200b\n"
    "MODULO FOTOVOLTAICO JINKO 575W TIGER NEO (27314),\"R$\u00a0699,00\",Indisponível,"
    "https://loja.example.com.br/p/modulo-jinko-575w,\u200b\n"
    "\u200b,\u200b,,,\n"
    "MICROINVERSOR HOYMILES HMS-2000-4T 2KW,\"R$\u00a01.999,00\",disponivel,,\n"
)


def test_a_page_with_class_name_headers_gives_its_products_and_skips_the_rest():
    result = feed(MUI_PAGE)
    roles = {c: r["role"] for c, r in result.column_roles.items()}
    assert roles["MuiTypography-root"] == "description"
    assert (roles["MuiTypography-root 2"], roles["MuiTypography-root 3"], roles["MuiLink href"]) == (
        "price", "availability", "link")
    assert result.non_product_rows == {"breadcrumb": 1, "menu": 2, "empty": 1}
    assert result.quarantine == []
    items = {item.line: item for item in result.items}
    assert sorted(items) == [5, 6, 8]
    growatt, jinko, hoymiles = items[5], items[6], items[8]
    assert (growatt.sku, growatt.sku_source, growatt.category, growatt.power_w, growatt.price_brl) == (
        "289244", "sku_text", "inverter", 5000.0, 5149.9)
    assert (growatt.brand, growatt.phases, growatt.voltage_v, growatt.availability) == (
        "Growatt", 1, 220.0, "in_stock")
    assert (jinko.sku, jinko.sku_source, jinko.power_w, jinko.availability) == (
        "27314", "name_code", 575.0, "out_of_stock")
    assert (hoymiles.category, hoymiles.power_w, hoymiles.brand) == ("microinverter", 2000.0, "Hoymiles")


def test_a_wide_row_of_several_products_becomes_one_item_each():
    wide = ("card src,card-title,card-price,card src 2,card-title 2,card-price 2\n"
            "https://cdn.example.com/produtos/1111/a.png,CABO SOLAR 6MM PRETO ROLO 50M,\"R$ 389,90\","
            "https://cdn.example.com/produtos/2222/b.png,STRING BOX 2 ENTRADAS 1 SAIDA 1000V,\"R$ 459,00\"\n"
            "https://cdn.example.com/produtos/3333/c.png,CONECTOR MC4 PAR,\"R$ 12,50\",,,\n")
    result = feed(wide)
    assert result.wide_rows_split
    items = {item.sku: item for item in result.items}
    assert {sku: (i.category, i.price_brl, i.line) for sku, i in items.items()} == {
        "1111": ("cable", 389.9, 2), "2222": ("string_box", 459.0, 2), "3333": ("accessory", 12.5, 3)}


def test_no_price_is_invented_for_a_row_without_one():
    page = ("title,price\n"
            "INVERSOR DEYE SUN-8K-G 8KW TRI 380V,\n"
            "BATERIA PYLONTECH US5000 48V 100AH,\"R$ 9.800,00\"\n")
    items = {item.line: item for item in feed(page).items}
    assert items[2].price_brl is None and items[3].price_brl == 9800.0
    assert (items[3].category, items[3].battery_kwh, items[3].brand) == ("battery", 4.8, "Pylontech")


@pytest.mark.parametrize("text, expected", [
    ("2x 620Wp DAH | 1x 40A MPPT Epever | 1x 100Ah/48V Lítio",
     [("module", "DAH Solar", 620.0, 2), ("charge_controller", "Epever", None, 1), ("battery", None, None, 1)]),
    ("10x Módulo Jinko 575W + 1x Inversor Growatt 5kW",
     [("module", "Jinko Solar", 575.0, 10), ("inverter", "Growatt", 5000.0, 1)]),
])
def test_kit_components_written_as_text(text, expected):
    components = components_from_text(text)
    assert [(c["kind"], c["brand"], c["power_w"], c["quantity"]) for c in components] == expected


def test_a_kit_page_with_components_as_text():
    page = ("nome;preco;estrutura\n"
            "KIT GERADOR OFF GRID 1,24kWp - 2x 620Wp DAH | 1x 40A MPPT Epever | 1x 100Ah/48V Lítio;"
            "R$ 6.990,00;Solo\n")
    (item,) = feed(page, "kits.csv").items
    assert (item.category, item.power_w, item.price_brl, item.structure_type) == ("kit", 1240.0, 6990.0, "Solo")
    assert [c["kind"] for c in json.loads(item.components)] == ["module", "charge_controller", "battery"]
    assert item.sku_source == "name_hash" and item.brand is None


@pytest.mark.parametrize("url, product_id", [
    ("https://cdn-ecommerce.solfacil.com.br/contents/products/559375/images/IMAGE_PRODUCT_559375.jpeg", "559375"),
    ("/catalog/images/SOLFACIL-INVERTERS/IMAGE_PRODUCT_600340.jpeg", "600340"),
    ("https://loja.example.com.br/inversor-growatt-5kw-289244", "289244"),
    ("https://loja.example.com.br/produto?id=A-77", "A-77"),
    ("https://solaryum-public-assets.s3.sa-east-1.amazonaws.com/983/produtos/"
     "8240f212-8f4f-47ce-99b0-29ef5b42c8d9.webp?t=1758219160", "8240f212-8f4f-47ce-99b0-29ef5b42c8d9"),
    ("https://app.fotus.com.br/#collapse3", None),
    ("/catalog/images/SOLFACIL-INVERTERS/image.png", None),
])
def test_product_ids_in_urls(url, product_id):
    assert x.id_from_url(url) == product_id


def test_a_sku_column_left_empty_is_still_missing_sku():
    result = feed("sku;descricao;preco\n;Inversor Growatt MIN 5000TL-X 5kW;R$ 5.000,00\n")
    assert [q.reason for q in result.quarantine] == ["missing_sku"]


def test_named_headers_stay_the_first_choice():
    # `valor` is a named price column; the scraped price text in an unnamed column is ignored
    page = ("descricao,valor,card-price\n"
            "INVERSOR GROWATT MIN 5000TL-X 5KW,5000,\"R$ 4.000,00\"\n")
    (item,) = feed(page).items
    assert item.price_brl == 5000.0


def test_two_exports_of_one_storefront_name_an_offer_once(tmp_path):
    from ysh.catalog import job

    folder = tmp_path / "landing" / "loja"
    folder.mkdir(parents=True)
    # a dump without product numbers, and a page scrape that has them in its image links
    (folder / "dump.json").write_text(json.dumps([
        {"id": "loja_inverters_1", "name": "DEYE SUN-5K-G", "category": "inverters", "price": "R$ 3.531,60",
         "description": "INVERSOR FOTOVOLTAICO SUN-5K-G EX 5KW DEYE MONO 220V"},
        {"id": "loja_inverters_2", "name": "GOODWE GW3300-XS", "category": "inverters", "price": "R$ 3.585,88",
         "description": "INVERSOR FOTOVOLTAICO GW3300-XS EX 3.3KW GOODWE MONO 220V"},
        {"id": "loja_inverters_3", "name": "SOFAR 5KTLM-G3", "category": "inverters", "price": "R$ 3.644,58",
         "description": "INVERSOR FOTOVOLTAICO 5KTLM-G3 EX 5KW SOFAR MONO 220V"},
    ]), encoding="utf-8")
    (folder / "scrape.csv").write_text(
        "loaded src,subtitle,price\n"
        "https://cdn.example.com/contents/products/600076/images/a.webp,"
        "INVERSOR FOTOVOLTAICO SUN-5K-G EX 5KW DEYE MONO 220V,\"R$\u00a03.531,60\"\n", encoding="utf-8")
    job.run_static([tmp_path / "landing"], out_dir=tmp_path / "out")
    items = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    assert sorted((i["sku"], i["sku_source"]) for i in items) == [
        ("5KTLM-G3", "model"), ("600076", "image_url"), ("GW3300-XS", "model")]


def test_a_header_repeated_by_a_paged_scrape_is_not_a_product():
    page = ("loaded src,subtitle,price\n"
            "https://cdn.example.com/produtos/1111/a.png,CABO SOLAR 6MM PRETO ROLO 50M,\"R$ 389,90\"\n"
            "loaded src,subtitle,price\n"
            "https://cdn.example.com/produtos/2222/b.png,CONECTOR MC4 PAR,\"R$ 12,50\"\n")
    result = feed(page)
    assert result.non_product_rows == {"repeated_header": 1}
    assert sorted(item.sku for item in result.items) == ["1111", "2222"]
