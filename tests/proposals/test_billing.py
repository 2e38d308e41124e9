"""Billing model v1: hand-computed cases for each rule, KPIs against numpy-financial,
invariants with hypothesis."""

from datetime import date

import numpy_financial as npf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ysh.proposals.billing import CreditBank, ProposalInput, evaluate, payback

BASE = dict(
    customer_class="B1", connection="mono", system_kwp=4.0, capex_brl=12_000.0,
    generation_kwh_month=[200.0] * 12, consumption_kwh_month=[100.0] * 12, simultaneity=0.0,
    te_brl_per_kwh=0.3, tusd_brl_per_kwh=0.5, fio_b_brl_per_kwh=0.2, icms_pct=0.0, pis_cofins_pct=0.0,
    access_request_date=date(2024, 3, 1), start_year=2030, horizon_years=3, degradation_pct_per_year=0.0,
    tariff_escalation_pct_per_year=0.0, discount_rate_pct=10.0,
)


def proposal(**changes) -> ProposalInput:
    return ProposalInput(**{**BASE, **changes})


def approx(value):
    return pytest.approx(value, rel=1e-12, abs=1e-9)


def test_new_unit_compensates_all_grid_draw_and_pays_fio_b():
    year1 = evaluate(proposal()).years[0]
    # P = 0.8; bill0 = 100·0.8 = 80/month; comp = 100, energy 0, Fio B = 100·0.2·1.0 (2030)
    assert year1.bill_without_solar_brl == approx(960.0)
    assert year1.fio_b_charge_brl == approx(240.0)
    assert year1.bill_with_solar_brl == approx(240.0)
    assert year1.savings_brl == approx(720.0)
    assert year1.credit_balance_kwh == approx(1200.0)  # 100 kWh of unused injection a month


def test_below_the_minimum_the_new_unit_pays_the_minimum_and_banks_everything():
    p = proposal(consumption_kwh_month=[20.0] * 12, generation_kwh_month=[10.0] * 12, simultaneity=0.5)
    year1 = evaluate(p).years[0]
    # own = 5, need = 15 < 30 → comp 0, energy = 30·0.8 = 24 = bill0 (max(20, 30)·0.8)
    assert (year1.bill_with_solar_brl, year1.bill_without_solar_brl) == (approx(288.0), approx(288.0))
    assert year1.savings_brl == approx(0.0)
    assert year1.compensated_kwh == 0.0
    assert year1.credit_balance_kwh == approx(60.0)  # 5 kWh injected a month, all banked


def test_taxes_gross_up_the_price_and_the_fio_b():
    year1 = evaluate(proposal(icms_pct=18.0, pis_cofins_pct=5.0)).years[0]
    assert year1.bill_without_solar_brl == approx(12 * 100 * 0.8 / 0.77)
    assert year1.fio_b_charge_brl == approx(12 * 100 * 0.2 / 0.77)


def test_escalation_and_degradation_apply_from_the_second_year():
    p = proposal(tariff_escalation_pct_per_year=5.0, degradation_pct_per_year=0.5,
                 generation_kwh_month=[50.0] * 12, horizon_years=2)
    years = evaluate(p).years
    assert years[1].generation_kwh == approx(12 * 50 * 0.995)
    assert years[1].bill_without_solar_brl == approx(12 * 100 * 0.8 * 1.05)
    # need 100 ≥ 30: comp = 49.75 (year 2), energy (100 − 49.75)·0.84, Fio B 49.75·0.2·1.05
    assert years[1].bill_with_solar_brl == approx(12 * ((100 - 49.75) * 0.84 + 49.75 * 0.2 * 1.05))


def test_fio_b_share_follows_the_law_year_by_year():
    p = proposal(start_year=2023, horizon_years=8, access_request_date=date(2023, 1, 7),
                 fio_b_share_after_2028=0.95)
    shares = [y.fio_b_charge_brl / (1200 * 0.2) for y in evaluate(p).years]
    assert shares == [approx(s) for s in (0.15, 0.30, 0.45, 0.60, 0.75, 0.90, 0.95, 0.95)]


