"""The proposals pipeline end to end on a real PostgreSQL: catalog and tariff tables from
their own jobs, Medusa-like quotes, the batch run, and the numbers checked against the
domain functions."""

from datetime import date

import pytest

from ysh import db
from ysh.proposals import job
from ysh.proposals.billing import ProposalInput, evaluate
from ysh.proposals.assumptions import Assumptions
from ysh.proposals.generation import monthly_generation_kwh
from ysh.proposals.irradiance import get_irradiance
from ysh.samples.medusa import seed_medusa
from ysh.tariffs.store import book_from_warehouse

from ..conftest import query
from .conftest import CONSUMPTION, seed

pytestmark = pytest.mark.integration


def test_batch_evaluates_quotes_with_the_domain_numbers(platform):
    warehouse, settings = platform
    module, inverter = seed(warehouse)
    counts = job.run_batch(warehouse, settings)
    assert counts == {"propostas_enriched": 4, "propostas_analytics": 4, "kpis_b1_b3": 3}

    enriched = {r[0]: r for r in query(warehouse, "SELECT quote_id, system_kwp, inverter_kw, capex_brl, "
                                                  "te_brl_per_kwh, tusd_brl_per_kwh, fio_b_brl_per_kwh, "
                                                  "irradiance_source, ordered, unknown_skus, tariff_error, "
                                                  "quote_month FROM propostas_enriched")}
    q1 = enriched["q1"]
    kwp = 10 * module[2] / 1000
    assert q1[1] == pytest.approx(kwp) and q1[2] == pytest.approx(inverter[2] / 1000)
    capex = 10 * module[3] + inverter[3] + 1200.0 * kwp
    assert q1[3] == pytest.approx(capex)
    tariff = book_from_warehouse(warehouse).tariff_at("CEMIG-D", "B1", date(2026, 3, 15))
    assert q1[4:7] == (tariff.te_brl_per_kwh, tariff.tusd_brl_per_kwh, tariff.fio_b_brl_per_kwh)
    assert (q1[7], q1[8], q1[11]) == ("modelled", True, date(2026, 3, 1))
    assert enriched["q4"][9] == "ghost/NO-SUCH-SKU"
    assert "no tariffs for EQUATORIAL PA" in enriched["q3"][10]

    # the analytics are billing model v1 on exactly these inputs
    weather = get_irradiance(-19.92, -43.94, settings)
    generation = monthly_generation_kwh(weather, kwp, 20.0, 0.0, 14.0)
    a = Assumptions()
    expected = evaluate(ProposalInput(
        customer_class="B1", connection="bi", system_kwp=kwp, capex_brl=capex, generation_kwh_month=generation,
        consumption_kwh_month=CONSUMPTION, simultaneity=a.simultaneity_b1, te_brl_per_kwh=tariff.te_brl_per_kwh,
        tusd_brl_per_kwh=tariff.tusd_brl_per_kwh, fio_b_brl_per_kwh=tariff.fio_b_brl_per_kwh, icms_pct=18.0,
        pis_cofins_pct=a.pis_cofins_pct, access_request_date=date(2026, 3, 15), start_year=2026,
        tariff_escalation_pct_per_year=a.tariff_escalation_pct, discount_rate_pct=a.discount_rate_pct,
        om_pct_capex_per_year=a.om_pct_capex, inverter_replacement_year=a.inverter_replacement_year,
        inverter_replacement_pct_capex=a.inverter_replacement_pct))
    analytics = {r[0]: r for r in query(warehouse, "SELECT quote_id, error, npv_brl, irr_pct, payback_years, "
                                                   "yearly FROM propostas_analytics")}
    got = analytics["q1"]
    assert got[1] is None
    assert got[2] == pytest.approx(expected.kpis.npv_brl, rel=1e-9)
    assert got[3] == pytest.approx(expected.kpis.irr_pct, rel=1e-9)
    assert got[4] == pytest.approx(expected.kpis.payback_years, rel=1e-9)
    assert len(got[5]) == 25 and got[5][0]["calendar_year"] == 2026
    assert "no modules" in analytics["q4"][1] and "ghost/NO-SUCH-SKU" in analytics["q4"][1]
    assert analytics["q3"][1].startswith("no tariff") and analytics["q3"][2] is None

    kpis = {(r[0], r[1]): r[2:] for r in query(warehouse, "SELECT customer_class, state, quotes, orders, conversion "
                                                          "FROM kpis_b1_b3")}
    assert kpis[("B1", "MG")] == (2, 1, 0.5)
    assert kpis[("B3", "MG")] == (1, 0, 0.0)


