"""The proposals job's Pathway graph: quotes → enriched proposals → analytics → KPIs.

Sources (Pathway tables with the schemas below; static snapshots or CDC followers):
``company``, ``quote``, ``quote_item``, ``"order"`` (the Medusa-like B2B schema),
``items_normalized`` (catalog job) and ``tarifas_normalized`` / ``tarifas_fio_b`` (tariffs
job). Outputs, keyed by quote id: ``propostas_enriched`` and ``propostas_analytics``; and
``kpis_b1_b3`` per class, state and month. A changed quote line, order or tariff
re-evaluates only the quotes it touches.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pathway as pw

from ..tariffs.aneel import FioB, Tariff, fold
from .assumptions import Assumptions
from .enrich import (
    RESULT_FIELDS,
    SystemSize,
    as_row,
    consumption_of,
    evaluate_quote,
    evaluate_quote_columns,
    lookup_tariffs,
    median_or_none,
    size_system,
    yearly_json,
)
from .generation import monthly_generation_kwh, site_yield_kwh_per_kwp
from .irradiance import get_irradiance

SAO_PAULO = ZoneInfo("America/Sao_Paulo")


class CompanySchema(pw.Schema):
    id: str = pw.column_definition(primary_key=True)
    name: str
    municipality: str
    state: str
    latitude: float
    longitude: float
    utility: str
    icms_pct: float


class QuoteSchema(pw.Schema):
    id: str = pw.column_definition(primary_key=True)
    company_id: str
    status: str
    customer_class: str
    connection: str
    consumption_kwh_month: pw.Json
    tilt_deg: float
    azimuth_deg: float
    access_request_date: pw.DateTimeNaive | None
    created_at: pw.DateTimeUtc


class QuoteItemSchema(pw.Schema):
    id: str = pw.column_definition(primary_key=True)
    quote_id: str
    distributor: str
    sku: str
    quantity: int
    unit_price_brl: float


class OrderSchema(pw.Schema):
    id: str = pw.column_definition(primary_key=True)
    quote_id: str
    status: str


class CatalogItemSchema(pw.Schema):
    distributor: str = pw.column_definition(primary_key=True)
    sku: str = pw.column_definition(primary_key=True)
    category: str
    power_w: float | None


def _tariff_schema(layout: type, name: str) -> type[pw.Schema]:
    import typing

    hints = typing.get_type_hints(layout)
    columns = {"key_text": str}
    for field in layout._fields:
        hint = hints[field]
        if hint is datetime.date:
            hint = pw.DateTimeNaive
        elif hint == (datetime.date | None):
            hint = pw.DateTimeNaive | None
        columns[field] = hint
    return pw.schema_builder(
        {k: pw.column_definition(dtype=v, primary_key=k in ("key_text", "valid_from")) for k, v in columns.items()},
        name=name)


TariffRowSchema = _tariff_schema(Tariff, "TariffRowSchema")
FioBRowSchema = _tariff_schema(FioB, "FioBRowSchema")


@dataclass
class Sources:
    company: pw.Table
    quote: pw.Table
    quote_item: pw.Table
    order: pw.Table
    items: pw.Table
    tariffs: pw.Table
    fio_b: pw.Table


@dataclass
class ProposalTables:
    enriched: pw.Table  # propostas_enriched
    analytics: pw.Table  # propostas_analytics
    kpis: pw.Table  # kpis_b1_b3


def _as_date(value) -> datetime.date:
    if isinstance(value, str):  # ISO text: what the evaluation UDF receives (cheaper than a timestamp)
        return datetime.date.fromisoformat(value)
    return value.date() if isinstance(value, datetime.datetime) else value


def _from_row(layout: type, values: tuple):
    hints = {f: i for i, f in enumerate(layout._fields)}
    items = list(values)[1:]  # key_text first
    for name in ("valid_from", "valid_to"):
        i = hints[name]
        if items[i] is not None:
            items[i] = _as_date(items[i])
    return layout(*items)


@pw.udf(deterministic=True)
def _folded(text: str) -> str:
    return fold(text)


@pw.udf(deterministic=True, max_batch_size=4_096)
def _size(lines: list) -> list[tuple]:
    """The :class:`SystemSize` fields of each quote's lines, quotes in batches (one Python
    call per batch, not per quote)."""
    out = []
    for quote_lines in lines:
        size = size_system([tuple(line) for line in quote_lines])
        out.append((size.kwp, size.inverter_kw, size.modules, size.equipment_brl, size.unknown_skus))
    return out


@pw.udf(deterministic=True)
def _tariffs(tariffs: tuple | None, fio_b: tuple | None, utility: str, subgroup: str, days: tuple) -> tuple:
    """((day, (TE, TUSD, Fio B, error)), …) for each day quotes of this utility and class
    were made: the utility's rows reach Python once per utility and class, not once per day."""
    if not tariffs:
        why = (None, None, None, f"no tariffs for {utility} {subgroup} in tarifas_normalized")
        return tuple((day, why) for day in days)
    rows = [_from_row(Tariff, tuple(r)) for r in tariffs]
    fio = [_from_row(FioB, tuple(r)) for r in fio_b or ()]
    found = lookup_tariffs(rows, fio, utility, subgroup, [_as_date(day) for day in days])
    return tuple(zip(days, found))


