"""``ysh catalog follow`` as a real process: feeds added, changed and removed while it runs."""

import os
import subprocess
import sys
import time

import pytest

from ..conftest import query, stop_process, wait_for
from .feeds_fixture import SOL_NASCENTE, rewrite, write_feeds

pytestmark = pytest.mark.integration


@pytest.fixture()
def watcher(warehouse, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    env = {**os.environ, "YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema}
    log = (tmp_path / "watch.log").open("w")

    def start():
        return subprocess.Popen([sys.executable, "-m", "ysh.cli", "catalog", "follow", "--landing", str(landing)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)

    procs = [start()]
    yield landing, procs, start
    for proc in procs:
        stop_process(proc)
    log.close()


def skus(warehouse, distributor=None):
    sql = "SELECT sku FROM items_normalized"
    params = ()
    if distributor:
        sql += " WHERE distributor = %s"
        params = (distributor,)
    return sorted(s for (s,) in query(warehouse, sql + " ORDER BY 1", params))


def test_new_changed_and_removed_feeds_reach_postgres(watcher, warehouse):
    landing, procs, _ = watcher
    paths = write_feeds(landing)
    wait_for(lambda: skus(warehouse) == ["EV-1", "EV-2", "FS-10", "SN001", "SN002"], what="initial items")
    wait_for(lambda: query(warehouse, "SELECT count(*) FROM products")[0][0] == 3, what="products")

    # a changed file replaces its rows
    rewrite(paths["sol_nascente"], SOL_NASCENTE.replace("SN002;Inversor", "SN777;Inversor").encode("cp1252"))
    wait_for(lambda: skus(warehouse, "sol_nascente") == ["SN001", "SN777"], what="changed feed")

    # a removed file removes its rows, and the product it supported loses an offer
    paths["energia_verde"].unlink()
    wait_for(lambda: skus(warehouse, "energia_verde") == [], what="removed feed")
    wait_for(lambda: query(warehouse, "SELECT offers FROM products WHERE product_key = 'JA Solar|JAM72S30550MR'")
             == [(1,)], what="product offers after removal")
    assert query(warehouse, "SELECT count(*) FROM items_quarantine WHERE distributor = 'energia_verde'") == [(0,)]
    assert procs[0].poll() is None, "watcher died"


def test_restart_loses_nothing_and_prunes_feeds_removed_while_down(watcher, warehouse):
    landing, procs, start = watcher
    paths = write_feeds(landing)
    wait_for(lambda: len(skus(warehouse)) == 5, what="initial items")
    procs[0].kill()  # no goodbye: like a crash
    procs[0].wait(10)

    paths["fotovolt"].unlink()  # removed while the watcher is down
    (landing / "nova.csv").write_text("sku;categoria;potencia;preco\nN1;Módulo;550;500\n")
    # changed while down: SN002 and the two bad rows are gone from the Sol Nascente feed
    rewrite(paths["sol_nascente"], "\n".join(SOL_NASCENTE.splitlines()[:2]).encode("cp1252") + b"\n")
    procs.append(start())
    wait_for(lambda: skus(warehouse) == ["EV-1", "EV-2", "N1", "SN001"], what="state after restart")
    assert query(warehouse, "SELECT count(*) FROM items_normalized") == [(4,)]
    assert query(warehouse, "SELECT distributor, reason FROM items_quarantine") == [("energia_verde", "negative_price")]
    offers, groupable = query(warehouse, "SELECT (SELECT sum(offers) FROM products),"
                                         " (SELECT count(*) FROM items_normalized WHERE product_key IS NOT NULL)")[0]
    assert offers == groupable
    # and it keeps following after the restart
    paths["energia_verde"].unlink()
    wait_for(lambda: skus(warehouse) == ["N1", "SN001"], what="removal after restart")
