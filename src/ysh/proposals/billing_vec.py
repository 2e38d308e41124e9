"""Billing model v1 for many proposals at once: numpy over proposals × months.

What production runs (:func:`ysh.proposals.enrich.evaluate_quotes`, called by the Pathway
graph on batches of quotes). Same rules as :mod:`ysh.proposals.billing`, the readable
reference, and tested equal to it; constants, inputs and the Fio B shares come from there
and from :mod:`ysh.tariffs.lei14300`. The credit lots
need no per-lot bookkeeping here: lots are both used and expired oldest first, so a
proposal's bank is a FIFO queue described by two running totals — C(k), every kWh ever
banked up to month k, and R, every kWh that left the bank (used or expired). The balance
is C(k−1) − R; at month k the lots created up to month k − 61 expire, which is
R ← max(R, C(k − 61)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tariffs.lei14300 import FIO_B_SHARE
from .billing import CREDIT_LIFETIME_MONTHS, GRANDFATHERED_UNTIL_YEAR, MONTHS, ProposalInput, irr

_SHARE_YEARS = np.array(sorted(FIO_B_SHARE))
_SHARE_VALUES = np.array([FIO_B_SHARE[y] for y in sorted(FIO_B_SHARE)])


@dataclass
class Batch:
    """The inputs of N proposals as arrays (percents already turned into fractions)."""

    gen: np.ndarray  # (N, 12) kWh, year 1
    cons: np.ndarray  # (N, 12)
    simultaneity: np.ndarray  # (N,)
    price: np.ndarray  # (te + tusd) / (1 − taxes), year 1
    fio_b: np.ndarray  # fio_b / (1 − taxes)
    min_kwh: np.ndarray
    degradation: np.ndarray
    escalation: np.ndarray
    rate: np.ndarray
    start_year: np.ndarray  # int
    horizon: np.ndarray  # int
    grandfathered: np.ndarray  # bool
    share_after_2028: np.ndarray
    capex: np.ndarray
    om: np.ndarray  # fraction of capex a year
    replacement_year: np.ndarray  # int, 0: none
    replacement: np.ndarray  # fraction of capex

    @classmethod
    def of(cls, proposals: list[ProposalInput]) -> Batch:
        def arr(get, dtype=float):
            return np.array([get(p) for p in proposals], dtype=dtype)

        tax = 1.0 - (arr(lambda p: p.icms_pct) + arr(lambda p: p.pis_cofins_pct)) / 100.0
        return cls(
            gen=np.array([p.generation_kwh_month for p in proposals], dtype=float).reshape(-1, MONTHS),
            cons=np.array([p.consumption_kwh_month for p in proposals], dtype=float).reshape(-1, MONTHS),
            simultaneity=arr(lambda p: p.simultaneity),
            price=(arr(lambda p: p.te_brl_per_kwh) + arr(lambda p: p.tusd_brl_per_kwh)) / tax,
            fio_b=arr(lambda p: p.fio_b_brl_per_kwh) / tax,
            min_kwh=arr(lambda p: p.min_kwh),
            degradation=arr(lambda p: p.degradation_pct_per_year) / 100.0,
            escalation=arr(lambda p: p.tariff_escalation_pct_per_year) / 100.0,
            rate=arr(lambda p: p.discount_rate_pct) / 100.0,
            start_year=arr(lambda p: p.start_year, int),
            horizon=arr(lambda p: p.horizon_years, int),
            grandfathered=arr(lambda p: p.grandfathered, bool),
            share_after_2028=arr(lambda p: p.fio_b_share_after_2028),
            capex=arr(lambda p: p.capex_brl),
            om=arr(lambda p: p.om_pct_capex_per_year) / 100.0,
            replacement_year=arr(lambda p: p.inverter_replacement_year or 0, int),
            replacement=arr(lambda p: p.inverter_replacement_pct_capex) / 100.0,
        )

    def __len__(self) -> int:
        return len(self.capex)


@dataclass
class BatchResult:
    """Yearly arrays are (N, Hmax); years beyond a proposal's horizon hold zeros."""

    generation_kwh: np.ndarray
    compensated_kwh: np.ndarray
    credits_expired_kwh: np.ndarray
    bill_without_solar_brl: np.ndarray
    bill_with_solar_brl: np.ndarray
    fio_b_charge_brl: np.ndarray
    savings_brl: np.ndarray
    cash_flows: np.ndarray  # (N, Hmax + 1), CF0 first
    npv_brl: np.ndarray
    irr: np.ndarray  # fraction; nan: none
    payback_years: np.ndarray  # nan: never
    discounted_payback_years: np.ndarray
    roi: np.ndarray


