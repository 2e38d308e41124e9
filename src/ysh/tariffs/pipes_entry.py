"""Subprocess entry point that Dagster runs through Pipes: the tariffs recompute, isolated.

``python -m ysh.tariffs.pipes_entry normalize``: recomputes the normalized tables from
``tarifas_raw`` (the warehouse comes from ``YSH_*``) and reports one materialization per
asset of the step (``tarifas_normalized``, ``tarifas_bandeiras``,
``tarifas_efetivas_mensais``).
"""

from __future__ import annotations

import sys

from dagster_pipes import open_dagster_pipes

from .. import db, pw_runtime
from ..settings import Settings
from . import job, reporting


def main(argv: list[str]) -> None:
    if argv[1:] != ["normalize"]:
        raise SystemExit("usage: python -m ysh.tariffs.pipes_entry normalize")
    pw_runtime.quiet_logging()
    settings = Settings()
    warehouse = db.Warehouse(db.prepare_warehouse(settings), settings.postgres_schema)
    with open_dagster_pipes() as pipes:
        if job.follower_active(warehouse):
            pipes.log.info("a CDC follower keeps the tariff tables current: reporting them as they stand")
        else:
            counts = job.run_warehouse(warehouse)
            pipes.log.info("tariffs recomputed: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for asset_key, metadata in reporting.normalized_metadata(warehouse).items():
            pipes.report_asset_materialization(asset_key=asset_key, metadata=metadata)


if __name__ == "__main__":
    main(sys.argv)
