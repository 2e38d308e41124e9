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
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from . import db
from .catalog.cli import app as catalog_app
from .flows.cli import app as flows_app
from .om.cli import app as om_app
from .rag.cli import app as rag_app
from .proposals.cli import app as proposal_app
from .tariffs.cli import app as tariffs_app
from .settings import get_settings, variable_of

app = typer.Typer(
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
    (a typo in a YSH_* name, a bad value) end the command with the reason."""
    from pydantic import ValidationError

    from .observability import setup_logging

    try:
        settings = get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = variable_of(error.get("loc", ())) or ".".join(str(part) for part in error.get("loc", ()))
            console.print(f"[red]settings: {(where + ': ') if where else ''}{error['msg'].removeprefix('Value error, ')}[/]")
        raise typer.Exit(2) from None
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
    with console.status("starting PostgreSQL and applying migrations…"):
        dsn = db.resolve_dsn(settings)
        applied = db.migrate(dsn, settings.warehouse.schema_name)
    if applied:
        console.print(f"applied migrations: {', '.join(applied)}")
    if with_:
        try:
            with console.status(f"starting {with_}…"):
                local.start_services(local.parse_names(with_), settings)
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


def _dagster_env() -> dict[str, str]:
    settings = get_settings()
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    yaml = settings.dagster_home / "dagster.yaml"
    if not yaml.exists():
        yaml.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return {"DAGSTER_HOME": str(settings.dagster_home)}


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
    _dagster_env()
    with console.status("starting PostgreSQL and applying migrations…"):
        dsn = db.prepare_warehouse(settings)
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
    out: Path | None = typer.Option(None, "--out", help="HTML file (default: $YSH_HOME/reports/proposals.html)."),
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
    port: int = typer.Option(3000, help="Port of the Dagster UI."),
) -> None:
    """Open the Dagster UI (webserver + daemon for schedules and sensors)."""
    settings = get_settings()
    env = _dagster_env()
    db.prepare_warehouse(settings)
    dagster = shutil.which("dagster") or os.path.join(os.path.dirname(sys.executable), "dagster")
    console.print(f"Dagster UI on http://{host}:{port} (Ctrl+C stops)")
    os.execve(dagster, [dagster, "dev", "-m", "ysh.definitions", "-h", host, "-p", str(port)],
              {**os.environ, **env})


if __name__ == "__main__":
    app()
