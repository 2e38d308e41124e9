"""From a quote to an evaluated proposal (pure Python; the Pathway graph calls these).

* :func:`size_system` — quote lines joined with the catalog → kWp, inverter kW, capex;
* :func:`lookup_tariff` — the utility's B1/B3 Tarifa de Aplicação in force on the quote's
  day (:meth:`ysh.tariffs.book.TariffBook.tariff_at`);
* :func:`evaluate_quotes` — billing model v1 with the platform's assumptions
  (:class:`~ysh.proposals.assumptions.Assumptions`, from the settings) for many quotes at
  once (numpy, :mod:`ysh.proposals.billing_vec`), or the reason a quote cannot be
  evaluated; :func:`evaluate_quote` is the same for one quote with the month-by-month
  reference model (:mod:`ysh.proposals.billing`).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from datetime import date

import numpy as np
import orjson
from pydantic import ValidationError

from ..tariffs.aneel import FioB, Tariff
from ..tariffs.book import TariffBook, TariffLookupError
from .assumptions import Assumptions
from ..tariffs.lei14300 import MICRO_LIMIT_KW, NEW_UNITS_FROM
from .billing import MIN_KWH, MONTHS, ProposalInput, evaluate
from .billing_vec import Batch, evaluate_batch

GENERATING = "module"
CONVERTING = ("inverter", "microinverter", "hybrid_inverter", "offgrid_inverter")
KIT = "kit"  # a generator sold as one item: its power_w is the kit's DC power (kWp × 1000)


@dataclass(frozen=True)
class SystemSize:
    kwp: float
    inverter_kw: float
    modules: int
    equipment_brl: float
    unknown_skus: str | None  # "distributor/sku, …" of lines not in the catalog


def size_system(lines: list[tuple]) -> SystemSize:
    """``lines``: (distributor, sku, quantity, unit_price_brl, category or None, power_w or None)."""
    kwp = inverter_kw = equipment = 0.0
    modules = 0
    unknown = []
    for distributor, sku, quantity, unit_price, category, power_w in sorted(lines, key=lambda line: line[:2]):
        equipment += quantity * unit_price
        if category is None:
            unknown.append(f"{distributor}/{sku}")
        elif category == GENERATING and power_w:
            kwp += quantity * power_w / 1000.0
            modules += quantity
        elif category in CONVERTING and power_w:
            inverter_kw += quantity * power_w / 1000.0
        elif category == KIT and power_w:
            kwp += quantity * power_w / 1000.0
    return SystemSize(round(kwp, 6), round(inverter_kw, 6), modules, round(equipment, 2),
                      ", ".join(unknown) or None)


def lookup_tariff(tariffs: list[Tariff], fio_b: list[FioB], utility: str, subgroup: str,
                  on: date) -> tuple[float | None, float | None, float | None, str | None]:
    """(TE, TUSD, Fio B, error) of the Convencional Tarifa de Aplicação in force on ``on``."""
    try:
        found = TariffBook(tariffs, fio_b).tariff_at(utility, subgroup, on)
    except TariffLookupError as exc:
        return None, None, None, str(exc)
    if found.fio_b_brl_per_kwh is None:
        return found.te_brl_per_kwh, found.tusd_brl_per_kwh, None, (
            f"no TUSD Fio B published for {utility} {subgroup} on {on}")
    return found.te_brl_per_kwh, found.tusd_brl_per_kwh, found.fio_b_brl_per_kwh, None


def lookup_tariffs(tariffs: list[Tariff], fio_b: list[FioB], utility: str, subgroup: str,
                   days: list[date]) -> list[tuple[float | None, float | None, float | None, str | None]]:
    """:func:`lookup_tariff` on each of ``days``, over one :class:`TariffBook`."""
    book = TariffBook(tariffs, fio_b)
    out = []
    for on in days:
        try:
            found = book.tariff_at(utility, subgroup, on)
        except TariffLookupError as exc:
            out.append((None, None, None, str(exc)))
            continue
        if found.fio_b_brl_per_kwh is None:
            out.append((found.te_brl_per_kwh, found.tusd_brl_per_kwh, None,
                        f"no TUSD Fio B published for {utility} {subgroup} on {on}"))
        else:
            out.append((found.te_brl_per_kwh, found.tusd_brl_per_kwh, found.fio_b_brl_per_kwh, None))
    return out


def consumption_of(value) -> list[float]:
    """The quote's ``consumption_kwh_month`` (JSON list) as floats; ValueError if malformed."""
    values = json.loads(value) if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        raise ValueError(f"consumption_kwh_month must be a JSON list of numbers, got {value!r}")
    return [float(v) for v in values]


