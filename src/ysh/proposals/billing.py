"""Billing model v1: a B1/B3 consumer unit's bill with and without solar under Lei 14.300,
the cash flows of the system, and the KPIs a proposal shows (pure Python).

This is the reference implementation, written month by month as the rules read
(docs/proposals.md), each rule with a hand-computed test. Production (the Pathway graph,
through :func:`ysh.proposals.enrich.evaluate_quotes`) runs
:mod:`ysh.proposals.billing_vec`, which computes the same for many proposals at once with
numpy. The rules are written twice on purpose — readable here, vectorized there — and the
tests hold the two equal on every tested proposal (tests/proposals/test_billing_vec.py);
inputs, validation, constants and the Fio B shares are shared.

For operating year y = 1..H (calendar year Y = start_year + y − 1) and month m:

* g = gen[m]·(1 − d)^(y−1); c = cons[m]; f = (1 + escalation)^(y−1)
* self = min(g·simultaneity, c); inj = g − self; need = c − self
* taxed price P = (te + tusd)·f / (1 − icms − pis_cofins)
* without solar: bill0 = max(c, min_kwh)·P
* credits: the month's injection is used first, then older credit lots, oldest first;
  unused injection becomes a lot created in month k, usable up to and including month
  k + 60, then lost.
* new units (access requested on/after 2023-01-07), and grandfathered units from 2046:
  need ≥ min_kwh → comp = min(inj + credits, need), energy = (need − comp)·P;
  need < min_kwh → comp = 0 (all injection becomes credit), energy = min_kwh·P;
  Fio B = comp·fio_b·f·share(Y) / (1 − icms − pis_cofins), share 15 % (2023) … 90 % (2028),
  then ``fio_b_share_after_2028`` (grandfathered units from 2046: 100 %).
* grandfathered units (access requested before 2023-01-07) until 2045:
  comp = min(inj + credits, max(need − min_kwh, 0)), energy = max(need − comp, min_kwh)·P,
  no Fio B charge.
* bill1 = energy + Fio B; savings = bill0 − bill1.

Cash flows: CF0 = −capex; CFy = Σ savings − om%·capex − replacement%·capex (in the
replacement year). NPV = numpy_financial.npv(rate, CF), IRR = numpy_financial.irr(CF),
simple and discounted payback in fractional years (linear within the year the cumulative
turns non-negative; None if never), ROI = ΣCF / capex (CF0 included: net gain per real
invested).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from datetime import date
from typing import Literal

import numpy_financial as npf
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..tariffs.lei14300 import NEW_UNITS_FROM, classify_dg, fio_b_share

MIN_KWH = {"mono": 30.0, "bi": 50.0, "tri": 100.0}  # REN ANEEL 1.000/2021: custo de disponibilidade
CREDIT_LIFETIME_MONTHS = 60  # Lei 14.300: credits expire after 60 months
GRANDFATHERED_UNTIL_YEAR = 2045  # Art. 26: existing units keep the old rules until 2045
MONTHS = 12


class ProposalInput(BaseModel):
    """One proposal. Percent fields are percents (18 means 18 %)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    customer_class: Literal["B1", "B3"]
    connection: Literal["mono", "bi", "tri"]
    system_kwp: float = Field(gt=0)
    capex_brl: float = Field(gt=0)
    generation_kwh_month: tuple[float, ...] = Field(description="12 values, year 1, kWh")
    consumption_kwh_month: tuple[float, ...] = Field(description="12 values, kWh")
    simultaneity: float = Field(ge=0, le=1)
    te_brl_per_kwh: float = Field(ge=0)
    tusd_brl_per_kwh: float = Field(ge=0)
    fio_b_brl_per_kwh: float = Field(ge=0)
    icms_pct: float = Field(ge=0, lt=100)
    pis_cofins_pct: float = Field(ge=0, lt=100)
    access_request_date: date
    start_year: int = Field(ge=2000, le=2100)
    horizon_years: int = Field(default=25, ge=1, le=50)
    degradation_pct_per_year: float = Field(default=0.5, ge=0, lt=100)
    tariff_escalation_pct_per_year: float = Field(ge=-50, le=100)
    discount_rate_pct: float = Field(gt=-100, le=100)
    om_pct_capex_per_year: float = Field(default=0.0, ge=0, le=100)
    inverter_replacement_year: int | None = Field(default=None, ge=1)
    inverter_replacement_pct_capex: float = Field(default=0.0, ge=0, le=100)
    fio_b_share_after_2028: float = Field(default=1.0, ge=0, le=1)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value, info):
        # JSON true/false would otherwise pass as 1.0/0.0 kWh or R$
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, bool) for v in values):
            raise ValueError(f"{info.field_name} must be numbers, not true/false")
        return value

    @field_validator("generation_kwh_month", "consumption_kwh_month")
    @classmethod
    def _twelve_non_negative(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if len(values) != MONTHS:
            raise ValueError(f"needs 12 monthly values (January..December), got {len(values)}")
        bad = [i + 1 for i, v in enumerate(values) if not (v >= 0 and math.isfinite(v))]
        if bad:
            raise ValueError(f"values must be finite and non-negative; months {bad} are not")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> ProposalInput:
        if self.icms_pct + self.pis_cofins_pct >= 100:
            raise ValueError("icms_pct + pis_cofins_pct must stay below 100")
        if classify_dg(self.system_kwp, "solar", self.access_request_date) == "out_of_scope":
            raise ValueError(f"system_kwp {self.system_kwp} is beyond the minigeração limit of Lei 14.300 "
                             "(3 MW for solar, 5 MW when access was requested before 2023-01-07)")
        if self.inverter_replacement_year is not None and self.inverter_replacement_year > self.horizon_years:
            raise ValueError(f"inverter_replacement_year {self.inverter_replacement_year} is beyond "
                             f"horizon_years {self.horizon_years}")
        return self

    @property
    def min_kwh(self) -> float:
        return MIN_KWH[self.connection]

    @property
    def grandfathered(self) -> bool:
        return self.access_request_date < NEW_UNITS_FROM


@dataclass(frozen=True)
class YearRow:
    year: int  # operating year, 1..H
    calendar_year: int
    generation_kwh: float
    consumption_kwh: float
    compensated_kwh: float
    credits_expired_kwh: float
    credit_balance_kwh: float  # at the end of the year
    bill_without_solar_brl: float
    bill_with_solar_brl: float
    fio_b_charge_brl: float
    savings_brl: float
    cash_flow_brl: float
    cumulative_brl: float
    discounted_cumulative_brl: float


@dataclass(frozen=True)
class Kpis:
    npv_brl: float
    irr_pct: float | None  # None: no sign change in the cash flows
    payback_years: float | None  # None: never paid back within the horizon
    discounted_payback_years: float | None
    roi: float  # ΣCF / capex, CF0 included
    year1_bill_without_solar_brl: float
    year1_bill_with_solar_brl: float
    year1_savings_brl: float


@dataclass(frozen=True)
class ProposalResult:
    kpis: Kpis
    years: list[YearRow]
    cash_flows: list[float]  # CF0..CFH

    def as_dict(self) -> dict:
        return {"kpis": asdict(self.kpis), "years": [asdict(y) for y in self.years], "cash_flows": self.cash_flows}


def fio_b_share_for(p: ProposalInput, calendar_year: int) -> float:
    """The Fio B share charged on compensated energy in ``calendar_year``."""
    if p.grandfathered:
        return 0.0 if calendar_year <= GRANDFATHERED_UNTIL_YEAR else 1.0
    return fio_b_share(calendar_year, p.fio_b_share_after_2028)


class CreditBank:
    """Energy credit lots (kWh), used oldest first, each usable up to and including 60
    months after the month it was created in."""

    def __init__(self) -> None:
        self.lots: deque[list[float]] = deque()  # [created_month, kWh]

    def expire(self, month: int) -> float:
        lost = 0.0
        while self.lots and self.lots[0][0] + CREDIT_LIFETIME_MONTHS < month:
            lost += self.lots.popleft()[1]
        return lost

    @property
    def balance(self) -> float:
        return sum(kwh for _, kwh in self.lots)

    def take(self, kwh: float) -> None:
        while kwh > 0 and self.lots:
            lot = self.lots[0]
            used = min(lot[1], kwh)
            lot[1] -= used
            kwh -= used
            if lot[1] <= 0:
                self.lots.popleft()

    def add(self, month: int, kwh: float) -> None:
        if kwh > 0:
            self.lots.append([month, kwh])


def evaluate(p: ProposalInput) -> ProposalResult:
    """Bill, cash flows and KPIs of one proposal, month by month."""
    tax = 1.0 - (p.icms_pct + p.pis_cofins_pct) / 100.0
    degradation = p.degradation_pct_per_year / 100.0
    escalation = p.tariff_escalation_pct_per_year / 100.0
    rate = p.discount_rate_pct / 100.0
    min_kwh = p.min_kwh
    bank = CreditBank()
    cash_flows = [-p.capex_brl]
    years: list[YearRow] = []
    cumulative, discounted = -p.capex_brl, -p.capex_brl
    for y in range(1, p.horizon_years + 1):
        calendar_year = p.start_year + y - 1
        f = (1.0 + escalation) ** (y - 1)
        price = (p.te_brl_per_kwh + p.tusd_brl_per_kwh) * f / tax
        share = fio_b_share_for(p, calendar_year)
        old_rules = p.grandfathered and calendar_year <= GRANDFATHERED_UNTIL_YEAR
        totals = dict.fromkeys(("gen", "cons", "comp", "lost", "bill0", "bill1", "fio_b"), 0.0)
        for m in range(MONTHS):
            month = (y - 1) * MONTHS + m
            g = p.generation_kwh_month[m] * (1.0 - degradation) ** (y - 1)
            c = p.consumption_kwh_month[m]
            own = min(g * p.simultaneity, c)
            inj, need = g - own, c - own
            totals["lost"] += bank.expire(month)
            available = inj + bank.balance
            if old_rules:
                comp = min(available, max(need - min_kwh, 0.0))
                energy = max(need - comp, min_kwh) * price
            elif need >= min_kwh:
                comp = min(available, need)
                energy = (need - comp) * price
            else:
                comp = 0.0
                energy = min_kwh * price
            fio_b = comp * p.fio_b_brl_per_kwh * f * share / tax
            from_injection = min(inj, comp)
            bank.take(comp - from_injection)
            bank.add(month, inj - from_injection)
            bill0 = max(c, min_kwh) * price
            for key, value in (("gen", g), ("cons", c), ("comp", comp), ("bill0", bill0),
                               ("bill1", energy + fio_b), ("fio_b", fio_b)):
                totals[key] += value
        savings = totals["bill0"] - totals["bill1"]
        cf = savings - p.om_pct_capex_per_year / 100.0 * p.capex_brl
        if p.inverter_replacement_year == y:
            cf -= p.inverter_replacement_pct_capex / 100.0 * p.capex_brl
        cash_flows.append(cf)
        cumulative += cf
        discounted += cf / (1.0 + rate) ** y
        years.append(YearRow(y, calendar_year, totals["gen"], totals["cons"], totals["comp"], totals["lost"],
                             bank.balance, totals["bill0"], totals["bill1"], totals["fio_b"], savings, cf,
                             cumulative, discounted))
    return ProposalResult(kpis(cash_flows, rate, years[0]), years, cash_flows)


def payback(cash_flows: list[float], rate: float | None = None) -> float | None:
    """Years until the cumulative (discounted, when ``rate`` is given) cash flow turns
    non-negative, linear within that year; None if it never does."""
    cumulative = cash_flows[0]
    if cumulative >= 0:
        return 0.0
    for year, cf in enumerate(cash_flows[1:], start=1):
        value = cf if rate is None else cf / (1.0 + rate) ** year
        if cumulative + value >= 0:
            return year - 1 + (-cumulative / value)
        cumulative += value
    return None


def irr(cash_flows: list[float]) -> float | None:
    """numpy-financial's IRR, or None where there is none it can find: no sign change, or
    flows so lopsided that its polynomial's companion matrix overflows (a first-year gain of
    1e-322 on a capex of 100 raised LinAlgError)."""
    import numpy as np

    try:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            value = npf.irr(cash_flows)
    except np.linalg.LinAlgError:
        return None
    return None if value is None or not math.isfinite(value) else float(value)


def kpis(cash_flows: list[float], rate: float, year1: YearRow) -> Kpis:
    capex = -cash_flows[0]
    found = irr(cash_flows)
    return Kpis(
        npv_brl=float(npf.npv(rate, cash_flows)),
        irr_pct=None if found is None else found * 100.0,
        payback_years=payback(cash_flows),
        discounted_payback_years=payback(cash_flows, rate),
        roi=sum(cash_flows) / capex,
        year1_bill_without_solar_brl=year1.bill_without_solar_brl,
        year1_bill_with_solar_brl=year1.bill_with_solar_brl,
        year1_savings_brl=year1.savings_brl,
    )
