"""Running the catalog graph: static (batch) and streaming, with injected sinks.

* :func:`run_static` — a batch over files/folders or an S3 prefix; sinks: JSONL files
  and/or the warehouse. With ``reconcile_after=True`` (a full run over the whole landing
  area) rows no longer in the feeds (feeds that no longer exist, items a feed no longer
  has) are deleted afterwards; a re-run leaves the unchanged items of packed feeds alone.
* :func:`run_streaming` — the long-running service: new, changed and removed feed files
  are reflected in the warehouse within seconds. On restart it re-reads the landing
  area (every write is an idempotent upsert) after pruning rows of files removed while
  it was down, so nothing is lost and nothing is duplicated.

With a warehouse, both keep the last good feed: a new version of a file that is
unparseable, empty or lost more than half its items (unless ``accept_shrink``) is held —
the good version's rows stay (its bytes are kept in ``catalog_feed_versions``), the held
version is quarantined with its reason and a ``catalog_feed_held`` notice is queued in the
outbox for the alerts flow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pathway as pw
import psycopg
from psycopg import sql

from .. import db, pw_runtime
from ..db import Warehouse
from ..notify import Notice, enqueue_notices
from ..settings import Settings
from . import search
from . import versions as feed_versions
from .pipeline import (
    CatalogTables,
    NormalizedTables,
    build_catalog_graph,
    build_products,
    normalize_feeds,
    read_feed_files_fs,
    read_feed_files_s3,
)

log = logging.getLogger(__name__)

#: warehouse table of each output, its primary key (upsert key) and the column holding
#: the time the row was last written (used to prune rows a full run did not write; the
#: packed items keep the time they last changed: see PackedPresence).
TABLES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "items": ("items_normalized", ("distributor", "sku"), "ingested_at"),
    "quarantine": ("items_quarantine", ("source_file", "line"), "ingested_at"),
    "products": ("products", ("product_key",), "updated_at"),
    "files": ("catalog_feed_files", ("source_file",), "ingested_at"),
    "versions": ("catalog_feed_versions", ("source_file",), "ingested_at"),
    # with a landed Inmetro registry (RegistrySource)
    "registry": ("inmetro_registry", ("source_file", "line"), "ingested_at"),
    "inmetro": ("items_inmetro", ("distributor", "sku"), "ingested_at"),
}


class WarehouseItem(pw.Schema):
    """The columns of ``items_normalized`` that the products grouping needs."""

    distributor: str = pw.column_definition(primary_key=True)
    sku: str = pw.column_definition(primary_key=True)
    category: str
    product_key: str | None
    brand: str | None
    model: str | None
    power_w: float | None
    price_brl: float | None
JSONL_FILES = {
    "items": ("items.jsonl", ("distributor", "sku")),
    "quarantine": ("quarantine.jsonl", ("source_file", "line")),
    "products": ("products.jsonl", ("product_key",)),
    "files": ("files.jsonl", ("source_file",)),
    "registry": ("inmetro_registry.jsonl", ("source_file", "line")),
    "inmetro": ("items_inmetro.jsonl", ("distributor", "sku")),
}


class FeedVersionStore:
    """The last good version of each feed file, as the graph keeps it in the warehouse
    (``catalog_feed_versions``); read while a new version is judged.

    A lost connection (the server restarting) is retried for ``retry_for_s`` before the
    error is raised."""

    def __init__(self, warehouse: Warehouse, *, retry_for_s: float = 120.0):
        self.warehouse = warehouse
        self.retry_for_s = retry_for_s

    def _fetch(self, statement: str, params: tuple):
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.5
        while True:
            try:
                with db.connect(self.warehouse.dsn, self.warehouse.schema) as conn:
                    return conn.execute(statement, params).fetchone()
            except psycopg.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("catalog feed versions unreadable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def good(self, source_file: str) -> feed_versions.GoodVersion | None:
        row = self._fetch("SELECT sha256, items, modified_at_s, precedence FROM catalog_feed_versions "
                          "WHERE source_file = %s", (source_file,))
        return feed_versions.GoodVersion(*row) if row else None

    def data(self, source_file: str, sha256: str) -> bytes | None:
        row = self._fetch("SELECT data FROM catalog_feed_versions WHERE source_file = %s AND sha256 = %s",
                          (source_file, sha256))
        return bytes(row[0]) if row else None


@dataclass
class S3Source:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str
    access_key: str | None
    secret_key: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3Source":
        if not settings.catalog.s3_bucket:
            raise ValueError("YSH_CATALOG_SOURCE=s3 needs YSH_CATALOG_S3_BUCKET")
        return cls(
            bucket=settings.catalog.s3_bucket,
            prefix=settings.catalog.s3_prefix,
            endpoint=settings.s3.endpoint_url,
            region=settings.s3.region,
            access_key=settings.s3.access_key_id.get_secret_value() if settings.s3.access_key_id else None,
            secret_key=settings.s3.secret_access_key.get_secret_value() if settings.s3.secret_access_key else None,
        )


@dataclass
class RegistrySource:
    """Where the Inmetro registry lands (docs/catalog.md, "Inmetro registry"): a folder
    (``YSH_CATALOG_INMETRO_DIR``) or a prefix of the catalog's S3 bucket
    (``YSH_CATALOG_INMETRO_S3_PREFIX``)."""

    path: Path | None = None
    s3: S3Source | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "RegistrySource":
        if settings.catalog.source == "s3":
            from dataclasses import replace

            return cls(s3=replace(S3Source.from_settings(settings), prefix=settings.catalog.inmetro_s3_prefix))
        return cls(path=settings.catalog.inmetro_dir)

    def landed(self) -> list:
        """The registry files there now (``landing.LandedFile``)."""
        return landing_manifest(self.path, self.s3) if self.path is None or self.path.is_dir() else []


@dataclass
class RunReport:
    files: int = 0
    rows: int = 0
    items: int = 0
    quarantined: int = 0
    duplicate_skus: int = 0
    non_product_rows: int = 0  # menus, breadcrumbs, empty rows of storefront scrapes (skipped)
    products: int = 0
    #: distributor → (files, product rows, rows that became items, quarantined)
    by_distributor: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    #: distributor → items after the same SKU in several of its files collapsed (newest wins)
    items_by_distributor: dict[str, int] = field(default_factory=dict)
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    pruned: dict[str, int] = field(default_factory=dict)
    #: feed file → reason, for the files whose new version was held (the good one kept)
    held: dict[str, str] = field(default_factory=dict)
    #: Inmetro registry rows read, and items by inmetro_status (with a registry only)
    registry_rows: int = 0
    inmetro_by_status: dict[str, int] = field(default_factory=dict)
    #: items written packed (a distributor's only, ordinary feed in a static run; in process 0)
    packed_items: int = 0
    seconds: float = 0.0

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.rows if self.rows else 0.0


def _feed_table(paths: list[Path] | None, s3: S3Source | None, mode: str) -> tuple[pw.Table, list[str]]:
    if s3 is not None:
        table = read_feed_files_s3(
            s3.bucket, s3.prefix, endpoint=s3.endpoint, region=s3.region,
            access_key=s3.access_key, secret_key=s3.secret_key, mode=mode,
        )
        return table, [s3.prefix.rstrip("/")]
    if not paths:
        raise ValueError("no feed paths given")
    tables, roots = [], []
    for i, path in enumerate(paths):
        path = path.resolve()
        if not path.exists():
            raise FileNotFoundError(f"feed path does not exist: {path}")
        tables.append(read_feed_files_fs(str(path), mode=mode, name=f"catalog_feeds_{i}"))
        if path.is_dir():
            roots.append(str(path))
    table = tables[0] if len(tables) == 1 else pw.Table.concat_reindex(*tables)
    return table, roots


def _registry_table(registry: RegistrySource | None, mode: str) -> tuple[pw.Table | None, str | None]:
    """The registry's files as a table (None: no registry). A static run reads a registry
    only when files are there (an absent registry is no evidence that nothing is
    registered: no status is written); a streaming run follows the folder once it exists."""
    if registry is None:
        return None, None
    if registry.s3 is not None:
        if mode == "static" and not registry.landed():
            return None, None
        s3 = registry.s3
        return read_feed_files_s3(s3.bucket, s3.prefix, endpoint=s3.endpoint, region=s3.region,
                                  access_key=s3.access_key, secret_key=s3.secret_key, mode=mode,
                                  name="catalog_inmetro_s3"), s3.prefix.rstrip("/")
    path = registry.path
    if path is None or not path.is_dir() or (mode == "static" and not registry.landed()):
        return None, None
    path = path.resolve()
    return read_feed_files_fs(str(path), mode=mode, name="catalog_inmetro"), str(path)


def build(paths: list[Path] | None = None, *, s3: S3Source | None = None, mode: str = "static",
          distributor: str | None = None, with_products: bool = True,
          versions: FeedVersionStore | None = None, accept_shrink: bool = False,
          max_shrink: float = feed_versions.MAX_SHRINK,
          registry: RegistrySource | None = None, pack: bool = False) -> CatalogTables | NormalizedTables:
    """Declare sources and the catalog graph in a fresh Pathway graph (``versions``: keep
    the last good feed, see :mod:`ysh.catalog.versions`; ``registry``: the Inmetro
    registry, matched against the items; ``pack``: a static run into the warehouse packs
    a distributor's only, ordinary feed, :func:`ysh.catalog.pipeline.normalize_feeds`)."""
    pw_runtime.fresh_graph()
    feeds, roots = _feed_table(paths, s3, mode)
    root = roots[0] if len(roots) == 1 else None
    registry_files, registry_root = _registry_table(registry, mode)
    options = dict(landing_root=root, distributor=distributor, versions=versions, accept_shrink=accept_shrink,
                   max_shrink=max_shrink, registry_files=registry_files, registry_root=registry_root,
                   pack=pack)
    if with_products:
        return build_catalog_graph(feeds, **options)
    return normalize_feeds(feeds, **options)


def attach_warehouse(tables: CatalogTables | NormalizedTables, warehouse: Warehouse,
                     outputs: tuple[str, ...] = tuple(TABLES), *, streaming: bool = False,
                     presence: PackedPresence | None = None):
    """Write ``outputs`` into the warehouse. ``streaming``: with sinks that wait out a
    lost server, retrying each write (:mod:`ysh.kit.sinks`; Pathway's own writer, used by
    the batch runs, ends the run when its connection breaks). Returns the sink of the
    packed items (a static run's ``pack``), else None; ``presence`` (a run that
    reconciles) learns which items the packed files held."""
    outputs = tuple(attr for attr in outputs if getattr(tables, attr, None) is not None)
    if streaming:
        from ..kit import sinks

        sinks.write_snapshots(tables, {attr: TABLES[attr][:2] for attr in outputs}, warehouse)
    else:
        pw_runtime.write_snapshots(tables, {attr: TABLES[attr][:2] for attr in outputs}, warehouse)
    packed_sink = None
    if tables.packed_items is not None and "items" in outputs:
        packed_sink = write_packed_items(tables.packed_items, warehouse, presence)
    if tables.held is not None:
        attach_held_notices(tables.held, warehouse)
    return packed_sink


@dataclass
class PackedPresence:
    """The keys of the items a run's packed files held, for :func:`reconcile`: a re-run
    leaves a packed item that did not change alone (``ingested_at`` stays the time of the
    run that last changed it), so the write time alone no longer tells which items are
    still there. Filled only when the packed items went in through the upsert (a first
    load's plain ``COPY`` writes every item anew)."""

    keys: list[tuple[str, str]] = field(default_factory=list)

    def record(self, rows: list[dict], method: str) -> None:
        if method == "copy":
            return
        from ..kit.copytext import leading
        from .packed import ITEM_COLUMNS

        key = TABLES["items"][1]
        if ITEM_COLUMNS[:len(key)] != key:  # the COPY text's rows start with their key
            raise RuntimeError(f"packed item columns {ITEM_COLUMNS[:len(key)]} do not start with the key {key}")
        self.keys = [k for row in rows for k in leading(row["text"], len(key))]


def write_packed_items(packed_items: pw.Table, warehouse: Warehouse, presence: PackedPresence | None = None):
    """The packed files' items (``pack=True``) into ``items_normalized``, at the end of the
    run, in one transaction: their COPY text as it is (:class:`ysh.kit.sinks.CopyTextSink`)
    — a plain ``COPY`` where the table has no row of these distributors yet (a first
    load), else through a staging table and one upsert that leaves an unchanged item alone
    (``ingested_at`` aside: no new row version, no index update — a daily re-run of an
    unchanged catalog writes none of its items). ``presence`` learns which items were
    there. (The other feeds' items go in by Pathway's writer meanwhile, every one
    rewritten; the two never write one distributor.)"""
    from ..kit import sinks
    from .packed import ITEM_COLUMNS

    table_name, key, written_at = TABLES["items"]
    sink = sinks.CopyTextSink(warehouse.dsn, warehouse.schema, table_name, key, ITEM_COLUMNS,
                              lambda row: (row["text"],), scope="distributor", skip_unchanged=written_at,
                              on_written=presence.record if presence is not None else None)
    pw.io.subscribe(packed_items, on_change=sink.on_change, on_end=sink.on_end, name=f"pg_{table_name}_packed")
    return sink


def attach_held_notices(held: pw.Table, warehouse: Warehouse) -> None:
    """Each held feed version: a warning in the log and one ``catalog_feed_held`` notice in
    the outbox (``ops_alerts_sent``; keyed by file and content, so a version seen again by
    a later run or a restart is not announced twice)."""

    def on_change(key, row: dict, time: int, is_addition: bool) -> None:
        if not is_addition:
            return
        source_file, distributor, reason, detail = row["source_file"], row["distributor"], row["reason"], row["detail"]
        log.warning("catalog feed held (%s): %s: %s", reason, source_file, detail)
        notice = Notice(feed_versions.notice_key(source_file, row["sha256"]), feed_versions.NOTICE_KIND,
                        feed_versions.notice_text(source_file, distributor, reason, detail))
        def enqueue() -> None:
            with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
                enqueue_notices(conn, [notice])

        try:  # a lost server is waited out: the notice is keyed, so a retry cannot double it
            db.with_reconnect(enqueue, what=f"queueing the notice {notice.key}")
        except Exception:  # noqa: BLE001 - the catalog goes on; the log line above stays
            log.exception("could not queue the notice %s", notice.key)

    pw.io.subscribe(held, on_change=on_change, name="catalog_held_notices")


def reconcile(warehouse: Warehouse, started_at: datetime,
              outputs: tuple[str, ...] = tuple(TABLES), present: PackedPresence | None = None) -> dict[str, int]:
    """Delete the rows the run that started at ``started_at`` did not write (rows of feed
    files that are gone, items a feed no longer has), except the items of its packed files
    that it left alone because they had not changed (``present``). Only valid after a
    full run over the whole landing area."""
    pruned = {}
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        for attr in outputs:
            table_name, key, written_at = TABLES[attr]
            # rows imported by the migrate_legacy flow (source "legacy:…") are not feeds
            keep_legacy = sql.SQL(" AND source_file NOT LIKE 'legacy:%%'") if table_name != "products" else sql.SQL("")
            params: tuple = (started_at,)
            keep_present = sql.SQL("")
            if attr == "items" and present is not None and present.keys:
                # an older row whose key a packed file held was left alone as unchanged (the
                # two routes never write one distributor); planned as a hash anti-join
                keep_present = sql.SQL(" AND NOT EXISTS (SELECT FROM unnest(%s::text[], %s::text[]) AS k(a, b)"
                                       " WHERE k.a = {}.{} AND k.b = {}.{})").format(
                    sql.Identifier(table_name), sql.Identifier(key[0]), sql.Identifier(table_name),
                    sql.Identifier(key[1]))
                params += ([k[0] for k in present.keys], [k[1] for k in present.keys])
            cur = conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} < %s{}{}").format(
                    sql.Identifier(table_name), sql.Identifier(written_at), keep_legacy, keep_present),
                params,
            )
            pruned[table_name] = cur.rowcount
        conn.commit()
    return pruned


