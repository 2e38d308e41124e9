"""Warehouse access of the legacy migration: the existing rows of the migrated keys and
sources, and writing a plan in one transaction."""

from __future__ import annotations

import json
from typing import Any, Sequence

import psycopg
from psycopg import sql

from ... import db
from .plan import ITEM_COLUMNS, QUARANTINE_COLUMNS, MigrationPlan


def _tables_exist(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('items_normalized') IS NOT NULL "
                        "AND to_regclass('items_quarantine') IS NOT NULL").fetchone()[0]


def load_existing(warehouse: db.Warehouse, keys: Sequence[tuple[str, str]], sources: Sequence[str]
                  ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    items: dict[tuple[str, str], dict[str, Any]] = {}
    quarantine: dict[tuple[str, int], dict[str, Any]] = {}
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        if not _tables_exist(conn):
            return items, quarantine  # an unmigrated warehouse (dry run): everything is new
        if keys:
            cur = conn.execute(
                sql.SQL("SELECT {} FROM items_normalized JOIN unnest(%s::text[], %s::text[]) "
                        "AS k(distributor, sku) USING (distributor, sku)").format(
                    sql.SQL(", ").join(sql.Identifier("items_normalized", c) for c in ITEM_COLUMNS)),
                ([k[0] for k in keys], [k[1] for k in keys]))
            for values in cur.fetchall():
                row = dict(zip(ITEM_COLUMNS, values))
                items[(row["distributor"], row["sku"])] = row
        if sources:
            cur = conn.execute(
                "SELECT source_file, line, distributor, reason, detail, raw FROM items_quarantine "
                "WHERE source_file = ANY(%s)", (list(sources),))
            for source_file, line, *rest in cur.fetchall():
                quarantine[(source_file, line)] = dict(zip(QUARANTINE_COLUMNS, rest))
    return items, quarantine


def apply_plan(warehouse: db.Warehouse, plan: MigrationPlan) -> None:
    """Write the plan in one transaction (all or nothing: a retry is safe)."""
    item_sql = sql.SQL(
        "INSERT INTO items_normalized ({cols}, ingested_at) VALUES ({vals}, now()) "
        "ON CONFLICT (distributor, sku) DO UPDATE SET {sets}, ingested_at = EXCLUDED.ingested_at"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, ITEM_COLUMNS)),
        vals=sql.SQL(", ").join(sql.Placeholder(c) for c in ITEM_COLUMNS),
        sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                for c in ITEM_COLUMNS if c not in ("distributor", "sku")),
    )
    quarantine_sql = (
        "INSERT INTO items_quarantine (distributor, source_file, line, reason, detail, raw, ingested_at) "
        "VALUES (%(distributor)s, %(source_file)s, %(line)s, %(reason)s, %(detail)s, %(raw)s::jsonb, now()) "
        "ON CONFLICT (source_file, line) DO UPDATE SET distributor = EXCLUDED.distributor, "
        "reason = EXCLUDED.reason, detail = EXCLUDED.detail, raw = EXCLUDED.raw, "
        "ingested_at = EXCLUDED.ingested_at")
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        with conn.transaction(), conn.cursor() as cur:
            rows = plan.inserts + plan.updates
            if rows:
                cur.executemany(item_sql, rows)
            if plan.quarantine_upserts:
                cur.executemany(quarantine_sql, [
                    {**q, "raw": json.dumps(q["raw"], ensure_ascii=False)} for q in plan.quarantine_upserts])
            if plan.quarantine_deletes:
                cur.execute(
                    "DELETE FROM items_quarantine q USING unnest(%s::text[], %s::bigint[]) AS k(source_file, line) "
                    "WHERE q.source_file = k.source_file AND q.line = k.line",
                    ([k[0] for k in plan.quarantine_deletes], [k[1] for k in plan.quarantine_deletes]))
