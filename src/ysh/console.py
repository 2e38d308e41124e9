"""Shared output: one rich console, the tables every job prints, markdown tables for Dagster metadata."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

console = Console()


def print_reasons(counts: Mapping[str, int], title: str = "quarantined rows by reason") -> None:
    """A table of quarantine reason codes and their row counts (nothing when empty)."""
    if not counts:
        return
    table = Table("reason", "rows", title=title)
    for reason, count in counts.items():
        table.add_row(reason, str(count))
    console.print(table)


def markdown_table(headers: list[str], rows: list[tuple]) -> str:
    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:,.2f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def pipes_md(text: str) -> dict:
    """A markdown metadata value as Dagster Pipes carries it."""
    return {"raw_value": text, "type": "md"}