#: what an evaluated quote yields, in this order (:func:`as_row`)
RESULT_FIELDS = ("error", "npv_brl", "irr_pct", "payback_years", "discounted_payback_years", "roi",
                 "year1_bill_without_solar_brl", "year1_bill_with_solar_brl", "year1_savings_brl", "yearly")


def proposal_of(*, customer_class: str, connection: str, size: SystemSize, consumption: list[float],
                generation: list[float], te: float | None, tusd: float | None, fio_b: float | None,
                tariff_error: str | None, icms_pct: float, access_request_date: date, quote_date: date,
                assumptions: Assumptions) -> ProposalInput | str:
    """The billing input of one quote with the platform's assumptions, or the reason it
    cannot be evaluated (no modules, no tariff, invalid input)."""
    if size.kwp <= 0:
        return "no modules with a known power in the quote" + (
            f" (unknown SKUs: {size.unknown_skus})" if size.unknown_skus else "")
    if tariff_error or te is None or tusd is None or fio_b is None:
        return f"no tariff: {tariff_error}"
    a = assumptions
    try:
        return ProposalInput(
            customer_class=customer_class, connection=connection, system_kwp=size.kwp,
            capex_brl=size.equipment_brl + a.installation_brl_per_kwp * size.kwp,
            generation_kwh_month=tuple(generation), consumption_kwh_month=tuple(consumption),
            simultaneity=a.simultaneity_b1 if customer_class == "B1" else a.simultaneity_b3,
            te_brl_per_kwh=te, tusd_brl_per_kwh=tusd, fio_b_brl_per_kwh=fio_b, icms_pct=icms_pct,
            pis_cofins_pct=a.pis_cofins_pct, access_request_date=access_request_date, start_year=quote_date.year,
            tariff_escalation_pct_per_year=a.tariff_escalation_pct, discount_rate_pct=a.discount_rate_pct,
            om_pct_capex_per_year=a.om_pct_capex, inverter_replacement_year=a.inverter_replacement_year,
            inverter_replacement_pct_capex=a.inverter_replacement_pct,
        )
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'proposal'}: {e['msg']}" for e in exc.errors())
        return f"invalid proposal: {fields}"


def evaluate_quote(**quote) -> dict:
    """KPIs and yearly table of one quote (the keyword arguments of :func:`proposal_of`)
    with the month-by-month reference model; ``error`` set and no KPIs when it cannot be
    evaluated. :func:`evaluate_quotes` gives the same for many quotes at once."""
    proposal = proposal_of(**quote)
    if isinstance(proposal, str):
        return {"error": proposal}
    result = evaluate(proposal)
    k = result.kpis
    yearly = [{"year": y.year, "calendar_year": y.calendar_year, "generation_kwh": round(y.generation_kwh, 3),
               "savings_brl": round(y.savings_brl, 2), "cash_flow_brl": round(y.cash_flow_brl, 2),
               "cumulative_brl": round(y.cumulative_brl, 2),
               "discounted_cumulative_brl": round(y.discounted_cumulative_brl, 2)} for y in result.years]
    return {"error": None, "npv_brl": k.npv_brl, "irr_pct": k.irr_pct, "payback_years": k.payback_years,
            "discounted_payback_years": k.discounted_payback_years, "roi": k.roi,
            "year1_bill_without_solar_brl": k.year1_bill_without_solar_brl,
            "year1_bill_with_solar_brl": k.year1_bill_with_solar_brl, "year1_savings_brl": k.year1_savings_brl,
            "yearly": yearly}


