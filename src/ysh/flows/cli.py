"""``ysh flows …``: serve the Prefect flows on their schedules, or run one now."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from .deployments import SCHEDULES, TIMEZONE

app = typer.Typer(help="Prefect tactical flows: backup, restore, alerts, migrate_legacy. `run` one flow now, "
                       "`serve` the scheduled ones (Prefect's serve) until stopped.", no_args_is_help=True)
console = Console()


@app.command("list")
def list_flows() -> None:
    """The flows and their schedules."""
    table = Table("flow", "schedule", "what")
    for name, scheduled in SCHEDULES.items():
        table.add_row(name, f"{scheduled.cron} ({TIMEZONE})" if scheduled.cron else "on demand", scheduled.description)
    console.print(table)


@app.command("serve")
def serve_command() -> None:
    """Serve the scheduled flows (backup daily 03:00, alerts every 5 min) until stopped."""
    from .deployments import serve

    console.print("serving " + ", ".join(n for n, s in SCHEDULES.items() if s.cron) + f" ({TIMEZONE}); Ctrl-C to stop")
    serve()


def _parameters(values: list[str]) -> dict:
    params = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--param expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a plain string
        if key.endswith("dsn") and isinstance(value, str):
            from pydantic import SecretStr

            value = SecretStr(value)  # Prefect records parameters: never the password in clear
        params[key] = value
    return params


@app.command("run")
def run_command(
    name: str = typer.Argument(..., help=f"One of: {', '.join(SCHEDULES)}."),
    param: list[str] = typer.Option([], "--param", "-p", help="Flow parameter KEY=VALUE (VALUE as JSON or text)."),
) -> None:
    """Run one flow now, in this process, and stop."""
    from .deployments import flows

    available = flows()
    if name not in available:
        raise typer.BadParameter(f"unknown flow {name!r}: one of {', '.join(available)}")
    flow, params = available[name], _parameters(param)
    _check_parameters(flow, name, params)
    result = flow(**params)
    console.print(result)


def _check_parameters(flow, name: str, params: dict) -> None:
    """The parameters bind to the flow's signature and pass its type checks, before it
    runs (Prefect would end the run with a traceback); :class:`~ysh.errors.InputError`
    naming the flow and the problem."""
    import inspect
    import logging

    from prefect.exceptions import ParameterTypeError

    from ..errors import InputError

    signature = inspect.signature(flow.fn)
    try:
        signature.bind(**params)
    except TypeError as exc:
        raise InputError(f"flow {name}: {exc} (its parameters: {', '.join(signature.parameters) or 'none'})") \
            from None
    if flow.should_validate_parameters:
        prefect_log = logging.getLogger("prefect.flows")  # it logs the failure (and the values) at ERROR
        quiet, prefect_log.disabled = prefect_log.disabled, True
        try:
            flow.validate_parameters(params)
        except ParameterTypeError as exc:
            raise InputError(f"flow {name}: {exc}") from None
        finally:
            prefect_log.disabled = quiet
