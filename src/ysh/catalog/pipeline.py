"""The catalog job's Pathway graph.

:func:`build_catalog_graph` takes a table of feed files (one row per file: its bytes and
the connector's ``_metadata``) and returns the output tables. It never calls
``pw.run``: the caller attaches sinks and runs it, statically (batch) or streaming —
same graph, same results. Files are the unit of change: a new, changed or removed file
inserts, replaces or retracts exactly its rows downstream.

Per file, one UDF decodes and normalizes all rows (pure domain code,
:func:`ysh.catalog.normalize.normalize_feed`); rows then flow as Pathway rows, so
de-duplication across files and the product grouping are incremental. A static run into
the warehouse may instead pack a distributor's only, ordinary feed (``pack``): its items
leave the UDF as COPY text and product groups, not rows (:mod:`ysh.catalog.packed`).

Given the store of last good versions (``versions``), each new version of a file is
judged (:func:`ysh.catalog.versions.judge`) before its rows flow: an unparseable, empty
or badly shrunk version is *held* — the rows of the last good version flow instead, the
held version becomes one quarantined row (line 0), and a row of ``held`` says so.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import statistics
import typing
from dataclasses import dataclass

import pathway as pw

from . import packed
from . import versions as feed_versions
from .items import CatalogItem
from .normalize import FeedResult, QuarantinedRow, normalize_feed, offer_key


class FeedVersions(typing.Protocol):
    """The last good version of each feed file (``catalog_feed_versions``), as the graph
    reads it while judging a new version."""

    def good(self, source_file: str) -> feed_versions.GoodVersion | None: ...

    def data(self, source_file: str, sha256: str) -> bytes | None: ...


@dataclass
class NormalizedTables:
    items: pw.Table  # items_normalized, one row per (distributor, sku)
    quarantine: pw.Table  # items_quarantine, one row per (source_file, line)
    files: pw.Table  # catalog_feed_files, one row per feed file with its counts
    #: catalog_feed_versions: the version of each file whose rows flow (with versions only)
    versions: pw.Table | None = None
    #: one row per held file version: source_file, distributor, reason, detail, sha256
    held: pw.Table | None = None
    #: inmetro_registry: the landed Inmetro tables, one row per (source_file, line) (with a registry only)
    registry: pw.Table | None = None
    #: items_inmetro: what the registry says of each item, one row per (distributor, sku)
    inmetro: pw.Table | None = None
    #: a static run's packed files (``pack=True``): one row per distributor's only,
    #: ordinary feed — distributor, source_file, items (their count) and ``text``, its
    #: items as COPY text (:data:`ysh.catalog.packed.ITEM_COLUMNS`); ``items`` then holds
    #: the other feeds' items only
    packed_items: pw.Table | None = None
    #: the packed files' partial product groups (:data:`ysh.catalog.packed.PART_FIELDS`)
    packed_parts: pw.Table | None = None


@dataclass
class CatalogTables:
    items: pw.Table  # items_normalized, one row per (distributor, sku)
    quarantine: pw.Table  # items_quarantine, one row per (source_file, line)
    products: pw.Table  # products, one row per physical product (brand + model key)
    files: pw.Table  # catalog_feed_files, one row per feed file with its counts
    versions: pw.Table | None = None
    held: pw.Table | None = None
    registry: pw.Table | None = None
    inmetro: pw.Table | None = None
    packed_items: pw.Table | None = None


# ------------------------------------------------------------------------------------------
# sources
# ------------------------------------------------------------------------------------------


def read_feed_files_fs(path: str, *, mode: str = "static", name: str = "catalog_feeds") -> pw.Table:
    """Feed files in a folder (recursively), one row per file."""
    return pw.io.fs.read(
        path, format="binary", mode=mode, with_metadata=True, name=name,
        autocommit_duration_ms=500,
    )


def read_feed_files_s3(
    bucket: str,
    prefix: str,
    *,
    endpoint: str | None,
    region: str,
    access_key: str | None,
    secret_key: str | None,
    mode: str = "static",
    name: str = "catalog_feeds_s3",
) -> pw.Table:
    """Feed objects under ``s3://bucket/prefix``, one row per object (S3, MinIO, any S3 API)."""
    settings = pw.io.s3.AwsS3Settings(
        bucket_name=bucket,
        access_key=access_key,
        secret_access_key=secret_key,
        region=region,
        endpoint=endpoint,
        with_path_style=endpoint is not None,
    )
    return pw.io.s3.read(
        prefix, format="binary", aws_s3_settings=settings, mode=mode, with_metadata=True,
        name=name, autocommit_duration_ms=500,
    )


# ------------------------------------------------------------------------------------------
# UDFs (thin: the rules live in the domain modules)
# ------------------------------------------------------------------------------------------


def _distributor_of(path: str, landing_root: str | None, distributor: str | None) -> str:
    from .normalize import distributor_from_path

    return distributor or distributor_from_path(path, landing_root)