def test_a_deleted_quote_leaves_no_rows_after_the_next_batch(platform):
    warehouse, settings = platform
    seed(warehouse)
    job.run_batch(warehouse, settings)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("DELETE FROM quote WHERE id = 'q4'")
        conn.commit()
    counts = job.run_batch(warehouse, settings)
    assert (counts["propostas_enriched"], counts["propostas_analytics"]) == (3, 3)
    assert query(warehouse, "SELECT quotes FROM kpis_b1_b3 WHERE customer_class = 'B1' AND state = 'MG'") == [(1,)]


def test_canceled_orders_do_not_convert_and_the_quote_day_is_sao_paulos(platform):
    warehouse, settings = platform
    seed(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("""UPDATE "order" SET status = 'canceled' WHERE id = 'o1'""")
        # 23:30 in São Paulo on March 31 is April 1 in UTC: the quote belongs to March
        conn.execute("UPDATE quote SET created_at = '2026-03-31 23:30-03' WHERE id = 'q2'")
        conn.commit()
    job.run_batch(warehouse, settings)
    assert query(warehouse, "SELECT ordered FROM propostas_enriched WHERE quote_id = 'q1'") == [(False,)]
    assert query(warehouse, "SELECT quote_month FROM propostas_enriched WHERE quote_id = 'q2'") == [(date(2026, 3, 1),)]
    assert query(warehouse, "SELECT orders FROM kpis_b1_b3 WHERE customer_class = 'B1' AND state = 'MG'") == [(0,)]


ANALYTICS = ("error", "npv_brl", "irr_pct", "payback_years", "discounted_payback_years", "roi",
             "year1_bill_without_solar_brl", "year1_bill_with_solar_brl", "year1_savings_brl", "yearly")


def analytics(warehouse) -> dict:
    return {r[0]: r[1:] for r in query(warehouse, f"SELECT quote_id, {', '.join(ANALYTICS)} FROM propostas_analytics")}


def test_the_graph_in_batches_gives_the_reference_graphs_numbers(platform):
    """Production (billing_vec over batches, several per run here) against the graph
    evaluating each quote with the month-by-month model, on Medusa-like quotes and the
    hand-made ones (no tariff, unknown SKU)."""
    warehouse, settings = platform
    seed(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        seed_medusa(conn, companies=6, quotes=90, seed=3, today=date(2026, 5, 15))
    job.run_batch(warehouse, settings, billing="reference")
    reference = analytics(warehouse)
    job.run_batch(warehouse, settings, batch_size=16)
    vectorized = analytics(warehouse)
    assert reference.keys() == vectorized.keys() and len(reference) == 94
    assert sum(r[0] is None for r in reference.values()) >= 80
    for quote_id, want in reference.items():
        got = vectorized[quote_id]
        assert got[0] == want[0], quote_id
        for a, b in zip(got[1:-1], want[1:-1]):
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-9, abs=1e-6), quote_id
        for r, w in zip(got[-1] or [], want[-1] or [], strict=True):
            assert r == pytest.approx(w, abs=0.0101), quote_id  # rounded to cents / Wh


def test_the_billing_choice_is_checked(platform):
    warehouse, settings = platform
    with pytest.raises(ValueError, match="billing must be"):
        job.run_batch(warehouse, settings, billing="loop")
