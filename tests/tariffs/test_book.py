from datetime import date

import pytest

from ysh.tariffs.aneel import COMPONENT_HEADER, FlagMonth, parse_fio_b, parse_tariffs
from ysh.tariffs.book import TariffBook, TariffLookupError, split_overlaps
from ysh.tariffs.lei14300 import classify_dg, fio_b_share

from .test_aneel import HEADER, component, tariff_line


def tariffs(*lines):
    return parse_tariffs(("\n".join([HEADER, *lines]) + "\n").encode(), "tarifas.csv").rows


PERIODS = [
    tariff_line(start="2023-05-28", end="2024-05-27", tusd="440,00", te="270,00"),
    tariff_line(start="2024-05-28", end="2025-05-27", tusd="460,00", te="280,00"),
    tariff_line(start="2025-05-28", end="2026-05-27", tusd="481,25", te="289,31"),
    tariff_line(subgroup="B3", klass="Comercial, Serviços e Outras Atividades", subclass="Comercial",
                start="2025-05-28", end="2026-05-27", tusd="470,00", te="289,31"),
    tariff_line(subclass="Baixa Renda", start="2025-05-28", end="2026-05-27", tusd="300,00", te="180,00"),
]


def fio_b(*lines):
    data = "\n".join([";".join(COMPONENT_HEADER), *lines]).encode()
    return parse_fio_b(data, "componentes.csv").rows


@pytest.fixture()
def book():
    return TariffBook(tariffs(*PERIODS), fio_b(component(value="183,42")),
                      [FlagMonth(date(2025, 6, 1), "Vermelha P1", 0.0446, "b.csv", 2),
                       FlagMonth(date(2025, 5, 1), "Amarela", 0.01885, "b.csv", 3)])


@pytest.mark.parametrize(
    "on, te, tusd",
    [(date(2024, 5, 27), 0.27, 0.44), (date(2024, 5, 28), 0.28, 0.46), (date(2025, 5, 27), 0.28, 0.46),
     (date(2025, 5, 28), 0.28931, 0.48125), (date(2026, 5, 27), 0.28931, 0.48125)],
)
def test_point_in_time_lookup_across_period_boundaries(book, on, te, tusd):
    at = book.tariff_at("CEMIG-D", "B1", on)
    assert (at.te_brl_per_kwh, at.tusd_brl_per_kwh) == (te, tusd)


def test_lookup_is_accent_and_case_insensitive_and_brings_fio_b(book):
    at = book.tariff_at("cemig-d", "b1", date(2025, 10, 1), modality="CONVENCIONAL")
    assert at.fio_b_brl_per_kwh == 0.18342
    assert at.resolution.startswith("RESOLUÇÃO")


def test_b1_defaults_to_residencial_not_baixa_renda(book):
    assert book.tariff_at("CEMIG-D", "B1", date(2025, 10, 1)).tusd_brl_per_kwh == 0.48125
    assert book.tariff_at("CEMIG-D", "B1", date(2025, 10, 1), subclass="Baixa Renda").tusd_brl_per_kwh == 0.30


def test_b3_lookup_and_no_fio_b_published(book):
    at = book.tariff_at("CEMIG-D", "B3", date(2025, 10, 1))
    assert (at.tusd_brl_per_kwh, at.fio_b_brl_per_kwh) == (0.47, None)


def test_no_tariff_is_a_clear_error(book):
    with pytest.raises(TariffLookupError, match="no Tarifa de Aplicação valid"):
        book.tariff_at("CEMIG-D", "B1", date(2020, 1, 1))
    with pytest.raises(TariffLookupError, match="no tariffs for LIGHT SESA"):
        book.tariff_at("LIGHT SESA", "B1", date(2025, 1, 1))


