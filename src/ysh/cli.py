"""The ``ysh`` command line: demo, services, database, UI and one sub-command per job.

One grammar across the jobs: ``run`` is one batch pass that ends, ``follow`` a streaming
follower that runs until stopped, ``serve`` an HTTP API. Verbs replaced by it stay as
hidden aliases (:func:`deprecated_alias`) that print one deprecation line on stderr.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer vendors click (pinned 0.29)
from typer.core import TyperGroup
from rich.console import Console
from rich.table import Table

from . import db
from .errors import InputError
from .catalog.cli import app as catalog_app
from .flows.cli import app as flows_app
from .om.cli import app as om_app
from .rag.cli import app as rag_app
from .proposals.cli import app as proposal_app
from .tariffs.cli import app as tariffs_app
from .settings import get_settings, variable_of


def _error_line(message: str) -> typer.Exit:
    """Print ``error: <message>`` (one line) on stderr; the exit (code 2) to raise."""
    typer.secho("error: " + " ".join(str(message).split()), err=True, fg="red")
    return typer.Exit(2)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Bad input ends a command with one line on stderr and exit code 2, never a
    traceback: an :class:`~ysh.errors.InputError` from any command, and click's usage
    errors (a bad option, a missing file argument) too; Ctrl-C ends it with 130."""
    try:
        yield
    except NoArgsIsHelpError:
        raise  # `ysh om` alone: the help text
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "ysh"
        raise _error_line(f"{exc.format_message().rstrip('.')} (see `{where} --help`)") from None
    except InputError as exc:
        raise _error_line(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


class _Ysh(TyperGroup):
    """The root group: every command runs inside :func:`_one_line_errors`."""

    def make_context(self, info_name, args, parent=None, **extra):
        with _one_line_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with _one_line_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Ysh,
    help="YSH data platform: five jobs (catalog, tariffs, proposals, om, rag) and the Prefect flows. In every "
         "job `run` is one batch pass that ends, `follow` streams until stopped, `serve` is an HTTP API.",
    no_args_is_help=True, pretty_exceptions_show_locals=False)
