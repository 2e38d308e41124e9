"""The static HTML report of the proposal analytics, on a real PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from ysh.proposals.report import (
    EMPTY_ANALYTICS,
    ReportSummary,
    _years,
    build_report,
    fmt_brl,
    fmt_number,
    fmt_pct,
)

from ..conftest import query

pytestmark = pytest.mark.integration

ERROR_TEXT = "<b>sem tarifa</b> para a distribuidora & classe B1"


def _yearly(capex: float, savings1: float, *, years: int = 25, escalation: float = 0.05,
            degradation: float = 0.005, rate: float = 0.10) -> tuple[list[dict], float | None,
                                                                     float | None]:
    """Operating years 1..H like the pipeline stores them, and the simple and discounted
    paybacks (linear within the year the cumulative turns non-negative)."""
    rows, cum, disc = [], -capex, -capex
    payback = discounted_payback = None
    for y in range(1, years + 1):
        savings = savings1 * (1 + escalation) ** (y - 1) * (1 - degradation) ** (y - 1)
        cf = savings
        dcf = cf / (1 + rate) ** y
        if payback is None and cum + cf >= 0:
            payback = y - 1 + (-cum / cf)
        if discounted_payback is None and disc + dcf >= 0:
            discounted_payback = y - 1 + (-disc / dcf)
        cum += cf
        disc += dcf
        rows.append({"year": y, "calendar_year": 2025 + y, "savings_brl": round(savings, 2),
                     "cash_flow_brl": round(cf, 2), "cumulative_brl": round(cum, 2),
                     "discounted_cumulative_brl": round(disc, 2)})
    return rows, payback, discounted_payback


# quote id, class, state, municipality, utility, ordered, kWp, capex, year-1 savings
PROPOSALS = [
    ("Q-B1-001", "B1", "MG", "Belo Horizonte", "CEMIG-D", True, 4.4, 17_600.0, 4_800.0),
    ("Q-B1-002", "B1", "SP", "Campinas", "CPFL-PAULISTA", False, 3.3, 12_345.67, 2_500.0),
    ("Q-B3-001", "B3", "MG", "Uberlândia", "CEMIG-D", True, 15.0, 60_000.0, 25_000.0),
    ("Q-B1-003", "B1", "SP", "Santos", "CPFL-PIRATININGA", False, 8.0, 50_000.0, 900.0),
]
ERROR_QUOTE = ("Q-ERR-<b>", "B1", "RJ", "Niterói", "ENEL RJ", False, 5.0, 20_000.0, None)


def _insert_enriched(warehouse, p) -> None:
    qid, cls, uf, muni, util, ordered, kwp, capex, _ = p
    query(warehouse, """
        INSERT INTO propostas_enriched (quote_id, company_id, state, municipality, utility,
            customer_class, connection, quote_month, status, ordered, system_kwp, inverter_kw,
            modules, capex_brl, te_brl_per_kwh, tusd_brl_per_kwh, fio_b_brl_per_kwh,
            irradiance_source, generation_kwh_year, consumption_kwh_year)
        VALUES (%s, 'co-1', %s, %s, %s, %s, 'bi', %s, %s, %s, %s, %s, %s, %s,
                0.32, 0.45, 0.25, 'modelled', %s, %s) RETURNING quote_id""",
          (qid, uf, muni, util, cls, date(2026, 3, 1), "accepted" if ordered else "sent",
           ordered, kwp, kwp * 0.9, int(kwp / 0.55), capex, kwp * 1400, kwp * 1300))


def _seed(warehouse) -> dict[str, float | None]:
    paybacks = {}
    for p in PROPOSALS:
        qid, cls, uf, _, _, ordered, kwp, capex, savings = p
        _insert_enriched(warehouse, p)
        yearly, payback, dpayback = _yearly(capex, savings)
        paybacks[qid] = payback
        query(warehouse, """
            INSERT INTO propostas_analytics (quote_id, customer_class, state, quote_month,
                ordered, system_kwp, npv_brl, irr_pct, payback_years,
                discounted_payback_years, roi, year1_bill_without_solar_brl,
                year1_bill_with_solar_brl, year1_savings_brl, yearly)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
            RETURNING quote_id""",
              (qid, cls, uf, date(2026, 3, 1), ordered, kwp,
               yearly[-1]["discounted_cumulative_brl"], None if payback is None else 100 / payback,
               payback, dpayback, yearly[-1]["cumulative_brl"] / capex,
               savings * 1.15, savings * 0.15, savings, json.dumps(yearly)))
    _insert_enriched(warehouse, ERROR_QUOTE)
    query(warehouse, """
        INSERT INTO propostas_analytics (quote_id, customer_class, state, quote_month, ordered,
            system_kwp, error) VALUES (%s, 'B1', 'RJ', %s, false, 5.0, %s) RETURNING quote_id""",
          (ERROR_QUOTE[0], date(2026, 3, 1), ERROR_TEXT))
    # inserted out of order: the report sorts them
    for row in [("B3", "MG", date(2026, 3, 1), 1, 1, 1.0, 15.0, paybacks["Q-B3-001"], 41.0),
                ("B1", "SP", date(2026, 3, 1), 2, 0, 0.0, 11.3, paybacks["Q-B1-002"], 20.2),
                ("B1", "RJ", date(2026, 3, 1), 1, 0, 0.0, 5.0, None, None),
                ("B1", "MG", date(2026, 3, 1), 1, 1, 1.0, 4.4, paybacks["Q-B1-001"], 27.7)]:
        query(warehouse, """
            INSERT INTO kpis_b1_b3 (customer_class, state, month, quotes, orders, conversion,
                kwp, median_payback_years, median_irr_pct)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING state""", row)
    return paybacks


def test_the_seed_is_what_the_tests_claim():
    yearly, payback, _ = _yearly(17_600.0, 4_800.0)
    assert len(yearly) == 25
    assert yearly[2]["cumulative_brl"] < 0 <= yearly[3]["cumulative_brl"]  # years 3 → 4
    assert 3 < payback < 4
    assert _yearly(50_000.0, 900.0)[1] is None  # never paid back


def test_default_report_is_self_contained_and_complete(warehouse, tmp_path):
    paybacks = _seed(warehouse)
    out = tmp_path / "site" / "report.html"
    summary = build_report(warehouse, out)

    evaluated = sorted((p, q) for q, p in paybacks.items() if p is not None)
    median_quote = evaluated[(len(evaluated) - 1) // 2][1]
    assert median_quote == "Q-B1-001"
    assert summary == ReportSummary(path=out, proposals=5, errors=1, orders=2,
                                    chosen_quote_id="Q-B1-001")
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["report.html"]
    page = out.read_text("utf-8")

    # self-contained: plotly.js inline exactly once, nothing fetched from the network
    assert "plotly.js v" in page and page.count("* plotly.js v") == 1
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert "<script src=\"http" not in page
    assert 'id="fig-payback"' in page and 'id="fig-cash-flow"' in page

    # header totals
    for label in ("Propostas", "Avaliadas", "Com erro", "Pedidos", "Conversão",
                  "Potência total", "Payback mediano", "TIR mediana"):
        assert f'<div class="l">{label}</div>' in page
    assert '<div class="v">40,0 %</div>' in page  # 2 orders of 5
    assert '<div class="v">35,70 kWp</div>' in page  # 4.4 + 3.3 + 15 + 8 + 5
    assert f'<div class="v">{fmt_number(paybacks["Q-B1-001"], 1)} anos</div>' in page

    # charts: Portuguese labels, pt-BR separators, the never-paid-back note
    assert "Payback (anos)" in page and "Fluxo de caixa acumulado (R$)" in page
    assert '"separators":",."' in page
    assert "1 proposta(s) avaliada(s) sem payback" in page and "B1: 1" in page

    # the chosen proposal
    assert "Proposta <strong>Q-B1-001</strong>, escolhida por ter o payback mediano" in page
    assert "R$ 17.600,00" in page and "Belo Horizonte" in page

    # KPI table, sorted by class, state, month
    kpis = page[page.index('<table id="kpis">'):]
    kpis = kpis[:kpis.index("</table>")]
    order = [m for m in re.findall(r"<tr><td>(B\d)</td><td>([A-Z]{2})</td>", kpis)]
    assert order == [("B1", "MG"), ("B1", "RJ"), ("B1", "SP"), ("B3", "MG")]
    assert "mar/2026" in kpis and "100,0 %" in kpis and "41,0 %" in kpis

    # errors listed with their reason, escaped
    assert "&lt;b&gt;sem tarifa&lt;/b&gt; para a distribuidora &amp; classe B1" in page
    assert "Q-ERR-&lt;b&gt;" in page and "Niterói" in page
    assert "<b>sem tarifa" not in page and "Q-ERR-<b>" not in page


def test_a_chosen_quote_and_pt_br_money(warehouse, tmp_path):
    _seed(warehouse)
    out = tmp_path / "report.html"
    out.write_text("old")
    summary = build_report(warehouse, out, quote_id="Q-B1-002")
    assert summary.chosen_quote_id == "Q-B1-002"
    page = out.read_text("utf-8")
    assert "Proposta <strong>Q-B1-002</strong>, escolhida pelo usuário" in page
    assert "R$ 12.345,67" in page  # its capex
    assert "Campinas" in page

    # a never-paid-back proposal can be drawn: no payback marker, still a chart
    build_report(warehouse, out, quote_id="Q-B1-003")
    page = out.read_text("utf-8")
    assert 'id="fig-cash-flow"' in page and "Payback simples: " not in page


def test_unknown_or_failed_quote_ids_raise_naming_them(warehouse, tmp_path):
    _seed(warehouse)
    out = tmp_path / "report.html"
    with pytest.raises(ValueError, match="Q-NOPE-42"):
        build_report(warehouse, out, quote_id="Q-NOPE-42")
    with pytest.raises(ValueError, match="could not be evaluated.*sem tarifa"):
        build_report(warehouse, out, quote_id=ERROR_QUOTE[0])
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_empty_analytics_raise(warehouse, tmp_path):
    out = tmp_path / "report.html"
    with pytest.raises(ValueError) as caught:
        build_report(warehouse, out)
    assert str(caught.value) == EMPTY_ANALYTICS == (
        "no evaluated proposals in propostas_analytics; run the proposals pipeline first")
    # only failures: still nothing to report on
    query(warehouse, """
        INSERT INTO propostas_analytics (quote_id, customer_class, state, quote_month, ordered,
            system_kwp, error) VALUES ('Q-1', 'B1', 'MG', '2026-03-01', false, 4, 'x')
        RETURNING quote_id""")
    with pytest.raises(ValueError, match="no evaluated proposals"):
        build_report(warehouse, out)
    assert not out.exists()


def test_pt_br_formatting_and_year_zero():
    assert fmt_brl(12345.67) == "R$ 12.345,67"
    assert fmt_brl(-1234.5) == "-R$ 1.234,50"
    assert fmt_brl(-0.001) == "R$ 0,00"
    assert fmt_brl(None) == "—"
    assert fmt_number(1234567) == "1.234.567"
    assert fmt_number(3.14159, 2) == "3,14"
    assert fmt_pct(12.345) == "12,3 %"
    yearly, _, _ = _yearly(17_600.0, 4_800.0)
    years = _years({"yearly": yearly})
    assert years[0]["year"] == 0 and years[0]["cumulative_brl"] == pytest.approx(-17_600.0)
    assert [y["year"] for y in years] == list(range(26))