def _normalized(data: bytes, path: str, modified_at_s: int, distributor: str) -> FeedResult:
    as_of = (datetime.datetime.fromtimestamp(modified_at_s, datetime.timezone.utc).date()
             if modified_at_s > 0 else None)
    return normalize_feed(data, path, distributor, as_of)


@dataclass(frozen=True)
class Packing:
    """How a static run packs a file (:mod:`ysh.catalog.packed`): ``single`` — the file
    is its distributor's only feed; ``ingested_at`` — the time its rows carry;
    ``registry`` — also the columns the Inmetro matching reads."""

    single: bool
    ingested_at: datetime.datetime
    registry: bool = False


def _as_columns(result: FeedResult, data: bytes, extra_quarantine: tuple[QuarantinedRow, ...] = (),
                held: str | None = None, packing: Packing | None = None) -> tuple:
    """A file's result as the tuple column the graph flattens: (items, quarantine, stats,
    packed COPY text or None, packed product parts, packed registry rows). With
    ``packing``, a distributor's only feed with no storefront offers is packed (its items
    as COPY text, no item rows); any other file gives item rows."""
    stats = {**result.stats(), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "held": held}
    text, parts, registry = None, [], []
    try:
        quarantine = [row._replace(raw=pw.Json(json.loads(row.raw)))
                      for row in (*extra_quarantine, *result.quarantine)]
        # each item travels with its offer key (see _prefer_keyed_offers), computed here
        # per file rather than by a UDF per row
        offers = [offer_key(item) for item in result.items]
        stats["offer_items"] = sum(1 for key in offers if key)
        if packing is not None and packing.single and not stats["offer_items"]:
            text = packed.copy_text(result.items, packing.ingested_at)
            parts = packed.product_parts(result.items)
            registry = packed.registry_rows(result.items) if packing.registry else []
            items = []
        else:
            items = [(*(item._replace(components=pw.Json(json.loads(item.components))) if item.components else item),
                      key) for item, key in zip(result.items, offers)]
    except Exception as exc:  # noqa: BLE001 - never let one file stop the pipeline
        row = QuarantinedRow(result.source_file, 0, "internal_error", f"{type(exc).__name__}: {exc}"[:500],
                             pw.Json({"_bytes": len(data)}), result.distributor)
        return ([], [row], pw.Json({**stats, "items": 0, "quarantined": 1, "file_error": "internal_error"}),
                None, [], [])
    return items, quarantine, pw.Json(stats), text, parts, registry


def _packing(single: bool | None, ingested_at, registry: bool) -> Packing | None:
    if single is None:
        return None
    at = ingested_at.to_pydatetime() if hasattr(ingested_at, "to_pydatetime") else ingested_at
    return Packing(single, at, registry)


def _make_normalize_udf(landing_root: str | None, distributor: str | None, registry: bool = False):
    # Items and quarantined rows cross into Pathway as plain tuples (named tuples of the
    # domain): measured 1.4x faster and 3x less memory than one Json document per file.
    # ``single`` (None: never pack) and ``ingested_at``: see Packing.
    @pw.udf(deterministic=True)
    def normalize_file(data: bytes, path: str, modified_at_s: int, single: bool | None,
                       ingested_at: pw.DateTimeUtc) -> tuple:
        # a pure function of its arguments: Pathway recomputes it to retract a changed file
        result = _normalized(data, path, modified_at_s, _distributor_of(path, landing_root, distributor))
        return _as_columns(result, data, packing=_packing(single, ingested_at, registry))

    return normalize_file


def _make_kept_udf(landing_root: str | None, distributor: str | None, registry: bool = False):
    @pw.udf(deterministic=True)
    def normalize_kept(good_data: bytes, path: str, good_modified_at_s: int, reason: str, detail: str,
                       new_stats: pw.Json, single: bool | None, ingested_at: pw.DateTimeUtc) -> tuple:
        """The last good version's rows, and the held version as one quarantined row."""
        name = _distributor_of(path, landing_root, distributor)
        stats = new_stats.value if isinstance(new_stats, pw.Json) else new_stats
        new = feed_versions.NewVersion(stats["sha256"], stats["items"], stats.get("file_error"))
        row = feed_versions.hold_row(path, name, feed_versions.Verdict(reason, detail), new, stats.get("bytes", 0))
        return _as_columns(_normalized(good_data, path, good_modified_at_s, name), good_data, (row,), held=reason,
                           packing=_packing(single, ingested_at, registry))

    return normalize_kept


