"""``ysh tariffs …``: fetch ANEEL files, land them in the warehouse, normalize
``tarifas_raw`` in one batch pass (``run``) or follow it by CDC (``follow``), look a
tariff up; ``load`` normalizes files to files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import db
from ..console import print_reasons
from ..errors import InputError
from ..settings import get_settings
from . import job, landing
from .aneel import FileFormatError
from .book import TariffLookupError
from .load import load_paths
from .store import book_from_warehouse, current_tariffs

app = typer.Typer(help="ANEEL tariffs: tarifas homologadas, Fio B, bandeiras. `run` one batch pass over "
                       "tarifas_raw, `follow` by change data capture.", no_args_is_help=True)
console = Console()


def _sample_dir() -> Path:
    return db.data_path("sample", "tariffs")


def _warehouse(replication: bool = False) -> db.Warehouse:
    """``replication``: as the CDC followers' role (``ysh_cdc`` on the embedded server)."""
    return db.Warehouse.from_settings(get_settings(), replication=replication)


def _files(paths: list[Path], *, unique_names: bool = True) -> list[Path]:
    """The files under ``paths`` (with ``unique_names``, no two of one name: a landed
    source is its file name); :class:`~ysh.errors.InputError` when there is none, checked
    before any work starts."""
    from ..kit.files import files_under

    try:
        return landing.feed_files(paths) if unique_names else files_under(paths)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"no ANEEL files to read: {exc}" if isinstance(exc, FileNotFoundError) else str(exc)) \
            from None


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be ISO (YYYY-MM-DD), got {value!r}") from None


def land_paths(warehouse: db.Warehouse, paths: list[Path]) -> list[landing.LandReport]:
    """Land every file under ``paths`` in ``tarifas_raw``, with a progress bar."""
    from rich.progress import Progress

    files = landing.feed_files(paths)
    reports = []
    with db.connect(warehouse.dsn, warehouse.schema) as conn, Progress(console=console, transient=True) as progress:
        task = progress.add_task("landing ANEEL files", total=len(files))
        for path in files:
            progress.update(task, description=f"landing {path.name}")
            reports.append(landing.land_file(conn, path))
            progress.advance(task)
    return reports


def print_land_reports(reports: list[landing.LandReport]) -> None:
    table = Table("source", "dataset", "encoding", "rows", "inserted", "updated", "deleted", "unchanged",
                  title="tarifas_raw")
    for r in reports:
        table.add_row(r.source, r.dataset, r.encoding, *(str(v) for v in (r.rows, r.inserted, r.updated,
                                                                           r.deleted, r.unchanged)))
    console.print(table)


def print_current(book, on: date | None = None) -> None:
    """Each utility's B1/B3 tariff in force on ``on``; by default today, or the last day
    the data covers when it ends before today (a snapshot, like the sample files)."""
    if on is None:
        today = date.today()
        covered = book.covered_until()
        on = min(today, covered) if covered else today
        if on < today:
            console.print(f"[yellow]the tariff data ends before today ({today}): showing {on}, the last day "
                          "with every utility's tariff and the month's flag published[/]")
    table = Table("utility", "subgroup", "TE", "TUSD", "Fio B", "flag", "add-on",
                  title=f"B1/B3 tariffs in force on {on} [R$/kWh, without taxes; Tarifa de Aplicação, Convencional]")
    for row in current_tariffs(book, on):
        if row.error:
            table.add_row(row.utility, row.subgroup, "[red]none in force[/]", "", "", "", "")
            continue
        fmt = lambda v: "—" if v is None else f"{v:.5f}"  # noqa: E731
        table.add_row(row.utility, row.subgroup, fmt(row.te_brl_per_kwh), fmt(row.tusd_brl_per_kwh),
                      fmt(row.fio_b_brl_per_kwh), row.flag or "not published", fmt(row.flag_addon_brl_per_kwh))
    console.print(table)


