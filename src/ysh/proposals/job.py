"""Running the proposals graph over the warehouse: a batch over consistent snapshots of
the source tables, or a follower that keeps the outputs current through CDC."""

from __future__ import annotations

from pathlib import Path

import pathway as pw
import psycopg
from psycopg import sql

from .. import db, pw_runtime
from ..db import Warehouse
from .enrich import Assumptions
from .pipeline import (
    CatalogItemSchema,
    CompanySchema,
    FioBRowSchema,
    OrderSchema,
    ProposalTables,
    QuoteItemSchema,
    QuoteSchema,
    Sources,
    TariffRowSchema,
    build_proposals_graph,
)

#: output → (warehouse table, primary key)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "enriched": ("propostas_enriched", ("quote_id",)),
    "analytics": ("propostas_analytics", ("quote_id",)),
    "kpis": ("kpis_b1_b3", ("customer_class", "state", "month")),
}

#: source → (table, schema, SELECT for a static snapshot: types as the schema wants them)
SOURCES: dict[str, tuple[str, type[pw.Schema], str]] = {
    "company": ("company", CompanySchema,
                "SELECT id, name, municipality, state, latitude, longitude, utility, icms_pct FROM company"),
    "quote": ("quote", QuoteSchema,
              "SELECT id, company_id, status, customer_class, connection, consumption_kwh_month, tilt_deg, "
              "azimuth_deg, access_request_date::timestamp AS access_request_date, created_at FROM quote"),
    "quote_item": ("quote_item", QuoteItemSchema,
                   "SELECT id, quote_id, distributor, sku, quantity, unit_price_brl FROM quote_item"),
    "order": ("order", OrderSchema, 'SELECT id, quote_id, status FROM "order"'),
    "items": ("items_normalized", CatalogItemSchema,
              "SELECT distributor, sku, category, power_w FROM items_normalized"),
    "tariffs": ("tarifas_normalized", TariffRowSchema, None),
    "fio_b": ("tarifas_fio_b", FioBRowSchema, None),
}


def _select_all(table: str, schema: type[pw.Schema]) -> str:
    """Every column of the schema, dates cast to timestamp (Pathway DateTimeNaive)."""
    columns = []
    for name, column in schema.columns().items():
        text = str(column.dtype)
        columns.append(f"{name}::timestamp AS {name}" if "DATE_TIME_NAIVE" in text.upper() or "DateTimeNaive" in text
                       else name)
    return f"SELECT {', '.join(columns)} FROM {table}"


def attach_warehouse(tables: ProposalTables, warehouse: Warehouse) -> None:
    pw_runtime.write_snapshots(tables, TABLES, warehouse)


def replication_names(schema: str, table: str) -> tuple[str, str]:
    """(publication, slot) of one followed table."""
    from ..cdc import replication_names as names

    return names(schema, table)

class FollowerRunning(RuntimeError):
    """The proposals follower keeps the outputs current; a batch would race it."""


def follower_active(warehouse: Warehouse) -> bool:
    _, slot = replication_names(warehouse.schema, "quote")
    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active",
                            (slot,)).fetchone() is not None


def run_batch(warehouse: Warehouse, settings) -> dict[str, int]:
    """Evaluate every quote as the tables stand (consistent snapshots), write the three
    outputs and delete rows this run did not write. Returns the row counts.

    Raises
    ------
    FollowerRunning
        ``ysh proposal follow`` is running for this schema.
    """
    if follower_active(warehouse):
        raise FollowerRunning(f"a proposals follower of schema {warehouse.schema} is running and keeps the "
                              "outputs current; stop it to recompute in batch")
    started = db.server_now(warehouse)
    pw_runtime.fresh_graph()
    with pw_runtime.SharedSnapshot(warehouse.dsn) as snapshot:  # all seven tables as of one instant
        tables = {}
        for name, (table, schema, query) in SOURCES.items():
            tables[name] = pw_runtime.read_query(warehouse.dsn, warehouse.schema,
                                                 query or _select_all(table, schema), schema,
                                                 name=f"{name}_snapshot", snapshot=snapshot.id)
        outputs = build_proposals_graph(Sources(**tables), Assumptions.from_settings(settings), settings)
        attach_warehouse(outputs, warehouse)
        pw_runtime.run()
    db.prune_not_written(warehouse, [t for t, _ in TABLES.values()], started)
    return counts(warehouse)


def counts(warehouse: Warehouse) -> dict[str, int]:
    return db.row_counts(warehouse, [t for t, _ in TABLES.values()])


def ensure_publications(warehouse: Warehouse) -> dict[str, str]:
    """One publication per followed table (created if missing); source → publication."""
    names = {}
    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        for source, (table, _, _) in SOURCES.items():
            publication, _ = replication_names(warehouse.schema, table)
            if not conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone():
                conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}.{}").format(
                    sql.Identifier(publication), sql.Identifier(warehouse.schema), sql.Identifier(table)))
            names[source] = publication
    return names


def follow(warehouse: Warehouse, settings, persistence_dir: Path, *, autocommit_duration_ms: int = 200) -> None:
    """Follow the seven source tables by CDC and keep the outputs current. Blocks.

    A first start (no persisted state) runs a batch first, so outputs of quotes deleted
    earlier do not linger; later starts resume from the persisted replication positions."""
    from ..cdc import read_postgres_cdc

    if not persistence_dir.exists() or not any(persistence_dir.iterdir()):
        run_batch(warehouse, settings)
    publications = ensure_publications(warehouse)
    pw_runtime.fresh_graph()
    tables = {}
    for name, (table, schema, _) in SOURCES.items():
        _, slot = replication_names(warehouse.schema, table)
        tables[name] = read_postgres_cdc(warehouse.dsn, table=table, schema=schema, publication=publications[name],
                                         slot=slot, schema_name=warehouse.schema, name=f"{name}_cdc",
                                         autocommit_duration_ms=autocommit_duration_ms)
    outputs = build_proposals_graph(Sources(**tables), Assumptions.from_settings(settings), settings)
    attach_warehouse(outputs, warehouse)
    pw_runtime.observe_outputs({t: getattr(outputs, attr) for attr, (t, _) in TABLES.items()}, "proposals")
    pw_runtime.run(persistence_dir=persistence_dir)


def drop_follower_state(warehouse: Warehouse, persistence_dir: Path) -> None:
    import shutil

    with psycopg.connect(warehouse.dsn, autocommit=True) as conn:
        for table, _, _ in SOURCES.values():
            _, slot = replication_names(warehouse.schema, table)
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone():
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    shutil.rmtree(persistence_dir, ignore_errors=True)