def test_several_different_tariffs_is_a_clear_error():
    rows = tariffs(tariff_line(subgroup="B3", klass="Comercial", subclass="Comercial", tusd="470,00"),
                   tariff_line(subgroup="B3", klass="Industrial", subclass="Industrial", tusd="471,00"))
    with pytest.raises(TariffLookupError, match="2 different tariffs.*Industrial"):
        TariffBook(rows).tariff_at("CEMIG-D", "B3", date(2025, 10, 1))
    assert TariffBook(rows).tariff_at("CEMIG-D", "B3", date(2025, 10, 1), tariff_class="Industrial").tusd_brl_per_kwh == 0.471


def test_overlapping_validity_quarantines_both_rows():
    rows = tariffs(*PERIODS, tariff_line(start="2025-01-01", end="2025-12-31", tusd="999,00"))
    kept, quarantined, duplicates = split_overlaps(rows)
    assert sorted((q.line, q.reason) for q in quarantined) == [
        (3, "overlapping_validity"), (4, "overlapping_validity"), (7, "overlapping_validity")]
    assert "line 7" in next(q for q in quarantined if q.line == 4).detail
    assert len(kept) == 3 and duplicates == 0


def test_an_exact_repeat_is_a_duplicate_not_an_overlap():
    kept, quarantined, duplicates = split_overlaps(tariffs(PERIODS[0], PERIODS[0]))
    assert (len(kept), quarantined, duplicates) == (1, [], 1)


def test_open_ended_period_overlaps_a_later_one():
    rows = tariffs(tariff_line(start="2025-05-28", end=""), tariff_line(start="2026-05-28", end=""))
    assert len(split_overlaps(rows)[1]) == 2


def test_monthly_tariff_is_pro_rata_across_a_readjustment(book):
    may = book.monthly("CEMIG-D", "B1", date(2025, 5, 1))
    # 27 days at 0.46 + 4 days at 0.48125 over 31 days
    assert may.tusd_brl_per_kwh == round((27 * 0.46 + 4 * 0.48125) / 31, 6)
    assert (may.flag, may.flag_addon_brl_per_kwh) == ("Amarela", 0.01885)
    assert may.total_brl_per_kwh == round(may.te_brl_per_kwh + may.tusd_brl_per_kwh + 0.01885, 6)


def test_bandeira_joins_each_month(book):
    june = book.monthly("CEMIG-D", "B1", date(2025, 6, 1))
    assert (june.flag, june.total_brl_per_kwh) == ("Vermelha P1", round(0.28931 + 0.48125 + 0.0446, 6))
    july = book.monthly("CEMIG-D", "B1", date(2025, 7, 1))
    assert (july.flag, july.flag_addon_brl_per_kwh) == (None, 0.0)


def test_months_cover_whole_months_only(book):
    months = [m.month for m in book.months("CEMIG-D", "B1")]
    assert months[0] == date(2023, 6, 1) and months[-1] == date(2026, 4, 1)
    assert len(months) == len(set(months)) == 35


# --- Lei 14.300 -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "power_kw, source, requested, expected",
    [(5, "solar", None, "micro"), (75, "solar", None, "micro"), (75.1, "solar", None, "mini"),
     (3000, "solar", None, "mini"), (3000.1, "solar", None, "out_of_scope"),
     (4500, "solar", date(2022, 6, 1), "mini"), (4500, "biomassa", None, "mini"),
     (5000.1, "hidrica", None, "out_of_scope")],
)
def test_classify_dg(power_kw, source, requested, expected):
    assert classify_dg(power_kw, source, requested) == expected


@pytest.mark.parametrize("power_kw, source", [(0, "solar"), (-5, "solar"), (10, "nuclear")])
def test_classify_dg_refuses_impossible_systems(power_kw, source):
    with pytest.raises(ValueError):
        classify_dg(power_kw, source)


def test_fio_b_share_is_60_percent_in_2026():
    assert fio_b_share(2026) == 0.60


def test_fio_b_share_schedule_and_the_2029_assumption():
    assert [fio_b_share(y) for y in range(2022, 2030)] == [0.0, 0.15, 0.30, 0.45, 0.60, 0.75, 0.90, 1.0]
    assert fio_b_share(2030, after_2028=0.95) == 0.95
