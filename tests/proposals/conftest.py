"""Shared fixtures of the proposals tests: a warehouse with the sample catalog and
tariffs (from their own jobs), offline irradiance, and a few hand-made quotes."""

import json

import pytest

from ysh import db
from ysh.catalog import job as catalog_job
from ysh.settings import Settings
from ysh.tariffs import job as tariffs_job
from ysh.tariffs import landing

from ..conftest import REPO, query

CONSUMPTION = [520, 510, 500, 470, 440, 430, 430, 450, 470, 490, 500, 530]


@pytest.fixture()
def platform(warehouse, tmp_path):
    """The warehouse with the sample catalog and tariffs, and offline irradiance settings."""
    catalog_job.run_static([REPO / "data" / "sample" / "catalog"], warehouse=warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        for path in landing.feed_files([REPO / "data" / "sample" / "tariffs"]):
            landing.land_file(conn, path)
    tariffs_job.run_warehouse(warehouse)
    settings = Settings(postgres_dsn=warehouse.dsn, postgres_schema=warehouse.schema, irradiance_offline=True,
                        irradiance_cache_dir=tmp_path / "irradiance")
    return warehouse, settings


def pick(warehouse, category):
    return query(warehouse, "SELECT distributor, sku, power_w, price_brl FROM items_normalized "
                            "WHERE category = %s AND power_w IS NOT NULL AND price_brl IS NOT NULL "
                            "ORDER BY distributor, sku LIMIT 1", (category,))[0]


def seed(warehouse):
    """Two companies (one whose utility has no tariffs) and four quotes: q1 B1 with modules
    and an inverter (ordered), q2 B3, q3 at the utility without tariffs, q4 with an unknown
    SKU only."""
    module, inverter = pick(warehouse, "module"), pick(warehouse, "inverter")
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("INSERT INTO company (id, name, municipality, state, latitude, longitude, utility, icms_pct) "
                     "VALUES ('c1', 'Solar BH', 'Belo Horizonte', 'MG', -19.92, -43.94, 'CEMIG-D', 18), "
                     "('c2', 'Sol do Norte', 'Belém', 'PA', -1.46, -48.50, 'EQUATORIAL PA', 17)")
        for quote_id, company, klass in (("q1", "c1", "B1"), ("q2", "c1", "B3"), ("q3", "c2", "B1"),
                                         ("q4", "c1", "B1")):
            conn.execute("INSERT INTO quote (id, company_id, customer_class, connection, consumption_kwh_month, "
                         "created_at) VALUES (%s, %s, %s, 'bi', %s, '2026-03-15 12:00-03')",
                         (quote_id, company, klass, json.dumps(CONSUMPTION)))
        conn.execute("INSERT INTO quote_item VALUES ('i1', 'q1', %s, %s, 10, %s), ('i2', 'q1', %s, %s, 1, %s), "
                     "('i3', 'q2', %s, %s, 12, %s), ('i4', 'q3', %s, %s, 10, %s), "
                     "('i5', 'q4', 'ghost', 'NO-SUCH-SKU', 10, 900)",
                     (module[0], module[1], module[3], inverter[0], inverter[1], inverter[3],
                      module[0], module[1], module[3], module[0], module[1], module[3]))
        conn.execute("""INSERT INTO "order" (id, quote_id) VALUES ('o1', 'q1')""")
        conn.commit()
    return module, inverter
