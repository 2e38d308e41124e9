from datetime import date

import pytest

from ysh.catalog import parsing as p


# --- numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("1.234,56", 1234.56),
        ("1,234.56", 1234.56),
        ("1234,56", 1234.56),
        ("1234.56", 1234.56),
        ("0,55", 0.55),
        ("5.000", 5000.0),
        ("1.234.567", 1234567.0),
        ("1,234,567", 1234567.0),
        ("550,0", 550.0),
        ("0.5", 0.5),
        ("-12,50", -12.5),
        (" 42 ", 42.0),
        ("1 234,56", 1234.56),
    ],
)
def test_parse_decimal_reads_brazilian_and_english_numbers(text, expected):
    assert p.parse_decimal(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["1,234", "12,000", "550,000"])
def test_one_comma_with_three_decimals_is_ambiguous_and_refused(text):
    with pytest.raises(ValueError, match="ambiguous"):
        p.parse_decimal(text)


def test_leading_zero_with_three_decimals_is_a_decimal():
    assert p.parse_decimal("0,550") == pytest.approx(0.55)


@pytest.mark.parametrize("text", ["9" * 400, "1" + "0" * 309 + ",5", "-" + "9" * 400])
def test_numbers_too_big_for_a_float_are_refused(text):
    with pytest.raises(ValueError):
        p.parse_decimal(text)


@pytest.mark.parametrize("text", ["", "abc", "1,2,3", "1.23.4", "--", "1.234,5.6", ",", "12a", "NaN", "Infinity"])
def test_parse_decimal_rejects_garbage(text):
    with pytest.raises(ValueError):
        p.parse_decimal(text)


# --- power -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected_w",
    [
        ("550", 550.0),
        ("550W", 550.0),
        ("550 Wp", 550.0),
        ("550 wp", 550.0),
        ("0,55 kW", 550.0),
        ("550,0", 550.0),
        ("5 kW", 5000.0),
        ("5.000 W", 5000.0),
        ("5.000", 5000.0),
        ("0,55kWp", 550.0),
        ("75 kW", 75000.0),
    ],
)
def test_parse_power_w(text, expected_w):
    assert p.parse_power_w(text) == pytest.approx(expected_w)


def test_unit_less_power_takes_the_column_unit():
    assert p.parse_power_w("0,55", default_unit="kW") == pytest.approx(550.0)
    assert p.parse_power_w("5", default_unit="kW") == pytest.approx(5000.0)


def test_explicit_unit_beats_the_column_unit():
    assert p.parse_power_w("550 W", default_unit="kW") == pytest.approx(550.0)


@pytest.mark.parametrize("text", ["abc", "N/D", "550 V", "W", "5 kWh"])
def test_parse_power_rejects_non_power(text):
    with pytest.raises(ValueError):
        p.parse_power_w(text)


# --- price -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("R$ 1.234,56", 1234.56),
        ("R$1.234,56", 1234.56),
        ("1.234,56", 1234.56),
        ("1234,56", 1234.56),
        ("1234.56", 1234.56),
        ("R$ 0,99", 0.99),
        ("BRL 99", 99.0),
        ("-R$ 12,00", -12.0),
        ("R$ -12,00", -12.0),
    ],
)
def test_parse_price_brl(text, expected):
    assert p.parse_price_brl(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["R$ --", "consultar", "sob consulta", "R$", "12,34,56"])
def test_parse_price_rejects_non_amounts(text):
    with pytest.raises(ValueError):
        p.parse_price_brl(text)


# --- stock -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [("12", 12), ("1.200", 1200), ("sob consulta", None),
                                            ("-", None), ("30 un", 30)])
def test_parse_stock(text, expected):
    assert p.parse_stock(text) == expected


def test_parse_stock_rejects_fractions():
    with pytest.raises(ValueError):
        p.parse_stock("2,5")


# --- headers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, field",
    [
        ("SKU", "sku"), ("Código", "sku"), ("codigo", "sku"), ("COD", "sku"),
        ("Part Number", "sku"), ("part_number", "sku"), ("Referência", "sku"), ("ref", "sku"),
        ("Marca", "brand"), ("Fabricante", "brand"), ("Manufacturer", "brand"),
        ("Modelo", "model"), ("Descrição", "description"), ("Produto", "description"),
        ("nome", "description"), ("Categoria", "category"), ("Tipo", "category"), ("type", "category"),
        ("Potência (Wp)", "power"), ("potencia_w", "power"), ("PMAX", "power"), ("power", "power"),
        ("Potência", "power"), ("Potencia_kW", "power"),
        ("Preço", "price"), ("valor", "price"), ("Valor Unitário", "price"), ("preco_brl", "price"),
        ("Estoque", "stock"), ("QTD", "stock"), ("quantidade", "stock"),
        ("Inmetro", "inmetro"), ("Registro Inmetro", "inmetro"),
        ("\ufeffsku", "sku"), ("  Preço  ", "price"),
    ],
)
def test_header_synonyms(header, field):
    assert p.map_headers([header]).columns == {field: (header,)}


