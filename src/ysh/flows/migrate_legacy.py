"""Prefect flow ``migrate_legacy``: a legacy ERP export → the platform's catalog tables.

The rules live in :mod:`ysh.catalog.legacy` (pure, beside the catalog normalizer): the
legacy code tables and the mapping of a row (:mod:`~ysh.catalog.legacy.mapping`), reading
XLSX/CSV exports (:mod:`~ysh.catalog.legacy.readers`), normalization and the plan of what
differs from the warehouse (:mod:`~ysh.catalog.legacy.plan`), the report
(:mod:`~ysh.catalog.legacy.report`) and the warehouse reads and writes
(:mod:`~ysh.catalog.legacy.warehouse`). This module is the Prefect layer: tasks (retries
on connection-level errors only), the flow, which reads every file before writing anything,
diffs against the warehouse, upserts what changed, recomputes ``products`` and publishes
the report (Prefect markdown artifact ``migration-report``), and the command line::

    python -m ysh.flows.migrate_legacy data/sample/legacy/erp_export.xlsx \\
        data/sample/legacy/erp_export_precos.csv [--dry-run] [--distributor NAME]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from .. import db
from ..catalog.legacy import (
    LegacyFileError,
    LegacySource,
    MigrationPlan,
    MigrationReport,
    NormalizedBatch,
    expand_paths,
    normalize_sources,
    plan_changes,
    read_legacy_file,
)
from ..catalog.legacy.warehouse import apply_plan, load_existing
from ..settings import Settings, get_settings

__all__ = [
    "ARTIFACT_KEY",
    "LegacyFileError",
    "diff_task",
    "main",
    "migrate_legacy",
    "normalize_task",
    "read_export_task",
    "refresh_products_task",
    "upsert_task",
]

ARTIFACT_KEY = "migration-report"


def _transient_db_error(task_, task_run, state) -> bool:
    """Retry a warehouse task only on connection-level errors (not on a bad row)."""
    error = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(error, (psycopg.OperationalError, psycopg.errors.SerializationFailure,
                              psycopg.errors.DeadlockDetected))


# --------------------------------------------------------------------------------------
# Prefect tasks and flow
# --------------------------------------------------------------------------------------

_TASK_DEFAULTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="read_legacy_export", timeout_seconds=300, **_TASK_DEFAULTS)
def read_export_task(path: Path) -> list[LegacySource]:
    """Read one export (no retries: an unreadable file stays unreadable)."""
    sources = read_legacy_file(path)
    get_run_logger().info("%s: %s", path.name, ", ".join(
        f"{s.sheet or 'csv'} ({len(s.records)} rows)" for s in sources))
    return sources


@task(name="normalize_legacy_rows", timeout_seconds=600, **_TASK_DEFAULTS)
def normalize_task(sources: list[LegacySource], distributor: str | None) -> NormalizedBatch:
    batch = normalize_sources(sources, distributor=distributor)
    get_run_logger().info("%d rows: %d items, %d quarantined", sum(s.rows for s in batch.sources.values()),
                          len(batch.items), len(batch.quarantine))
    return batch


@task(name="diff_against_warehouse", timeout_seconds=300, retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=_transient_db_error, **_TASK_DEFAULTS)
def diff_task(warehouse: db.Warehouse, batch: NormalizedBatch) -> MigrationPlan:
    existing_items, existing_quarantine = load_existing(warehouse, list(batch.items), list(batch.sources))
    return plan_changes(batch, existing_items, existing_quarantine)


@task(name="upsert_catalog_rows", timeout_seconds=600, retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=_transient_db_error, **_TASK_DEFAULTS)
def upsert_task(warehouse: db.Warehouse, plan: MigrationPlan) -> None:
    apply_plan(warehouse, plan)
    get_run_logger().info("upserted %d items, %d quarantine rows; cleared %d quarantine rows",
                          len(plan.inserts) + len(plan.updates), len(plan.quarantine_upserts),
                          len(plan.quarantine_deletes))


@task(name="refresh_products", timeout_seconds=900, **_TASK_DEFAULTS)
def refresh_products_task(settings: Settings) -> None:
    """``products`` from all of ``items_normalized`` (a Pathway run, in its own process:
    Pathway wants the main thread and a fresh graph)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "YSH_POSTGRES_SCHEMA": settings.warehouse.schema_name}
    if settings.warehouse.dsn is not None:
        env["YSH_POSTGRES_DSN"] = settings.warehouse.dsn.get_secret_value()
    done = subprocess.run([sys.executable, "-m", "ysh.cli", "catalog", "products"], env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"recomputing products failed: {done.stderr[-2000:]}")
    get_run_logger().info(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "products recomputed")


