"""Subprocess entry point that Dagster runs through Pipes: one Pathway run, isolated.

``python -m ysh.catalog.pipes_entry normalize|products``; the warehouse and the source
come from the environment (``YSH_*``) that the asset passes, results go back to Dagster
as materialization metadata through the Pipes channel.
"""

from __future__ import annotations

import sys

from dagster_pipes import PipesContext

from ..db import Warehouse
from ..kit.pipes import run_entry
from ..settings import Settings
from . import job, reporting


def normalize(pipes: PipesContext | None, settings: Settings) -> None:
    """Normalize the landing area. May run as ``pathway spawn -n N``: every process runs
    the graph, only process 0 (``pipes`` given) reports."""
    warehouse = Warehouse.from_settings(settings)
    shrink = dict(accept_shrink=settings.catalog.accept_shrink, max_shrink=settings.catalog.max_shrink,
                  registry=job.RegistrySource.from_settings(settings))
    if settings.catalog.source == "s3":
        report = job.run_static(s3=job.S3Source.from_settings(settings), warehouse=warehouse,
                                reconcile_after=True, with_products=False, **shrink)
    else:
        landing = settings.catalog.landing_dir
        if not landing.is_dir():
            raise FileNotFoundError(f"landing folder {landing} does not exist; run `ysh catalog land` first")
        report = job.run_static([landing], warehouse=warehouse, reconcile_after=True,
                                with_products=False, **shrink)
    if pipes is None:
        return
    pipes.log.info(f"normalized {report.rows} rows from {report.files} files in {report.seconds:.1f}s")
    pipes.report_asset_materialization(
        asset_key="catalog_normalized",
        metadata={**reporting.normalized_metadata(warehouse, report),
                  # what the Inmetro registry (catalog_inmetro_raw) says of the items
                  "inmetro_registry_rows": report.registry_rows,
                  **{f"inmetro_{status}": n for status, n in sorted(report.inmetro_by_status.items())}},
    )


def products(pipes: PipesContext, settings: Settings) -> None:
    warehouse = Warehouse.from_settings(settings)
    count = job.run_products_static(warehouse)
    pipes.log.info(f"{count} products")
    pipes.report_asset_materialization(
        asset_key="catalog_products", metadata=reporting.products_metadata(warehouse)
    )


def main(argv: list[str]) -> None:
    run_entry("catalog", {"normalize": normalize, "products": products}, argv)


if __name__ == "__main__":
    main(sys.argv)