services_app = typer.Typer(help="Local services on loopback: PostgreSQL, and mosquitto, Tansu (Kafka), moto (S3).", no_args_is_help=True)
db_app = typer.Typer(help="Warehouse schema.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.add_typer(tariffs_app, name="tariffs")
app.add_typer(proposal_app, name="proposals")
app.add_typer(om_app, name="om")
app.add_typer(rag_app, name="rag")
app.add_typer(flows_app, name="flows")
console = Console()


def _deprecation(old: str, new: str) -> str:
    return f"`{old}` is deprecated; use `{new}`"


def deprecated_alias(group: typer.Typer, prefix: str, old: str, new: str) -> None:
    """Register ``old`` as a hidden command of ``group`` that prints one deprecation line on
    stderr and then runs the callback of ``new`` itself (same options, same behaviour)."""
    from typer.main import get_command_name

    info = next(c for c in group.registered_commands
                if (c.name or get_command_name(c.callback.__name__)) == new)
    target = info.callback
    line = _deprecation(f"{prefix} {old}", f"{prefix} {new}")

    @functools.wraps(target)  # typer reads the options from the target's signature
    def alias(*args, **kwargs):
        typer.echo(line, err=True)
        return target(*args, **kwargs)

    group.command(old, hidden=True, help=f"Deprecated: use `{prefix} {new}`.\n\n{info.help or target.__doc__ or ''}")(
        alias)


#: verbs (and one group name) replaced by the grammar; hidden, still working
deprecated_alias(catalog_app, "ysh catalog", "watch", "follow")
deprecated_alias(tariffs_app, "ysh tariffs", "normalize", "run")


def _proposal_group_deprecated() -> None:
    typer.echo(_deprecation("ysh proposal", "ysh proposals"), err=True)


app.add_typer(proposal_app, name="proposal", hidden=True, callback=_proposal_group_deprecated)


@app.callback()
def _setup(ctx: typer.Context) -> None:
    """One logging setup for every command (YSH_LOG_LEVEL, YSH_LOG_JSON); settings errors
    (a typo in a YSH_* name, a bad value) end the command with the reason, in one line."""
    from pydantic import ValidationError

    from .observability import setup_logging

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = variable_of(error.get("loc", ())) or ".".join(str(part) for part in error.get("loc", ()))
            problems.append(f"{(where + ': ') if where else ''}{error['msg'].removeprefix('Value error, ')}")
        raise InputError("settings: " + "; ".join(problems)) from None
    setup_logging(settings.observability.log_level, settings.observability.log_json)


# --------------------------------------------------------------------------------------
# services
# --------------------------------------------------------------------------------------


def _status_table() -> Table:
    from .services import local

    settings = get_settings()
    table = Table("service", "state", "where", "log")
    if settings.uses_embedded_postgres:
        status = db.embedded_server(settings).status()
        state = "running" if status.running else ("stopped" if status.initialized else "not initialized")
        table.add_row("postgres (embedded)", state, f"127.0.0.1:{status.port} data={status.data_dir}", "")
    else:
        table.add_row("postgres (external)", "configured", "YSH_POSTGRES_DSN", "")
    for status in local.services_status(settings):
        table.add_row(f"{status.name} ({status.description})", "running" if status.running else "stopped",
                      status.url or "", str(status.log_file) if status.running else "")
    return table


@services_app.command("up")
def services_up(
    with_: str | None = typer.Option(None, "--with", help="Also start local servers: mqtt, kafka, s3 (comma list, "
                                                           "or all): mosquitto, Tansu, moto_server on loopback."),
) -> None:
    """Start the embedded PostgreSQL (if YSH_POSTGRES_DSN is unset), apply migrations, and
    the local servers asked for."""
    from .services import local

    settings = get_settings()
    try:
        names = local.parse_names(with_) if with_ else []  # a typo ends here, before anything starts
    except local.LocalServiceError as exc:
        raise InputError(f"--with: {exc}") from None
    with console.status("starting PostgreSQL and applying migrations…"):
        dsn = db.resolve_dsn(settings)
        applied = db.migrate(dsn, settings.warehouse.schema_name)
    if applied:
        console.print(f"applied migrations: {', '.join(applied)}")
    if with_:
        try:
            with console.status(f"starting {with_}…"):
                local.start_services(names, settings)
        except local.LocalServiceError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from exc
    console.print(_status_table())


@services_app.command("down")
def services_down() -> None:
    """Stop the local servers started by `up --with`, and the embedded PostgreSQL."""
    from .services import local

    settings = get_settings()
    for name, was_running in local.stop_services(None, settings).items():
        if was_running:
            console.print(f"stopped {name}")
    if not settings.uses_embedded_postgres:
        console.print("YSH_POSTGRES_DSN is set: the warehouse is external, nothing to stop")
        return
    stopped = db.embedded_server(settings).stop()
    console.print("stopped PostgreSQL" if stopped else "PostgreSQL was not running")


@services_app.command("status")
def services_status() -> None:
    """Show the state of the services."""
    console.print(_status_table())


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations (idempotent)."""
    settings = get_settings()
    applied = db.migrate(db.resolve_dsn(settings), settings.warehouse.schema_name)
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


# --------------------------------------------------------------------------------------
# demo and UI
# --------------------------------------------------------------------------------------


def _dagster_env(storage: str | None = None) -> dict[str, str]:
    """Write the platform's dagster.yaml (storage in the warehouse, or SQLite when asked)
    and point this process at it; returns the variables for child processes."""
    from . import dagster_instance

    return dagster_instance.prepare(get_settings(), storage)


def _materialize(assets: list, label: str, selection=None):
    """Materialize assets (and their checks) through Dagster on the local instance and
    print what came out; returns the result."""
    import warnings

    import dagster as dg

    from .definitions import resources

    # Dagster's own Pipes plumbing warns that an API it uses internally is in preview
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    with console.status(f"materializing {label} (Dagster + Pathway)…"):
        result = dg.materialize(
            assets, selection=selection,
            instance=dg.DagsterInstance.get(),
            resources=resources(),
            tags={"ysh/trigger": "demo"},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    for event in result.get_asset_materialization_events():
        console.print(f"[green]✓[/] materialized {event.asset_key.to_user_string()}")
    for check in result.get_asset_check_evaluations():
        mark = "[green]✓[/]" if check.passed else ("[yellow]![/]" if check.severity.value == "WARN" else "[red]✗[/]")
        console.print(f"{mark} check {check.asset_key.to_user_string()}.{check.check_name}: "
                      f"{'passed' if check.passed else 'failed (' + check.severity.value + ')'}")
    if not result.success:
        console.print(f"[red]the {label} run failed; see the Dagster UI (`ysh ui`) for logs[/]")
        raise typer.Exit(1)
    return result


@app.command()
def demo() -> None:
    """Run the five jobs once on the samples and print what came out (embedded PostgreSQL).

    Catalog (the sample and real distributor exports) and tariffs (the ANEEL sample files)
    materialized through Dagster; Medusa-like quotes seeded and evaluated (KPIs and an
    HTML report); a simulated O&M fleet day with faults through the telemetry pipeline;
    three questions to Hélio (RAG) over the sample documents and the live records."""
    import dagster as dg

    from .catalog import assets as catalog_assets
    from .catalog import landing
    from .catalog.cli import print_summary
    from .db import Warehouse
    from .tariffs import assets as tariff_assets
    from .tariffs.cli import print_current
    from .tariffs.store import book_from_warehouse

    settings = get_settings()
    with console.status("starting PostgreSQL and applying migrations…"):
        dsn = db.prepare_warehouse(settings)
    _dagster_env()  # Dagster's runs and events in the warehouse (schema dagster)
    warehouse = Warehouse(dsn, settings.warehouse.schema_name)
    console.print(f"[green]✓[/] warehouse ready (schema [bold]{settings.warehouse.schema_name}[/])")

    # --- catalog ---------------------------------------------------------------------
    sample = db.data_path("sample", "catalog")
    if not sample.is_dir():
        raise typer.BadParameter(f"sample feeds not found at {sample}")
    landed = landing.land([sample], settings.catalog.landing_dir)
    console.print(f"[green]✓[/] landed {len(landed)} sample feeds in {settings.catalog.landing_dir}")
    # the real October 2025 exports of two distributors, each in its own folder
    exports = db.data_path("distributors", "exports")
    real = [path for folder in sorted(exports.iterdir()) if folder.is_dir()
            for path in landing.land([folder], settings.catalog.landing_dir, folder.name)]
    console.print(f"[green]✓[/] landed {len(real)} real distributor exports (storefront scrapes, JSON dumps, kits) "
                  f"from {', '.join(sorted({p.parent.name for p in real}))}")
    _materialize([*catalog_assets.defs.assets, *catalog_assets.defs.asset_checks],
                 "catalog_raw → catalog_normalized → catalog_products")
    print_summary(warehouse)

    # --- tariffs (the sample files stand in for the CKAN download: no network here) ----
    tariffs_sample = db.data_path("sample", "tariffs")
    settings.tariffs.landing_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(tariffs_sample.glob("*.csv")):
        shutil.copy2(path, settings.tariffs.landing_dir / path.name)
    console.print(f"[green]✓[/] copied the sample ANEEL files to {settings.tariffs.landing_dir} "
                  "(they carry deliberately broken rows: the error-rate check fails on them)")
    _materialize([*tariff_assets.defs.assets, *tariff_assets.defs.asset_checks],
                 "tarifas_raw → tarifas_normalized → tarifas_bandeiras / tarifas_efetivas_mensais",
                 selection=dg.AssetSelection.groups(tariff_assets.GROUP) - dg.AssetSelection.assets(
                     "tarifas_aneel_scrape"))
    book = book_from_warehouse(warehouse)
    print_current(book)

    # --- proposals: Medusa-like quotes over the catalog, evaluated with the tariffs -----
    from datetime import date

    from .proposals import assets as proposal_assets
    from .proposals.cli import print_kpis
    from .proposals.report import build_report
    from .samples.medusa import seed_medusa

    covered = book.covered_until()
    today = min(date.today(), covered) if covered else date.today()
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        seeded = seed_medusa(conn, today=today)
    console.print(f"[green]✓[/] seeded {seeded.companies} companies, {seeded.quotes} quotes and {seeded.orders} orders "
                  f"(the 12 months up to {today}, which the sample tariffs cover)")
    if not settings.proposals.irradiance.offline:
        from .proposals.irradiance import sources_reachable

        if not sources_reachable(settings):
            os.environ["YSH_IRRADIANCE_OFFLINE"] = "true"  # the Pathway subprocess inherits it
            console.print("[yellow]irradiance: NASA POWER and PVGIS are not reachable from here; this run uses "
                          "the cache or the modelled clear-sky year (irradiance_source = modelled)[/]")
    _materialize([*proposal_assets.defs.assets, *proposal_assets.defs.asset_checks],
                 "propostas_raw → propostas_enriched → propostas_analytics → kpis_b1_b3",
                 selection=dg.AssetSelection.groups(proposal_assets.GROUP))
    print_kpis(warehouse)
    report = build_report(warehouse, settings.home_dir / "reports" / "proposals.html")
    console.print(f"[green]✓[/] report → [cyan]{report.path}[/] (payback distribution, the cash flow of "
                  f"{report.chosen_quote_id}, KPIs)")
    # --- O&M: a simulated fleet day with faults through the telemetry pipeline -------
    from .om.cli import demo_day

    demo_day(settings, warehouse, console)

    # --- RAG: Hélio answers over the sample corpus and the live catalog/tariff records --
    from .rag.cli import demo_questions

    # the same day as the proposals: the sample tariffs end at a fixed date
    demo_questions(settings, warehouse, console, as_of=today if today < date.today() else None)
    console.print(
        "\nNext: [bold]ysh ui[/] (Dagster UI: asset graph, metadata, checks) · "
        "[bold]ysh catalog follow[/] / [bold]ysh tariffs follow[/] / [bold]ysh proposals follow[/] / "
        "[bold]ysh om follow[/] (streaming; [bold]run[/] is the batch pass) · "
        "[bold]ysh tariffs at CEMIG-D B1 2026-01-15[/] · [bold]ysh proposals evaluate FILE.json[/] · "
        "[bold]ysh report[/] · [bold]ysh rag serve[/] / [bold]ysh rag eval[/] (Hélio) · "
        f"tables in schema [bold]{settings.warehouse.schema_name}[/]: items_normalized, products, tarifas_normalized, "
        "tarifas_efetivas_mensais, propostas_analytics, kpis_b1_b3, om_alerts, om_alerts_daily, …\n"
    )


@app.command()
def report(
    out: Path | None = typer.Option(None, "--out", dir_okay=False,
                                    help="HTML file (default: $YSH_HOME/reports/proposals.html)."),
    quote: str | None = typer.Option(None, "--quote", help="Quote whose cash-flow curve is shown (default: the "
                                                             "median-payback one)."),
) -> None:
    """Write the proposals report (payback distribution, one cash-flow curve, B1/B3 KPIs) as one HTML file."""
    from .db import Warehouse
    from .proposals.report import build_report

    settings = get_settings()
    target = out or settings.home_dir / "reports" / "proposals.html"
    try:
        summary = build_report(Warehouse.from_settings(settings), target, quote)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console.print(f"[green]✓[/] report of {summary.proposals} proposals ({summary.errors} not evaluated, "
                  f"{summary.orders} ordered; curve of {summary.chosen_quote_id}) → [cyan]{summary.path}[/]")


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(3000, min=1, max=65535, help="Port of the Dagster UI."),
    dagster_storage: Literal["postgres", "sqlite"] | None = typer.Option(
        None, show_default="YSH_DAGSTER_STORAGE, postgres",
        help="Where Dagster keeps runs, events and schedules: the warehouse (schema dagster) or SQLite "
             "files under YSH_HOME/dagster."),
) -> None:
    """Open the Dagster UI (webserver + daemon for schedules and sensors)."""
    settings = get_settings()
    db.prepare_warehouse(settings)
    env = _dagster_env(dagster_storage)
    dagster = shutil.which("dagster") or os.path.join(os.path.dirname(sys.executable), "dagster")
    console.print(f"Dagster UI on http://{host}:{port} (Ctrl+C or SIGTERM stops)")
    code = supervise([dagster, "dev", "-m", "ysh.definitions", "-h", host, "-p", str(port)], {**os.environ, **env})
    raise typer.Exit(code)


def supervise(argv: list[str], env: dict[str, str], grace_s: float = 20.0) -> int:
    """Run ``argv`` (``dagster dev``) in a process group of its own until it ends, or until
    this process gets SIGTERM or SIGINT: then the group gets SIGINT (what Ctrl+C sends:
    dagster dev stops its webserver, daemon and code servers), and whatever of the group
    is left after ``grace_s`` is killed. Returns the exit code (0 after a requested stop).

    Exec'ing dagster dev instead left it to inherit an ignored SIGINT (a background job of a
    shell), which dagster maps SIGTERM onto: the UI then ignored SIGTERM too."""
    import signal
    import subprocess
    import time

    received: list[int] = []

    def stop(signum, _frame) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    restore = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}

    def child_signals() -> None:  # the child starts with the default handlers, never ignored ones
        for sig, handler in restore.items():
            signal.signal(sig, handler)

    try:
        proc = subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=child_signals)
        while proc.poll() is None and not received:
            time.sleep(0.2)
        if proc.poll() is not None and not received:
            return proc.returncode
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(proc):
                time.sleep(0.1)
            if not _group_alive(proc):
                break
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _group_alive(proc) -> bool:
    """Is any process of ``proc``'s process group still alive (the leader is reaped)?"""
    proc.poll()
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    if proc.returncode is None:
        return True
    # the leader is gone; a member left behind keeps the group id: look for a live one
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == proc.pid and fields[0] not in ("Z", "X"):
                return True
    return False


if __name__ == "__main__":
    app()
