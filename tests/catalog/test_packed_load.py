"""A static run into the warehouse packs a distributor's only, ordinary feed: its items
leave the graph as COPY text instead of rows (docs/catalog.md, "Performance"). The route
must not show in the warehouse: every table is the same as when every item goes through
the rows of the graph — on the sample feeds, the real storefront exports (rows), a
distributor with two feeds (rows), an ordinary feed whose cells hold tabs, newlines and
backslashes, a held feed version, and with the Inmetro registry matched."""

import os
import shutil
import uuid

import psycopg
import pytest
from psycopg import sql

from ysh import db
from ysh.catalog import job

from ..conftest import REPO, query, real_exports

pytestmark = pytest.mark.integration

SAMPLE = REPO / "data" / "sample" / "catalog"
REGISTRY = REPO / "data" / "sample" / "inmetro"
NEWER = "sku;categoria;marca;modelo;potencia;preco\nAC-1;Módulo;JA Solar;JAM72S01-360-PR;360;330\nAC-2;Inversor;Growatt;MIN 5000TL-X;5000;3900\n"
OLDER = "sku;categoria;marca;modelo;potencia;preco\nAC-1;Módulo;JA Solar;JAM72S01-360-PR;360;310\nAC-3;Módulo;Canadian Solar;CS3W-450MS;450;610\n"
# an ordinary feed whose quoted cells hold the characters COPY's text format escapes
ODD = ('sku,categoria,marca,modelo,potencia,preco,descricao\n'
       'OD-1,Inversor,Growatt,MIN 3000TL-X,3000,2500,"linha 1\nlinha 2\tcom tab"\n'
       'OD-2,Módulo,JA Solar,JAM54S31-410/MR,410,540,"barra \\ invertida \\N e \\t literal"\n'
       'OD-3,Módulo,JA Solar,JAM54S31-410/MR,410,550,\n'
       # one product (one model key) four times in one packed file, spelled two ways, one
       # offer without a price: the file's own product group
       'OD-4,Módulo,JA Solar,JAM54S31 410 MR,"0,41 kW",560,\n'
       'OD-5,Módulo,JA Solar,JAM54S31-410/MR,410,,\n')

SNAPSHOTS = {
    "items_normalized": "SELECT (to_jsonb(i) - 'ingested_at')::text FROM items_normalized i ORDER BY distributor, sku",
    "items_quarantine": "SELECT (to_jsonb(q) - 'ingested_at')::text FROM items_quarantine q ORDER BY source_file, line",
    "products": "SELECT (to_jsonb(p) - 'updated_at')::text FROM products p ORDER BY product_key",
    "catalog_feed_files": "SELECT (to_jsonb(f) - 'ingested_at' - 'modified_at')::text FROM catalog_feed_files f "
                          "ORDER BY source_file",
    "catalog_feed_versions": "SELECT (to_jsonb(v) - 'ingested_at')::text FROM catalog_feed_versions v "
                             "ORDER BY source_file",
    "items_inmetro": "SELECT (to_jsonb(m) - 'ingested_at')::text FROM items_inmetro m ORDER BY distributor, sku",
    "inmetro_registry": "SELECT (to_jsonb(r) - 'ingested_at')::text FROM inmetro_registry r "
                        "ORDER BY source_file, line",
}


def snapshot(warehouse) -> dict[str, list]:
    return {name: [row[0] for row in query(warehouse, statement)] for name, statement in SNAPSHOTS.items()}


