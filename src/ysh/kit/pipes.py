"""Dagster Pipes, both ends: a job's Pathway run in a subprocess, isolated.

Pathway's graph is global, so an asset never runs a graph in Dagster's own process: it
launches ``python -m ysh.<job>.pipes_entry ACTION`` (:func:`launch`) with the warehouse
it resolved (``YSH_POSTGRES_DSN``, ``YSH_POSTGRES_SCHEMA``), and the entry point
(:func:`run_entry`) runs the action and reports materializations back through the Pipes
channel. Only ``dagster_pipes`` is imported on the subprocess side.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg
    from dagster_pipes import PipesContext

    from ..db import Warehouse
    from ..resources import WarehouseResource
    from ..settings import Settings

#: an action of an entry point: ``pipes`` is None in the non-reporting processes of a
#: ``pathway spawn`` run (only process 0 talks to Dagster)
Action = Callable[["PipesContext | None", "Settings"], None]


def run_entry(job: str, actions: Mapping[str, Action], argv: list[str] | None = None) -> None:
    """``python -m ysh.<job>.pipes_entry ACTION``: run ``actions[ACTION](pipes, settings)``
    with the settings from the environment (``YSH_*``), Pathway's logging quiet, and the
    Pipes channel open in the reporting process (process 0 of a spawned run).

    Raises
    ------
    SystemExit
        no known action given (the usage).
    """
    from dagster_pipes import open_dagster_pipes

    from .. import pw_runtime
    from ..settings import Settings

    argv = sys.argv if argv is None else argv
    command = argv[1] if len(argv) > 1 else ""
    if command not in actions:
        raise SystemExit(f"usage: python -m ysh.{job}.pipes_entry {'|'.join(actions)}")
    pw_runtime.quiet_logging()
    with (open_dagster_pipes() if pw_runtime.is_leader() else nullcontext()) as pipes:
        actions[command](pipes, Settings())


def recompute_and_report(pipes: PipesContext, warehouse: Warehouse, follower, recompute: Callable[[], Mapping],
                         metadata: Callable[[Warehouse], Mapping[str, Mapping[str, Any]]]) -> None:
    """The batch step of a job kept current by a follower (:class:`ysh.kit.follower.Follower`):
    ``recompute()`` unless the follower runs (then the tables are reported as they stand),
    then one materialization per asset of ``metadata(warehouse)`` (asset key → metadata)."""
    if follower.active(warehouse):
        pipes.log.info(f"a {follower.pipeline} follower keeps the outputs current: reporting them as they stand")
    else:
        counts = recompute()
        pipes.log.info(f"{follower.pipeline} recomputed: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for asset_key, values in metadata(warehouse).items():
        pipes.report_asset_materialization(asset_key=asset_key, metadata=values)


def launch(context: dg.AssetExecutionContext, warehouse: WarehouseResource, client: dg.PipesSubprocessClient,
           job: str, action: str, *, processes: int = 1) -> dg.PipesClientCompletedInvocation:
    """Run ``python -m ysh.<job>.pipes_entry ACTION`` through Pipes, under ``pathway spawn``
    when ``processes`` > 1; the subprocess gets the same warehouse, already started and
    migrated. Returns the completed invocation (``get_results()`` for a multi-asset,
    ``get_materialize_result()`` for one asset)."""
    from .. import pw_runtime

    env = {"YSH_POSTGRES_DSN": warehouse.get_dsn(), "YSH_POSTGRES_SCHEMA": warehouse.schema}
    command = pw_runtime.spawn_argv([sys.executable, "-m", f"ysh.{job}.pipes_entry", action], processes)
    return client.run(command=command, context=context, env=env)
