"""A first load into an empty items_normalized builds its indexes (the search ones of 0012
and the lookups of 0001/0008) once, after its rows are in, instead of row by row: the indexes after the
load are the migration's, a catalog with rows keeps its indexes while it is loaded, and a
load that stopped before rebuilding them is repaired by the next run."""

from __future__ import annotations

import pytest

from ysh import db
from ysh.catalog import job, search

from ..conftest import REPO

pytestmark = pytest.mark.integration

EXPORTS = REPO / "data" / "distributors" / "exports"


def index_definitions(warehouse) -> dict[str, str]:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return dict(conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'items_normalized' AND indexname <> 'items_normalized_pkey'").fetchall())


def test_the_indexes_rebuilt_after_a_first_load_are_the_migrations(warehouse):
    built_by_migration = index_definitions(warehouse)
    assert set(built_by_migration) == set(search.ITEM_INDEXES)

    report = job.run_static([EXPORTS / "solfacil"], warehouse=warehouse)

    assert report.items > 100
    assert index_definitions(warehouse) == built_by_migration


def test_an_empty_catalog_drops_its_indexes_for_the_load(warehouse):
    assert search.defer_item_indexes(warehouse) is True
    assert index_definitions(warehouse) == {}
    assert sorted(search.ensure_item_indexes(warehouse)) == sorted(search.ITEM_INDEXES)
    assert search.ensure_item_indexes(warehouse) == []  # nothing missing: nothing built


def test_a_catalog_with_rows_keeps_its_indexes(warehouse):
    job.run_static([EXPORTS / "fotus"], warehouse=warehouse)
    before = index_definitions(warehouse)

    assert search.defer_item_indexes(warehouse) is False
    assert index_definitions(warehouse) == before


def test_a_load_stopped_before_the_rebuild_is_repaired_by_the_next_run(warehouse):
    job.run_static([EXPORTS / "fotus"], warehouse=warehouse)
    expected = index_definitions(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:  # what a kill between drop and build leaves
        conn.execute("DROP INDEX items_normalized_search_tsv_idx")
        conn.execute("DROP INDEX items_normalized_price_idx")
        conn.commit()

    job.run_static([EXPORTS / "fotus"], warehouse=warehouse)

    assert index_definitions(warehouse) == expected


def test_search_reads_the_rebuilt_indexes(warehouse):
    job.run_static([EXPORTS / "solfacil"], warehouse=warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT sku FROM items_normalized WHERE search_tsv @@ to_tsquery('catalog_pt', 'inversor')"))
    assert "items_normalized_search_tsv_idx" in plan


def test_a_role_that_does_not_own_the_table_loads_with_the_indexes_in_place(warehouse):
    import uuid

    from psycopg import conninfo, sql

    role, password = f"writer_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(warehouse.schema),
                                                                     sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
            sql.Identifier(warehouse.schema), sql.Identifier(role)))
    try:
        before = index_definitions(warehouse)
        params = {**conninfo.conninfo_to_dict(warehouse.dsn), "user": role, "password": password}
        writer = db.Warehouse(conninfo.make_conninfo(**params), warehouse.schema)

        report = job.run_static([EXPORTS / "fotus"], warehouse=writer)

        assert report.items > 10
        assert index_definitions(warehouse) == before
    finally:
        with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(
                sql.Identifier(warehouse.schema), sql.Identifier(role)))
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(sql.Identifier(warehouse.schema),
                                                                          sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