def _share(b: Batch, calendar_year: np.ndarray) -> np.ndarray:
    idx = np.clip(calendar_year - _SHARE_YEARS[0], 0, len(_SHARE_YEARS) - 1)
    new = np.where(calendar_year < _SHARE_YEARS[0], 0.0,
                   np.where(calendar_year <= _SHARE_YEARS[-1], _SHARE_VALUES[idx], b.share_after_2028))
    old = np.where(calendar_year <= GRANDFATHERED_UNTIL_YEAR, 0.0, 1.0)
    return np.where(b.grandfathered, old, new)


#: proposals evaluated together inside :func:`evaluate_batch`: proposals × months arrays
#: of this many rows stay in the CPU caches (larger ones make it slower, not faster)
CHUNK = 1024


def evaluate_batch(b: Batch) -> BatchResult:
    """Billing, cash flows and KPIs of every proposal of ``b``.

    Everything that does not depend on the credit bank is computed over proposals × months
    at once; only the bank itself (expiry, compensation, what is banked) walks the months,
    a handful of array operations per month. Large batches go in chunks of :data:`CHUNK`."""
    if len(b) == 0:
        raise ValueError("no proposals to evaluate")
    years = int(b.horizon.max())
    if len(b) <= CHUNK:
        return _evaluate(b, years)
    parts = [_evaluate(Batch(**{name: getattr(b, name)[i:i + CHUNK] for name in Batch.__dataclass_fields__}), years)
             for i in range(0, len(b), CHUNK)]
    return BatchResult(**{name: np.concatenate([getattr(p, name) for p in parts])
                          for name in BatchResult.__dataclass_fields__})


def _evaluate(b: Batch, years: int) -> BatchResult:
    n = len(b)
    months = years * MONTHS
    window = CREDIT_LIFETIME_MONTHS + 1
    # --- per year: escalation, degradation, Fio B share, which rules apply ---------------------
    price = np.empty((n, years))  # taxed price of the year
    fio_b = np.empty((n, years))  # taxed Fio B × share of the year
    decay = np.empty((n, years))
    old_rules = np.empty((n, years), dtype=bool)
    for y in range(1, years + 1):
        f = (1.0 + b.escalation) ** (y - 1)
        price[:, y - 1] = b.price * f
        calendar_year = b.start_year + y - 1
        fio_b[:, y - 1] = b.fio_b * f * _share(b, calendar_year)
        old_rules[:, y - 1] = b.grandfathered & (calendar_year <= GRANDFATHERED_UNTIL_YEAR)
        decay[:, y - 1] = (1.0 - b.degradation) ** (y - 1)
    # --- per month, independent of the bank (N, years, 12) ---------------------------------------
    g = b.gen[:, None, :] * decay[:, :, None]
    c = np.broadcast_to(b.cons[:, None, :], g.shape)
    own = np.minimum(g * b.simultaneity[:, None, None], c)
    inj, need = g - own, c - own
    min_kwh = b.min_kwh[:, None, None]
    old = old_rules[:, :, None]
    above = need >= min_kwh
    # what the month may compensate at most: old rules keep the minimum billed, new ones
    # compensate nothing below the minimum (all injection becomes credit)
    cap = np.where(old, np.maximum(need - min_kwh, 0.0), np.where(above, need, 0.0))
    # --- the credit bank, month by month (months first: each step reads contiguous rows) ---------
    inj_k = np.ascontiguousarray(inj.reshape(n, months).T)
    cap_k = np.ascontiguousarray(cap.reshape(n, months).T)
    comp_k = np.empty((months, n))
    expired_k = np.zeros((months, n))
    banked_after = np.empty((months, n))  # C(k): every kWh banked up to month k
    banked = np.zeros(n)  # C(k − 1)
    left = np.zeros(n)  # R
    for k in range(months):
        if k >= window:
            expired_to = np.maximum(left, banked_after[k - window])  # C(k − 61)
            np.subtract(expired_to, left, out=expired_k[k])
            left = expired_to
        comp = np.minimum(inj_k[k] + (banked - left), cap_k[k], out=comp_k[k])
        from_injection = np.minimum(inj_k[k], comp)
        left = left + (comp - from_injection)
        banked = banked + (inj_k[k] - from_injection)
        banked_after[k] = banked
    comp = comp_k.T.reshape(n, years, MONTHS)
    expired = expired_k.T.reshape(n, years, MONTHS)
    p = price[:, :, None]
    # billed energy: old rules keep at least the minimum; new ones bill the minimum below it
    energy_kwh = np.where(above, need - comp, min_kwh)
    np.maximum(energy_kwh, min_kwh, out=energy_kwh, where=np.broadcast_to(old, energy_kwh.shape))
    energy = energy_kwh * p
    charge = comp * fio_b[:, :, None]
    monthly = {"generation_kwh": g, "compensated_kwh": comp, "credits_expired_kwh": expired,
               "fio_b_charge_brl": charge, "bill_without_solar_brl": np.maximum(c, min_kwh) * p,
               "bill_with_solar_brl": energy + charge}
    active = np.arange(1, years + 1)[None, :] <= b.horizon[:, None]
    out = {}
    for name, values in monthly.items():
        total = np.zeros((n, years))
        for m in range(MONTHS):  # month by month, as the reference adds them
            total += values[:, :, m]
        out[name] = np.where(active, total, 0.0)
    savings = out["bill_without_solar_brl"] - out["bill_with_solar_brl"]
    year_index = np.arange(1, years + 1)
    flows = savings - b.om[:, None] * b.capex[:, None]
    flows -= np.where(year_index[None, :] == b.replacement_year[:, None], b.replacement[:, None] * b.capex[:, None], 0.0)
    flows = np.where(year_index[None, :] <= b.horizon[:, None], flows, 0.0)
    cash_flows = np.concatenate([-b.capex[:, None], flows], axis=1)
    discount = (1.0 + b.rate[:, None]) ** -np.arange(0, years + 1)[None, :]
    return BatchResult(
        savings_brl=savings, cash_flows=cash_flows, npv_brl=(cash_flows * discount).sum(axis=1),
        irr=irr_batch(cash_flows), payback_years=payback_batch(cash_flows),
        discounted_payback_years=payback_batch(cash_flows * discount), roi=cash_flows.sum(axis=1) / b.capex,
        **out,
    )