@app.command()
def load(
    paths: list[Path] = typer.Argument(..., help="ANEEL files or folders (tarifas, componentes, bandeiras).",
                                       exists=True),
    out: Path = typer.Option(..., "--out", file_okay=False, help="Folder for the normalized tables as JSONL."),
) -> None:
    """Normalize ANEEL files into JSONL files with the Pathway graph (one pass; no server needed).

    With YSH_PATHWAY_PROCESSES > 1 the files are parsed in chunks by that many processes."""
    from .. import pw_runtime

    _files(paths, unique_names=False)  # before any helper process is spawned
    pw_runtime.respawn_with_processes(get_settings().pathway.processes)
    if not pw_runtime.is_leader():  # a helper process of a spawned run: results live in process 0
        job.run_static(paths, out)
        return
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
    data: list[Path] | None = typer.Option(None, "--data", exists=True,
                                           help="ANEEL files or folders (default: the samples)."),
    warehouse: bool = typer.Option(False, "--warehouse", help="Look up in the warehouse tables instead of files."),
) -> None:
    """Print TE, TUSD and Fio B (R$/kWh, without taxes) valid on DATE."""
    when = _day(on, "DATE")
    if warehouse and data:
        raise typer.BadParameter("give either --data or --warehouse")
    book = book_from_warehouse(_warehouse()) if warehouse else load_paths(
        _files(data or [_sample_dir()], unique_names=False)).book()
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


@app.command()
def land(
    paths: list[Path] = typer.Argument(..., help="ANEEL files or folders to land in tarifas_raw.", exists=True),
    normalize: bool = typer.Option(True, "--normalize/--no-normalize",
                                   help="Recompute the normalized tables afterwards (skip when a follower runs)."),
) -> None:
    """Land ANEEL files in the warehouse (tarifas_raw), one row per line, merged by file name."""
    _files(paths)  # before the warehouse starts
    warehouse = _warehouse()
    try:
        reports = land_paths(warehouse, paths)
    except (FileFormatError, ValueError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    print_land_reports(reports)
    if normalize:
        _normalize(warehouse)


def _normalize(warehouse: db.Warehouse) -> None:
    if job.FOLLOWER.active(warehouse):
        console.print("a CDC follower (`ysh tariffs follow`) is running: it normalizes the change; no batch run")
        return
    with console.status("normalizing tarifas_raw with Pathway…"):
        counts = job.run_warehouse(warehouse)
    console.print(", ".join(f"{name} {count}" for name, count in counts.items()))
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        reasons = dict(conn.execute(
            "SELECT reason, count(*) FROM tarifas_quarantine GROUP BY reason ORDER BY 2 DESC").fetchall())
    print_reasons(reasons)


@app.command()
def fetch(
    dest: Path | None = typer.Option(None, "--dest", file_okay=False,
                                     help="Folder for the CSVs (default: the tariffs landing folder)."),
    land_after: bool = typer.Option(False, "--land", help="Land the downloads in tarifas_raw and normalize."),
) -> None:
    """Download ANEEL's datasets from the CKAN DataStore (datastore_search, paged, retried)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .ckan import CkanError
    from .scrape import scrape

    settings = get_settings()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as progress:
        tasks: dict[str, int] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        try:
            results = scrape(settings, dest, progress=report)
        except CkanError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from exc
    for r in results:
        console.print(f"[green]✓[/] {r.path} ({r.rows} rows, {r.pages} pages)")
    if land_after:
        warehouse = _warehouse()
        print_land_reports(land_paths(warehouse, [r.path for r in results]))
        _normalize(warehouse)


@app.command("run")
def run_command() -> None:
    """Recompute tarifas_normalized and the derived tables from tarifas_raw in one batch pass."""
    _normalize(_warehouse())


@app.command()
def follow(
    reset: bool = typer.Option(False, "--reset", help="Drop the replication slot and persisted state first."),
) -> None:
    """Follow tarifas_raw by change data capture, keeping the normalized tables current, until stopped.

    Pathway persistence lives in HOME/state/tariffs_follow: a restart resumes from the
    persisted replication position. Stop with Ctrl-C.
    """
    settings = get_settings()
    warehouse = _warehouse(replication=True)
    state = settings.state_dir / "tariffs_follow"
    if reset:
        job.FOLLOWER.reset(warehouse, state)
    license_key = settings.pathway.license_key.get_secret_value() if settings.pathway.license_key else None
    reader = "pw.io.postgres.read (licensed)" if license_key else "ysh.cdc"
    console.print(f"following [cyan]{warehouse.schema}.tarifas_raw[/] with {reader} (state in {state}); "
                  "Ctrl-C to stop")
    job.follow(warehouse, state, license_key=license_key)


@app.command()
def current(
    on: str | None = typer.Option(None, "--on", help="ISO date (default: today, or the last day the data covers)."),
) -> None:
    """Print each utility's B1 and B3 tariff valid on a day, from the warehouse."""
    day = _day(on, "--on") if on else None
    print_current(book_from_warehouse(_warehouse()), day)
