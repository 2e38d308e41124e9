"""Subprocess entry point that Dagster runs through Pipes: the proposals batch, isolated.

``python -m ysh.proposals.pipes_entry run``: evaluates every quote from the warehouse
(``YSH_*``) and reports the materializations of ``propostas_enriched``,
``propostas_analytics`` and ``kpis_b1_b3``.
"""

from __future__ import annotations

import sys

from dagster_pipes import PipesContext

from ..db import Warehouse
from ..kit.pipes import recompute_and_report, run_entry
from ..settings import Settings
from . import job, reporting


def run(pipes: PipesContext, settings: Settings) -> None:
    """Evaluate every quote, unless the proposals follower keeps the outputs current."""
    warehouse = Warehouse.from_settings(settings)
    recompute_and_report(pipes, warehouse, job.FOLLOWER, lambda: job.run_batch(warehouse, settings),
                         reporting.metadata)


def main(argv: list[str]) -> None:
    run_entry("proposals", {"run": run}, argv)


if __name__ == "__main__":
    main(sys.argv)