def test_grandfathered_unit_keeps_the_minimum_and_no_fio_b_until_2045():
    p = proposal(access_request_date=date(2023, 1, 6), start_year=2045, horizon_years=2)
    y2045, y2046 = evaluate(p).years
    # 2045: comp = min(200, 100 − 30) = 70; energy = max(30, 30)·0.8 = 24; no Fio B
    assert (y2045.compensated_kwh, y2045.fio_b_charge_brl) == (approx(840.0), 0.0)
    assert y2045.bill_with_solar_brl == approx(12 * 24.0)
    # 2046: as a new unit with share 100 %: comp 100, energy 0, Fio B 100·0.2
    assert y2046.compensated_kwh == approx(1200.0)
    assert y2046.bill_with_solar_brl == approx(12 * 20.0)


def test_injection_first_then_credits_oldest_first():
    p = proposal(generation_kwh_month=[200.0] * 6 + [0.0] * 6, fio_b_brl_per_kwh=0.0, horizon_years=1)
    year1 = evaluate(p).years[0]
    assert year1.credit_balance_kwh == approx(0.0)  # 6 × 100 banked, 6 × 100 drawn back
    assert year1.compensated_kwh == approx(1200.0)
    assert year1.bill_with_solar_brl == approx(0.0)


def test_credits_expire_after_60_months():
    p = proposal(horizon_years=7)
    years = evaluate(p).years
    assert [y.credits_expired_kwh for y in years] == [0, 0, 0, 0, 0, approx(1100.0), approx(1200.0)]
    assert years[5].credit_balance_kwh == approx(6100.0)  # lots of months 11..71


def test_credit_bank_lots():
    bank = CreditBank()
    bank.add(0, 50.0)
    bank.add(10, 30.0)
    bank.take(60.0)  # the whole lot of month 0, then 10 of month 10
    assert [list(lot) for lot in bank.lots] == [[10, 20.0]]
    assert bank.expire(70) == 0.0  # usable up to and including month 70
    assert bank.expire(71) == 20.0


def test_cash_flows_and_kpis_match_numpy_financial():
    p = proposal(horizon_years=10, om_pct_capex_per_year=1.0, inverter_replacement_year=8,
                 inverter_replacement_pct_capex=15.0, capex_brl=3000.0)
    result = evaluate(p)
    flows = result.cash_flows
    assert flows[0] == -3000.0
    assert flows[1] == approx(720.0 - 30.0)
    assert flows[8] == approx(720.0 - 30.0 - 450.0)
    assert result.kpis.npv_brl == approx(npf.npv(0.10, flows))
    assert result.kpis.irr_pct == approx(npf.irr(flows) * 100)
    assert result.kpis.roi == approx(sum(flows) / 3000.0)
    assert result.kpis.payback_years == approx(4 + (3000 - 4 * 690) / 690)
    assert [y.cumulative_brl for y in result.years][-1] == approx(sum(flows))


def test_payback_is_linear_within_the_year_and_none_when_never():
    assert payback([-1000.0, 300.0, 300.0, 300.0, 300.0]) == approx(3 + 100 / 300)
    discounted = payback([-1000.0, 600.0, 600.0], 0.10)
    assert discounted == approx(1 + (1000 - 600 / 1.1) / (600 / 1.21))
    assert payback([-1000.0, 100.0, 100.0]) is None
    result = evaluate(proposal(generation_kwh_month=[0.0] * 12))
    assert (result.kpis.payback_years, result.kpis.irr_pct) == (None, None)


@pytest.mark.parametrize("field, value, message", [
    ("generation_kwh_month", [100.0] * 11, "12 monthly values"),
    ("consumption_kwh_month", [100.0] * 11 + [-1.0], "months [12]"),
    ("customer_class", "A4", "customer_class"),
    ("connection", "quad", "connection"),
    ("system_kwp", 3500.0, "beyond the minigeração limit"),
    ("capex_brl", -1.0, "capex_brl"),
    ("simultaneity", 1.5, "simultaneity"),
    ("icms_pct", 100.0, "icms_pct"),
    ("inverter_replacement_year", 30, "beyond horizon_years"),
])
def test_invalid_input_names_the_field(field, value, message):
    with pytest.raises(ValidationError) as error:
        proposal(**{field: value})
    assert message in str(error.value)


