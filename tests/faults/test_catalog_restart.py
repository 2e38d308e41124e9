"""PostgreSQL restarted under ``ysh catalog follow``: a feed changed right before the
stop (its rows are being written when the server goes), feeds added and removed after
the start; the follower retries its writes and ends with the same tables as a batch run
over the same landing folder — nothing lost, nothing doubled."""

from __future__ import annotations

import uuid

import pytest

from ..catalog.feeds_fixture import SOL_NASCENTE, rewrite, write_feeds
from ..conftest import query, wait_for
from .conftest import Service, restart, service_env, settled, table_contents

pytestmark = pytest.mark.integration

COMPARED = ("items_normalized", "items_quarantine", "products", "catalog_feed_files")


def skus(warehouse):
    return sorted(s for (s,) in query(warehouse, "SELECT sku FROM items_normalized"))


def test_catalog_follow_rides_through_a_database_restart(restartable_pg, fault_warehouse, tmp_path):
    from ysh import db
    from ysh.catalog import job
    from ysh.db import Warehouse

    warehouse = fault_warehouse
    landing = tmp_path / "landing"
    paths = write_feeds(landing)
    follower = Service(["catalog", "follow", "--landing", str(landing)],
                       service_env(warehouse, tmp_path / "home"), tmp_path / "follow.log")
    try:
        wait_for(lambda: skus(warehouse) == ["EV-1", "EV-2", "FS-10", "SN001", "SN002"], 120, "initial items")
        wait_for(lambda: "caught up" in follower.log(), 60, "the start-up reconciliation")
        # changed right before the stop: its rows are in flight
        rewrite(paths["sol_nascente"], SOL_NASCENTE.replace("SN002;Inversor", "SN777;Inversor").encode("cp1252"))
        restart(restartable_pg)
        assert follower.alive(), follower.log()[-3000:]
        (landing / "nova.csv").write_text("sku;categoria;potencia;preco\nN1;Módulo;550;500\n")
        paths["fotovolt"].unlink()
        wait_for(lambda: skus(warehouse) == ["EV-1", "EV-2", "N1", "SN001", "SN777"], 90,
                 "the changes around the restart followed")
        wait_for(lambda: query(warehouse, "SELECT count(*) FROM catalog_feed_files")[0][0] == 3, 30, "feed files")
        followed = settled(lambda: {t: table_contents(warehouse, t) for t in COMPARED})
        assert follower.alive(), follower.log()[-3000:]
    finally:
        follower.stop()
    assert "failed (attempt 1" in follower.log() or "retrying" in follower.log()

    undisturbed = Warehouse(warehouse.dsn, f"f_{uuid.uuid4().hex[:10]}")  # a batch run over the same folder
    db.migrate(undisturbed.dsn, undisturbed.schema)
    try:
        job.run_static([landing], warehouse=undisturbed)
        assert {t: table_contents(undisturbed, t) for t in COMPARED} == followed
    finally:
        with db.connect(undisturbed.dsn, undisturbed.schema, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{undisturbed.schema}" CASCADE')