def _make_judge_udf(versions: FeedVersions, accept_shrink: bool, max_shrink: float):
    # not deterministic: it reads the store, whose answer changes as versions are taken;
    # Pathway memoizes the verdict so a retraction sees what the insertion saw
    @pw.udf(deterministic=False)
    def judge_version(path: str, stats: pw.Json) -> tuple:
        """(hold reason or None, detail, good bytes, good modification time, good sha256,
        good precedence)."""
        values = stats.value if isinstance(stats, pw.Json) else stats
        new = feed_versions.NewVersion(values["sha256"], values["items"], values.get("file_error"),
                                       values.get("file_detail"))
        good = versions.good(path)
        verdict = feed_versions.judge(new, good, accept_shrink=accept_shrink, max_shrink=max_shrink)
        if not verdict.held or good is None:
            return (None, None, None, 0, "", 0)
        data = versions.data(path, good.sha256)
        if data is None:  # replaced in the store meanwhile: nothing to keep, take the new one
            return (None, None, None, 0, "", 0)
        return (verdict.hold, verdict.detail, data, good.modified_at_s, good.sha256, good.precedence)

    return judge_version


def file_precedence(path: str, modified_at_s: int) -> int:
    """Which of two feeds of one distributor wins a SKU: the newer one. An int (Pathway's
    argmax needs one): modification time in microseconds, read from the file itself when
    it is local (the connector's metadata only has seconds, and feeds landed together
    share a second), times 1000, plus a stable path hash (crc32 mod 1000) to break ties."""
    import os
    import zlib

    try:
        stat = os.stat(path)
        micros = stat.st_mtime_ns // 1_000 if int(stat.st_mtime) == modified_at_s else modified_at_s * 1_000_000
    except OSError:
        micros = modified_at_s * 1_000_000
    return micros * 1_000 + zlib.crc32(path.encode()) % 1_000


def _tuple_columns(row: pw.ColumnExpression, layout: type, rename: dict[str, str] | None = None,
                   types: dict[str, object] | None = None) -> dict:
    """Typed columns from a flattened named tuple (``layout``'s fields and annotations;
    ``types`` overrides a field's type, ``rename`` its column name)."""
    hints = {**typing.get_type_hints(layout), **(types or {})}
    rename = rename or {}
    return {rename.get(name, name): pw.declare_type(hints[name], row[i])
            for i, name in enumerate(layout._fields)}


@pw.udf(deterministic=False)
def _file_precedence(path: str, modified_at_s: int) -> int:
    return file_precedence(path, modified_at_s)


def _make_feed_filter(landing_root: str | None):
    from .landing import is_feed_path

    @pw.udf(deterministic=True)
    def is_feed_file(path: str) -> bool:
        return is_feed_path(path, landing_root)

    return is_feed_file


@pw.udf(deterministic=True)
def _price_stats(prices: tuple) -> pw.Json:
    """min, median and max of the prices (a tuple of the groups' tuples), Nones left out."""
    values = sorted(float(v) for group in prices for v in group if v is not None)
    if not values:
        return pw.Json({"min": None, "median": None, "max": None, "priced": 0})
    return pw.Json({"min": values[0], "median": round(statistics.median(values), 2),
                    "max": values[-1], "priced": len(values)})


def _now_utc(_: object) -> pw.DateTimeUtc:  # pragma: no cover - trivial
    return datetime.datetime.now(datetime.timezone.utc)


# ------------------------------------------------------------------------------------------
# the graph
# ------------------------------------------------------------------------------------------


def build_catalog_graph(
    feed_files: pw.Table, *, landing_root: str | None = None, distributor: str | None = None,
    versions: FeedVersions | None = None, accept_shrink: bool = False,
    max_shrink: float = feed_versions.MAX_SHRINK, registry_files: pw.Table | None = None,
    registry_root: str | None = None, pack: bool = False,
) -> CatalogTables:
    """The whole catalog graph: :func:`normalize_feeds` then :func:`build_products`."""
    normalized = normalize_feeds(feed_files, landing_root=landing_root, distributor=distributor,
                                 versions=versions, accept_shrink=accept_shrink, max_shrink=max_shrink,
                                 registry_files=registry_files, registry_root=registry_root, pack=pack)
    return CatalogTables(
        items=normalized.items,
        quarantine=normalized.quarantine,
        products=build_products(normalized.items, normalized.packed_parts),
        files=normalized.files,
        versions=normalized.versions,
        held=normalized.held,
        registry=normalized.registry,
        inmetro=normalized.inmetro,
        packed_items=normalized.packed_items,
    )