@pytest.mark.parametrize("field, value", [("capex_brl", float("inf")), ("te_brl_per_kwh", float("nan")),
                                          ("generation_kwh_month", [True] * 12), ("simultaneity", False)])
def test_infinite_and_boolean_numbers_are_refused(field, value):
    with pytest.raises(ValidationError, match=field):
        proposal(**{field: value})


def test_taxes_adding_up_to_100_percent_are_refused():
    with pytest.raises(ValidationError, match="icms_pct \\+ pis_cofins_pct must stay below 100"):
        proposal(icms_pct=96.0, pis_cofins_pct=5.0)


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="capex_usd"):
        proposal(capex_usd=1.0)


# --------------------------------------------------------------------------------------
# invariants
# --------------------------------------------------------------------------------------

months = st.lists(st.floats(min_value=0, max_value=2_000, allow_nan=False), min_size=12, max_size=12)
grid = dict(
    connection=st.sampled_from(["mono", "bi", "tri"]),
    consumption_kwh_month=months,
    simultaneity=st.floats(min_value=0, max_value=1),
    te_brl_per_kwh=st.floats(min_value=0.1, max_value=0.6),
    tusd_brl_per_kwh=st.floats(min_value=0.2, max_value=0.8),
    icms_pct=st.floats(min_value=0, max_value=30),
    pis_cofins_pct=st.floats(min_value=0, max_value=10),
    access_request_date=st.dates(min_value=date(2018, 1, 1), max_value=date(2026, 12, 31)),
    start_year=st.integers(min_value=2023, max_value=2048),
    tariff_escalation_pct_per_year=st.floats(min_value=-5, max_value=15),
    degradation_pct_per_year=st.floats(min_value=0, max_value=2),
    horizon_years=st.integers(min_value=1, max_value=8),
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(draw, **fixed):
    values = {k: draw(v) for k, v in grid.items()}
    values["fio_b_brl_per_kwh"] = draw(st.floats(min_value=0, max_value=values["tusd_brl_per_kwh"]))
    return proposal(**{**values, **fixed})


@FAST
@given(st.data())
def test_zero_generation_gives_zero_savings(data):
    result = evaluate(build(data.draw, generation_kwh_month=[0.0] * 12))
    assert all(abs(y.savings_brl) < 1e-6 for y in result.years)


@FAST
@given(st.data(), months)
def test_savings_never_exceed_the_bill_without_solar(data, generation):
    for y in evaluate(build(data.draw, generation_kwh_month=generation)).years:
        assert y.savings_brl <= y.bill_without_solar_brl + 1e-6
        assert y.bill_with_solar_brl >= -1e-9


@FAST
@given(st.data(), months, st.lists(st.floats(min_value=0, max_value=500), min_size=12, max_size=12),
       st.lists(st.floats(min_value=0, max_value=1_000), min_size=12, max_size=12))
def test_more_generation_never_lowers_savings_while_grid_draw_stays_above_the_minimum(data, generation, extra,
                                                                                    slack):
    base = build(data.draw, generation_kwh_month=generation)
    more = [g + e for g, e in zip(generation, extra)]
    # consumption such that the grid draw stays at or above the minimum in every month, with
    # either generation: c − min(g·s, c) ≥ min_kwh ⇐ c = min_kwh + g_high·s + slack. A
    # thousandth of a kWh keeps "at the minimum" from rounding to just below it, where the
    # rule changes (below the minimum nothing is compensated and the minimum is billed).
    consumption = tuple(base.min_kwh + g * base.simultaneity + u + 1e-3 for g, u in zip(more, slack))
    low = base.model_copy(update={"consumption_kwh_month": consumption})
    high = low.model_copy(update={"generation_kwh_month": tuple(more)})
    for p in (low, high):
        assert all(c - min(g * p.simultaneity, c) >= p.min_kwh - 1e-9
                   for c, g in zip(p.consumption_kwh_month, p.generation_kwh_month))
    for a, b in zip(evaluate(low).years, evaluate(high).years):
        assert b.savings_brl >= a.savings_brl - 1e-6
