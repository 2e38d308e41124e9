"""Summaries of the tariff tables (Dagster metadata, CLI)."""

from __future__ import annotations

from .. import db
from ..console import markdown_table, pipes_md
from ..db import Warehouse


def raw_metadata(warehouse: Warehouse) -> dict:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        by_source = conn.execute(
            "SELECT source, dataset, count(*), max(ingested_at)::text FROM tarifas_raw GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
    return {"rows": sum(r[2] for r in by_source), "sources": len(by_source),
            "by_source": markdown_table(["source", "dataset", "rows", "last change"], by_source)}


def normalized_metadata(warehouse: Warehouse) -> dict[str, dict]:
    """Metadata per asset key of the normalize step: counts, utilities, classes,
    validity span, quarantine by reason, error rate."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        one = lambda q: conn.execute(q).fetchone()  # noqa: E731
        (raw_rows,) = one("SELECT count(*) FROM tarifas_raw")
        (rows, utilities, first, last, open_ended) = one(
            "SELECT count(*), count(DISTINCT utility), min(valid_from)::text, max(coalesce(valid_to, valid_from))::text,"
            " count(*) FILTER (WHERE valid_to IS NULL) FROM tarifas_normalized")
        by_utility = conn.execute(
            "SELECT utility, count(*), count(DISTINCT subgroup), min(valid_from)::text, max(valid_from)::text "
            "FROM tarifas_normalized GROUP BY 1 ORDER BY 1").fetchall()
        classes = [c for (c,) in conn.execute(
            "SELECT DISTINCT subgroup || ' ' || tariff_class FROM tarifas_normalized ORDER BY 1").fetchall()]
        reasons = conn.execute("SELECT reason, count(*) FROM tarifas_quarantine GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
        (fio_b,) = one("SELECT count(*) FROM tarifas_fio_b")
        (flags, first_flag, last_flag) = one(
            "SELECT count(*), min(month)::text, max(month)::text FROM tarifas_bandeiras")
        (monthly, monthly_utilities, last_month) = one(
            "SELECT count(*), count(DISTINCT utility), max(month)::text FROM tarifas_efetivas_mensais")
    quarantined = sum(n for _, n in reasons)
    return {
        "tarifas_normalized": {
            "rows": rows, "raw_rows": raw_rows, "utilities": utilities, "fio_b_rows": fio_b,
            "quarantined": quarantined, "error_rate": round(quarantined / raw_rows, 4) if raw_rows else 0.0,
            "validity_span": f"{first} … {last} ({open_ended} open-ended)",
            "classes": ", ".join(classes),
            "by_utility": pipes_md(markdown_table(["utility", "rows", "subgroups", "first start", "last start"],
                                                 by_utility)),
            "quarantine_by_reason": pipes_md(markdown_table(["reason", "rows"], reasons)),
        },
        "tarifas_bandeiras": {"months": flags, "span": f"{first_flag} … {last_flag}"},
        "tarifas_efetivas_mensais": {"rows": monthly, "utilities": monthly_utilities, "last_month": last_month},
    }
