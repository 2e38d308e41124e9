"""Shared terminal output: one rich console and the tables every job prints."""

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
