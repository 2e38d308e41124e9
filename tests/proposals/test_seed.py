"""The Medusa-like seed against a real PostgreSQL holding the sample catalog."""

from datetime import date, datetime, timedelta, timezone

import pytest

from ysh import db
from ysh.catalog import job as catalog_job
from ysh.samples.medusa import (
    ICMS_PCT_BY_STATE,
    MUNICIPALITIES,
    UTILITIES,
    SeedReport,
    cnpj_check_digits,
    is_valid_cnpj,
    seed_medusa,
)

from ..conftest import REPO, query

pytestmark = pytest.mark.integration

TODAY = date(2026, 5, 15)
TABLES = {
    "company": "SELECT * FROM company ORDER BY id",
    "quote": "SELECT * FROM quote ORDER BY id",
    "quote_item": "SELECT * FROM quote_item ORDER BY id",
    "order": 'SELECT * FROM "order" ORDER BY id',
}

# per quote: kWp, inverter AC kW, module/inverter lines, unknown lines, price ratio range
SYSTEMS = """
SELECT q.id, q.customer_class,
       sum(i.power_w * qi.quantity) FILTER (WHERE i.category = 'module') / 1000 AS kwp,
       sum(i.power_w * qi.quantity) FILTER (WHERE i.category IN ('inverter', 'microinverter')) / 1000,
       count(*) FILTER (WHERE i.category = 'module'),
       count(*) FILTER (WHERE i.category IN ('inverter', 'microinverter')),
       count(*) FILTER (WHERE i.sku IS NULL),
       min(qi.unit_price_brl / i.price_brl), max(qi.unit_price_brl / i.price_brl),
       (SELECT sum(v::numeric) FROM jsonb_array_elements_text(q.consumption_kwh_month) v)
FROM quote q JOIN quote_item qi ON qi.quote_id = q.id
LEFT JOIN items_normalized i ON (i.distributor, i.sku) = (qi.distributor, qi.sku)
GROUP BY q.id
"""


def seed(warehouse, **kwargs) -> SeedReport:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return seed_medusa(conn, today=TODAY, **kwargs)


def snapshot(warehouse) -> dict[str, list[tuple]]:
    return {name: query(warehouse, sql) for name, sql in TABLES.items()}


@pytest.fixture()
def catalog(warehouse):
    catalog_job.run_static([REPO / "data" / "sample" / "catalog"],
                           warehouse=catalog_job.Warehouse(warehouse.dsn, warehouse.schema))
    assert query(warehouse, "SELECT count(*) FROM items_normalized")[0][0] > 100
    return warehouse


@pytest.fixture()
def seeded(catalog):
    return catalog, seed(catalog)


def test_cnpj_check_digits():
    assert cnpj_check_digits("069811800001") == "16"  # CEMIG-D, from the ANEEL tariff file
    assert is_valid_cnpj("06.981.180/0001-16") and not is_valid_cnpj("06981180000117")
    assert not is_valid_cnpj("11111111111111")


def test_counts_companies_and_quotes(seeded):
    wh, report = seeded
    counts = query(wh, 'SELECT (SELECT count(*) FROM company), (SELECT count(*) FROM quote), '
                       '(SELECT count(*) FROM quote_item), (SELECT count(*) FROM "order")')[0]
    assert report == SeedReport(40, 400, counts[2], counts[3], 12)
    assert counts[:2] == (40, 400) and 800 <= counts[2] <= 812

    companies = query(wh, "SELECT cnpj, utility, state, municipality, latitude, longitude, icms_pct, "
                          "name, created_at FROM company")
    towns = {m.name: m for m in MUNICIPALITIES}
    assert len({c[0] for c in companies}) == 40 and all(is_valid_cnpj(c[0]) for c in companies)
    assert len({c[7] for c in companies}) == 40
    for cnpj, utility, state, town, lat, lon, icms, _, created in companies:
        assert len(cnpj) == 14 and utility in UTILITIES
        m = towns[town]
        assert (utility, state, lat, lon) == (m.utility, m.state, m.latitude, m.longitude)
        assert icms == ICMS_PCT_BY_STATE[state] and 17 <= icms <= 20
        assert created.date() < TODAY - timedelta(days=365)
    assert {c[1] for c in companies} == set(UTILITIES)
    assert len({c[3] for c in companies}) == len(MUNICIPALITIES)  # 40 > 23: every town

    quotes = query(wh, "SELECT customer_class, connection, status, consumption_kwh_month, tilt_deg, "
                       "azimuth_deg, access_request_date, created_at, updated_at FROM quote")
    b1 = [q for q in quotes if q[0] == "B1"]
    assert 0.68 <= len(b1) / 400 <= 0.82
    by_status = {s: sum(q[2] == s for q in quotes)
                 for s in ("sent", "accepted", "draft", "rejected", "expired")}
    assert by_status["sent"] > 200 and all(n > 0 for n in by_status.values())
    b3 = [q for q in quotes if q[0] == "B3"]
    assert sum(q[1] == "bi" for q in b1) > len(b1) / 2 and sum(q[1] == "tri" for q in b3) > len(b3) / 2
    start = datetime.combine(TODAY - timedelta(days=366), datetime.min.time(), timezone.utc)
    end = datetime.combine(TODAY, datetime.min.time(), timezone.utc)
    grandfathered = 0
    for cls, _, _, months, tilt, azimuth, access, created, updated in quotes:
        assert len(months) == 12 and all(isinstance(v, int) for v in months)
        if cls == "B1":
            assert all(150 <= v <= 1200 for v in months)
        assert 10 <= tilt <= 25 and 0 <= azimuth < 360
        assert start <= created <= updated < end
        if access != created.date():
            grandfathered += 1
            assert date(2021, 1, 1) <= access <= date(2022, 12, 31)
    assert grandfathered == 20  # 5 %
    north = [q[5] for q in quotes if q[5] <= 30 or q[5] >= 330]
    assert len(north) > 0.85 * 400 and sum(a >= 330 for a in north) > 20
    # B3 outside minigeração stays within its consumption band
    assert all(500 <= v <= 6000 for q in b3 if max(q[3]) <= 6000 for v in q[3])


