"""PostgreSQL restarted under the CDC followers of the warehouse (``ysh tariffs follow``,
``ysh proposals follow``), with changes committed just before the stop (their outputs
are being written when the server goes) and after the start: each follower reconnects
with backoff and ends with the same tables as a batch recompute of the same sources —
nothing lost, nothing doubled."""

from __future__ import annotations

import json

import pytest

from ysh import db

from ..conftest import query, wait_for
from .conftest import Service, restart, service_env, settled

pytestmark = pytest.mark.integration


def test_tariffs_follow_rides_through_a_database_restart(restartable_pg, fault_warehouse, tmp_path):
    from ysh.tariffs import job, landing

    from ..tariffs.test_warehouse import PERIODS, SAMPLE, b1_tariffs, tables_state, write_tariffs

    warehouse = fault_warehouse

    def land(*paths):
        with db.connect(warehouse.dsn, warehouse.schema) as conn:
            return [landing.land_file(conn, p) for p in landing.feed_files(list(paths))]

    land(SAMPLE)
    follower = Service(["tariffs", "follow"], service_env(warehouse, tmp_path / "home"), tmp_path / "follow.log")
    try:
        wait_for(lambda: query(warehouse, "SELECT count(*) FROM tarifas_normalized")[0][0] == 476, 120,
                 "the initial snapshot normalized")
        # streaming, its first start over: a restart while it still reads a snapshot (an
        # exported one, gone with the server) ends that start instead — CI saw that race
        # when this waited for the slot to be active (the preparing connection holds it)
        wait_for(lambda: job.FOLLOWER.streaming(warehouse), 60, "the follower streaming")
        extra = write_tariffs(tmp_path / "extra.csv", *[p.replace("CEMIG-D", "EQUATORIAL PA") for p in PERIODS[:3]])
        land(extra)  # committed right before the stop: its outputs are in flight
        restart(restartable_pg)
        assert follower.alive(), follower.log()[-3000:]
        write_tariffs(extra, *[p.replace("CEMIG-D", "EQUATORIAL PA") for p in PERIODS[:2]])
        land(extra)  # and a change after the start
        with db.connect(warehouse.dsn, warehouse.schema) as conn:
            landing.remove_source(conn, "bandeira-tarifaria-acionamento.csv")
        wait_for(lambda: len(b1_tariffs(warehouse, "EQUATORIAL PA")) == 2
                 and query(warehouse, "SELECT count(*) FROM tarifas_bandeiras")[0][0] == 0, 90,
                 "the changes around the restart followed")
        followed = settled(lambda: tables_state(warehouse))
        assert follower.alive(), follower.log()[-3000:]
    finally:
        follower.stop()
    assert "reconnect attempt 1" in follower.log()
    wait_for(lambda: not job.FOLLOWER.active(warehouse), 30, "the slot released")
    job.run_warehouse(warehouse)  # the undisturbed result of the same sources
    assert tables_state(warehouse) == followed


def test_proposals_follow_rides_through_a_database_restart(restartable_pg, fault_warehouse, tmp_path,
                                                           monkeypatch):
    from ysh.catalog import job as catalog_job
    from ysh.proposals import job
    from ysh.settings import get_settings
    from ysh.tariffs import job as tariffs_job
    from ysh.tariffs import landing

    from ..conftest import REPO
    from ..proposals.conftest import CONSUMPTION, seed
    from .conftest import table_contents

    warehouse = fault_warehouse
    catalog_job.run_static([REPO / "data" / "sample" / "catalog"], warehouse=warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        for path in landing.feed_files([REPO / "data" / "sample" / "tariffs"]):
            landing.land_file(conn, path)
    tariffs_job.run_warehouse(warehouse)
    module, _ = seed(warehouse)
    extra = {"YSH_IRRADIANCE_OFFLINE": "true", "YSH_IRRADIANCE_CACHE_DIR": str(tmp_path / "irradiance")}
    follower = Service(["proposals", "follow"], service_env(warehouse, tmp_path / "home", **extra),
                       tmp_path / "follow.log")

    def analytics():
        return {q: (err, npv) for q, err, npv in query(warehouse, "SELECT quote_id, error, npv_brl "
                                                                  "FROM propostas_analytics")}
    try:
        wait_for(lambda: len(analytics()) == 4, 120, "the four seeded quotes evaluated")
        wait_for(lambda: job.FOLLOWER.streaming(warehouse), 60, "the follower streaming")
        with db.connect(warehouse.dsn, warehouse.schema) as conn:  # a new quote right before the stop
            conn.execute("INSERT INTO quote (id, company_id, customer_class, connection, consumption_kwh_month, "
                         "created_at) VALUES ('q5', 'c1', 'B3', 'tri', %s, '2026-03-20 10:00-03')",
                         (json.dumps([2 * c for c in CONSUMPTION]),))
            conn.execute("INSERT INTO quote_item VALUES ('i6', 'q5', %s, %s, 20, %s)",
                         (module[0], module[1], module[3]))
            conn.commit()
        restart(restartable_pg)
        assert follower.alive(), follower.log()[-3000:]
        with db.connect(warehouse.dsn, warehouse.schema) as conn:  # an order and a deletion after the start
            conn.execute("""INSERT INTO "order" (id, quote_id) VALUES ('o2', 'q5')""")
            conn.execute("DELETE FROM quote WHERE id = 'q4'")
            conn.commit()
        wait_for(lambda: "q5" in analytics() and "q4" not in analytics()
                 and query(warehouse, "SELECT ordered FROM propostas_enriched WHERE quote_id = 'q5'") == [(True,)],
                 90, "the changes around the restart followed")
        followed = settled(lambda: {t: table_contents(warehouse, t) for t in job.FOLLOWER.output_tables})
        assert follower.alive(), follower.log()[-3000:]
    finally:
        follower.stop()
    assert "reconnect attempt 1" in follower.log()
    wait_for(lambda: not job.FOLLOWER.active(warehouse), 30, "the slots released")
    for key, value in {"YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema, **extra}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        job.run_batch(warehouse, get_settings())  # the undisturbed result of the same sources
    finally:
        get_settings.cache_clear()
    assert {t: table_contents(warehouse, t) for t in job.FOLLOWER.output_tables} == followed
    assert len(followed["propostas_analytics"]) == 4
