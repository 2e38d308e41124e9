"""Subprocess entry point that Dagster runs through Pipes: the proposals batch, isolated.

``python -m ysh.proposals.pipes_entry run``: evaluates every quote from the warehouse
(``YSH_*``) and reports the materializations of ``propostas_enriched``,
``propostas_analytics`` and ``kpis_b1_b3``.
"""

from __future__ import annotations

import sys

from dagster_pipes import open_dagster_pipes

from .. import db, pw_runtime
from ..settings import Settings
from . import job, reporting


def main(argv: list[str]) -> None:
    if argv[1:] != ["run"]:
        raise SystemExit("usage: python -m ysh.proposals.pipes_entry run")
    pw_runtime.quiet_logging()
    settings = Settings()
    warehouse = db.Warehouse(db.prepare_warehouse(settings), settings.postgres_schema)
    with open_dagster_pipes() as pipes:
        if job.follower_active(warehouse):
            pipes.log.info("a proposals follower keeps the outputs current: reporting them as they stand")
        else:
            counts = job.run_batch(warehouse, settings)
            pipes.log.info("proposals evaluated: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for asset_key, metadata in reporting.metadata(warehouse).items():
            pipes.report_asset_materialization(asset_key=asset_key, metadata=metadata)


if __name__ == "__main__":
    main(sys.argv)