def test_systems_sizes_prices_and_unknown_skus(seeded):
    wh, _ = seeded
    systems = query(wh, SYSTEMS)
    assert len(systems) == 400
    mini = [s for s in systems if s[2] > 75]
    assert len(mini) == 8 and all(s[1] == "B3" and s[2] <= 300 and s[3] <= 300 for s in mini)
    coverage_ok = 0
    for _, _, kwp, ac_kw, module_lines, inverter_lines, unknown, lo, hi, yearly in systems:
        assert module_lines == 1 and inverter_lines == 1 and unknown in (0, 1)
        assert 0.92 - 1e-6 <= lo <= hi <= 1 + 1e-6  # catalog price less 0–8 %
        assert kwp <= 300 and (kwp > 75 or ac_kw <= 75)
        assert 0.75 <= kwp / ac_kw <= 1.6, (kwp, ac_kw)
        coverage = kwp * 1400 / float(yearly)
        assert 0.55 <= coverage <= 1.35
        coverage_ok += 0.68 <= coverage <= 1.22
    assert coverage_ok >= 0.95 * 400
    ratios = sorted(s[2] / s[3] for s in systems)
    assert 1.1 <= ratios[200] <= 1.3  # median DC/AC
    # ~3 % of quotes carry one stale SKU; the pipeline must report them
    stale = query(wh, "SELECT qi.quote_id, qi.distributor, qi.sku FROM quote_item qi "
                      "LEFT JOIN items_normalized i USING (distributor, sku) WHERE i.sku IS NULL")
    assert len(stale) == len({s[0] for s in stale}) == 12
    known = {d for (d,) in query(wh, "SELECT DISTINCT distributor FROM items_normalized")}
    assert {s[1] for s in stale} <= known
    micros = query(wh, "SELECT count(DISTINCT qi.quote_id) FROM quote_item qi JOIN items_normalized i "
                       "USING (distributor, sku) WHERE i.category = 'microinverter'")[0][0]
    assert 20 <= micros <= 200


def test_orders(seeded):
    wh, _ = seeded
    rows = query(wh, 'SELECT q.status, o.status, q.created_at, o.created_at FROM quote q '
                     'LEFT JOIN "order" o ON o.quote_id = q.id')
    eligible = [r for r in rows if r[0] in ("sent", "accepted")]
    ordered = [r for r in eligible if r[1] is not None]
    assert 0.27 <= len(ordered) / len(eligible) <= 0.43
    assert all(r[1] is None for r in rows if r[0] not in ("sent", "accepted"))
    end = datetime.combine(TODAY, datetime.min.time(), timezone.utc)
    for _, status, quoted, placed in ordered:
        assert status in ("placed", "paid", "shipped")
        assert 1 <= (placed.date() - quoted.date()).days <= 30 and placed < end
    assert {r[1] for r in ordered} == {"placed", "paid", "shipped"}


def test_rerun_is_idempotent_and_deterministic(seeded):
    wh, first = seeded
    before = snapshot(wh)
    xmin = query(wh, "SELECT id, xmin::text FROM quote ORDER BY id")
    assert seed(wh) == first
    assert snapshot(wh) == before
    assert query(wh, "SELECT id, xmin::text FROM quote ORDER BY id") == xmin  # no-op upserts
    # another day moves the timestamps only
    with db.connect(wh.dsn, wh.schema) as conn:
        seed_medusa(conn, today=TODAY + timedelta(days=10))
    after = snapshot(wh)
    assert [r[0] for r in after["quote"]] == [r[0] for r in before["quote"]]
    assert after["quote_item"] == before["quote_item"]
    assert [(r[0], r[1], r[2]) for r in after["order"]] == [(r[0], r[1], r[2]) for r in before["order"]]
    assert all(a[-2] - b[-2] == timedelta(days=10) for a, b in zip(after["quote"], before["quote"]))
    # another seed: new rows next to the old ones
    other = seed(wh, seed=15, companies=5, quotes=30)
    assert other.companies == 5 and other.quotes == 30 and other.unknown_sku_quotes == 1
    assert query(wh, "SELECT count(*) FROM quote")[0][0] == 430


def test_empty_catalog_raises(warehouse):
    with pytest.raises(ValueError, match="items_normalized is empty: run the catalog job first"):
        seed(warehouse)
    assert query(warehouse, "SELECT count(*) FROM company")[0][0] == 0