#: how long the graph keeps a site's irradiance year before asking
#: :func:`irradiance.get_irradiance` again (a follower then picks up newly cached data)
WEATHER_TTL_S = 3600.0


def _weather_source(settings, weather_ttl_s: float = WEATHER_TTL_S):
    """``weather_at(latitude, longitude)``: one irradiance year per site, not per quote
    (reading it costs milliseconds, modelling it ~0.5 s), asked again after ``weather_ttl_s``."""
    sites: dict[tuple[float, float], tuple[float, object]] = {}  # (lat, lon) → (when, IrradianceYear)

    def weather_at(latitude: float, longitude: float):
        now = time.monotonic()
        known = sites.get((latitude, longitude))
        if known is None or now - known[0] > weather_ttl_s:
            known = sites[(latitude, longitude)] = (now, get_irradiance(latitude, longitude, settings))
        return known[1]

    return weather_at


def _quote_of(assumptions: Assumptions, customer_class: str, connection: str, size: tuple, consumption: pw.Json,
              generation: list, tariff: tuple, icms_pct: float, access_day, quote_day) -> dict | str:
    """The keyword arguments of :func:`enrich.proposal_of` for one row, or why the row's
    consumption cannot be read."""
    try:
        cons = consumption_of(consumption.value)
    except ValueError as exc:
        return str(exc)
    te, tusd, fio_b, tariff_error = tariff
    day = _as_date(quote_day)
    return dict(customer_class=customer_class, connection=connection, size=SystemSize(*size), consumption=cons,
                generation=generation, te=te, tusd=tusd, fio_b=fio_b, tariff_error=tariff_error,
                icms_pct=icms_pct, access_request_date=_as_date(access_day) if access_day is not None else day,
                quote_date=day, assumptions=assumptions)


