"""``ysh catalog …``: land feeds, normalize them into the warehouse in one batch pass
(``run``) or streaming (``follow``), normalize files to files (``normalize``)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import db, pw_runtime
from ..console import print_reasons
from ..settings import get_settings
from . import job, landing, reporting

app = typer.Typer(help="Distributor catalogs: feeds → items, products, quarantine. `run` one batch pass over the "
                       "landing area, `follow` streaming.", no_args_is_help=True)
console = Console()


def _warehouse() -> db.Warehouse:
    return db.Warehouse.from_settings(get_settings())


@app.command()
def normalize(
    paths: list[Path] = typer.Argument(..., help="Feed files or folders of feeds.", exists=True),
    out: Path = typer.Option(..., "--out", help="Folder for items.jsonl, quarantine.jsonl, products.jsonl, files.jsonl."),
    distributor: str | None = typer.Option(None, help="Distributor of every feed (default: the file's stem)."),
    warehouse: bool = typer.Option(False, "--warehouse/--no-warehouse", help="Also upsert into Postgres."),
) -> None:
    """Normalize feed files into JSONL files in one pass (no server needed).

    --warehouse also upserts into Postgres, without deleting anything."""
    pw_runtime.respawn_with_processes(get_settings().pathway.processes)
    leader = pw_runtime.is_leader()
    with console.status("normalizing feeds with Pathway…") if leader else nullcontext():
        report = job.run_static(paths, out_dir=out, distributor=distributor,
                                warehouse=_warehouse() if warehouse else None)
    if not leader:
        return
    print_run_report(report)
    console.print(f"written to [cyan]{out}[/]: items.jsonl, quarantine.jsonl, products.jsonl, files.jsonl")


def print_run_report(report: job.RunReport) -> None:
    """Rows, items, quarantine and products of one batch pass, per distributor."""
    console.print(
        f"[bold]{report.rows}[/] rows from {report.files} files → [green]{report.items} items[/], "
        f"[red]{report.quarantined} quarantined[/], {report.duplicate_skus} duplicate SKUs (last wins), "
        f"{report.products} products in {report.seconds:.2f}s"
    )
    if report.non_product_rows:
        console.print(f"{report.non_product_rows} rows skipped as not products (menus, breadcrumbs, empty rows; "
                      "counted per file)")
    table = Table("distributor", "files", "product rows", "became items", "quarantined", "share",
                  "distinct SKUs", title="per distributor (distinct SKUs: one item per SKU across its files)")
    for name, (n_files, rows, items, quarantined) in report.by_distributor.items():
        distinct = report.items_by_distributor.get(name)
        table.add_row(name, str(n_files), str(rows), str(items), str(quarantined),
                      f"{items / rows:.1%}" if rows else "–", str(distinct) if distinct is not None else "–")
    console.print(table)
    print_reasons(report.quarantine_by_reason)


@app.command()
def land(
    paths: list[Path] = typer.Argument(..., help="Feed files or folders to copy.", exists=True),
    distributor: str | None = typer.Option(
        None, help="Land into the distributor's sub-folder (its feeds then belong to it)."),
) -> None:
    """Copy feeds into the landing area (atomically: a follower never sees half a file)."""
    target = get_settings().catalog.landing_dir
    try:
        landed = landing.land(paths, target, distributor)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"landed {len(landed)} files in [cyan]{target}[/]")


def _source(settings, landing_dir: Path | None) -> tuple[Path | None, job.S3Source | None, str]:
    """The landing folder or the S3 prefix (YSH_CATALOG_SOURCE=s3) and how to name it."""
    if settings.catalog.source == "s3":
        s3 = job.S3Source.from_settings(settings)
        return None, s3, f"s3://{s3.bucket}/{s3.prefix}"
    folder = (landing_dir or settings.catalog.landing_dir).resolve()
    if folder.exists() and not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder", param_hint="--landing")
    return folder, None, str(folder)


_LANDING = typer.Option(None, "--landing", help="Landing folder (default: YSH_CATALOG_LANDING_DIR).")
_ACCEPT_SHRINK = typer.Option(
    False, "--accept-shrink",
    help="Take a new version of a feed even when it lost more than YSH_CATALOG_MAX_SHRINK (half) of its items "
         "(by default it is held: the previous version stays, the new one is quarantined as feed_shrunk and an "
         "alert is queued). Also YSH_CATALOG_ACCEPT_SHRINK=true.")


@app.command("run")
def run_command(landing_dir: Path | None = _LANDING, accept_shrink: bool = _ACCEPT_SHRINK) -> None:
    """One batch pass: the landing area into Postgres, products included, then stop.

    The landing folder, or the S3 prefix when YSH_CATALOG_SOURCE=s3. Rows of feeds no
    longer landed are deleted; an empty landing area is refused (a missing mount is more
    likely than an intent to delete the whole catalog). A new version of a feed that is
    unparseable, empty or lost more than half its items is held: the previous one stays."""
    settings = get_settings()
    folder, s3, where = _source(settings, landing_dir)
    if not job.landing_manifest(folder, s3):  # an empty area is more often a missing mount than an intent
        console.print(f"[red]no feed files in {where}: nothing normalized, the catalog left as it is "
                      "(`ysh catalog land` puts feeds there)[/]")
        raise typer.Exit(1)
    pw_runtime.respawn_with_processes(settings.pathway.processes)
    leader = pw_runtime.is_leader()
    warehouse = _warehouse()
    with console.status(f"normalizing {where} with Pathway…") if leader else nullcontext():
        report = job.run_static([folder] if folder else None, s3=s3, warehouse=warehouse, reconcile_after=True,
                                accept_shrink=accept_shrink or settings.catalog.accept_shrink,
                                max_shrink=settings.catalog.max_shrink)
    if not leader:
        return
    print_run_report(report)
    pruned = {table: n for table, n in report.pruned.items() if n}
    if pruned:
        console.print("deleted, their feeds gone: " + ", ".join(f"{n} from {t}" for t, n in pruned.items()))
    for source_file, reason in sorted(report.held.items()):
        console.print(f"[yellow]held ({reason}): {source_file} — its previous version stays; see items_quarantine "
                      "(line 0)[/]")
    console.print(f"upserted into schema [bold]{warehouse.schema}[/]: items_normalized, items_quarantine, "
                  "products, catalog_feed_files")


@app.command()
def follow(landing_dir: Path | None = _LANDING, accept_shrink: bool = _ACCEPT_SHRINK) -> None:
    """Stream the landing area into Postgres until stopped.

    The landing folder, or the S3 prefix when YSH_CATALOG_SOURCE=s3: feeds added, changed
    or removed are reflected in Postgres in seconds. A new version of a feed that is
    unparseable, empty or lost more than half its items is held: the previous one stays."""
    settings = get_settings()
    folder, s3, where = _source(settings, landing_dir)
    pw_runtime.respawn_with_processes(settings.pathway.processes)
    warehouse = _warehouse()

    def ready(reconciled: bool) -> None:
        if reconciled:
            console.print("caught up: the warehouse matches the landing area")
        else:
            console.print("[yellow]landing area empty (or not caught up): existing catalog rows were "
                          "left as they are[/]")

    console.print(f"following [cyan]{where}[/] → Postgres schema {warehouse.schema} (Ctrl+C stops)")
    job.run_streaming(folder, warehouse, s3=s3, on_ready=ready,
                      accept_shrink=accept_shrink or settings.catalog.accept_shrink,
                      max_shrink=settings.catalog.max_shrink)


def print_summary(warehouse: job.Warehouse) -> None:
    s = reporting.summary(warehouse)
    table = Table("distributor", "category", "items", title="items per distributor and category")
    for distributor, category, count in s.by_distributor_category:
        table.add_row(distributor, category, str(count))
    console.print(table)
    print_reasons(dict(s.quarantine_by_reason))
    table = Table("brand", "model", "category", "offers", "distributors", "min R$", "median R$",
                  title="top products by number of offers")
    for brand, model, category, offers, distributors, min_price, median_price in s.top_products:
        table.add_row(brand, model, category, str(offers), str(distributors),
                      f"{min_price:,.2f}" if min_price is not None else "",
                      f"{median_price:,.2f}" if median_price is not None else "")
    console.print(table)
    if s.kits:
        table = Table("distributor", "kWp", "R$", "R$/Wp", "structure", "centre", "components",
                      title="kits with the lowest price per Wp")
        for distributor, power_w, price, structure, centre, components in s.kits:
            table.add_row(distributor, f"{power_w / 1000:.2f}" if power_w else "",
                          f"{price:,.2f}" if price else "",
                          f"{price / power_w:.2f}" if price and power_w else "",
                          structure or "", centre or "", components or "")
        console.print(table)
    t = s.totals
    console.print(
        f"{t['items']} items from {t['distributors']} distributors ({t['files']} feed files), "
        f"{t['quarantined']} quarantined rows, {t['products']} products, "
        f"{t['inmetro_flagged']} items flagged for Inmetro registration"
    )


@app.command()
def products() -> None:
    """Recompute products from items_normalized as it stands (feeds and migrated items)."""
    with console.status("grouping products with Pathway…"):
        count = job.run_products_static(_warehouse())
    console.print(f"{count} products")


@app.command()
def summary() -> None:
    """Print the catalog tables' summary from the warehouse."""
    print_summary(_warehouse())
