"""Subprocess entry point that Dagster runs through Pipes: one Pathway run, isolated.

``python -m ysh.catalog.pipes_entry normalize|products``; the warehouse and the source
come from the environment (``YSH_*``) that the asset passes, results go back to Dagster
as materialization metadata through the Pipes channel.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

from dagster_pipes import PipesContext, open_dagster_pipes

from .. import db, pw_runtime
from ..settings import Settings
from . import job, reporting


def _warehouse(settings: Settings) -> job.Warehouse:
    return job.Warehouse(db.prepare_warehouse(settings), settings.postgres_schema)


def normalize(pipes: PipesContext | None, settings: Settings) -> None:
    """Normalize the landing area. May run as ``pathway spawn -n N``: every process runs
    the graph, only process 0 (``pipes`` given) reports."""
    warehouse = _warehouse(settings)
    if settings.catalog_source == "s3":
        report = job.run_static(s3=job.S3Source.from_settings(settings), warehouse=warehouse,
                                reconcile_after=True, with_products=False)
    else:
        landing = settings.landing_dir
        if not landing.is_dir():
            raise FileNotFoundError(f"landing folder {landing} does not exist; run `ysh catalog land` first")
        report = job.run_static([landing], warehouse=warehouse, reconcile_after=True,
                                with_products=False)
    if pipes is None:
        return
    pipes.log.info(f"normalized {report.rows} rows from {report.files} files in {report.seconds:.1f}s")
    pipes.report_asset_materialization(
        asset_key="catalog_normalized",
        metadata=reporting.normalized_metadata(warehouse, report),
    )


def products(pipes: PipesContext, settings: Settings) -> None:
    warehouse = _warehouse(settings)
    count = job.run_products_static(warehouse)
    pipes.log.info(f"{count} products")
    pipes.report_asset_materialization(
        asset_key="catalog_products", metadata=reporting.products_metadata(warehouse)
    )


def main(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else ""
    actions = {"normalize": normalize, "products": products}
    if command not in actions:
        raise SystemExit(f"usage: python -m ysh.catalog.pipes_entry {'|'.join(actions)}")
    pw_runtime.quiet_logging()
    leader = pw_runtime.is_leader()
    with (open_dagster_pipes() if leader else nullcontext()) as pipes:
        actions[command](pipes, Settings())


if __name__ == "__main__":
    main(sys.argv)
