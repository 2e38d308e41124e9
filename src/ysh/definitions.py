"""Dagster definitions: each job's ``defs`` (everything its ``assets`` module declares),
merged, with the shared resources.

``dagster dev -m ysh.definitions`` (or ``ysh ui``) serves them. A job's module exposes one
``defs = dg.load_definitions_from_current_module()``: a new asset, check, job, schedule or
sensor there is picked up without a list to update here.
"""

from __future__ import annotations

import os

import dagster as dg

from .catalog import assets as catalog
from . import ops_assets as ops
from .om import assets as om
from .proposals import assets as proposals
from .rag import assets as rag
from .resources import SettingsResource, WarehouseResource
from .tariffs import assets as tariffs

JOBS = (catalog, tariffs, proposals, om, rag, ops)


def resources() -> dict:
    """The shared resources: the warehouse's DSN from ``YSH_POSTGRES_DSN`` when it is set
    (read at run time, never stored in the definitions), else the embedded server."""
    warehouse = (WarehouseResource(dsn=dg.EnvVar("YSH_POSTGRES_DSN")) if os.environ.get("YSH_POSTGRES_DSN")
                 else WarehouseResource())
    return {"warehouse": warehouse, "settings": SettingsResource(),
            "pipes_subprocess_client": dg.PipesSubprocessClient()}


defs = dg.Definitions.merge(*(job.defs for job in JOBS), dg.Definitions(resources=resources()))