def warehouse_report(warehouse: Warehouse) -> RunReport:
    """Counts as they stand in the warehouse."""
    report = RunReport()
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        (report.files, report.rows, report.duplicate_skus) = conn.execute(
            "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(duplicate_skus), 0) "
            "FROM catalog_feed_files").fetchone()
        report.items = conn.execute("SELECT count(*) FROM items_normalized").fetchone()[0]
        report.products = conn.execute("SELECT count(*) FROM products").fetchone()[0]
        report.quarantine_by_reason = dict(conn.execute(
            "SELECT reason, count(*) FROM items_quarantine GROUP BY reason ORDER BY 2 DESC"
        ).fetchall())
        report.quarantined = sum(report.quarantine_by_reason.values())
    return report


def run_static(
    paths: list[Path] | None = None,
    *,
    s3: S3Source | None = None,
    out_dir: Path | None = None,
    warehouse: Warehouse | None = None,
    distributor: str | None = None,
    reconcile_after: bool = False,
    with_products: bool = True,
    accept_shrink: bool = False,
    max_shrink: float = feed_versions.MAX_SHRINK,
    registry: RegistrySource | None = None,
    pack: bool | None = None,
) -> RunReport:
    """Run the catalog graph once over the given feeds and write to the given sinks.

    ``with_products=False`` writes items, quarantine and files only (Dagster materializes
    products as their own asset, after the blocking checks on items). With a warehouse,
    a new version of a feed that is unparseable, empty or lost more than ``max_shrink`` of
    its items (unless ``accept_shrink``) is held: the good version's rows stay
    (``report.held``). Into an empty ``items_normalized`` (a first load) its indexes
    (search and lookups) are built once after the rows are written, not maintained row by
    row (:func:`ysh.catalog.search.defer_item_indexes`).

    Into the warehouse alone (no ``out_dir``), a distributor's only feed without
    storefront offers goes in packed (``pack``, by default on exactly then): its items are
    written as one ``COPY`` at the end of the run instead of rows of the graph
    (:func:`ysh.catalog.pipeline.normalize_feeds`; ``report.packed_items`` counts them).
    ``pack=False`` takes every item through the rows of the graph.
    """
    if out_dir is None and warehouse is None:
        raise ValueError("give at least one sink: out_dir and/or warehouse")
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    deferred = False
    if warehouse is not None and pw_runtime.is_leader():
        # a first load builds the table's indexes once its rows are in (not row by row);
        # a run that stopped before rebuilding them left them missing: built now
        search.ensure_item_indexes(warehouse)
        deferred = search.defer_item_indexes(warehouse)
    try:
        report = _run_static(paths, s3=s3, out_dir=out_dir, warehouse=warehouse, distributor=distributor,
                             reconcile_after=reconcile_after, with_products=with_products,
                             accept_shrink=accept_shrink, max_shrink=max_shrink, registry=registry,
                             started=started, t0=t0, pack=pack)
    finally:
        if deferred:
            search.ensure_item_indexes(warehouse)
    if deferred:
        report.seconds = time.perf_counter() - t0  # the index build is part of the load
    return report