#: the fields of :class:`~ysh.proposals.billing.ProposalInput` that
#: :func:`evaluate_quotes` reads into arrays, in :func:`_inputs_of`'s order
_INPUTS = ("generation_kwh_month", "consumption_kwh_month", "simultaneity", "te_brl_per_kwh", "tusd_brl_per_kwh",
           "fio_b_brl_per_kwh", "icms_pct", "pis_cofins_pct", "min_kwh", "start_year", "grandfathered", "capex_brl")


def _inputs_of(p: ProposalInput) -> tuple:
    return tuple(getattr(p, name) for name in _INPUTS)


def _typed_inputs(quote: dict, valid_classes: frozenset[str] | set[str]) -> tuple | None:
    """The billing inputs of a quote that surely passes :class:`ProposalInput`'s validation
    with these very values (a micro-generation unit with finite, in-range numbers), in
    :data:`_INPUTS` order; ``None`` for any other quote, which then goes through
    :func:`proposal_of` (the same outcome, validated field by field). Skipping the model's
    validation for rows the graph already typed is what makes a batch cheap.

    ``valid_classes``: the consumer classes whose share of the platform's assumptions (the
    constants, and that class's simultaneity factor) a validated proposal of this batch
    has already passed; a quote of another class is validated in full."""
    if quote["customer_class"] not in valid_classes:
        return None
    size: SystemSize = quote["size"]
    te, tusd, fio_b, icms = quote["te"], quote["tusd"], quote["fio_b"], quote["icms_pct"]
    if quote["tariff_error"] or te is None or tusd is None or fio_b is None:
        return None
    kwp = size.kwp
    a: Assumptions = quote["assumptions"]
    customer_class, connection = quote["customer_class"], quote["connection"]
    if customer_class not in ("B1", "B3") or connection not in MIN_KWH:
        return None
    capex = size.equipment_brl + a.installation_brl_per_kwp * kwp
    numbers = (kwp, capex, te, tusd, fio_b, icms)
    if not all(type(v) is float and math.isfinite(v) for v in numbers):
        return None
    gen, cons = quote["generation"], quote["consumption"]
    if (not 0.0 < kwp <= MICRO_LIMIT_KW or capex <= 0.0 or te < 0.0 or tusd < 0.0 or fio_b < 0.0
            or not 0.0 <= icms < 100.0 or icms + a.pis_cofins_pct >= 100.0
            or len(gen) != MONTHS or len(cons) != MONTHS):
        return None
    if not all(type(v) is float and v >= 0.0 and math.isfinite(v) for v in (*gen, *cons)):
        return None
    start_year = quote["quote_date"].year
    if not 2000 <= start_year <= 2100:
        return None
    access = quote["access_request_date"]
    return (tuple(gen), tuple(cons), a.simultaneity_b1 if customer_class == "B1" else a.simultaneity_b3, te, tusd,
            fio_b, icms, a.pis_cofins_pct, MIN_KWH[connection], start_year, access < NEW_UNITS_FROM, capex)


def _evaluate_many(quotes: list[dict]):
    """(errors or None per quote, indices of the evaluated quotes, their Batch, its result)."""
    errors: list[str | None] = [None] * len(quotes)
    inputs: list[tuple] = []
    rows: list[int] = []
    # consumer classes whose assumptions a valid proposal of this batch has passed: the
    # constants are the same for every quote, but the simultaneity factor is the class's
    # own (simultaneity_b1, simultaneity_b3), so each class is validated once
    valid_classes: set[str] = set()
    assumptions = quotes[0]["assumptions"] if quotes else None
    for i, quote in enumerate(quotes):
        typed = _typed_inputs(quote, valid_classes) if quote["assumptions"] is assumptions else None
        if typed is None:
            proposal = proposal_of(**quote)
            if isinstance(proposal, str):
                errors[i] = proposal
                continue
            typed = _inputs_of(proposal)
            if quote["assumptions"] is assumptions:
                valid_classes.add(proposal.customer_class)
        inputs.append(typed)
        rows.append(i)
    if not rows:
        return errors, rows, None, None
    a: Assumptions = quotes[rows[0]]["assumptions"]
    if any(quotes[i]["assumptions"] != a for i in rows):
        raise ValueError("every quote of a batch must carry the same assumptions")
    batch = _batch_of(inputs, a)
    return errors, rows, batch, evaluate_batch(batch)


