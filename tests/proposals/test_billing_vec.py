"""The vectorized billing model gives the reference model's numbers, proposal by proposal."""

import math
import random
from datetime import date, timedelta

import numpy as np
import numpy_financial as npf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ysh.proposals.billing import ProposalInput, evaluate, fio_b_share_for
from ysh.proposals.billing_vec import Batch, _share, evaluate_batch, irr_batch
from ysh.samples.proposals import random_proposals

from .test_billing import proposal


def close(a, b):
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or math.isnan(b)
    return b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def check_equal(proposals):
    batch = evaluate_batch(Batch.of(proposals))
    for i, p in enumerate(proposals):
        ref = evaluate(p)
        years = ref.years
        for name in ("generation_kwh", "compensated_kwh", "credits_expired_kwh", "bill_without_solar_brl",
                     "bill_with_solar_brl", "fio_b_charge_brl", "savings_brl"):
            got = getattr(batch, name)[i, :len(years)]
            want = [getattr(y, name) for y in years]
            assert np.allclose(got, want, rtol=1e-9, atol=1e-6), (i, name)
        assert np.allclose(batch.cash_flows[i, :len(ref.cash_flows)], ref.cash_flows, rtol=1e-9, atol=1e-6)
        k = ref.kpis
        assert close(k.npv_brl, batch.npv_brl[i]), i
        assert close(None if k.irr_pct is None else k.irr_pct / 100, batch.irr[i]), (i, k.irr_pct, batch.irr[i])
        assert close(k.payback_years, batch.payback_years[i]), i
        assert close(k.discounted_payback_years, batch.discounted_payback_years[i]), i
        assert close(k.roi, batch.roi[i]), i


def test_random_realistic_proposals_are_equal():
    check_equal(random_proposals(150, seed=11))


def test_the_hand_computed_edge_cases_are_equal():
    check_equal([
        proposal(), proposal(horizon_years=7), proposal(access_request_date=date(2022, 5, 1), start_year=2044),
        proposal(consumption_kwh_month=[20.0] * 12, generation_kwh_month=[10.0] * 12, simultaneity=0.5),
        proposal(generation_kwh_month=[200.0] * 6 + [0.0] * 6, horizon_years=2),
        proposal(generation_kwh_month=[0.0] * 12), proposal(start_year=2023, horizon_years=10, connection="tri"),
        proposal(horizon_years=12, inverter_replacement_year=10, inverter_replacement_pct_capex=90.0,
                 om_pct_capex_per_year=3.0),
    ])


@pytest.mark.parametrize("flows", [[-100, 39, 59, 55, 20], [-100, 0, 0, 74], [-100, 100, 0, -7],
                                   [-100, 100, 0, 7], [-5, 10.5, 1, -8, 1], [-100, -10, 0], [-100, 20, 20, 20],
                                   [-20000, 1.39]])