def _run_static(paths: list[Path] | None, *, s3: S3Source | None, out_dir: Path | None,
                warehouse: Warehouse | None, distributor: str | None, reconcile_after: bool,
                with_products: bool, accept_shrink: bool, max_shrink: float,
                registry: RegistrySource | None, started: datetime, t0: float,
                pack: bool | None = None) -> RunReport:
    store = FeedVersionStore(warehouse) if warehouse is not None else None
    # into the warehouse alone, a distributor's only, ordinary feed goes in packed: its
    # items are not rows of the graph (the JSONL files are written from those rows)
    if pack is None:
        pack = warehouse is not None and out_dir is None
    elif pack and (warehouse is None or out_dir is not None):
        raise ValueError("pack=True needs a warehouse and no out_dir: the JSONL files are written from item rows")
    tables = build(paths, s3=s3, mode="static", distributor=distributor, with_products=with_products,
                   versions=store, accept_shrink=accept_shrink, max_shrink=max_shrink, registry=registry,
                   pack=pack)
    outputs = tuple(TABLES) if with_products else ("items", "quarantine", "files", "versions", "registry", "inmetro")
    outputs = tuple(name for name in outputs if getattr(tables, name, None) is not None)
    collected = tuple(n for n in outputs if n in JSONL_FILES) if out_dir is not None else ("files", "quarantine")
    collectors = {name: pw_runtime.TableCollector(getattr(tables, name), name) for name in collected}
    if tables.held is not None:
        collectors["held"] = pw_runtime.TableCollector(tables.held, "held")
    packed_sink = None
    presence = PackedPresence() if reconcile_after else None
    if warehouse is not None:
        packed_sink = attach_warehouse(tables, warehouse, outputs, presence=presence)
    pw_runtime.run(batch=True)
    report = RunReport(seconds=time.perf_counter() - t0)
    report.packed_items = packed_sink.written_rows if packed_sink is not None else 0
    if not pw_runtime.is_leader():
        return report  # a helper process of a spawned run: results live in process 0
    files = collectors["files"].values()
    quarantine = collectors["quarantine"].values()
    report.files = len(files)
    report.rows = sum(f["rows"] for f in files)
    report.duplicate_skus = sum(f["duplicate_skus"] for f in files)
    report.non_product_rows = sum(f.get("non_product_rows") or 0 for f in files)
    per: dict[str, list[int]] = {}
    for f in files:
        counts = per.setdefault(f["distributor"], [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += f["rows"]
        counts[2] += f["items"]
        counts[3] += f["quarantined"]
    report.by_distributor = {d: tuple(c) for d, c in sorted(per.items())}
    if "held" in collectors:
        report.held = {h["source_file"]: h["reason"] for h in collectors["held"].values()}
    report.quarantined = len(quarantine)
    report.quarantine_by_reason = dict(Counter(q["reason"] for q in quarantine).most_common())
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in collected:
            filename, keys = JSONL_FILES[name]
            pw_runtime.write_jsonl(out_dir / filename, collectors[name].values(), keys)
        report.items = len(collectors["items"].values())
        report.items_by_distributor = dict(Counter(i["distributor"] for i in collectors["items"].values()))
        report.products = len(collectors["products"].values()) if with_products else 0
    if warehouse is not None:
        if reconcile_after:
            report.pruned = reconcile(warehouse, started, outputs, presence)
        counts = warehouse_report(warehouse)
        report.items, report.products = counts.items, counts.products
    if tables.inmetro is not None:
        if out_dir is not None:
            report.registry_rows = len(collectors["registry"].values())
            report.inmetro_by_status = dict(Counter(r["inmetro_status"] for r in collectors["inmetro"].values()))
        elif warehouse is not None:
            with db.connect(warehouse.dsn, warehouse.schema) as conn:
                report.registry_rows = conn.execute("SELECT count(*) FROM inmetro_registry").fetchone()[0]
                report.inmetro_by_status = dict(conn.execute(
                    "SELECT inmetro_status, count(*) FROM items_inmetro GROUP BY 1 ORDER BY 2 DESC").fetchall())
    return report


def run_products_static(warehouse: Warehouse) -> int:
    """Recompute ``products`` from ``items_normalized`` as it stands in the warehouse;
    returns the number of products."""
    started = datetime.now(timezone.utc)
    pw_runtime.fresh_graph()
    items = pw_runtime.read_query(
        warehouse.dsn, warehouse.schema,
        "SELECT distributor, sku, category, product_key, brand, model, power_w, price_brl "
        "FROM items_normalized",
        WarehouseItem, name="warehouse_items",
    )
    products = build_products(items)
    table_name, key, _ = TABLES["products"]
    pw.io.postgres.write(
        products, pw_runtime.postgres_settings(warehouse.dsn), table_name,
        schema_name=warehouse.schema, output_table_type="snapshot",
        primary_key=[products[c] for c in key], name=f"pg_{table_name}",
    )
    pw_runtime.run(batch=True)
    reconcile(warehouse, started, ("products",))
    return warehouse_report(warehouse).products


def run_streaming(landing: Path | None, warehouse: Warehouse, *, s3: S3Source | None = None,
                  on_ready=None, catch_up_timeout_s: float = 600.0, accept_shrink: bool = False,
                  max_shrink: float = feed_versions.MAX_SHRINK, registry: RegistrySource | None = None) -> None:
    """Follow the landing area (or S3 prefix) and keep the warehouse current. Blocks.

    A new version of a feed that is unparseable, empty or lost more than ``max_shrink``
    of its items (unless ``accept_shrink``) is held, as in :func:`run_static`.

    The pipeline starts by reading every feed present (upserting their rows). Once the
    warehouse shows every one of them written by this run, the rows this run did not
    write are deleted: feeds changed or removed while no watcher ran leave nothing stale.
    An empty landing area is not reconciled: it is more often a missing mount than an
    intent to delete a whole catalog. ``on_ready(reconciled: bool)`` is called then.
    """
    if s3 is None:
        if landing is None:
            raise ValueError("give a landing folder or an S3 source")
        landing.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    initial = {f.path for f in landing_manifest(landing, s3)}
    if pw_runtime.is_leader():  # a batch load that stopped before rebuilding them left them missing
        try:
            search.ensure_item_indexes(warehouse)
        except psycopg.OperationalError as exc:  # the server away: the sinks wait it out; the next run builds them
            log.warning("catalog follower: indexes of items_normalized not checked (%s)", exc)
    tables = build([landing] if landing else None, s3=s3, mode="streaming", versions=FeedVersionStore(warehouse),
                   accept_shrink=accept_shrink, max_shrink=max_shrink, registry=registry)
    attach_warehouse(tables, warehouse, streaming=True)
    outputs = tuple(attr for attr in TABLES if getattr(tables, attr, None) is not None)
    pw_runtime.observe_outputs({TABLES[attr][0]: getattr(tables, attr) for attr in outputs}, "catalog")
    if pw_runtime.is_leader():
        threading.Thread(
            target=_reconcile_when_caught_up, name="catalog-catch-up", daemon=True,
            # the registry's tables are not pruned here: their source is read apart from the
            # feeds, so "every feed written" says nothing of them (a full static run prunes them)
            args=(warehouse, started, initial, s3 is None, on_ready, catch_up_timeout_s,
                  tuple(attr for attr in outputs if attr not in ("registry", "inmetro"))),
        ).start()
    pw_runtime.run()


def _reconcile_when_caught_up(warehouse: Warehouse, started: datetime, initial: set[str],
                              local: bool, on_ready, timeout_s: float,
                              outputs: tuple[str, ...] = tuple(TABLES)) -> None:
    reconciled = False
    try:
        if initial:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                pending = {p for p in initial if not local or Path(p).exists()}
                with db.connect(warehouse.dsn, warehouse.schema) as conn:
                    written = {f for (f,) in conn.execute(
                        "SELECT source_file FROM catalog_feed_files WHERE ingested_at >= %s "
                        "AND source_file = ANY(%s)", (started, sorted(pending))).fetchall()}
                if written >= pending:
                    time.sleep(2.0)  # let the other tables' writers flush the same minibatch
                    reconcile(warehouse, started, outputs)
                    reconciled = True
                    break
                time.sleep(0.5)
            else:
                log.warning("catalog follower: initial feeds not all written after %ss; "
                            "stale rows were not pruned", timeout_s)
    except Exception:  # noqa: BLE001 - the pipeline goes on; the next full run reconciles
        log.exception("catalog follower: reconciliation after start failed")
    if on_ready is not None:
        on_ready(reconciled)


def landing_manifest(landing: Path | None, s3: S3Source | None) -> list:
    from . import landing as landing_area

    if s3 is not None:
        import boto3

        client = boto3.client("s3", endpoint_url=s3.endpoint, region_name=s3.region,
                              aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
        return landing_area.manifest_s3(client, s3.bucket, s3.prefix)
    return landing_area.manifest(landing) if landing is not None else []
