"""Realistic random proposals (for the benchmark and the equality tests of the two
billing implementations); everything is a function of the seed."""

from __future__ import annotations

import random
from datetime import date, timedelta

from ..proposals.billing import ProposalInput

#: share of the yearly yield per month in Southeast Brazil (kWh/kWp, Jan..Dec), from the
#: modelled irradiance of Belo Horizonte; summer months lower than the winter dry season
#: would suggest because of cloud cover.
MONTHLY_YIELD_SHAPE = (0.088, 0.085, 0.087, 0.081, 0.077, 0.072, 0.078, 0.087, 0.085, 0.087, 0.085, 0.088)


def random_proposal(rng: random.Random) -> ProposalInput:
    consumption = rng.uniform(150, 3000)
    season = [consumption * (1 + 0.15 * rng.uniform(-1, 1)) for _ in range(12)]
    yield_kwh_per_kwp = rng.uniform(1250, 1600)
    kwp = round(consumption * 12 * rng.uniform(0.6, 1.3) / yield_kwh_per_kwp, 2)
    generation = [kwp * yield_kwh_per_kwp * share for share in MONTHLY_YIELD_SHAPE]
    tusd = rng.uniform(0.30, 0.50)
    access = date(2021, 1, 1) + timedelta(days=rng.randrange(0, 6 * 365))
    return ProposalInput(
        customer_class=rng.choice(["B1", "B3"]), connection=rng.choice(["mono", "bi", "tri"]),
        system_kwp=kwp, capex_brl=round(kwp * 1000 * rng.uniform(3.2, 5.0), 2),
        generation_kwh_month=tuple(generation), consumption_kwh_month=tuple(season),
        simultaneity=rng.uniform(0.1, 0.5), te_brl_per_kwh=rng.uniform(0.24, 0.36), tusd_brl_per_kwh=tusd,
        fio_b_brl_per_kwh=tusd * rng.uniform(0.3, 0.5), icms_pct=rng.choice([0.0, 12.0, 18.0, 20.0, 25.0]),
        pis_cofins_pct=rng.uniform(3.0, 9.0), access_request_date=access, start_year=access.year + rng.randint(0, 1),
        horizon_years=25, degradation_pct_per_year=rng.uniform(0.4, 0.8),
        tariff_escalation_pct_per_year=rng.uniform(3.0, 8.0), discount_rate_pct=rng.uniform(8.0, 14.0),
        om_pct_capex_per_year=rng.uniform(0.5, 1.5), inverter_replacement_year=rng.randint(10, 15),
        inverter_replacement_pct_capex=rng.uniform(8.0, 20.0),
    )


def random_proposals(n: int, seed: int = 7) -> list[ProposalInput]:
    rng = random.Random(seed)
    return [random_proposal(rng) for _ in range(n)]
