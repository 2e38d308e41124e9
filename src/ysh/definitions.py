"""Dagster definitions: collects each job's assets, checks, jobs, schedules and sensors.

``dagster dev -m ysh.definitions`` (or ``ysh ui``) serves them.
"""

from __future__ import annotations

import dagster as dg

from .catalog import assets as catalog
from .resources import WarehouseResource

defs = dg.Definitions(
    assets=[*catalog.ASSETS],
    asset_checks=[*catalog.CHECKS],
    jobs=[*catalog.JOBS],
    schedules=[*catalog.SCHEDULES],
    sensors=[*catalog.SENSORS],
    resources={
        "warehouse": WarehouseResource(),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    },
)
