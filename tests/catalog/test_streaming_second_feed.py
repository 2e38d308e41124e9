"""``ysh catalog follow`` when a distributor gets a second feed and loses it again: the
graph ranks the rows of a distributor only while it has more than one feed (a single
feed's rows skip the ranking), so the rows move between the two paths — the warehouse
must show the newest feed's price for a shared SKU while both feeds are there, and the
first feed's again once the second is gone, with nothing lost or doubled."""

import os
import subprocess
import sys
import time

import pytest

from ..conftest import query, stop_process, wait_for

pytestmark = pytest.mark.integration

HEADER = "sku;categoria;marca;modelo;potencia;preco\n"


@pytest.fixture()
def follower(warehouse, tmp_path):
    landing = tmp_path / "landing"
    (landing / "acme").mkdir(parents=True)
    env = {**os.environ, "YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema}
    log = (tmp_path / "follow.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "catalog", "follow", "--landing", str(landing)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    yield landing, proc
    stop_process(proc)
    log.close()


def land(path, text):
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.rename(path)


def prices(warehouse):
    return query(warehouse, "SELECT sku, price_brl FROM items_normalized WHERE distributor = 'acme' ORDER BY sku")


def test_a_second_feed_of_a_distributor_wins_its_shared_skus_and_its_removal_gives_them_back(follower, warehouse):
    landing, proc = follower
    land(landing / "acme" / "a.csv", HEADER + "A1;Módulo;JA Solar;JAM72S30-550/MR;550;700\n"
                                             "A2;Inversor;Growatt;MIN 5000TL-X;5000;4000\n")
    wait_for(lambda: prices(warehouse) == [("A1", 700.0), ("A2", 4000.0)], what="the first feed")

    time.sleep(0.05)  # a newer modification time
    land(landing / "acme" / "b.csv", HEADER + "A2;Inversor;Growatt;MIN 5000TL-X;5000;3800\n"
                                             "A3;Inversor;Deye;SUN-5K-G;5000;5100\n")
    wait_for(lambda: prices(warehouse) == [("A1", 700.0), ("A2", 3800.0), ("A3", 5100.0)],
             what="the second feed winning A2")

    (landing / "acme" / "b.csv").unlink()
    wait_for(lambda: prices(warehouse) == [("A1", 700.0), ("A2", 4000.0)], what="the first feed's A2 back")
    assert query(warehouse, "SELECT count(*) FROM items_normalized") == [(2,)]
    assert proc.poll() is None, "follower died"