def normalize_feeds(
    feed_files: pw.Table, *, landing_root: str | None = None, distributor: str | None = None,
    versions: FeedVersions | None = None, accept_shrink: bool = False,
    max_shrink: float = feed_versions.MAX_SHRINK, registry_files: pw.Table | None = None,
    registry_root: str | None = None, pack: bool = False,
) -> NormalizedTables:
    """Normalize ``feed_files`` (columns ``data`` and ``_metadata``) into items,
    quarantined rows and per-file counts.

    Parameters
    ----------
    feed_files : pw.Table
        one row per feed file, as produced by ``pw.io.fs.read``/``pw.io.s3.read`` with
        ``format="binary", with_metadata=True``.
    landing_root : str, optional
        root of the landing area; a file in ``<root>/<distributor>/`` belongs to that
        distributor, a file directly under it to the distributor named by its stem.
    distributor : str, optional
        force one distributor name for every file (``--distributor``).
    versions : FeedVersions, optional
        the last good version of each file: a new version that is unparseable, empty or
        lost more than ``max_shrink`` of its items (unless ``accept_shrink``) is held and
        the good version's rows flow instead (``versions`` and ``held`` tables returned).
    registry_files : pw.Table, optional
        the landed Inmetro tables (same columns as ``feed_files``): the graph also returns
        ``registry`` (their rows) and ``inmetro`` (each item's status, :func:`match_registry`).
    pack : bool
        for a static run into the warehouse: a distributor's only feed without storefront
        offers is packed (:mod:`ysh.catalog.packed`) — its items leave as COPY text in
        ``packed_items`` (and their product groups in ``packed_parts``) instead of rows of
        ``items``. Not for a streaming run: the packed items are written by a batch
        sink at the run's end (:class:`ysh.kit.sinks.CopyTextSink`), which retracts
        nothing.
    """
    registry = registry_files is not None
    normalize_file = _make_normalize_udf(landing_root, distributor, registry)
    is_feed_file = _make_feed_filter(landing_root)
    feed_files = feed_files.filter(is_feed_file(pw.this._metadata["path"].as_str(unwrap=True)))
    files = feed_files.select(
        source_file=pw.this._metadata["path"].as_str(unwrap=True),
        modified_at_s=pw.this._metadata["modified_at"].as_int(default=0, unwrap=True),
        data=pw.this.data,
    )
    files = files.with_columns(
        # reads the file's own mtime: not a function of the row, so memoized (retractions
        # must see the value the insertion saw)
        file_precedence=_file_precedence(pw.this.source_file, pw.this.modified_at_s),
        ingested_at=pw.apply_with_type(_now_utc, pw.DateTimeUtc, pw.this.source_file),
    )
    if pack:
        # whether a file is its distributor's only feed, known before it is normalized
        # (the distributor comes from the path); the file's row does not move for it
        name_of = _make_distributor_udf(landing_root, distributor)
        files = files.with_columns(_distributor=name_of(pw.this.source_file))
        feeds = files.groupby(pw.this._distributor).reduce(feeds=pw.reducers.count())
        files = files.with_columns(single=feeds.ix_ref(pw.this._distributor).feeds == 1).without(
            pw.this._distributor)
    else:
        files = files.with_columns(single=pw.declare_type(bool | None, None))
    files = files.with_columns(
        result=normalize_file(pw.this.data, pw.this.source_file, pw.this.modified_at_s, pw.this.single,
                              pw.this.ingested_at))
    held = None
    if versions is not None:
        files, held = _keep_good_versions(files, versions, landing_root, distributor, accept_shrink, max_shrink,
                                          registry)

    # --- items -----------------------------------------------------------------------
    # The same (distributor, sku) in several files: the newest file wins (nanosecond
    # mtime, then path); within a file the domain already kept the last line. Only a
    # distributor with more than one feed can have such a collision, so only its rows go
    # through the ranking (a groupby and an `ix`, the two dearest operators a row would
    # cross); the rows of a distributor with a single feed flow on as flattened. Row ids
    # are not the upsert key: the sinks write by (distributor, sku) (Pathway's snapshot
    # writer in a batch, one Pathway time; the follower's sinks net each time per primary
    # key), so a distributor whose second feed arrives (or goes), moving its rows from one
    # branch to the other under new ids, is an update of the same rows in the warehouse.
    # The storefront-offer decision (_prefer_keyed_offers) only concerns items with an
    # offer key, which match within one distributor: the rows of a single feed with none
    # (a distributor's ordinary feed) skip it too and are split into typed columns at
    # once. The other rows stay packed in one tuple column until they are split.
    fields = CatalogItem._fields
    file_stats = pw.declare_type(pw.Json, pw.this.result[2])
    item_files = files.select(
        pw.this.ingested_at, pw.this.file_precedence,
        distributor=file_stats["distributor"].as_str(unwrap=True),
        offer_items=file_stats["offer_items"].as_int(default=0, unwrap=True),
        row=pw.declare_type(list[tuple], pw.this.result[0]),
    )
    feeds = item_files.groupby(pw.this.distributor).reduce(pw.this.distributor, feeds=pw.reducers.count())
    item_files = item_files.join(feeds, pw.left.distributor == pw.right.distributor, id=pw.left.id).select(
        pw.left.ingested_at, pw.left.file_precedence, pw.left.row, single=pw.right.feeds == 1,
        plain=pw.left.offer_items == 0)

    def item_columns(table: pw.Table) -> dict:
        return dict(**_tuple_columns(table.row, CatalogItem, {"line": "source_line"},
                                     types={"components": pw.Json | None}),
                    ingested_at=table.ingested_at)

    def packed_columns(table: pw.Table) -> dict:
        return dict(row=table.row, ingested_at=table.ingested_at,
                    sku_source=pw.declare_type(str, table.row[fields.index("sku_source")]),
                    _rank=table.file_precedence,
                    _offer=pw.declare_type(str, table.row[len(fields)]))

    direct = item_files.filter(pw.this.single & pw.this.plain).flatten(pw.this.row).select(**item_columns(pw.this))
    single = item_files.filter(pw.this.single & ~pw.this.plain).flatten(pw.this.row).select(
        **packed_columns(pw.this))
    item_rows = item_files.filter(~pw.this.single).flatten(pw.this.row)
    # (argmax over a str or tuple rank panics Pathway 0.33 on retractions, hence one int
    # per file.)
    ranked = item_rows.select(
        distributor=pw.declare_type(str, pw.this.row[fields.index("distributor")]),
        sku=pw.declare_type(str, pw.this.row[fields.index("sku")]),
        rank=pw.this.file_precedence,
    )
    winners = ranked.groupby(pw.this.distributor, pw.this.sku).reduce(
        winner=pw.reducers.argmax(pw.this.rank)
    )
    # The storefront offers are decided while each item is still one packed column (an
    # operator costs per column), then the items are split into typed columns once.
    ranked_rows = item_rows.ix(winners.winner)
    ranked_rows = ranked_rows.select(**packed_columns(ranked_rows))
    pw.universes.promise_are_pairwise_disjoint(single, ranked_rows)
    offered = pw.Table.concat(single, ranked_rows)
    decided = _prefer_keyed_offers(offered).select(**item_columns(pw.this))
    pw.universes.promise_are_pairwise_disjoint(direct, decided)
    items = pw.Table.concat(direct, decided)

    # --- quarantine --------------------------------------------------------------------
    quarantine = files.select(
        pw.this.ingested_at, row=pw.declare_type(list[tuple], pw.this.result[1])
    ).flatten(pw.this.row).select(
        **_tuple_columns(pw.this.row, QuarantinedRow, types={"raw": pw.Json}),
        ingested_at=pw.this.ingested_at,
    )

    # --- feed files --------------------------------------------------------------------
    stats = pw.declare_type(pw.Json, pw.this.result[2])
    version_table = None
    if versions is not None:
        # the version whose rows flow, for the next judgement (a held file: the good one)
        version_table = files.filter(stats["file_error"].as_str().is_none()).select(
            pw.this.source_file,
            distributor=stats["distributor"].as_str(unwrap=True),
            sha256=stats["sha256"].as_str(unwrap=True),
            items=stats["items"].as_int(unwrap=True),
            modified_at_s=pw.this.modified_at_s,
            precedence=pw.this.file_precedence,
            data=pw.this.data,
            ingested_at=pw.this.ingested_at,
        )
    file_table = files.select(
        pw.this.source_file,
        distributor=stats["distributor"].as_str(unwrap=True),
        format=stats["format"].as_str(unwrap=True),
        encoding=stats["encoding"].as_str(unwrap=True),
        rows=stats["rows"].as_int(unwrap=True),
        items=stats["items"].as_int(unwrap=True),
        quarantined=stats["quarantined"].as_int(unwrap=True),
        duplicate_skus=stats["duplicate_skus"].as_int(unwrap=True),
        non_product_rows=stats["non_product_rows"].as_int(default=0, unwrap=True),
        column_roles=stats["column_roles"],
        held_reason=stats["held"].as_str(),
        modified_at=pw.this.modified_at_s.dt.utc_from_timestamp(unit="s"),
        ingested_at=pw.this.ingested_at,
    )

    packed_items = packed_parts = None
    matched = items
    if pack:
        text = pw.declare_type(bytes | None, pw.this.result[3])
        packed_items = files.filter(text.is_not_none()).select(
            pw.this.source_file,
            distributor=stats["distributor"].as_str(unwrap=True),
            items=stats["items"].as_int(unwrap=True),
            text=pw.unwrap(text),
        )
        packed_parts = files.select(part=pw.declare_type(list[tuple], pw.this.result[4])).flatten(
            pw.this.part).select(**_part_columns(pw.this.part))
        if registry:
            # the Inmetro matching reads a few columns of every item, packed or not
            reg = files.select(pw.this.ingested_at, r=pw.declare_type(list[tuple], pw.this.result[5])).flatten(
                pw.this.r)
            reg = reg.select(**{name: pw.declare_type(items.schema.typehints()[name], reg.r[i])
                                for i, name in enumerate(packed.REGISTRY_FIELDS)}, ingested_at=reg.ingested_at)
            columns = [*packed.REGISTRY_FIELDS, "ingested_at"]
            matched = pw.Table.concat_reindex(items.select(*[items[c] for c in columns]), reg)
    registry_table = inmetro = None
    if registry_files is not None:
        registry_table = build_registry(registry_files, root=registry_root)
        inmetro = match_registry(matched, registry_table)
    return NormalizedTables(items=items, quarantine=quarantine, files=file_table, versions=version_table,
                            held=held, registry=registry_table, inmetro=inmetro, packed_items=packed_items,
                            packed_parts=packed_parts)


