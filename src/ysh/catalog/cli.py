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
                                max_shrink=settings.catalog.max_shrink,
                                registry=job.RegistrySource.from_settings(settings))
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
                      max_shrink=settings.catalog.max_shrink,
                      registry=job.RegistrySource.from_settings(settings))


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


@app.command("search")
def search_command(
    query: str = typer.Argument(..., help='What a buyer types, e.g. "inversor 5 kw monofásico growatt".'),
    k: int = typer.Option(10, "-k", "--limit", min=1, max=50, help="Products to show."),
    category: list[str] = typer.Option([], "--category", help="Only these categories (repeatable)."),
    brand: list[str] = typer.Option([], "--brand", help="Only these brands (repeatable)."),
    distributor: list[str] = typer.Option([], "--distributor", help="Only these distributors (repeatable)."),
    power_min_w: float | None = typer.Option(None, "--power-min-w", help="Power at least [W]."),
    power_max_w: float | None = typer.Option(None, "--power-max-w", help="Power at most [W]."),
    voltage_v: float | None = typer.Option(None, "--voltage-v", help="AC voltage [V] (±10 V)."),
    phases: int | None = typer.Option(None, "--phases", min=1, max=3, help="1, 2 or 3."),
    price_min_brl: float | None = typer.Option(None, "--price-min-brl", help="Price at least [R$]."),
    price_max_brl: float | None = typer.Option(None, "--price-max-brl", help="Price at most [R$]."),
    in_stock: bool = typer.Option(False, "--in-stock", help="Only offers that state stock."),
    semantic: bool | None = typer.Option(
        None, "--semantic/--no-semantic",
        help="Fuse the catalog_embeddings signal (default: when the embeddings asset has run; loads the embedder)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Search the normalized catalog: products with each distributor's offer, and facets.

    The query is read the way integrators type it (inv, mod, micro, mono/tri, bat; 5kw,
    5000W, 8 kWp; 220v; "ate 5 mil"); options add hard filters."""
    import json as json_module

    from . import search as catalog_search

    settings = get_settings()
    warehouse = _warehouse()
    model = settings.rag.embedder.strip()
    filters = catalog_search.SearchFilters(
        categories=tuple(category), brands=tuple(brand), distributors=tuple(distributor),
        power_min_w=power_min_w, power_max_w=power_max_w, voltage_v=voltage_v, phases=phases,
        price_min_brl=price_min_brl, price_max_brl=price_max_brl, in_stock=in_stock)
    if semantic is None:
        semantic = db.row_counts(warehouse, ["catalog_embedding_items"])["catalog_embedding_items"] > 0
    embed = None
    if semantic:
        with console.status("loading the embedder…"):
            from ..rag.embedding import backend_from_settings

            backend = backend_from_settings(settings)
        embed = lambda texts: list(backend.encode(texts))  # noqa: E731
    engine = catalog_search.CatalogSearch(warehouse, embed_query=embed, model=model)
    try:
        result = engine.search(query, k=k, filters=filters, semantic=semantic)
    finally:
        engine.close()
    if as_json:
        typer.echo(json_module.dumps(result.as_dict(), ensure_ascii=False, indent=2))
        return
    print_search_result(result)


def print_search_result(result) -> None:
    understood = {k: v for k, v in result.query.as_dict().items() if k != "text"}
    console.print(f"[dim]understood: {understood}[/]")
    if result.relaxed:
        console.print(f"[yellow]nothing matched every filter the query implies: dropped {', '.join(result.relaxed)} "
                      "(the asked power still ranks the results)[/]")
    table = Table("#", "product", "category", "kW", "V", "ph", "offers (distributor: R$)", "from R$",
                  title=f"{len(result.products)} products ({'≥ ' if result.capped else ''}{result.total_offers} matching offers)"
                        + (" · lexical + semantic" if result.semantic else " · lexical"))
    for i, p in enumerate(result.products, 1):
        name = " ".join(x for x in (p.brand, p.model) if x) or (p.title or "")[:60]
        if p.exact_model:
            name = f"[bold green]{name}[/] (model match)"
        offers = "; ".join(f"{o.distributor}: {o.price_brl:,.2f}" if o.price_brl is not None else f"{o.distributor}: –"
                           for o in p.offers[:4]) + (f" … +{len(p.offers) - 4}" if len(p.offers) > 4 else "")
        table.add_row(str(i), name, p.category, f"{p.power_w / 1000:g}" if p.power_w else "",
                      f"{p.voltage_v:g}" if p.voltage_v else "", str(p.phases or ""), offers,
                      f"{p.min_price_brl:,.2f}" if p.min_price_brl is not None else "")
    console.print(table)
    shown = {name: values[:6] for name, values in result.facets.items() if values}
    if shown:
        console.print("facets (offers): " + " | ".join(
            f"[bold]{name}[/] " + ", ".join(f"{v} {n}" for v, n in values) for name, values in shown.items()))
