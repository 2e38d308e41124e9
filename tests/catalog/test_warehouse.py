"""The catalog pipeline against a real PostgreSQL: upserts, reruns, removed feeds."""

import pytest

from ysh import db
from ysh.catalog import job

from ..conftest import query
from .feeds_fixture import SOL_NASCENTE, rewrite, write_feeds

pytestmark = pytest.mark.integration


def item_keys(warehouse):
    return query(warehouse, "SELECT distributor, sku FROM items_normalized ORDER BY 1, 2")


def test_static_run_lands_items_quarantine_products_and_files(warehouse, tmp_path):
    write_feeds(tmp_path / "landing")
    report = job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True)
    assert item_keys(warehouse) == [("energia_verde", "EV-1"), ("energia_verde", "EV-2"),
                                   ("fotovolt", "FS-10"), ("sol_nascente", "SN001"),
                                   ("sol_nascente", "SN002")]
    row = query(warehouse, "SELECT brand, model, category, power_w, price_brl, stock_units, "
                           "inmetro_registration, inmetro_status, source_line "
                           "FROM items_normalized WHERE sku = 'SN001'")
    assert row == [("JA Solar", "JAM72S30-550/MR", "module", 550.0, 612.5, 120, "004567/2023", "ok", 2)]
    assert query(warehouse, "SELECT reason, count(*) FROM items_quarantine GROUP BY 1 ORDER BY 1") == [
        ("missing_sku", 1), ("negative_price", 1), ("power_out_of_range", 1), ("unknown_category", 1)]
    assert query(warehouse, "SELECT offers, distributors FROM products "
                            "WHERE product_key = 'JA Solar|JAM72S30550MR'") == [(2, 2)]
    assert query(warehouse, "SELECT count(*), sum(rows) FROM catalog_feed_files") == [(3, 9)]
    assert report.items == 5 and report.products == 3


SNAPSHOTS = {
    # every column but ingested_at
    "items_normalized": "SELECT (to_jsonb(i) - 'ingested_at')::text FROM items_normalized i ORDER BY distributor, sku",
    "items_quarantine": "SELECT distributor, source_file, line, reason, detail, raw FROM items_quarantine "
                        "ORDER BY source_file, line",
    "products": "SELECT product_key, brand, model, category, power_w, offers, distributors, min_price_brl, "
                "median_price_brl, max_price_brl FROM products ORDER BY product_key",
    "catalog_feed_files": "SELECT source_file, distributor, format, encoding, rows, items, quarantined, "
                          "duplicate_skus, non_product_rows, column_roles FROM catalog_feed_files ORDER BY source_file",
}


def snapshot(warehouse):
    tables = {name: query(warehouse, sql) for name, sql in SNAPSHOTS.items()}
    return tables


def test_rerun_is_idempotent(warehouse, tmp_path):
    write_feeds(tmp_path / "landing")
    job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True)
    first = snapshot(warehouse)
    job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True)
    assert snapshot(warehouse) == first
    assert {name: len(rows) for name, rows in first.items()} == {
        "items_normalized": 5, "items_quarantine": 4, "products": 3, "catalog_feed_files": 3}


def test_sql_ish_text_round_trips_through_postgres(warehouse, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    evil = "Módulo JA Solar 550W Robert'); DROP TABLE items_normalized;--"
    (landing / "evil.csv").write_text(f'sku;descricao;categoria;potencia;preco\nX1;"{evil}";Módulo;550;100\n'
                                      f"X'2;$$;Módulo;abc;100\n")
    job.run_static([landing], warehouse=warehouse, reconcile_after=True)
    assert query(warehouse, "SELECT sku, description FROM items_normalized") == [("X1", evil)]
    assert query(warehouse, "SELECT raw->>'sku', raw->>'descricao', reason FROM items_quarantine") == [
        ("X'2", "$$", "unparseable_power")]


def test_feeds_landed_in_the_same_second_newest_still_wins(warehouse, tmp_path):
    import os

    folder = tmp_path / "landing" / "acme"
    folder.mkdir(parents=True)
    old, new = folder / "old.csv", folder / "new.csv"
    old.write_text("sku;categoria;potencia;preco\nX;Módulo;550;1\nA;Módulo;550;999\n")
    new.write_text("sku;categoria;potencia;preco\nA;Módulo;550;480\n")
    second = 1_800_000_000
    os.utime(old, ns=(second * 10**9 + 100_000_000, second * 10**9 + 100_000_000))
    os.utime(new, ns=(second * 10**9 + 900_000_000, second * 10**9 + 900_000_000))
    job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True)
    assert query(warehouse, "SELECT price_brl, source_file LIKE '%%new.csv' FROM items_normalized "
                            "WHERE sku = 'A'") == [(480.0, True)]