def _part_columns(part: pw.ColumnExpression) -> dict:
    """Typed columns of a partial product group (:data:`ysh.catalog.packed.PART_FIELDS`)."""
    types = dict(product_key=str, distributor=str, brand=str, model=str, category=str, power_w=float, offers=int,
                 prices=tuple)
    return {name: pw.declare_type(types[name], part[i]) for i, name in enumerate(packed.PART_FIELDS)}


def _make_distributor_udf(landing_root: str | None, distributor: str | None):
    @pw.udf(deterministic=True)
    def distributor_of(path: str) -> str:
        return _distributor_of(path, landing_root, distributor)

    return distributor_of


def _keep_good_versions(files: pw.Table, versions: FeedVersions, landing_root: str | None,
                        distributor: str | None, accept_shrink: bool, max_shrink: float,
                        registry: bool = False) -> tuple[pw.Table, pw.Table]:
    """Judge each file's version against the last good one (one rule for batch and
    streaming): a taken version's rows flow as they are; a held version is replaced by
    the good version's rows plus one quarantined row. Returns the files table (same
    columns, ``data``/``modified_at_s``/``result`` of the version that flows) and the held
    versions (source_file, distributor, reason, detail, sha256)."""
    judge_version = _make_judge_udf(versions, accept_shrink, max_shrink)
    normalize_kept = _make_kept_udf(landing_root, distributor, registry)
    judged = files.with_columns(
        verdict=judge_version(pw.this.source_file, pw.declare_type(pw.Json, pw.this.result[2])))
    hold = pw.declare_type(str | None, pw.this.verdict[0])
    taken = judged.filter(hold.is_none()).without(pw.this.verdict)
    kept = judged.filter(hold.is_not_none()).select(
        pw.this.source_file, pw.this.ingested_at, pw.this.single,
        # the good version keeps its rank among the distributor's feeds
        file_precedence=pw.declare_type(int, pw.this.verdict[5]),
        reason=pw.declare_type(str, pw.this.verdict[0]),
        detail=pw.declare_type(str, pw.this.verdict[1]),
        data=pw.declare_type(bytes, pw.this.verdict[2]),
        modified_at_s=pw.declare_type(int, pw.this.verdict[3]),
        new_stats=pw.declare_type(pw.Json, pw.this.result[2]),
    )
    kept = kept.with_columns(result=normalize_kept(pw.this.data, pw.this.source_file, pw.this.modified_at_s,
                                                   pw.this.reason, pw.this.detail, pw.this.new_stats,
                                                   pw.this.single, pw.this.ingested_at))
    held = kept.select(
        pw.this.source_file,
        distributor=pw.declare_type(pw.Json, pw.this.result[2])["distributor"].as_str(unwrap=True),
        reason=pw.this.reason, detail=pw.this.detail,
        sha256=pw.this.new_stats["sha256"].as_str(unwrap=True),
    )
    columns = taken.column_names()
    kept = kept.select(*[kept[c] for c in columns])
    pw.universes.promise_are_pairwise_disjoint(taken, kept)
    return pw.Table.concat(taken, kept), held


