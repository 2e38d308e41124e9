"""Dagster definitions: collects each job's assets, checks, jobs, schedules and sensors.

``dagster dev -m ysh.definitions`` (or ``ysh ui``) serves them.
"""

from __future__ import annotations

import dagster as dg

from .catalog import assets as catalog
from .om import assets as om
from .proposals import assets as proposals
from .rag import assets as rag
from .resources import WarehouseResource
from .tariffs import assets as tariffs

defs = dg.Definitions(
    assets=[*catalog.ASSETS, *tariffs.ASSETS, *proposals.ASSETS, *om.ASSETS, *rag.ASSETS],
    asset_checks=[*catalog.CHECKS, *tariffs.CHECKS, *proposals.CHECKS, *om.CHECKS, *rag.CHECKS],
    jobs=[*catalog.JOBS, *tariffs.JOBS, *proposals.JOBS, *om.JOBS, *rag.JOBS],
    schedules=[*catalog.SCHEDULES, *tariffs.SCHEDULES, *proposals.SCHEDULES, *om.SCHEDULES, *rag.SCHEDULES],
    sensors=[*catalog.SENSORS],
    resources={
        "warehouse": WarehouseResource(),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    },
)