def test_irr_batch_agrees_with_numpy_financial(flows):
    got = irr_batch(np.array([flows], dtype=float))[0]
    want = npf.irr(flows)
    assert (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


def test_every_proposal_of_a_10k_realistic_sample_is_equal():
    check_equal(random_proposals(10_000, seed=2026))


def edge_proposal(rng: random.Random) -> ProposalInput:
    """A valid proposal from the corners of the rules: months without consumption or
    generation, grid draw around the minimum, access requested around 2023-01-07, operating
    years across the Fio B steps (2023–2029) and the end of the grandfathering (2045/2046),
    short and long horizons, zero taxes, falling tariffs, negative discount rates."""

    def months(scale: float) -> list[float]:
        return [rng.choice([0.0, rng.uniform(0, 120), rng.uniform(0, scale)]) for _ in range(12)]

    consumption = rng.choice([[0.0] * 12, months(150), months(3000), [rng.uniform(0, 2000)] * 12])
    generation = rng.choice([[0.0] * 12, months(800), months(4000), [rng.uniform(0, 800)] * 12])
    access = rng.choice([date(2023, 1, 6), date(2023, 1, 7), date(2020, 1, 1) + timedelta(days=rng.randrange(3650))])
    horizon = rng.randint(1, 30)
    return ProposalInput(
        customer_class=rng.choice(["B1", "B3"]), connection=rng.choice(["mono", "bi", "tri"]),
        system_kwp=rng.uniform(0.5, 70), capex_brl=rng.uniform(500, 300_000),
        generation_kwh_month=generation, consumption_kwh_month=consumption, simultaneity=rng.choice(
            [0.0, 1.0, rng.uniform(0, 1)]),
        te_brl_per_kwh=rng.uniform(0, 0.5), tusd_brl_per_kwh=rng.uniform(0, 0.6), fio_b_brl_per_kwh=rng.uniform(0, 0.3),
        icms_pct=rng.choice([0.0, 18.0, rng.uniform(0, 40)]), pis_cofins_pct=rng.choice([0.0, rng.uniform(0, 10)]),
        access_request_date=access, start_year=rng.choice([access.year, rng.randint(2020, 2030),
                                                           rng.randint(2040, 2047)]),
        horizon_years=horizon, degradation_pct_per_year=rng.choice([0.0, rng.uniform(0, 3)]),
        tariff_escalation_pct_per_year=rng.uniform(-10, 12), discount_rate_pct=rng.uniform(-20, 25),
        om_pct_capex_per_year=rng.choice([0.0, rng.uniform(0, 5)]),
        inverter_replacement_year=rng.choice([None, rng.randint(1, horizon)]),
        inverter_replacement_pct_capex=rng.uniform(0, 40), fio_b_share_after_2028=rng.choice([1.0, rng.uniform(0, 1)]),
    )


def test_randomized_proposals_from_the_corners_of_the_rules_are_equal():
    rng = random.Random(14300)
    proposals = [edge_proposal(rng) for _ in range(3_000)]
    # the corners are really there
    assert sum(p.grandfathered and p.start_year + p.horizon_years > 2046 for p in proposals) > 100
    assert sum(not any(p.consumption_kwh_month) for p in proposals) > 100
    assert sum(p.start_year <= 2028 < p.start_year + p.horizon_years and not p.grandfathered
               for p in proposals) > 100
    check_equal(proposals)


monthly = st.lists(st.one_of(st.just(0.0), st.floats(0, 150), st.floats(0, 4000)), min_size=12, max_size=12)


@st.composite
def proposals(draw) -> ProposalInput:
    horizon = draw(st.integers(1, 30))
    return ProposalInput(
        customer_class=draw(st.sampled_from(["B1", "B3"])), connection=draw(st.sampled_from(["mono", "bi", "tri"])),
        system_kwp=draw(st.floats(0.1, 75)), capex_brl=draw(st.floats(100, 500_000)),
        generation_kwh_month=draw(monthly), consumption_kwh_month=draw(monthly), simultaneity=draw(st.floats(0, 1)),
        te_brl_per_kwh=draw(st.floats(0, 1)), tusd_brl_per_kwh=draw(st.floats(0, 1)),
        fio_b_brl_per_kwh=draw(st.floats(0, 0.5)), icms_pct=draw(st.floats(0, 40)), pis_cofins_pct=draw(st.floats(0, 10)),
        access_request_date=draw(st.dates(date(2019, 1, 1), date(2027, 12, 31))),
        start_year=draw(st.integers(2019, 2050)), horizon_years=horizon,
        degradation_pct_per_year=draw(st.floats(0, 5)), tariff_escalation_pct_per_year=draw(st.floats(-10, 15)),
        discount_rate_pct=draw(st.floats(-20, 30)), om_pct_capex_per_year=draw(st.floats(0, 5)),
        inverter_replacement_year=draw(st.none() | st.integers(1, horizon)),
        inverter_replacement_pct_capex=draw(st.floats(0, 50)), fio_b_share_after_2028=draw(st.floats(0, 1)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(proposals(), min_size=1, max_size=8))
def test_any_valid_proposals_are_equal(batch):
    check_equal(batch)


def test_the_kernels_fio_b_share_is_the_reference_rule():
    cases = [(grandfathered, year, after) for grandfathered in (False, True) for year in range(2000, 2101)
             for after in (1.0, 0.0, 0.37)]
    b = Batch.of([proposal(access_request_date=date(2022, 1, 1) if g else date(2024, 1, 1), fio_b_share_after_2028=a)
                  for g, _, a in cases])
    got = _share(b, np.array([year for _, year, _ in cases]))
    p = {g: proposal(access_request_date=date(2022, 1, 1) if g else date(2024, 1, 1)) for g in (False, True)}
    want = [fio_b_share_for(p[g].model_copy(update={"fio_b_share_after_2028": a}), year) for g, year, a in cases]
    assert got.tolist() == want


def test_a_gain_too_small_for_an_irr_gives_none_in_both_models():
    """Found by hypothesis: a first-year gain of about 1e-322 on a capex of 100 makes
    numpy-financial's companion matrix overflow (LinAlgError); both models say there is
    no IRR instead of crashing the batch."""
    flat = (0.0,) * 12
    tiny = ProposalInput(customer_class="B1", connection="mono", system_kwp=1.0, capex_brl=100.0,
                         generation_kwh_month=(*flat[:11], 1.0), consumption_kwh_month=(*flat[:11], 31.0),
                         simultaneity=0.0, te_brl_per_kwh=0.0, tusd_brl_per_kwh=5e-324, fio_b_brl_per_kwh=0.0,
                         icms_pct=0.0, pis_cofins_pct=0.0, access_request_date=date(2019, 1, 1), start_year=2019,
                         horizon_years=1, degradation_pct_per_year=0.0, tariff_escalation_pct_per_year=0.0,
                         discount_rate_pct=0.0, om_pct_capex_per_year=0.0, inverter_replacement_year=None,
                         inverter_replacement_pct_capex=0.0, fio_b_share_after_2028=0.0)
    assert evaluate(tiny).kpis.irr_pct is None
    check_equal([tiny])