def _prefer_keyed_offers(items: pw.Table) -> pw.Table:
    """Two exports of one storefront (a JSON dump and a page scrape) list one offer twice,
    once keyed by the distributor's own id and once, where that export has no id, by its
    model code or title. An item whose SKU came from its model or title (unkeyed) is
    dropped when an item of the same distributor, category and title has a keyed SKU;
    among only unkeyed items of one title the newest file's stays (docs/catalog.md).
    Incremental: a keyed item's arrival retracts the others, its removal brings them back.

    Only items of storefront exports (no SKU column) carry an offer key (``_offer``);
    the others pass straight through, so a distributor's ordinary feed costs no join.
    ``items`` needs the columns ``sku_source``, ``_offer`` and ``_rank``; the last two
    are dropped from the result."""
    plain = items.filter(pw.this._offer == "")
    offers = items.filter(pw.this._offer != "").with_columns(_keyed=_is_keyed(pw.this.sku_source))
    keyed = offers.filter(pw.this._keyed).groupby(pw.this._offer).reduce(_covered=pw.this._offer)
    joined = offers.join_left(keyed, pw.left._offer == pw.right._covered, id=pw.left.id).select(
        *pw.left, _covered=pw.right._covered)
    unkeyed = joined.filter(~pw.this._keyed & pw.this._covered.is_none())
    newest = unkeyed.groupby(pw.this._offer).reduce(_title=pw.this._offer, _newest=pw.reducers.argmax(pw.this._rank))
    decided = joined.join_left(newest, pw.left._offer == pw.right._title, id=pw.left.id).select(
        *pw.left, _newest=pw.right._newest)
    kept = decided.filter(pw.this._keyed | (pw.this._covered.is_none() & (pw.this._newest == pw.this.id))).without(
        pw.this._keyed, pw.this._covered, pw.this._newest)
    pw.universes.promise_are_pairwise_disjoint(plain, kept)
    return pw.Table.concat(plain, kept).without(pw.this._offer, pw.this._rank)


