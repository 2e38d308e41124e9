"""``ysh proposal …``: evaluate a proposal with billing model v1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from .billing import ProposalInput, evaluate

app = typer.Typer(help="Proposal analytics: Lei 14.300 billing, cash flows, NPV/IRR/payback.", no_args_is_help=True)
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
    indent: int = typer.Option(2, help="JSON indentation (0: one line)."),
) -> None:
    """Print the KPIs and the yearly table of one proposal as JSON."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        err.print(f"[red]{file}: not valid JSON: {exc}[/]")
        raise typer.Exit(2) from exc
    try:
        proposal = ProposalInput.model_validate(data)
    except ValidationError as exc:
        err.print(f"[red]{file}: invalid proposal[/]")
        for line in describe_errors(exc):
            err.print(f"  {line}")
        raise typer.Exit(2) from exc
    result = evaluate(proposal)
    out = {"input": proposal.model_dump(mode="json"), **result.as_dict()}
    sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=indent or None) + "\n")
