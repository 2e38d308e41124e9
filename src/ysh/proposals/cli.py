"""``ysh proposals …``: evaluate one proposal file, seed Medusa-like quotes, evaluate the
warehouse's quotes in one batch pass (``run``) or follow them by CDC (``follow``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from ..errors import InputError, read_json
from .billing import ProposalInput, evaluate

app = typer.Typer(help="Proposal analytics: Lei 14.300 billing, cash flows, NPV/IRR/payback. `run` one batch "
                       "pass over the quotes, `follow` by change data capture.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per invalid field: ``field: message``."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "proposal"
        lines.append(f"{field}: {error['msg']}")
    return lines


@app.command("evaluate")
def evaluate_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="One proposal as JSON (see docs/proposals.md)."),
    indent: int = typer.Option(2, min=0, max=16, help="JSON indentation (0: one line)."),
) -> None:
    """Print the KPIs and the yearly table of one proposal as JSON.

    The file is UTF-8 JSON (a byte-order mark, as Windows tools write, is fine); what
    cannot be evaluated ends with one line naming the file and the problem (exit code 2)."""
    data = read_json(file, "proposal file")
    try:
        proposal = ProposalInput.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{file}: invalid proposal: {'; '.join(describe_errors(exc))}") from None
    result = evaluate(proposal)
    out = {"input": proposal.model_dump(mode="json"), **result.as_dict()}
    sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=indent or None) + "\n")


def _warehouse(replication: bool = False):
    """The warehouse and the settings; ``replication``: as the CDC followers' role."""
    from .. import db
    from ..settings import get_settings

    settings = get_settings()
    return db.Warehouse.from_settings(settings, replication=replication), settings


@app.command("run")
def run_command() -> None:
    """Evaluate every quote in the warehouse in one batch pass (propostas_*, kpis_b1_b3)."""
    from ..kit.follower import FollowerRunning
    from . import job

    warehouse, settings = _warehouse()
    out = Console()
    try:
        with out.status("evaluating quotes with Pathway…"):
            counts = job.run_batch(warehouse, settings)
    except FollowerRunning as exc:
        err.print(f"[yellow]{exc}[/]")
        raise typer.Exit(1) from exc
    out.print(", ".join(f"{name} {count}" for name, count in counts.items()))
    print_kpis(warehouse)


@app.command("follow")
def follow_command(
    reset: bool = typer.Option(False, "--reset", help="Drop the replication slots and persisted state first."),
) -> None:
    """Follow the proposals' sources by CDC, keeping the proposals tables current, until stopped.

    The sources: quotes, orders, companies, the catalog and the tariffs. Stop with Ctrl-C."""
    from . import job

    warehouse, settings = _warehouse(replication=True)
    state = settings.state_dir / "proposals_follow"
    if reset:
        job.FOLLOWER.reset(warehouse, state)
    Console().print(f"following the proposals sources of schema [cyan]{warehouse.schema}[/] (state in {state})")
    job.follow(warehouse, settings, state)


def print_kpis(warehouse) -> None:
    from rich.table import Table

    from .. import db

    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        rows = conn.execute(
            "SELECT customer_class, state, count(*), count(*) FILTER (WHERE ordered), sum(system_kwp), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY payback_years), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY irr_pct) "
            "FROM propostas_analytics GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
        errors = conn.execute("SELECT count(*) FROM propostas_analytics WHERE error IS NOT NULL").fetchone()[0]
    table = Table("class", "state", "quotes", "orders", "conversion", "kWp", "median payback (y)", "median IRR",
                  title="B1/B3 proposals, all months (medians over the evaluated quotes)")
    for klass, state, quotes, orders, kwp, payback, irr in rows:
        table.add_row(klass, state, str(quotes), str(orders), f"{orders / quotes:.0%}" if quotes else "—",
                      f"{kwp:,.1f}", "—" if payback is None else f"{payback:.1f}", "—" if irr is None else f"{irr:.1f} %")
    out = Console()
    out.print(table)
    if errors:
        out.print(f"[yellow]{errors} quotes could not be evaluated (see propostas_analytics.error)[/]")


@app.command("seed")
def seed_command(
    companies: int = typer.Option(40, min=1, help="Companies (integrators) to create."),
    quotes: int = typer.Option(400, min=1, help="Quotes to create."),
    seed: int = typer.Option(14, help="Random seed (same seed: same rows, upserted)."),
    today: str | None = typer.Option(None, help="ISO date the quotes lead up to (default: today)."),
) -> None:
    """Seed the Medusa-like tables (company, quote, quote_item, order) from the catalog in the warehouse."""
    from datetime import date

    from .. import db
    from ..samples.medusa import seed_medusa

    try:
        when = date.fromisoformat(today) if today else None
    except ValueError as exc:
        raise typer.BadParameter(f"--today must be ISO (YYYY-MM-DD), got {today!r}") from exc
    warehouse, _ = _warehouse()  # after the arguments are checked: bad input starts no server
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        try:
            report = seed_medusa(conn, companies=companies, quotes=quotes, seed=seed, today=when)
        except ValueError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from exc
    Console().print(f"seeded {report.companies} companies, {report.quotes} quotes ({report.quote_items} lines, "
                    f"{report.unknown_sku_quotes} with a stale SKU), {report.orders} orders")