@pw.udf(deterministic=True)
def _is_keyed(sku_source: str) -> bool:
    from .exports import KEYED_SKU_SOURCES

    return sku_source in KEYED_SKU_SOURCES


def build_products(items: pw.Table, parts: pw.Table | None = None) -> pw.Table:
    """Group items into physical products (brand + model key) across distributors.

    ``items`` needs the columns distributor, product_key, brand, model, category, power_w
    and price_brl; items without a product key (accessories, no brand or no model) are not
    products. ``parts``: groups of items already made (a static run's packed files,
    :func:`ysh.catalog.packed.product_parts`), combined with the items' own — each item is
    a group of one, and groups combine as the items would (least brand and category,
    greatest model and power, offers summed, prices gathered).
    """
    # narrow first, then filter: an operator costs per column
    own = items.select(
        pw.this.distributor, pw.this.brand, pw.this.model, pw.this.category, pw.this.power_w,
        pw.this.price_brl, pw.this.product_key,
    ).filter(pw.this.product_key.is_not_none()).select(
        product_key=pw.unwrap(pw.this.product_key), distributor=pw.this.distributor,
        brand=pw.unwrap(pw.this.brand), model=pw.unwrap(pw.this.model), category=pw.this.category,
        power_w=pw.coalesce(pw.this.power_w, 0.0), offers=1,
        prices=pw.declare_type(tuple, pw.make_tuple(pw.this.price_brl)),
    )
    groups = own if parts is None else pw.Table.concat_reindex(own, parts)
    grouped = groups.groupby(pw.this.product_key).reduce(
        pw.this.product_key,
        brand=pw.reducers.min(pw.this.brand),
        model=pw.reducers.max(pw.this.model),
        category=pw.reducers.min(pw.this.category),
        power_w=pw.reducers.max(pw.this.power_w),
        offers=pw.reducers.sum(pw.this.offers),
        distributors=pw.reducers.count_distinct(pw.this.distributor),
        prices=pw.reducers.tuple(pw.this.prices),
    )
    priced = grouped.with_columns(price=_price_stats(pw.this.prices))
    return priced.select(
        pw.this.product_key, pw.this.brand, pw.this.model, pw.this.category,
        power_w=pw.if_else(pw.this.power_w > 0.0, pw.this.power_w, None),
        offers=pw.this.offers,
        distributors=pw.this.distributors,
        min_price_brl=pw.this.price["min"].as_float(),
        median_price_brl=pw.this.price["median"].as_float(),
        max_price_brl=pw.this.price["max"].as_float(),
        updated_at=pw.apply_with_type(_now_utc, pw.DateTimeUtc, pw.this.product_key),
    )


# ------------------------------------------------------------------------------------------
# the Inmetro registry (ysh.catalog.inmetro holds the rules)
# ------------------------------------------------------------------------------------------


def _make_registry_udf():
    @pw.udf(deterministic=True)
    def registry_rows(data: bytes, path: str) -> list[tuple]:
        from .inmetro import read_registry

        return [tuple(row) for row in read_registry(data, path).rows]

    return registry_rows


@pw.udf(deterministic=True)
def _registry_keys(brand: str, model: str) -> list[tuple]:
    from .inmetro import brand_key, match_keys

    bkey = brand_key(brand) or ""
    return [(bkey, key, rule) for key, rule in match_keys(model, brand)]


@pw.udf(deterministic=True)
def _item_keys(category: str, brand: str | None, model: str | None) -> list[tuple]:
    from .inmetro import COVERED_CATEGORIES, brand_key, match_keys

    if category not in COVERED_CATEGORIES or not brand or not model:
        return []
    bkey = brand_key(brand) or ""
    return [(bkey, key, rule) for key, rule in match_keys(model, brand)]


def _make_status_udf(as_of: datetime.date | None, tolerance: float):
    # not deterministic: "expired" depends on the day it is judged; Pathway memoizes the
    # answer, so a retraction sees what the insertion saw
    @pw.udf(deterministic=False)
    def registry_match(category: str, brand: str | None, model: str | None, power_w: float | None,
                       candidates: tuple | None) -> tuple:
        from . import inmetro

        day = as_of or datetime.date.today()
        found = [inmetro.candidate(item_rule, registry_rule, inmetro.RegistryRow(*row))
                 for item_rule, registry_rule, row in (candidates or ())]
        chosen = inmetro.choose(found, power_w, category, day, tolerance=tolerance)
        status = inmetro.registry_status(category, brand, model, power_w, chosen, day, tolerance=tolerance)
        row = chosen.row if chosen else None
        return (status, chosen.rule if chosen else None,
                *((row.registration, row.brand, row.model, row.power_w, row.situation, row.valid_until,
                   row.efficiency_class, row.source_file, row.line) if row else (None,) * 9))

    return registry_match