def test_changed_feed_replaces_its_rows_and_removed_feed_is_pruned(warehouse, tmp_path):
    paths = write_feeds(tmp_path / "landing")
    job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True)
    changed = SOL_NASCENTE.replace("R$ 612,50", "R$ 599,00").replace(
        "SN002;Inversor", "SN009;Inversor")
    rewrite(paths["sol_nascente"], changed.encode("cp1252"))
    paths["fotovolt"].unlink()
    report = job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True)
    assert item_keys(warehouse) == [("energia_verde", "EV-1"), ("energia_verde", "EV-2"),
                                   ("sol_nascente", "SN001"), ("sol_nascente", "SN009")]
    assert query(warehouse, "SELECT price_brl FROM items_normalized WHERE sku = 'SN001'") == [(599.0,)]
    assert query(warehouse, "SELECT count(*) FROM items_quarantine WHERE distributor = 'fotovolt'") == [(0,)]
    assert report.pruned["items_normalized"] == 2  # SN002 and FS-10


def test_products_asset_path_rebuilds_products_from_the_warehouse(warehouse, tmp_path):
    write_feeds(tmp_path / "landing")
    job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True, with_products=False)
    assert query(warehouse, "SELECT count(*) FROM products") == [(0,)]
    assert job.run_products_static(warehouse) == 3
    assert query(warehouse, "SELECT min_price_brl, median_price_brl, max_price_brl FROM products "
                            "WHERE product_key = 'Growatt|MIN5000TLX'") == [(4990.0, 5069.95, 5149.9)]


def test_migrations_are_idempotent_and_protect_applied_files(warehouse, monkeypatch):
    assert db.migrate(warehouse.dsn, warehouse.schema) == []
    original = db.load_migrations

    def edited():
        migrations = original()
        first = migrations[0]
        return [db.Migration(first.version, first.name, first.sql + "\n-- edited"), *migrations[1:]]

    monkeypatch.setattr(db, "load_migrations", edited)
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        db.migrate(warehouse.dsn, warehouse.schema)


def test_tables_live_in_the_platform_schema_not_public(warehouse):
    """Every table the migrations create is in the platform's schema, and only those (with
    the migrations' own ledger); none lands in public."""
    import re

    created = {name for migration in db.load_migrations()
               for name in re.findall(r'CREATE TABLE IF NOT EXISTS "?(\w+)"?', migration.sql, flags=re.I)}
    assert {"items_normalized", "tarifas_raw", "om_alerts", "rag_chunks", "ops_alerts_sent"} <= created
    tables = query(warehouse, "SELECT table_name FROM information_schema.tables "
                              "WHERE table_schema = %s ORDER BY 1", (warehouse.schema,))
    assert {t for (t,) in tables} == created | {"schema_migrations"}
    assert query(warehouse, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
                            "AND table_name = ANY(%s)", (sorted(created),)) == [(0,)]


def test_a_full_run_prunes_feed_rows_but_keeps_rows_migrated_from_the_legacy_erp(warehouse, tmp_path):
    write_feeds(tmp_path / "landing")
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("INSERT INTO items_normalized (distributor, sku, category, inmetro_status, source_file, "
                     "source_line, ingested_at) VALUES ('sol_nascente', 'OLD-1', 'module', 'missing', "
                     "'/gone/sol_nascente.csv', 2, now() - interval '1 day'), ('legacy_erp', 'ERP-1', 'module', "
                     "'missing', 'legacy:erp_export.xlsx#PRODUTOS', 4, now() - interval '1 day')")
        conn.commit()
    job.run_static([tmp_path / "landing"], warehouse=warehouse, reconcile_after=True)
    skus = {s for (s,) in query(warehouse, "SELECT sku FROM items_normalized")}
    assert "OLD-1" not in skus and "ERP-1" in skus


def test_real_exports_land_in_postgres_with_kits_roles_and_the_summary(warehouse, tmp_path):
    from ysh.catalog import reporting

    from ..conftest import real_exports

    job.run_static([real_exports(tmp_path)], warehouse=warehouse, reconcile_after=True)
    assert query(warehouse, "SELECT distributor, count(*) FROM items_normalized GROUP BY 1 ORDER BY 1") == [
        ("fotus", 496), ("solfacil", 143)]
    kit = query(warehouse, "SELECT power_w, price_brl, structure_type, distribution_center, "
                           "components->0->>'kind', jsonb_array_length(components) FROM items_normalized "
                           "WHERE distributor = 'fotus' AND sku = 'FOTUS-KP04-KITS'")
    assert kit == [(1140.0, 2507.99, "Cerâmico", "CD ESPÍRITO SANTO", "module", 2)]
    assert query(warehouse, "SELECT column_roles->'title-left'->>'role', non_product_rows FROM catalog_feed_files "
                            "WHERE source_file ~ 'solfacil-raw-1[.]csv$'") == [("brand", 0)]
    assert query(warehouse, "SELECT count(*) FROM items_quarantine") == [(0,)]
    summary = reporting.summary(warehouse)
    assert len(summary.kits) == 5 and all(k[5] for k in summary.kits)  # components spelled out
    assert ("solfacil", "hybrid_inverter", 11) in summary.by_distributor_category  # as in the page scrape