@flow(name="migrate_legacy", timeout_seconds=3600)
def migrate_legacy(paths: list[Path], *, dry_run: bool = False, distributor: str | None = None,
                   settings: Settings | None = None) -> MigrationReport:
    """Import a legacy ERP export (XLSX workbooks and CSV lists) into the catalog tables.

    Idempotent (only differing rows are written); ``dry_run`` writes nothing and reports
    what would change; ``distributor`` forces the distributor of every row. Publishes
    the report as the markdown artifact ``migration-report`` and returns it.

    Raises
    ------
    LegacyFileError
        a file cannot be read; nothing is written then.
    """
    logger = get_run_logger()
    settings = settings or get_settings()
    files = expand_paths(paths)
    sources: list[LegacySource] = []
    for path in files:  # read every file before writing anything
        sources.extend(read_export_task(path))
    batch = normalize_task(quote(sources), distributor)
    dsn = db.resolve_dsn(settings)
    if not dry_run:
        db.migrate(dsn, settings.warehouse.schema_name)
    warehouse = db.Warehouse(dsn, settings.warehouse.schema_name)
    plan = diff_task(warehouse, quote(batch))
    if not dry_run:
        upsert_task(warehouse, quote(plan))
        if plan.inserts or plan.updates:
            refresh_products_task(settings)
    report = MigrationReport(
        dry_run=dry_run,
        files=[f.name for f in files],
        rows_in=sum(s.rows for s in batch.sources.values()),
        items=len(batch.items),
        inserted=len(plan.inserts),
        updated=len(plan.updates),
        unchanged=plan.unchanged,
        duplicate_skus=batch.duplicate_skus,
        quarantined_by_reason=dict(Counter(q.reason for q in batch.quarantine.values()).most_common()),
        quarantine_written=len(plan.quarantine_upserts),
        quarantine_cleared=len(plan.quarantine_deletes),
        sources=list(batch.sources.values()),
        changes=plan.changes,
        schema=settings.warehouse.schema_name,
    )
    create_markdown_artifact(
        markdown=report.to_markdown(), key=ARTIFACT_KEY,
        description=("Legacy ERP migration (dry run)" if dry_run else "Legacy ERP migration")
        + f": {report.rows_in} rows, {report.upserted} upserted, {report.quarantined} quarantined")
    logger.info("%s: %d rows in, %d inserted, %d updated, %d unchanged, quarantined %s",
                "dry run" if dry_run else "migration", report.rows_in, report.inserted, report.updated,
                report.unchanged, report.quarantined_by_reason or "none")
    return report


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ysh.flows.migrate_legacy",
        description="Import a legacy ERP export (XLSX/CSV) into the catalog (Prefect flow migrate_legacy).")
    parser.add_argument("paths", nargs="+", type=Path, help="export files (.xlsx, .csv) or folders")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    parser.add_argument("--distributor", help="distributor of every row (default: from COD_FILIAL)")
    args = parser.parse_args(argv)
    try:
        report = migrate_legacy(args.paths, dry_run=args.dry_run, distributor=args.distributor)
    except LegacyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.to_markdown(max_changes=len(report.changes) or 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
