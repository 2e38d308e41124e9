from datetime import date
from decimal import Decimal

import pytest

from ysh.tariffs import aneel
from ysh.tariffs.aneel import FileFormatError, parse_aneel_decimal, parse_fio_b, parse_flags, parse_tariffs

HEADER = ";".join(aneel.TARIFF_HEADER)


def tariff_line(utility="CEMIG-D", start="2025-05-28", end="2026-05-27", base="Tarifa de Aplicação",
                subgroup="B1", modality="Convencional", klass="Residencial", subclass="Residencial",
                detail="Não se aplica", post="Não se aplica", unit="MWh", tusd="481,25", te="289,31"):
    return ";".join([
        "2026-05-01", "RESOLUÇÃO HOMOLOGATÓRIA Nº 3.456, DE 27 DE MAIO DE 2025", utility, "17155730000164",
        start, end, base, subgroup, modality, klass, subclass, detail, post, unit, "Não se aplica", tusd, te,
    ])


def parse(*lines, encoding="utf-8"):
    data = "\n".join([HEADER, *lines]).encode(encoding) + b"\n"
    return parse_tariffs(data, "tarifas.csv")


@pytest.mark.parametrize("text, expected", [("271,87", "271.87"), (",00", "0"), ("0,50", "0.50"),
                                             ("1.234,56", "1234.56"), ("12", "12"), ("-3,5", "-3.5")])
def test_aneel_decimals(text, expected):
    assert parse_aneel_decimal(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["", "abc", "12,3,4", ",", "-", "1,2a"])
def test_aneel_decimals_refuse_garbage(text):
    with pytest.raises(ValueError):
        parse_aneel_decimal(text)


def test_energy_rows_become_brl_per_kwh_exactly():
    tariff = parse(tariff_line()).rows[0]
    assert (tariff.tusd_brl_per_kwh, tariff.te_brl_per_kwh) == (0.48125, 0.28931)
    assert (tariff.tusd_brl_per_kw, tariff.base, tariff.valid_from, tariff.valid_to) == (
        None, "aplicacao", date(2025, 5, 28), date(2026, 5, 27))


def test_demand_rows_stay_brl_per_kw():
    tariff = parse(tariff_line(subgroup="A4", modality="Verde", unit="kW", tusd="31,44", te=",00")).rows[0]
    assert (tariff.tusd_brl_per_kw, tariff.te_brl_per_kw, tariff.tusd_brl_per_kwh) == (31.44, 0.0, None)


def test_latin1_file_with_quoted_fields():
    line = tariff_line().replace("Base Econômica", "x")
    quoted = ";".join(f'"{f}"' for f in line.split(";"))
    parsed = parse(quoted, encoding="latin-1")
    assert parsed.encoding == "cp1252"
    assert parsed.rows[0].resolution.startswith("RESOLUÇÃO HOMOLOGATÓRIA")


def test_utf8_bom_file():
    data = ("\ufeff" + HEADER + "\n" + tariff_line() + "\n").encode("utf-8")
    assert len(parse_tariffs(data, "x.csv").rows) == 1


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"tusd": "12,3,4"}, "unparseable_value"),
        ({"te": "abc"}, "unparseable_value"),
        ({"te": "-1,00"}, "negative_value"),
        ({"utility": ""}, "missing_key"),
        ({"subgroup": ""}, "missing_key"),
        ({"start": ""}, "missing_key"),
        ({"unit": "MVArh"}, "unknown_unit"),
        ({"start": "2025-13-01"}, "unparseable_date"),
        ({"start": "2026-06-01", "end": "2026-05-27"}, "inverted_validity"),
        ({"base": "Tarifa Qualquer"}, "missing_key"),
    ],
)
def test_broken_rows_are_quarantined_with_their_line(kwargs, reason):
    parsed = parse(tariff_line(), tariff_line(**kwargs))
    assert [(q.line, q.reason) for q in parsed.quarantine] == [(3, reason)]
    assert len(parsed.rows) == 1


def test_open_ended_validity():
    assert parse(tariff_line(end="")).rows[0].valid_to is None


def test_a_file_without_the_header_is_refused():
    with pytest.raises(FileFormatError, match="missing columns"):
        parse_tariffs(b"a;b;c\n1;2;3\n", "x.csv")
    with pytest.raises(FileFormatError):
        parse_tariffs(b"PK\x03\x04zip", "x.xlsx")


COMPONENTS = ";".join(aneel.COMPONENT_HEADER)


def component(kind="TUSD_FioB", value="183,42", unit="R$/MWh", utility="CEMIG-D"):
    return ";".join([utility, kind, "Tarifa de Aplicação", "B1", "Convencional", "Residencial", "Residencial",
                     "Não se aplica", "Não se aplica", value, unit, "2025-05-28", "2026-05-27", "REH 3.456/2025"])


def test_fio_b_rows_are_read_and_other_components_skipped():
    data = "\n".join([COMPONENTS, component(), component(kind="TUSD_FioA", value="40,00"),
                      component(value="x"), component(unit="R$/kW")]).encode("utf-8-sig")
    parsed = parse_fio_b(data, "componentes.csv")
    assert [(r.utility, r.fio_b_brl_per_kwh) for r in parsed.rows] == [("CEMIG-D", 0.18342)]
    assert [(q.line, q.reason) for q in parsed.quarantine] == [(4, "unparseable_value"), (5, "unknown_unit")]


def test_the_real_bandeiras_extract():
    from ..conftest import REPO

    data = (REPO / "data" / "sample" / "tariffs" / "bandeira-tarifaria-acionamento.csv").read_bytes()
    parsed = parse_flags(data, "bandeiras.csv")
    assert parsed.quarantine == []
    months = {m.month: m for m in parsed.rows}
    assert len(months) == 136
    assert (months[date(2015, 1, 1)].flag, months[date(2015, 1, 1)].addon_brl_per_kwh) == ("Vermelha P1", 0.03)
    assert months[date(2026, 4, 1)].flag == "Verde" and months[date(2026, 4, 1)].addon_brl_per_kwh == 0.0
    assert {m.flag for m in parsed.rows} == {"Verde", "Amarela", "Vermelha P1", "Vermelha P2", "Escassez Hídrica"}


def test_an_unbalanced_quote_makes_the_file_unparseable_instead_of_swallowing_rows():
    from ysh.tariffs.load import load_file

    lines = [tariff_line(start=f"20{y}-01-01", end=f"20{y}-12-31") for y in range(10, 20)]
    lines[3] = lines[3].replace(";Tarifa de Aplicação", ';"Tarifa de Aplicação', 1)
    loaded = load_file(("\n".join([HEADER, *lines]) + "\n").encode("utf-8"), "t.csv")
    assert loaded.tariffs == []
    assert [(q.reason, q.line) for q in loaded.quarantine] == [("unparseable_file", 0)]
    assert "broken quoting" in loaded.quarantine[0].detail


def test_utf16_files_and_leading_blank_lines_are_recognized():
    from ysh.tariffs.load import dataset_of, load_file

    data = ("\n\n" + HEADER + "\n" + tariff_line() + "\n").encode("utf-16")
    assert dataset_of(data) == "tariffs"
    assert len(load_file(data, "t.csv").tariffs) == 1