def _batch_of(inputs: list[tuple], a: Assumptions) -> Batch:
    """The :class:`Batch` of billing inputs in :data:`_INPUTS` order, one tuple per proposal."""
    columns = list(zip(*inputs))
    n = len(inputs)

    def const(value, dtype=float):
        return np.full(n, value, dtype=dtype)

    tax = 1.0 - (np.array(columns[6], dtype=float) + np.array(columns[7], dtype=float)) / 100.0
    defaults = ProposalInput.model_fields
    return Batch(
        gen=np.array(columns[0], dtype=float).reshape(-1, MONTHS),
        cons=np.array(columns[1], dtype=float).reshape(-1, MONTHS),
        simultaneity=np.array(columns[2], dtype=float),
        price=(np.array(columns[3], dtype=float) + np.array(columns[4], dtype=float)) / tax,
        fio_b=np.array(columns[5], dtype=float) / tax,
        min_kwh=np.array(columns[8], dtype=float),
        degradation=const(defaults["degradation_pct_per_year"].default) / 100.0,
        escalation=const(a.tariff_escalation_pct) / 100.0,
        rate=const(a.discount_rate_pct) / 100.0,
        start_year=np.array(columns[9], dtype=int),
        horizon=const(defaults["horizon_years"].default, int),
        grandfathered=np.array(columns[10], dtype=bool),
        share_after_2028=const(defaults["fio_b_share_after_2028"].default),
        capex=np.array(columns[11], dtype=float),
        om=const(a.om_pct_capex) / 100.0,
        replacement_year=const(a.inverter_replacement_year or 0, int),
        replacement=const(a.inverter_replacement_pct) / 100.0,
    )


#: the yearly table's columns after ``year`` and ``calendar_year``
YEARLY_COLUMNS = ("generation_kwh", "savings_brl", "cash_flow_brl", "cumulative_brl", "discounted_cumulative_brl")


def _tables_of(batch: Batch, r) -> tuple[dict[str, list], dict[str, list]]:
    """(yearly columns, KPI columns) of an evaluated batch, as Python lists (nan → None)."""
    years = r.cash_flows.shape[1] - 1
    discounted = r.cash_flows * (1.0 + batch.rate[:, None]) ** -np.arange(years + 1)[None, :]
    columns = {
        "generation_kwh": np.round(r.generation_kwh, 3), "savings_brl": np.round(r.savings_brl, 2),
        "cash_flow_brl": np.round(r.cash_flows[:, 1:], 2),
        "cumulative_brl": np.round(np.cumsum(r.cash_flows, axis=1)[:, 1:], 2),
        "discounted_cumulative_brl": np.round(np.cumsum(discounted, axis=1)[:, 1:], 2),
    }
    columns = {name: columns[name].tolist() for name in YEARLY_COLUMNS}
    kpis = {"npv_brl": r.npv_brl, "irr_pct": r.irr * 100.0, "payback_years": r.payback_years,
            "discounted_payback_years": r.discounted_payback_years, "roi": r.roi,
            "year1_bill_without_solar_brl": r.bill_without_solar_brl[:, 0],
            "year1_bill_with_solar_brl": r.bill_with_solar_brl[:, 0], "year1_savings_brl": r.savings_brl[:, 0]}
    kpis = {name: [None if math.isnan(v) else v for v in values.tolist()] for name, values in kpis.items()}
    return columns, kpis


_YEARLY_KEYS = ("year", "calendar_year", *YEARLY_COLUMNS)


def _yearly(columns: dict[str, list], j: int, start: int, horizon: int) -> list[dict]:
    # zip stops at the horizon (the first iterable); keys in the table's order
    return [dict(zip(_YEARLY_KEYS, values)) for values in zip(
        range(1, horizon + 1), range(start, start + horizon), *[columns[name][j] for name in YEARLY_COLUMNS])]


