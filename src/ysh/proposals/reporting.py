"""Summaries of the proposals tables (Dagster metadata, CLI)."""

from __future__ import annotations

from .. import db
from ..console import markdown_table, pipes_md
from ..db import Warehouse


def source_counts(warehouse: Warehouse) -> dict[str, int]:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                for t in ("company", "quote", "quote_item", "order")}


def metadata(warehouse: Warehouse) -> dict[str, dict]:
    """Metadata per asset of the proposals step (Dagster Pipes raw values)."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        one = lambda q: conn.execute(q).fetchone()  # noqa: E731
        (quotes, kwp, no_tariff, unknown, modelled) = one(
            "SELECT count(*), coalesce(sum(system_kwp), 0), count(*) FILTER (WHERE tariff_error IS NOT NULL), "
            "count(*) FILTER (WHERE unknown_skus IS NOT NULL), count(*) FILTER (WHERE irradiance_source = 'modelled') "
            "FROM propostas_enriched")
        (evaluated, errors, payback, irr) = one(
            "SELECT count(*) FILTER (WHERE error IS NULL), count(*) FILTER (WHERE error IS NOT NULL), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY payback_years), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY irr_pct) FROM propostas_analytics")
        errors_by = conn.execute(
            "SELECT split_part(error, ':', 1), count(*) FROM propostas_analytics WHERE error IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC").fetchall()
        kpis = conn.execute(
            "SELECT customer_class, state, to_char(month, 'YYYY-MM'), quotes, orders, round(conversion::numeric, 3), "
            "round(kwp::numeric, 1), round(median_payback_years::numeric, 2), round(median_irr_pct::numeric, 1) "
            "FROM kpis_b1_b3 ORDER BY 1, 2, 3 DESC LIMIT 30").fetchall()
    return {
        "propostas_enriched": {"quotes": quotes, "kwp": round(float(kwp), 2), "without_tariff": no_tariff,
                               "with_unknown_skus": unknown, "modelled_irradiance": modelled},
        "propostas_analytics": {"evaluated": evaluated, "errors": errors,
                                "median_payback_years": round(payback, 2) if payback is not None else None,
                                "median_irr_pct": round(irr, 1) if irr is not None else None,
                                "errors_by_kind": pipes_md(markdown_table(["error", "quotes"], errors_by))},
        "kpis_b1_b3": {"rows": len(kpis), "latest": pipes_md(markdown_table(
            ["class", "state", "month", "quotes", "orders", "conversion", "kWp", "median payback", "median IRR %"],
            kpis))},
    }
