"""``ysh tariffs …``: normalize ANEEL files, look a tariff up."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import db
from ..console import print_reasons
from . import job
from .book import TariffLookupError
from .load import load_paths

app = typer.Typer(help="ANEEL tariffs: tarifas homologadas, Fio B, bandeiras.", no_args_is_help=True)
console = Console()


def _sample_dir() -> Path:
    return db.data_path("sample", "tariffs")


@app.command()
def load(
    paths: list[Path] = typer.Argument(..., help="ANEEL files or folders (tarifas, componentes, bandeiras).",
                                       exists=True),
    out: Path = typer.Option(..., "--out", help="Folder for the normalized tables as JSONL."),
) -> None:
    """Normalize ANEEL files with the Pathway graph (static; no server needed)."""
    with console.status("normalizing ANEEL files with Pathway…"):
        report = job.run_static(paths, out)
    counts = report.counts
    console.print(
        f"{counts.get('tariffs', 0)} tariffs ({len(report.utilities)} utilities), {counts.get('fio_b', 0)} Fio B, "
        f"{counts.get('flags', 0)} flag months, {counts.get('monthly', 0)} monthly B1/B3 tariffs, "
        f"[red]{counts.get('quarantine', 0)} quarantined[/] in {report.seconds:.2f}s"
    )
    print_reasons(report.quarantine_by_reason)
    console.print(f"written to [cyan]{out}[/]: " + ", ".join(f for f, _ in job.JSONL_FILES.values()))


@app.command()
def at(
    utility: str = typer.Argument(..., help="Utility acronym as ANEEL writes it, e.g. CEMIG-D."),
    subgroup: str = typer.Argument(..., help="Subgroup, e.g. B1 or B3."),
    on: str = typer.Argument(..., metavar="DATE", help="ISO date, e.g. 2026-01-15."),
    modality: str = typer.Option("Convencional", help="Tariff modality."),
    tariff_class: str | None = typer.Option(None, "--class", help="Consumer class (B1: Residencial)."),
    subclass: str | None = typer.Option(None, help="Subclass (B1: Residencial)."),
    data: list[Path] | None = typer.Option(None, "--data", help="ANEEL files or folders (default: the samples)."),
) -> None:
    """Print TE, TUSD and Fio B (R$/kWh, without taxes) valid on DATE."""
    try:
        when = date.fromisoformat(on)
    except ValueError as exc:
        raise typer.BadParameter(f"DATE must be ISO (YYYY-MM-DD), got {on!r}") from exc
    loaded = load_paths(data or [_sample_dir()])
    book = loaded.book()
    try:
        found = book.tariff_at(utility, subgroup, when, modality, tariff_class=tariff_class, subclass=subclass)
    except TariffLookupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    flag = book.flag_of(when)
    table = Table("", "", title=f"{found.utility} {found.subgroup} {found.modality} on {when} (without taxes)")
    table.add_row("TE", f"{found.te_brl_per_kwh:.5f} R$/kWh")
    table.add_row("TUSD", f"{found.tusd_brl_per_kwh:.5f} R$/kWh")
    table.add_row("Fio B (TUSD)", f"{found.fio_b_brl_per_kwh:.5f} R$/kWh" if found.fio_b_brl_per_kwh is not None
                  else "not published for this period")
    table.add_row("flag", f"{flag.flag} (+{flag.addon_brl_per_kwh:.5f} R$/kWh)" if flag else "not published")
    table.add_row("valid", f"{found.valid_from} … {found.valid_to or 'open'}")
    table.add_row("resolution", found.resolution)
    console.print(table)