@pytest.mark.parametrize(
    "header, field, unit",
    [("Preço (R$)", "price", "W"), ("Valor Unitário (R$)", "price", "W"), ("Potência Nominal (kW)", "power", "kW"),
     ("Potência (kWp)", "power", "kW"), ("Estoque (un)", "stock", "W"), ("Nº Registro Inmetro", "inmetro", "W"),
     ("Potência (W)", "power", "W"), ("cor", None, "W")],
)
def test_headers_with_units_in_parentheses(header, field, unit):
    assert p.header_field(header) == (field, unit)


def test_kilowatt_power_header_sets_the_unit():
    assert p.map_headers(["potencia_kw"]).power_unit == "kW"
    assert p.map_headers(["Potência (Wp)"]).power_unit == "W"


def test_synonym_columns_are_kept_in_file_order_and_unknown_ones_reported():
    mapping = p.map_headers(["preco", "valor", "cor"])
    assert mapping.columns == {"price": ("preco", "valor")}
    assert mapping.unknown == ("cor",)


# --- SKU and brand ---------------------------------------------------------------------
def test_sku_is_trimmed_upper_cased_and_loses_inner_whitespace():
    assert p.normalize_sku("  jam72 s30-550 \t") == "JAM72S30-550"
    assert p.normalize_sku("   ") is None


def test_sql_ish_sku_is_kept_as_data():
    assert p.normalize_sku("x'); drop table items;--") == "X');DROPTABLEITEMS;--"


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("JINKO", "Jinko Solar"), ("Jinkosolar", "Jinko Solar"), ("jinko solar co., ltd", "Jinko Solar"),
        ("ja-solar", "JA Solar"), ("JA SOLAR", "JA Solar"), ("LONGI Green Energy", "LONGi"),
        ("Canadian", "Canadian Solar"), ("trina", "Trina Solar"), ("RISEN ENERGY", "Risen"),
        ("byd", "BYD"), ("Dah Solar", "DAH Solar"), ("astronergy", "Astronergy"),
        ("GROWATT", "Growatt"), ("fronius", "Fronius"), ("Weg", "WEG"), ("DEYE", "Deye"),
        ("huawei", "Huawei"), ("Solar Edge", "SolarEdge"), ("SUNGROW", "Sungrow"),
        ("goodwe", "GoodWe"), ("HOYMILES", "Hoymiles"), ("AP Systems", "APsystems"),
        ("sma", "SMA"), ("SOFAR SOLAR", "Sofar"), ("Ginlong Solis", "Solis"), ("enphase", "Enphase"),
    ],
)
def test_brand_aliases(written, canonical):
    assert p.canonical_brand(written) == canonical


def test_unknown_brand_is_kept_with_one_spelling():
    assert p.canonical_brand("  Acme   Painéis ") == "Acme Painéis"
    assert p.canonical_brand("ACME SOLAR") == p.canonical_brand("acme solar") == "Acme Solar"
    assert p.canonical_brand("aeSolar") == "aeSolar"
    assert p.canonical_brand("") is None


@pytest.mark.parametrize(
    "written, canonical",
    [("SMA Solar Technology AG", "SMA"), ("Jinko Solar Holding", "Jinko Solar"), ("Sungrow Power Supply", "Sungrow"),
     ("GoodWe Technologies", "GoodWe"), ("Hoymiles Power Electronics", "Hoymiles"), ("BYD Company", "BYD"),
     ("Ginlong (Solis)", "Solis")],
)
def test_company_names_resolve_to_their_brand(written, canonical):
    assert p.canonical_brand(written) == canonical


# --- categories ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "written, category",
    [
        ("Módulo Fotovoltaico", "module"), ("module", "module"), ("Painel Solar", "module"),
        ("Inversor", "inverter"), ("Inversor Híbrido", "hybrid_inverter"), ("string inverter", "inverter"),
        ("Inversor Off Grid", "offgrid_inverter"), ("kits", "kit"), ("Kit Fotovoltaico", "kit"),
        ("Microinversor", "microinverter"), ("Micro Inversor", "microinverter"),
        ("micro-inverter", "microinverter"), ("Bateria", "battery"), ("Battery", "battery"),
        ("Acessório", "accessory"), ("String Box", "string_box"), ("Cabo", "cable"),
        ("Estrutura", "structure"), ("Controlador de Carga", "charge_controller"),
        ("Carregador Veicular", "ev_charger"), ("Kit de Bombeamento Solar", "pump_kit"), ("Outros", "other"),
    ],
)
def test_category_values(written, category):
    assert p.parse_category(written) == category


