"""Subprocess entry point that Dagster runs through Pipes: the tariffs recompute, isolated.

``python -m ysh.tariffs.pipes_entry normalize``: recomputes the normalized tables from
``tarifas_raw`` (the warehouse comes from ``YSH_*``) and reports one materialization per
asset of the step (``tarifas_normalized``, ``tarifas_bandeiras``,
``tarifas_efetivas_mensais``).
"""

from __future__ import annotations

import sys

from dagster_pipes import PipesContext

from ..db import Warehouse
from ..kit.pipes import recompute_and_report, run_entry
from ..settings import Settings
from . import job, reporting


def normalize(pipes: PipesContext, settings: Settings) -> None:
    """Recompute the tariff tables, unless the CDC follower keeps them current."""
    warehouse = Warehouse.from_settings(settings)
    recompute_and_report(pipes, warehouse, job.FOLLOWER, lambda: job.run_warehouse(warehouse),
                         reporting.normalized_metadata)


def main(argv: list[str]) -> None:
    run_entry("tariffs", {"normalize": normalize}, argv)


if __name__ == "__main__":
    main(sys.argv)