def _json_value(text: str | None):
    """The value of JSON text (what ``pw.Json.value`` gives for the same document)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits, which json reads
        return json.loads(text)


def _consumption_year(consumption: pw.Json) -> float:
    try:
        return float(sum(consumption_of(consumption.value)))
    except ValueError:
        return 0.0


#: what the evaluation UDF gives per quote, in this order: the irradiance source, the
#: year-1 generation and the consumption (kWh/year), then :data:`enrich.RESULT_FIELDS`
#: (the yearly table as JSON text)
EVALUATION_FIELDS = ("irradiance_source", "generation_kwh_year", "consumption_kwh_year", *RESULT_FIELDS)


#: quotes evaluated per call of the batched UDF: a static run fills the batches, a
#: follower's small commits make small ones (the kernel's cost per call is a few ms)
BATCH_SIZE = 4_096


def _make_evaluate_udf(settings, assumptions: Assumptions, billing: str, batch_size: int,
                       weather_ttl_s: float = WEATHER_TTL_S):
    """The UDF giving each quote's :data:`EVALUATION_FIELDS` as a tuple: generation (PVWatts
    yield of the site and orientation × kWp) and billing model v1.

    ``billing="vectorized"`` (production): rows reach it in batches of up to ``batch_size``;
    the yield of each site × orientation is looked up once per batch and the billing of
    all valid quotes is one :func:`enrich.evaluate_quote_columns` call. ``"reference"``: one
    row at a time, with the month-by-month model (for comparisons).

    Not deterministic: the irradiance source depends on the cache and the network; Pathway
    keeps the result it computed so a retraction matches it."""
    weather_at = _weather_source(settings, weather_ttl_s)
    losses = assumptions.losses_pct

    if billing == "reference":
        @pw.udf(deterministic=False)
        def evaluate_one(customer_class: str, connection: str, size: tuple, consumption: pw.Json, latitude: float,
                         longitude: float, tilt: float, azimuth: float, tariff: tuple, icms_pct: float,
                         access_day: str, quote_day: str) -> tuple:
            weather = weather_at(latitude, longitude)
            kwp = size[0]
            generation = ([0.0] * 12 if kwp <= 0 else
                          monthly_generation_kwh(weather, kwp, tilt, azimuth % 360.0, losses, settings=settings))
            quote = _quote_of(assumptions, customer_class, connection, size, consumption, generation, tariff,
                              icms_pct, access_day, quote_day)
            result = {"error": quote} if isinstance(quote, str) else evaluate_quote(**quote)
            row = as_row(result)
            return (weather.source, float(sum(generation)), _consumption_year(consumption),
                    *row[:-1], yearly_json(row[-1]))

        return evaluate_one
    if billing != "vectorized":
        raise ValueError(f"billing must be 'vectorized' or 'reference', not {billing!r}")

    @pw.udf(deterministic=False, max_batch_size=batch_size)
    def evaluate_many(customer_class: list, connection: list, size: list, consumption: list, latitude: list,
                      longitude: list, tilt: list, azimuth: list, tariff: list, icms_pct: list, access_day: list,
                      quote_day: list) -> list[tuple]:
        n = len(size)
        kwp = np.array([s[0] for s in size], dtype=float)
        if not np.isfinite(kwp).all():
            raise ValueError(f"kwp must be a finite number, got {kwp[~np.isfinite(kwp)][0]}")
        # the yield of each site × orientation once per batch (the same call per row would
        # hash its cache key once per quote)
        sources, keys, yields, sites = [], [], {}, {}
        for lat, lon, t, az, k in zip(latitude, longitude, tilt, azimuth, kwp.tolist(), strict=True):
            weather = sites.get((lat, lon))
            if weather is None:
                weather = sites[(lat, lon)] = weather_at(lat, lon)
            sources.append(weather.source)
            key = (lat, lon, t, az % 360.0) if k > 0 else None
            if key is not None and key not in yields:
                yields[key] = site_yield_kwh_per_kwp(weather, t, key[3], losses, settings=settings)
            keys.append(key)
        per_kwp = np.zeros((n, 12))
        for i, key in enumerate(keys):
            if key is not None:
                per_kwp[i] = yields[key]
        generation = per_kwp * np.where(kwp > 0, kwp, 0.0)[:, None]  # as monthly_generation_kwh: yield × kWp
        total = generation[:, 0].copy()
        for m in range(1, 12):  # month by month, as sum() adds them
            total += generation[:, m]
        totals = total.tolist()
        # the consumption arrives as JSON text (a pw.Json costs a Python object and a parse
        # behind a lock per value); a quote whose consumption cannot be read keeps its error
        readable, cons, unreadable = [], [], {}
        for i, text in enumerate(consumption):
            try:
                cons.append(consumption_of(_json_value(text)))
                readable.append(i)
            except ValueError as exc:
                unreadable[i] = str(exc)
        if len(readable) == n:
            pick = lambda column: column  # noqa: E731
        else:
            pick = lambda column: [column[i] for i in readable]  # noqa: E731
        days = [_as_date(day) for day in quote_day]
        access = [_as_date(day) if day is not None else days[i] for i, day in enumerate(access_day)]
        results = iter(evaluate_quote_columns(
            customer_class=pick(customer_class), connection=pick(connection), size=pick(size), consumption=cons,
            generation=generation[readable], tariff=pick(tariff), icms_pct=pick(icms_pct),
            access_request_date=pick(access), quote_date=pick(days), assumptions=assumptions))
        empty = (None,) * (len(RESULT_FIELDS) - 1)
        out = []
        consumed = iter(cons)
        for i in range(n):
            why = unreadable.get(i)
            if why is not None:
                out.append((sources[i], totals[i], 0.0, why, *empty))
            else:
                out.append((sources[i], totals[i], float(sum(next(consumed))), *next(results)))
        return out

    return evaluate_many


@pw.udf(deterministic=True)
def _median(values: tuple) -> float | None:
    return median_or_none(values)


def _result(name: str, dtype=float | None):
    """One of :data:`EVALUATION_FIELDS` from the evaluation tuple (no Python call)."""
    return pw.declare_type(dtype, pw.this.result[EVALUATION_FIELDS.index(name)])


def build_proposals_graph(src: Sources, assumptions: Assumptions, settings, *, billing: str = "vectorized",
                          batch_size: int = BATCH_SIZE) -> ProposalTables:
    """``settings`` carries the irradiance options (cache, offline, sources, URLs).
    ``billing``: ``"vectorized"`` (production: quotes evaluated in batches of up to
    ``batch_size`` with :mod:`billing_vec`) or ``"reference"`` (one quote at a time with the
    month-by-month model: what the benchmark and the tests compare against)."""
    # a column named ``id`` is shadowed by Pathway's row id: rename the sources' keys
    company = src.company.rename_columns(company_key="id")
    quote = src.quote.rename_columns(quote_key="id")
    quote_item = src.quote_item
    # --- system size per quote -------------------------------------------------------
    items = src.items
    lines = quote_item.join_left(
        items, quote_item.distributor == items.distributor, quote_item.sku == items.sku,
    ).select(quote_item.quote_id, line=pw.make_tuple(
        quote_item.distributor, quote_item.sku, quote_item.quantity, quote_item.unit_price_brl,
        items.category, items.power_w))
    sizes = lines.groupby(pw.this.quote_id).reduce(pw.this.quote_id, size=_size(pw.reducers.tuple(pw.this.line)))
    orders = src.order.filter(pw.this.status != "canceled").groupby(pw.this.quote_id).reduce(
        pw.this.quote_id, orders=pw.reducers.count())

    # --- quotes with their company, size and order -----------------------------------
    # the quote's day in São Paulo and its month, as native expressions (no Python call per row)
    quote_day = quote.created_at.dt.to_naive_in_timezone(SAO_PAULO.key).dt.floor(datetime.timedelta(days=1))
    q = quote.join(company, quote.company_id == company.company_key, id=quote.id).select(
        quote_id=quote.quote_key, company_id=quote.company_id, status=quote.status,
        customer_class=quote.customer_class, connection=quote.connection,
        consumption=quote.consumption_kwh_month, tilt=quote.tilt_deg, azimuth=quote.azimuth_deg,
        access_day=quote.access_request_date, quote_day=quote_day,
        state=company.state, municipality=company.municipality, utility=company.utility,
        latitude=company.latitude, longitude=company.longitude, icms_pct=company.icms_pct,
    )
    # looked up by the groups' keys (a groupby's row id is its key's pointer), as left joins
    # would (a miss gives None), but without rebuilding every column of q: a join_left
    # followed by select(*pw.left, …) copied q's ~17 columns into a new table per join
    # (~0.1 CPU s per join for 20,000 quotes); with_columns keeps them and adds one
    q = q.with_columns(
        size=pw.coalesce(sizes.ix_ref(q.quote_id, allow_misses=True).size, (0.0, 0.0, 0, 0.0, None)),
        ordered=orders.ix_ref(q.quote_id, allow_misses=True).orders.is_not_none())

    # --- the tariff in force on the quote's day ---------------------------------------
    def grouped(table: pw.Table, layout: type) -> pw.Table:
        return table.select(ukey=_folded(pw.this.utility), skey=_folded(pw.this.subgroup),
                            row=pw.make_tuple(pw.this.key_text, *[pw.this[c] for c in layout._fields])
                            ).groupby(pw.this.ukey, pw.this.skey).reduce(
            pw.this.ukey, pw.this.skey, rows=pw.reducers.tuple(pw.this.row))

    residential = src.tariffs.filter((pw.this.base == "aplicacao") & (pw.this.unit == "MWh"))
    tariff_groups = grouped(residential, Tariff)
    fio_groups = grouped(src.fio_b.filter(pw.this.base == "aplicacao"), FioB)
    # looked up once per utility, class and day (a day's quotes share it), in one call per
    # utility and class: the rows of a utility reach the UDF as Python objects, which costs
    # more than the lookups themselves
    days = q.groupby(pw.this.utility, pw.this.customer_class, pw.this.quote_day).reduce(
        pw.this.utility, pw.this.customer_class, pw.this.quote_day)
    groups = days.groupby(pw.this.utility, pw.this.customer_class).reduce(
        pw.this.utility, pw.this.customer_class, days=pw.reducers.tuple(pw.this.quote_day))
    groups = groups.select(*pw.this, ukey=_folded(pw.this.utility), skey=_folded(pw.this.customer_class))
    groups = groups.join_left(tariff_groups, groups.ukey == tariff_groups.ukey, groups.skey == tariff_groups.skey,
                              id=groups.id).select(*pw.left, tariff_rows=tariff_groups.rows)
    groups = groups.join_left(fio_groups, groups.ukey == fio_groups.ukey, groups.skey == fio_groups.skey,
                              id=groups.id).select(*pw.left, fio_rows=fio_groups.rows)
    found = groups.select(pw.this.utility, pw.this.customer_class, found=_tariffs(
        pw.this.tariff_rows, pw.this.fio_rows, pw.this.utility, pw.this.customer_class, pw.this.days)
    ).flatten(pw.this.found)
    found = found.select(pw.this.utility, pw.this.customer_class,
                         quote_day=pw.declare_type(pw.DateTimeNaive, pw.this.found[0]),
                         tariff=pw.declare_type(tuple, pw.this.found[1]))
    # one row per utility, class and day (the days of a group are distinct): keyed by them,
    # looked up like the sizes above
    found = found.with_id_from(pw.this.utility, pw.this.customer_class, pw.this.quote_day)
    q = q.with_columns(tariff=pw.unwrap(found.ix_ref(q.utility, q.customer_class, q.quote_day,
                                                     allow_misses=True).tariff))

    # --- generation and the billing model -----------------------------------------------
    evaluate = _make_evaluate_udf(settings, assumptions, billing, batch_size)
    q = q.select(*pw.this, quote_month=pw.this.quote_day.dt.strftime("%Y-%m-01").dt.strptime("%Y-%m-%d"),
                 result=evaluate(pw.this.customer_class, pw.this.connection, pw.this.size,
                                 # JSON text for the batched UDF (a pw.Json is a Python object per value)
                                 pw.this.consumption if billing == "reference" else pw.this.consumption.to_string(),
                                 pw.this.latitude, pw.this.longitude, pw.this.tilt, pw.this.azimuth, pw.this.tariff,
                                 pw.this.icms_pct,
                                 # days as ISO text: a timestamp costs a pandas object per value
                                 pw.coalesce(pw.this.access_day, pw.this.quote_day).dt.strftime("%Y-%m-%d"),
                                 pw.this.quote_day.dt.strftime("%Y-%m-%d")))

    enriched = q.select(
        pw.this.quote_id, pw.this.company_id, pw.this.state, pw.this.municipality, pw.this.utility,
        pw.this.customer_class, pw.this.connection, quote_month=pw.this.quote_month, status=pw.this.status,
        ordered=pw.this.ordered,
        system_kwp=pw.declare_type(float, pw.this.size[0]), inverter_kw=pw.declare_type(float, pw.this.size[1]),
        modules=pw.declare_type(int, pw.this.size[2]),
        capex_brl=pw.declare_type(float, pw.this.size[3])
        + assumptions.installation_brl_per_kwp * pw.declare_type(float, pw.this.size[0]),
        unknown_skus=pw.declare_type(str | None, pw.this.size[4]),
        te_brl_per_kwh=pw.declare_type(float | None, pw.this.tariff[0]),
        tusd_brl_per_kwh=pw.declare_type(float | None, pw.this.tariff[1]),
        fio_b_brl_per_kwh=pw.declare_type(float | None, pw.this.tariff[2]),
        tariff_error=pw.declare_type(str | None, pw.this.tariff[3]),
        irradiance_source=_result("irradiance_source", str),
        generation_kwh_year=_result("generation_kwh_year", float),
        consumption_kwh_year=_result("consumption_kwh_year", float),
    )
    analytics = q.select(
        pw.this.quote_id, pw.this.customer_class, pw.this.state, quote_month=pw.this.quote_month,
        ordered=pw.this.ordered, system_kwp=pw.declare_type(float, pw.this.size[0]),
        error=_result("error", str | None),
        npv_brl=_result("npv_brl"), irr_pct=_result("irr_pct"), payback_years=_result("payback_years"),
        discounted_payback_years=_result("discounted_payback_years"), roi=_result("roi"),
        year1_bill_without_solar_brl=_result("year1_bill_without_solar_brl"),
        year1_bill_with_solar_brl=_result("year1_bill_with_solar_brl"),
        year1_savings_brl=_result("year1_savings_brl"),
        # JSON text: the warehouse column is jsonb (encoded once, with orjson, in the UDF)
        yearly=_result("yearly", str | None),
    )
    kpis = analytics.groupby(pw.this.customer_class, pw.this.state, pw.this.quote_month).reduce(
        pw.this.customer_class, pw.this.state, month=pw.this.quote_month,
        quotes=pw.reducers.count(), orders=pw.reducers.sum(pw.cast(int, pw.this.ordered)),
        # strict: the incremental float sum lost an update of a quote's kWp (0.0 -> 4.14 in one
        # time, seen in the follower after a database restart: the group kept 0.0 while its
        # medians and counts moved); summing the group's values per time does not
        kwp=pw.reducers.sum(pw.this.system_kwp, strict=True),
        median_payback_years=_median(pw.reducers.tuple(pw.this.payback_years)),
        median_irr_pct=_median(pw.reducers.tuple(pw.this.irr_pct)),
    ).select(*pw.this, conversion=pw.cast(float, pw.this.orders) / pw.cast(float, pw.this.quotes))
    return ProposalTables(enriched=enriched, analytics=analytics, kpis=kpis)