@pytest.mark.parametrize(
    "written, category",
    [("Bateria Modular", "battery"), ("Módulo de Bateria", "battery"), ("Battery module", "battery"),
     ("Inversor com Wi-Fi", "inverter"), ("Cabo para módulo", "cable"), ("Estrutura para painel", "structure"),
     ("Kit de montagem", "structure"), ("Kit fixação p/ 2 módulos", "structure"), ("Modular", None),
     ("Medidor inteligente para inversor", "accessory"), ("Controlador MPPT 40A", "charge_controller")],
)
def test_the_first_category_word_wins(written, category):
    assert p.parse_category(written) == category


@pytest.mark.parametrize("written", ["Serviço de Instalação", "xyz", ""])
def test_unknown_category(written):
    assert p.parse_category(written) is None


# --- description inference ---------------------------------------------------------------
def test_infers_a_module_from_its_description():
    facts = p.infer_from_description("Módulo Fotovoltaico JA Solar JAM72S30-550/MR 550W Mono PERC")
    assert (facts.brand, facts.model, facts.category, facts.power_w, facts.technology) == (
        "JA Solar", "JAM72S30-550/MR", "module", 550.0, "PERC")


def test_infers_an_inverter_with_kilowatts_phases_and_mppts():
    facts = p.infer_from_description("Inversor Growatt MIN-5000TL-X 5kW Monofásico 2 MPPT")
    assert (facts.brand, facts.model, facts.category, facts.power_w) == (
        "Growatt", "MIN-5000TL-X", "inverter", 5000.0)
    assert (facts.phases, facts.mppt_count) == (1, 2)


def test_infers_a_microinverter_before_an_inverter():
    facts = p.infer_from_description("Microinversor Hoymiles HMS-2000-4T 2000W")
    assert (facts.category, facts.brand, facts.model, facts.power_w) == (
        "microinverter", "Hoymiles", "HMS-2000-4T", 2000.0)


def test_infers_efficiency_and_topcon():
    facts = p.infer_from_description("Painel Solar Jinkosolar Tiger Neo JKM575N-72HL4-V 575Wp N-Type 22,3%")
    assert (facts.brand, facts.power_w, facts.technology, facts.efficiency_pct) == (
        "Jinko Solar", 575.0, "TOPCon", 22.3)


@pytest.mark.parametrize(
    "description, model",
    [("Inversor Growatt IP65 MIN-5000TL-X 5kW", "MIN-5000TL-X"),
     ("Inversor Deye 60Hz SUN-5K-G 5kW", "SUN-5K-G"),
     ("Bateria BYD Battery-Box HVS 5.1kWh", None),
     ("Painel Solar Canadian Solar HiKu6 CS6W-550MS 550W", "CS6W-550MS"),
     ("Módulo ½ célula JA Solar JAM72S30-550/MR 550W", "JAM72S30-550/MR")],
)
def test_model_codes_skip_ratings_and_series_names(description, model):
    assert p.infer_from_description(description).model == model


def test_monofasico_is_not_a_mono_cell():
    assert p.find_technology("Inversor Monofásico") is None


def test_bare_ja_is_not_a_brand_without_a_ja_model():
    assert p.find_brand("Kit já instalado 5kW") is None


def test_description_without_facts():
    assert p.infer_from_description("Serviço de instalação") == p.DescriptionFacts(category=None)
    assert p.infer_from_description(None) == p.DescriptionFacts()


# --- Inmetro ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "registration, status",
    [
        ("004567/2023", "ok"), ("12345/2019", "ok"), ("Nº 001234/2021", "ok"), ("Registro 4567/2022", "ok"),
        ("Registro Inmetro 012345/2021", "ok"),
        ("", "missing"), (None, "missing"), ("   ", "missing"),
        ("ABC-123", "invalid"), ("004567/2099", "invalid"), ("004567/2005", "invalid"), ("12/2020", "invalid"),
    ],
)
def test_inmetro_status(registration, status):
    assert p.inmetro_status(registration, today=date(2026, 11, 25)) == status


def test_inmetro_registration_is_normalized_when_well_formed():
    assert p.normalize_inmetro("4567 / 2023") == "004567/2023"
    assert p.normalize_inmetro("ABC-123") == "ABC-123"
