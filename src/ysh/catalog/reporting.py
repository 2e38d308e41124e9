"""What people look at: summaries of the catalog tables (for Dagster metadata and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import db
from ..console import markdown_table, pipes_md
from .job import RunReport, Warehouse


@dataclass
class CatalogSummary:
    by_distributor_category: list[tuple[str, str, int]]
    quarantine_by_reason: list[tuple[str, int]]
    top_products: list[tuple[str, str, str, int, int, float | None, float | None]]
    totals: dict[str, int]
    kits: list[tuple] = ()  # distributor, power_w, price_brl, structure, centre, components


def summary(warehouse: Warehouse, top: int = 10) -> CatalogSummary:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        by_dc = conn.execute(
            "SELECT distributor, category, count(*) FROM items_normalized "
            "GROUP BY 1, 2 ORDER BY 1, 3 DESC"
        ).fetchall()
        reasons = conn.execute(
            "SELECT reason, count(*) FROM items_quarantine GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        top_products = conn.execute(
            "SELECT brand, model, category, offers, distributors, min_price_brl, median_price_brl "
            "FROM products ORDER BY offers DESC, distributors DESC, brand, model LIMIT %s", (top,)
        ).fetchall()
        kits = conn.execute(
            "SELECT distributor, power_w, price_brl, structure_type, distribution_center, "
            "(SELECT string_agg(coalesce(c->>'quantity', '?') || '× ' || (c->>'kind') "
            "|| coalesce(' ' || (c->>'brand'), '') "
            "|| coalesce(' ' || round((c->>'power_w')::numeric)::text || ' W', ''), ' + ') "
            " FROM jsonb_array_elements(components) c) "
            "FROM items_normalized WHERE category = 'kit' "
            "ORDER BY power_w / nullif(price_brl, 0) DESC NULLS LAST, distributor, sku LIMIT %s", (5,)
        ).fetchall()
        totals = dict(zip(
            ("items", "quarantined", "products", "files", "distributors", "inmetro_flagged"),
            conn.execute(
                "SELECT (SELECT count(*) FROM items_normalized),"
                " (SELECT count(*) FROM items_quarantine),"
                " (SELECT count(*) FROM products),"
                " (SELECT count(*) FROM catalog_feed_files),"
                " (SELECT count(DISTINCT distributor) FROM items_normalized),"
                " (SELECT count(*) FROM items_normalized WHERE inmetro_status <> 'ok')"
            ).fetchone(),
        ))
    return CatalogSummary(by_dc, reasons, top_products, totals, kits)


def normalized_metadata(warehouse: Warehouse, report: RunReport) -> dict:
    """Materialization metadata of ``catalog_normalized`` (Dagster Pipes raw values)."""
    s = summary(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        preview = conn.execute(
            "SELECT distributor, sku, category, brand, model, power_w, price_brl, inmetro_status "
            "FROM items_normalized ORDER BY distributor, sku LIMIT 10"
        ).fetchall()
    return {
        "items": s.totals["items"],
        "quarantined": s.totals["quarantined"],
        "files": report.files,
        "rows_read": report.rows,
        "duplicate_skus_in_feeds": report.duplicate_skus,
        "quarantine_rate": round(report.quarantine_rate, 4),
        "pruned_rows": sum(report.pruned.values()),
        "pipeline_seconds": round(report.seconds, 3),
        "quarantine_by_reason": pipes_md(markdown_table(["reason", "rows"], s.quarantine_by_reason)),
        "items_by_distributor_category": pipes_md(
            markdown_table(["distributor", "category", "items"], s.by_distributor_category)),
        "preview": pipes_md(markdown_table(
            ["distributor", "sku", "category", "brand", "model", "power_w", "price_brl", "inmetro"],
            preview)),
    }


def products_metadata(warehouse: Warehouse) -> dict:
    s = summary(warehouse)
    return {
        "products": s.totals["products"],
        "top_products_by_offers": pipes_md(markdown_table(
            ["brand", "model", "category", "offers", "distributors", "min R$", "median R$"],
            s.top_products)),
    }