def evaluate_quotes(quotes: list[dict]) -> list[dict]:
    """:func:`evaluate_quote` of each quote, the billing of all evaluable ones computed at
    once by :func:`ysh.proposals.billing_vec.evaluate_batch` (the production path; tested
    equal to the reference). Every quote of the call carries the same assumptions. Yearly
    values are rounded with numpy, so one may differ from :func:`evaluate_quote`'s by one
    unit of the rounding when it sits on a half."""
    errors, rows, batch, r = _evaluate_many(quotes)
    out: list[dict] = [{"error": e} for e in errors]
    if not rows:
        return out
    columns, kpis = _tables_of(batch, r)
    horizons, starts = batch.horizon.tolist(), batch.start_year.tolist()
    for j, i in enumerate(rows):
        out[i] = {"error": None, **{name: kpis[name][j] for name in kpis},
                  "yearly": _yearly(columns, j, starts[j], horizons[j])}
    return out


def evaluate_quote_rows(quotes: list[dict]) -> list[tuple]:
    """:func:`evaluate_quotes` as :func:`as_row` tuples, the yearly table as JSON text:
    what the graph writes (no result dictionary per quote)."""
    return _rows_of(*_evaluate_many(quotes))


def evaluate_quote_columns(*, customer_class: list[str], connection: list[str], size: list[tuple],
                           consumption: list[list[float]], generation: np.ndarray, tariff: list[tuple],
                           icms_pct: list[float], access_request_date: list[date], quote_date: list[date],
                           assumptions: Assumptions) -> list[tuple]:
    """:func:`evaluate_quote_rows` of quotes given by columns (what the graph's batched UDF
    holds): ``size`` the :class:`SystemSize` fields as tuples, ``generation`` (N, 12) kWh,
    ``tariff`` (TE, TUSD, Fio B, error) tuples. The same rows as :func:`evaluate_quote_rows`
    of the quotes as dictionaries (tested), without a dictionary, a :class:`SystemSize` or a
    tuple of 24 numbers per quote: the checks of :func:`_typed_inputs` that numpy can make
    for all quotes at once are made so, and a quote that fails one, or is the first of its
    class, goes through :func:`proposal_of` as there."""
    n = len(size)
    a = assumptions
    errors: list[str | None] = [None] * n
    if n == 0:
        return []
    gen = np.asarray(generation, dtype=float).reshape(n, MONTHS)
    # the per-quote numbers, and the rows whose every one is a float (_typed_inputs' type test)
    kwp = [s[0] for s in size]
    capex = [s[3] + a.installation_brl_per_kwp * s[0] if type(s[0]) is float and type(s[3]) in (float, int) else None
             for s in size]
    typed = [type(k) is float and type(c) is float and type(t[0]) is float and type(t[1]) is float
             and type(t[2]) is float and t[3] is None and type(i) is float and x in ("B1", "B3") and y in MIN_KWH
             and len(c12) == MONTHS
             for k, c, t, i, x, y, c12 in zip(kwp, capex, tariff, icms_pct, customer_class, connection, consumption,
                                              strict=True)]
    ok = np.array(typed, dtype=bool)

    def column(values, rows_ok, fill=np.nan):
        return np.array([v if good else fill for v, good in zip(values, rows_ok)], dtype=float)

    kwp_a, capex_a, icms_a = column(kwp, typed), column(capex, typed), column(icms_pct, typed)
    te_a, tusd_a, fio_a = (column([t[k] for t in tariff], typed) for k in range(3))
    cons = np.array([c if good else [np.nan] * MONTHS for c, good in zip(consumption, typed)], dtype=float)
    years = np.array([d.year for d in quote_date])
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(kwp_a) & np.isfinite(capex_a) & np.isfinite(te_a) & np.isfinite(tusd_a)
        ok &= np.isfinite(fio_a) & np.isfinite(icms_a)
        ok &= (kwp_a > 0.0) & (kwp_a <= MICRO_LIMIT_KW) & (capex_a > 0.0) & (te_a >= 0.0) & (tusd_a >= 0.0)
        ok &= (fio_a >= 0.0) & (icms_a >= 0.0) & (icms_a < 100.0) & (icms_a + a.pis_cofins_pct < 100.0)
        ok &= (np.isfinite(gen) & (gen >= 0.0)).all(axis=1) & (np.isfinite(cons) & (cons >= 0.0)).all(axis=1)
        ok &= (years >= 2000) & (years <= 2100)
    ok_rows = ok.tolist()
    simultaneity = {"B1": a.simultaneity_b1, "B3": a.simultaneity_b3}
    inputs: list[tuple] = []
    rows: list[int] = []
    valid_classes: set[str] = set()  # as in _evaluate_many: each class validated once
    for i in range(n):
        klass = customer_class[i]
        if ok_rows[i] and klass in valid_classes:
            te, tusd, fio_b, _ = tariff[i]
            inputs.append((gen[i], cons[i], simultaneity[klass], te, tusd, fio_b, icms_pct[i], a.pis_cofins_pct,
                           MIN_KWH[connection[i]], quote_date[i].year, access_request_date[i] < NEW_UNITS_FROM,
                           capex[i]))
            rows.append(i)
            continue
        te, tusd, fio_b, tariff_error = tariff[i]
        proposal = proposal_of(customer_class=klass, connection=connection[i], size=SystemSize(*size[i]),
                               consumption=consumption[i], generation=gen[i].tolist(), te=te, tusd=tusd, fio_b=fio_b,
                               tariff_error=tariff_error, icms_pct=icms_pct[i],
                               access_request_date=access_request_date[i], quote_date=quote_date[i], assumptions=a)
        if isinstance(proposal, str):
            errors[i] = proposal
            continue
        inputs.append(_inputs_of(proposal))
        rows.append(i)
        valid_classes.add(proposal.customer_class)
    if not rows:
        return _rows_of(errors, rows, None, None)
    batch = _batch_of(inputs, a)
    return _rows_of(errors, rows, batch, evaluate_batch(batch))


