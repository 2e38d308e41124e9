"""``ysh proposals follow`` as a real process: new quotes, orders, deleted quotes and a
changed tariff reach the proposals tables through CDC."""

import json
import os
import subprocess
import sys

import psycopg
import pytest

from ysh import db
from ysh.proposals import job

from ..conftest import query, stop_process, wait_for
from .conftest import CONSUMPTION, seed

pytestmark = pytest.mark.integration


@pytest.fixture()
def follower(platform, tmp_path):
    warehouse, settings = platform
    env = {**os.environ, "YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema,
           "YSH_HOME": str(tmp_path / "home"), "YSH_IRRADIANCE_OFFLINE": "true",
           "YSH_IRRADIANCE_CACHE_DIR": str(settings.proposals.irradiance.cache_dir)}
    log = (tmp_path / "follow.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "proposals", "follow"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    yield proc
    stop_process(proc, wait_s=30)
    log.close()
    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        for table, _, _ in job.SOURCES.values():
            publication, slot = job.FOLLOWER.names(warehouse.schema, table)
            wait_for(lambda: not conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active",
                                              (slot,)).fetchone(), 30, "slot released")
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = %s", (slot,))
            conn.execute(f'DROP PUBLICATION IF EXISTS "{publication}"')


def analytics(warehouse):
    return {q: (err, npv) for q, err, npv in query(warehouse, "SELECT quote_id, error, npv_brl FROM propostas_analytics")}


def test_quotes_orders_and_tariffs_flow_through(platform, follower):
    warehouse, _ = platform
    module, _ = seed(warehouse)
    wait_for(lambda: len(analytics(warehouse)) == 4, 120, "the four seeded quotes evaluated")
    wait_for(lambda: job.FOLLOWER.streaming(warehouse), 30, "the follower streaming")

    with db.connect(warehouse.dsn, warehouse.schema) as conn:  # a new quote, then its items
        conn.execute("INSERT INTO quote (id, company_id, customer_class, connection, consumption_kwh_month, "
                     "created_at) VALUES ('q5', 'c1', 'B3', 'tri', %s, '2026-03-20 10:00-03')",
                     (json.dumps([2 * c for c in CONSUMPTION]),))
        conn.execute("INSERT INTO quote_item VALUES ('i6', 'q5', %s, %s, 20, %s)", (module[0], module[1], module[3]))
        conn.commit()
    wait_for(lambda: analytics(warehouse).get("q5", ("x", None))[0] is None
             and analytics(warehouse)["q5"][1] is not None, 60, "q5 evaluated")
    assert query(warehouse, "SELECT system_kwp FROM propostas_enriched WHERE quote_id = 'q5'") == [
        (pytest.approx(20 * module[2] / 1000),)]
    # the follower's upsert writes the yearly JSON text as a JSON array (the column is json)
    (yearly, kind), = query(warehouse, "SELECT yearly, json_typeof(yearly) FROM propostas_analytics "
                                       "WHERE quote_id = 'q5'")
    assert kind == "array" and len(yearly) == 25 and yearly[0]["year"] == 1

    with db.connect(warehouse.dsn, warehouse.schema) as conn:  # an order, and a quote deleted
        conn.execute("""INSERT INTO "order" (id, quote_id) VALUES ('o2', 'q5')""")
        conn.execute("DELETE FROM quote WHERE id = 'q4'")
        conn.commit()
    wait_for(lambda: query(warehouse, "SELECT ordered FROM propostas_enriched WHERE quote_id = 'q5'") == [(True,)],
             60, "q5 ordered")
    wait_for(lambda: "q4" not in analytics(warehouse), 60, "q4 gone")
    wait_for(lambda: query(warehouse, "SELECT quotes, orders FROM kpis_b1_b3 WHERE customer_class = 'B3' "
                                      "AND state = 'MG'") == [(2, 1)], 60, "B3 KPIs")

    before = analytics(warehouse)["q1"][1]
    with db.connect(warehouse.dsn, warehouse.schema) as conn:  # a tariff revised in place
        conn.execute("UPDATE tarifas_normalized SET te_brl_per_kwh = te_brl_per_kwh * 1.2 WHERE utility = 'CEMIG-D' "
                     "AND subgroup = 'B1' AND subclass = 'Residencial' AND base = 'aplicacao' AND unit = 'MWh'")
        conn.commit()
    wait_for(lambda: analytics(warehouse)["q1"][1] > before, 60, "q1 re-evaluated with the dearer tariff")