def build_registry(registry_files: pw.Table, *, root: str | None = None) -> pw.Table:
    """The landed Inmetro tables (``inmetro_registry``): one row per registered model and
    file line (:class:`ysh.catalog.inmetro.RegistryRow` columns), from files as read by
    :func:`read_feed_files_fs`/:func:`read_feed_files_s3`."""
    from .inmetro import RegistryRow

    is_registry_file = _make_feed_filter(root)
    registry_rows = _make_registry_udf()
    files = registry_files.filter(is_registry_file(pw.this._metadata["path"].as_str(unwrap=True))).select(
        source_file=pw.this._metadata["path"].as_str(unwrap=True), data=pw.this.data)
    rows = files.select(
        row=registry_rows(pw.this.data, pw.this.source_file),
        ingested_at=pw.apply_with_type(_now_utc, pw.DateTimeUtc, pw.this.source_file),
    ).flatten(pw.this.row)
    return rows.select(**_tuple_columns(pw.this.row, RegistryRow), ingested_at=pw.this.ingested_at)


def match_registry(items: pw.Table, registry: pw.Table, *, as_of: datetime.date | None = None,
                   tolerance: float | None = None) -> pw.Table:
    """What the registry says of each item (``items_inmetro``, one row per distributor and
    SKU): ``inmetro_status`` and the registry row matched (registration, brand, model,
    power, situation, validity, class, file and line).

    Items and registry rows meet on (brand key, model key) for every key either side's
    model gives (:func:`ysh.catalog.inmetro.match_keys`): an incremental join, so a new
    registry file re-judges only the items it names, and a new item only its own keys.
    Among the rows an item met, :func:`ysh.catalog.inmetro.choose` picks one and
    :func:`ysh.catalog.inmetro.registry_status` says the status (judged on ``as_of``,
    default: the day the row is computed)."""
    from .inmetro import POWER_TOLERANCE, RegistryRow

    registry_match = _make_status_udf(as_of, POWER_TOLERANCE if tolerance is None else tolerance)
    fields = RegistryRow._fields
    registry_keys = registry.select(
        k=_registry_keys(pw.this.brand, pw.this.model),
        row=pw.make_tuple(*[pw.this[f] for f in fields]),
    ).flatten(pw.this.k).select(
        bkey=pw.declare_type(str, pw.this.k[0]), mkey=pw.declare_type(str, pw.this.k[1]),
        rule=pw.declare_type(str, pw.this.k[2]), row=pw.this.row,
    )
    item_keys = items.select(item=pw.this.id, k=_item_keys(pw.this.category, pw.this.brand, pw.this.model)).flatten(
        pw.this.k).select(
        pw.this.item,
        bkey=pw.declare_type(str, pw.this.k[0]), mkey=pw.declare_type(str, pw.this.k[1]),
        rule=pw.declare_type(str, pw.this.k[2]),
    )
    candidates = item_keys.join(
        registry_keys, pw.left.bkey == pw.right.bkey, pw.left.mkey == pw.right.mkey,
    ).select(item=pw.left.item, candidate=pw.make_tuple(pw.left.rule, pw.right.rule, pw.right.row))
    grouped = candidates.groupby(pw.this.item).reduce(pw.this.item, candidates=pw.reducers.tuple(pw.this.candidate))
    judged = items.join_left(grouped, pw.left.id == pw.right.item, id=pw.left.id).select(
        pw.left.distributor, pw.left.sku, pw.left.category, pw.left.power_w, pw.left.source_file,
        pw.left.ingested_at,
        m=registry_match(pw.left.category, pw.left.brand, pw.left.model, pw.left.power_w, pw.right.candidates),
    )
    m = pw.this.m
    return judged.select(
        pw.this.distributor, pw.this.sku, pw.this.category,
        inmetro_status=pw.declare_type(str, m[0]),
        match_rule=pw.declare_type(str | None, m[1]),
        registration=pw.declare_type(str | None, m[2]),
        registry_brand=pw.declare_type(str | None, m[3]),
        registry_model=pw.declare_type(str | None, m[4]),
        registry_power_w=pw.declare_type(float | None, m[5]),
        registry_situation=pw.declare_type(str | None, m[6]),
        registry_valid_until=pw.declare_type(str | None, m[7]),
        efficiency_class=pw.declare_type(str | None, m[8]),
        registry_file=pw.declare_type(str | None, m[9]),
        registry_line=pw.declare_type(int | None, m[10]),
        power_w=pw.this.power_w,
        source_file=pw.this.source_file,
        ingested_at=pw.this.ingested_at,
    )