def payback_batch(cash_flows: np.ndarray) -> np.ndarray:
    """Fractional years until the cumulative turns non-negative (linear within the year);
    nan if never. ``cash_flows`` is (N, H + 1), already discounted for the discounted one."""
    cumulative = np.cumsum(cash_flows, axis=1)
    reached = cumulative >= 0
    first = np.argmax(reached, axis=1)
    ever = reached.any(axis=1)
    rows = np.arange(len(cash_flows))
    safe = np.maximum(first, 1)
    before = cumulative[rows, safe - 1]
    within = np.divide(-before, cash_flows[rows, safe], out=np.zeros(len(rows)), where=cash_flows[rows, safe] != 0)
    years = np.where(first == 0, 0.0, safe - 1 + within)
    return np.where(ever, years, np.nan)


def irr_batch(cash_flows: np.ndarray) -> np.ndarray:
    """IRR per row, as ``numpy_financial.irr`` gives it. Rows whose cash flows change sign
    once have exactly one IRR (Descartes): found by bisection on x = 1/(1 + r) over all
    rows at once, then polished by Newton steps. Rows with several sign changes go to
    ``numpy_financial.irr`` itself (it picks the root closest to zero); rows without a
    sign change have none (nan)."""
    n, width = cash_flows.shape
    signs = np.sign(cash_flows)
    changes = np.zeros(n, dtype=int)
    last = np.zeros(n)
    for t in range(width):  # count sign changes, ignoring zeros
        s = signs[:, t]
        changes += ((last != 0) & (s != 0) & (s != last)).astype(int)
        last = np.where(s != 0, s, last)
    result = np.full(n, np.nan)
    single = changes == 1
    if single.any():
        coefficients = np.ascontiguousarray(cash_flows[single].T)  # (H + 1, rows): CF_t of each row

        def poly(x):  # Σ CF_t x^t by Horner's rule
            value = coefficients[-1].copy()
            for c in coefficients[-2::-1]:
                value *= x
                value += c
            return value

        def poly_and_slope(x):
            value, slope = coefficients[-1].copy(), np.zeros_like(x)
            for c in coefficients[-2::-1]:
                slope *= x
                slope += value
                value *= x
                value += c
            return value, slope

        rows = coefficients.shape[1]
        lo, hi = np.full(rows, 1e-6), np.full(rows, 1e3)
        p_lo = poly(lo)
        bracketed = np.sign(p_lo) != np.sign(poly(hi))  # else the IRR is beyond −99.9 % … +10⁶ %
        for _ in range(80):
            mid = np.sqrt(lo * hi)  # bisection in log space: x spans nine decades
            p_mid = poly(mid)
            same = np.sign(p_mid) == np.sign(p_lo)
            lo, p_lo = np.where(same, mid, lo), np.where(same, p_mid, p_lo)
            hi = np.where(same, hi, mid)
        x = np.sqrt(lo * hi)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # far roots overflow: not bracketed
            for _ in range(3):  # Newton polish
                value, slope = poly_and_slope(x)
                x = np.where(slope != 0, x - value / np.where(slope != 0, slope, 1.0), x)
        result[single] = np.where(bracketed, 1.0 / x - 1.0, np.nan)
        single_rows = np.flatnonzero(single)
        fallback = single_rows[~bracketed]  # an IRR below −99.9 % or above +10⁶ %
    else:
        fallback = np.array([], dtype=int)
    for i in np.concatenate([np.flatnonzero(changes > 1), fallback]):
        found = irr(list(cash_flows[i]))  # the reference's own call, guards included
        result[i] = np.nan if found is None else found
    return result