def _rows_of(errors: list[str | None], rows: list[int], batch: Batch | None, r) -> list[tuple]:
    """:data:`RESULT_FIELDS` tuples of an evaluated batch (:func:`_evaluate_many`'s result)."""
    empty = (None,) * (len(RESULT_FIELDS) - 1)
    out: list[tuple] = [(e, *empty) for e in errors]
    if not rows:
        return out
    columns, kpis = _tables_of(batch, r)
    kpi_columns = [kpis[name] for name in RESULT_FIELDS[1:-1]]
    documents = yearly_documents(columns, batch.start_year.tolist(), batch.horizon.tolist())
    for j, i in enumerate(rows):
        out[i] = (None, *[column[j] for column in kpi_columns], documents[j])
    return out


def yearly_documents(columns: dict[str, list], starts: list[int], horizons: list[int]) -> list[str]:
    """The yearly table of each evaluated quote as JSON text: the very text of
    ``orjson.dumps(_yearly(columns, j, …))`` (tested). The dictionaries are written as
    literals (one ``BUILD_CONST_KEY_MAP`` per year instead of a ``zip`` and a ``dict()``
    call): ~35 % less time for the 25 dictionaries of each quote, the largest Python cost
    of a batch after the kernel. ``columns``: :data:`YEARLY_COLUMNS` → one list per quote
    (:func:`_tables_of`); ``starts``, ``horizons``: each quote's first calendar year and
    its number of years."""
    dumps = orjson.dumps
    gen, sav, flow, cum, disc = (columns[name] for name in YEARLY_COLUMNS)
    out = []
    for j, (start, horizon) in enumerate(zip(starts, horizons)):
        # zip stops at the horizon (the ranges), as _yearly's does; keys in the table's order
        out.append(dumps([
            {"year": y, "calendar_year": c, "generation_kwh": g, "savings_brl": s, "cash_flow_brl": f,
             "cumulative_brl": u, "discounted_cumulative_brl": d}
            for y, c, g, s, f, u, d in zip(range(1, horizon + 1), range(start, start + horizon),
                                           gen[j], sav[j], flow[j], cum[j], disc[j])]).decode())
    return out


# yearly_documents writes the keys as literals: they must stay the table's
assert YEARLY_COLUMNS == ("generation_kwh", "savings_brl", "cash_flow_brl", "cumulative_brl",
                          "discounted_cumulative_brl")


def yearly_json(yearly: list[dict] | None) -> str | None:
    """The yearly table as the JSON text the outputs hold."""
    return None if yearly is None else orjson.dumps(yearly).decode()


def as_row(result: dict) -> tuple:
    """An :func:`evaluate_quote` result as a tuple in :data:`RESULT_FIELDS` order."""
    return tuple(result.get(name) for name in RESULT_FIELDS)


def median_or_none(values) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
