"""The vectorized billing model gives the reference model's numbers, proposal by proposal."""

import math
from datetime import date

import numpy as np
import numpy_financial as npf
import pytest

from ysh.proposals.billing import evaluate
from ysh.proposals.billing_vec import Batch, evaluate_batch, irr_batch
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