@pytest.fixture()
def second_warehouse(pg_server):
    schema = f"t_{uuid.uuid4().hex[:10]}"
    db.migrate(pg_server.dsn(), schema)
    yield job.Warehouse(pg_server.dsn(), schema)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def landing(root):
    """Sample feeds (each its distributor's only, ordinary feed: packed), the real exports
    (storefront offers and several files per distributor: rows), a distributor with an
    older and a newer feed (rows), and an odd ordinary feed (packed)."""
    root.mkdir()
    for feed in SAMPLE.iterdir():
        shutil.copy(feed, root / feed.name)
    exports = real_exports(root.parent / "exports-copy")
    for distributor in exports.iterdir():
        shutil.copytree(distributor, root / distributor.name)
    (root / "acme").mkdir()
    (root / "acme" / "older.csv").write_text(OLDER, encoding="utf-8")
    (root / "acme" / "newer.csv").write_text(NEWER, encoding="utf-8")
    os.utime(root / "acme" / "older.csv", ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    (root / "odd_feeds").mkdir()
    (root / "odd_feeds" / "odd.csv").write_text(ODD, encoding="utf-8")
    return root


def test_packed_and_row_loads_write_the_same_tables(warehouse, second_warehouse, tmp_path):
    root = landing(tmp_path / "landing")
    registry = job.RegistrySource(path=REGISTRY)
    packed = job.run_static([root], warehouse=warehouse, reconcile_after=True, registry=registry)
    rows = job.run_static([root], warehouse=second_warehouse, reconcile_after=True, registry=registry, pack=False)

    # the five sample feeds and the odd one are packed; the exports and acme are not
    expected_packed = query(warehouse, "SELECT count(*) FROM items_normalized WHERE distributor NOT IN "
                                       "('fotus', 'solfacil', 'acme')")[0][0]
    assert packed.packed_items == expected_packed > 50
    assert rows.packed_items == 0
    first = snapshot(warehouse)
    assert first == snapshot(second_warehouse)
    counts = {name: len(values) for name, values in first.items()}
    assert counts["items_normalized"] == packed.items == rows.items > 600
    assert counts["items_inmetro"] == counts["items_normalized"] and counts["inmetro_registry"] > 0
    assert counts["products"] == packed.products == rows.products > 0
    # the odd cells came back as they were written, and acme's newer feed won AC-1
    assert query(warehouse, "SELECT description FROM items_normalized WHERE sku = 'OD-1'") == [
        ("linha 1\nlinha 2\tcom tab",)]
    assert query(warehouse, "SELECT description FROM items_normalized WHERE sku = 'OD-2'") == [
        ("barra \\ invertida \\N e \\t literal",)]
    assert query(warehouse, "SELECT price_brl, source_file LIKE '%%newer.csv' FROM items_normalized "
                            "WHERE sku = 'AC-1'") == [(330.0, True)]
    assert query(warehouse, "SELECT offers, distributors, model, power_w, min_price_brl, median_price_brl, "
                            "max_price_brl FROM products WHERE product_key = 'JA Solar|JAM54S31410MR'") == [
        (4, 1, "JAM54S31-410/MR", 410.0, 540.0, 550.0, 560.0)]
    # products combine packed groups with item rows: JA Solar's 360 W module is offered
    # by acme (rows, its highest price) and by three sample feeds (packed)
    assert query(warehouse, "SELECT offers, distributors, min_price_brl, max_price_brl FROM products "
                            "WHERE product_key = 'JA Solar|JAM72S01360PR'") == [(4, 4, 298.28, 330.0)]

    # a re-run over the full tables (the packed items through the staging table) and a
    # held version (a feed shrunk to nothing: its last good version's rows stay)
    (root / "odd_feeds" / "odd.csv").write_text(ODD.splitlines()[0] + "\n", encoding="utf-8")
    again = job.run_static([root], warehouse=warehouse, reconcile_after=True, registry=registry)
    again_rows = job.run_static([root], warehouse=second_warehouse, reconcile_after=True, registry=registry,
                                pack=False)
    assert again.held == again_rows.held and list(again.held.values()) == ["feed_shrunk"]
    assert again.packed_items == expected_packed
    assert snapshot(warehouse) == snapshot(second_warehouse)
    assert snapshot(warehouse)["items_normalized"] == first["items_normalized"]

    # a re-run with changes: one packed feed has a new price, a new item and lacks one it
    # had, another packed feed is gone. Both routes agree, and the packed route rewrote
    # only the items that changed (an unchanged one keeps its row version and write time)
    versions = dict(query(warehouse, "SELECT sku, xmin::text || ' ' || ingested_at::text FROM items_normalized"))
    gone = query(warehouse, "SELECT count(*) FROM items_normalized WHERE distributor = 'casa_do_integrador'")[0][0]
    assert gone > 0
    (root / "casa_do_integrador.csv").unlink()
    changed = ODD.replace("OD-1,Inversor,Growatt,MIN 3000TL-X,3000,2500,", "OD-1,Inversor,Growatt,MIN 3000TL-X,3000,2450,")
    changed = changed.replace("OD-3,Módulo,JA Solar,JAM54S31-410/MR,410,550,\n", "")
    changed += "OD-6,Inversor,Growatt,MIN 6000TL-X,6000,4100,\n"
    (root / "odd_feeds" / "odd.csv").write_text(changed, encoding="utf-8")
    third = job.run_static([root], warehouse=warehouse, reconcile_after=True, registry=registry)
    job.run_static([root], warehouse=second_warehouse, reconcile_after=True, registry=registry, pack=False)
    assert snapshot(warehouse) == snapshot(second_warehouse)
    assert third.pruned["items_normalized"] == gone + 1  # the gone feed's items and OD-3
    after = dict(query(warehouse, "SELECT sku, xmin::text || ' ' || ingested_at::text FROM items_normalized"))
    assert "OD-3" not in after and "OD-6" in after
    assert query(warehouse, "SELECT price_brl FROM items_normalized WHERE sku = 'OD-1'") == [(2450.0,)]
    rewritten = {sku for sku, version in after.items() if versions.get(sku) != version}
    packed_now = {sku for (sku,) in query(warehouse, "SELECT sku FROM items_normalized WHERE distributor NOT IN "
                                                     "('fotus', 'solfacil', 'acme')")}
    # OD-1's price, OD-6 new, OD-4 and OD-5 one line up (their source line moved); OD-2
    # and every other packed item as it was
    assert rewritten & packed_now == {"OD-1", "OD-4", "OD-5", "OD-6"}
    assert len(packed_now) > 50


def test_pack_needs_a_warehouse_alone(warehouse, tmp_path):
    with pytest.raises(ValueError, match="pack=True needs a warehouse"):
        job.run_static([SAMPLE], out_dir=tmp_path / "out", warehouse=warehouse, pack=True)


def test_a_rerun_in_two_processes_prunes_by_presence_and_leaves_unchanged_items_alone(warehouse_env, tmp_path):
    """``ysh catalog run`` in 2 Pathway processes (the files normalized in both, the
    packed items gathered in process 0, where reconcile runs), run again after one feed
    lost an item and another changed a price."""
    import subprocess
    import sys

    landing = tmp_path / "landing"
    for name in ("north", "south"):
        (landing / name).mkdir(parents=True)
    north = "sku;categoria;marca;modelo;potencia;preco\n" + "".join(
        f"N-{i};Módulo;JA Solar;JAM72S{i:02d}-550/MR;550;{700 + i}\n" for i in range(40))
    south = "sku;categoria;marca;modelo;potencia;preco\n" + "".join(
        f"S-{i};Inversor;Growatt;MIN {i}000TL-X;{i}000;{2000 + i}\n" for i in range(1, 41))
    (landing / "north" / "feed.csv").write_text(north, encoding="utf-8")
    (landing / "south" / "feed.csv").write_text(south, encoding="utf-8")
    env = {**os.environ, "YSH_PATHWAY_PROCESSES": "2", "COLUMNS": "200"}

    def run() -> None:
        done = subprocess.run([sys.executable, "-m", "ysh.cli", "catalog", "run", "--landing", str(landing)],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def versions() -> dict[str, str]:
        return dict(query(warehouse_env, "SELECT sku, xmin::text FROM items_normalized"))

    run()
    first = versions()
    assert len(first) == 80
    # north loses its last item, south's S-7 gets a new price; both stay under the shrink limit
    (landing / "north" / "feed.csv").write_text(north.rsplit("N-39;", 1)[0], encoding="utf-8")
    (landing / "south" / "feed.csv").write_text(south.replace("S-7;Inversor;Growatt;MIN 7000TL-X;7000;2007",
                                                              "S-7;Inversor;Growatt;MIN 7000TL-X;7000;1999"),
                                                 encoding="utf-8")
    run()
    second = versions()
    assert set(second) == set(first) - {"N-39"}
    assert {sku for sku in second if second[sku] != first[sku]} == {"S-7"}
    assert query(warehouse_env, "SELECT price_brl FROM items_normalized WHERE sku = 'S-7'") == [(1999.0,)]
