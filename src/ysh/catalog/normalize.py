"""Normalization of distributor feed records into catalog items (pure Python).

One record becomes either a :class:`CatalogItem` or a :class:`QuarantinedRow` with a
stable reason code; nothing is dropped silently. The rules (units, ranges, reason
codes) are documented in ``docs/catalog.md``. The item and the reason codes are in
:mod:`ysh.catalog.items`, the rules of each field in :mod:`ysh.catalog.fields`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath

from . import exports as x
from . import parsing as p
from ..kit.quarantine import QuarantinedRow
from .feeds import FeedFormatError, FeedRecord, Value, read_feed
from .fields import (
    _describe,
    _names_distributor,
    _optional_float,
    _optional_int,
    _power_w,
    _price_brl,
    _raw_json,
    _stock_units,
    _text,
    _text_specs,
)
from .items import INTERNAL_ERROR, MISSING_SKU, UNKNOWN_CATEGORY, UNPARSEABLE_PRICE, CatalogItem, RowRejected
from .kits import kit_details


def distributor_from_path(path: str, landing_root: str | None = None) -> str:
    """Distributor of a feed: the first folder under the landing root when the file sits
    in one (``landing/<distributor>/feed.csv``), else the file's stem."""
    pure = PurePosixPath(path)
    if landing_root:
        try:
            relative = pure.relative_to(PurePosixPath(landing_root))
        except ValueError:
            relative = None
        if relative is not None and len(relative.parts) > 1:
            return relative.parts[0]
    return pure.stem


# --------------------------------------------------------------------------------------
# one record
# --------------------------------------------------------------------------------------


def normalize_record(
    record: FeedRecord, mapping: p.HeaderMapping, *, distributor: str, source_file: str,
    as_of: date | None = None, context: "FeedContext | None" = None,
) -> CatalogItem | QuarantinedRow:
    """Turn one feed record into a catalog item, or into a quarantined row with a reason.

    ``as_of`` is the date the feed speaks for (its modification date): an Inmetro
    registration dated after it is invalid. ``context`` carries what the whole file says
    (component columns, ids shared by different products). Never raises: an unexpected
    error in the rules quarantines the row as ``internal_error`` (with the exception)
    instead of failing the whole run.
    """
    try:
        return _normalize_record(record, mapping, distributor=distributor, source_file=source_file,
                                 as_of=as_of, context=context or FeedContext())
    except Exception as exc:  # noqa: BLE001 - one bad row must not stop a pipeline
        return QuarantinedRow(source_file, record.line, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:500],
                              _raw_json(record), distributor)


@dataclass(frozen=True)
class FeedContext:
    """What one file says beyond a record: its kit component columns (column → kind) and
    the ids that the file gives to several different products."""

    component_columns: dict[str, str] = field(default_factory=dict)
    shared_ids: frozenset[str] = frozenset()
    positional_ids: bool = False  # the id column is the scraper's row counter, not a product id
    storefront: bool = True  # no SKU column: a storefront export (shifted fields, derived SKUs)


def _first(values: dict[str, Value], columns: tuple[str, ...]) -> tuple[Value, str | None]:
    for column in columns:
        value = values.get(column)
        text = _text(value)
        if text is not None:
            return value, text
    return (values.get(columns[0]) if columns else None), None


def _pricing_value(text: str | None) -> float | None:
    """``pricing`` objects of storefront dumps: ``{"price": 1347.65, "currency": "BRL"}``."""
    if not text or not text.startswith("{"):
        return None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    value = doc.get("price") if isinstance(doc, dict) else None
    currency = str(doc.get("currency") or "BRL").upper() if isinstance(doc, dict) else "BRL"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and currency == "BRL":
        return float(value)
    return None


def _normalize_record(
    record: FeedRecord, mapping: p.HeaderMapping, *, distributor: str, source_file: str,
    as_of: date | None, context: FeedContext,
) -> CatalogItem | QuarantinedRow:
    def reject(reason: str, detail: str) -> QuarantinedRow:
        return QuarantinedRow(source_file, record.line, reason, detail, _raw_json(record), distributor)

    if record.error:
        return reject(record.error, record.detail or record.error)
    values = record.fields
    raw: dict[str, Value] = {}
    fields: dict[str, str | None] = {}
    for name, columns in mapping.columns.items():
        value = values.get(columns[0])
        text = _text(value)
        if text is None and len(columns) > 1:  # first non-empty synonym column
            value, text = _first(values, columns[1:])
        raw[name], fields[name] = value, text
    get = fields.get

    # a scraper's shifted fields: a title that starts with the image URL, a price cell
    # holding the description (then the description cell holds the model code)
    description = get("description")
    model_text = get("model")
    price_raw: Value = raw.get("price")
    price_text = get("price")
    image_in_name, name, moved_text, extra_texts = None, get("name"), None, ()
    if context.storefront:  # an export without a SKU column: mind the scraper's habits
        image_in_name, name = x.split_leading_url(name)
        if price_text is not None and not isinstance(price_raw, (int, float)) and x.is_prose(price_text):
            moved_text, price_raw = price_text, None
            if description and x._is_code(description) and not x.is_prose(description):
                model_text = model_text or description
                description = None
        extra_texts = tuple(t for t in (_text(values.get(c)) for c in mapping.columns.get("text", ())) if t)
        texts = tuple(dict.fromkeys(t for t in (description, name, moved_text) if t))
    elif name is None or name == description:
        texts = (description,) if description else ()
    else:
        texts = (description, name) if description else (name,)
    try:
        brand_text = get("brand")
        if brand_text is not None and _names_distributor(brand_text, distributor):
            brand_text = None  # a storefront dump's `manufacturer` naming the seller
        product = _describe(texts, brand_text, model_text, get("category"), get("technology"))
        if product.category is None:
            raise RowRejected(UNKNOWN_CATEGORY, product.category_detail)
        category, facts = product.category, product.facts
        product_id = None if context.positional_ids else get("id")
        if product_id is not None and p.normalize_sku(product_id) in context.shared_ids:
            product_id = f"{product_id}~{x.name_hash(' '.join(texts))[:8]}"
        written_sku = get("sku")
        if written_sku is not None:  # the common case of a distributor's feed
            sku, sku_source = p.normalize_sku(written_sku), "sku"
        else:
            sku, sku_source = x.derive_sku(
                sku=None, product_id=product_id,
                texts=[t for t in (get("sku_text"), *texts, *extra_texts) if t],
                link=get("url"), image=get("image") or image_in_name, name=name or description or moved_text,
                model=product.model)
        if "sku" in mapping.columns and sku_source != "sku":
            # the feed has a SKU column and this row left it empty: a data error of the
            # distributor, not an export without SKUs (a made-up key could collide later)
            raise RowRejected(MISSING_SKU, "no SKU")
        if sku is None:
            raise RowRejected(MISSING_SKU, "no SKU, id, product link, model code or product text")
        if sku_source == "id" and product_id != get("id"):
            sku_source = "id+name"
        power_w = _power_w(raw.get("power"), mapping.power_unit, category, texts)
        try:
            price_brl = _price_brl(price_raw)
        except RowRejected as rejected:
            if rejected.reason != UNPARSEABLE_PRICE or x.price_cell_value(price_text) == price_text:
                raise
            price_brl = _price_brl(x.price_cell_value(price_text))  # "a partir de R$ 99,00"
        if price_brl is None:
            pricing = _pricing_value(get("pricing"))
            price_brl = _price_brl(pricing) if pricing is not None else None
        stock_units = _stock_units(raw.get("stock"))
    except RowRejected as rejected:
        return reject(rejected.reason, rejected.detail)

    specs = _text_specs(texts, category)
    efficiency = _optional_float(raw.get("efficiency"), "%")
    if efficiency is None:
        efficiency = specs.efficiency_pct or (facts.efficiency_pct if category == "module" else None)
    if efficiency is not None and not 1.0 <= efficiency <= 40.0:
        efficiency = None
    phases = _optional_int(raw.get("phases"))
    if phases is None and get("phases"):
        phases = p.find_phases(fields["phases"])
    if phases is None:
        phases = specs.phases
    voltage = _optional_float(raw["voltage"], "v") if "voltage" in raw else None
    if voltage is None:
        voltage = specs.voltage_v
    mppt = _optional_int(raw.get("mppt"))
    if mppt is None:
        mppt = specs.mppt_count
    structure, centre, components = get("structure"), get("distribution_center"), None
    if category == "kit":
        cells = [c for c in (_text(v) for v in values.values()) if c]
        kit = kit_details(name or description, values, context.component_columns, structure, centre, cells)
        structure, centre = kit.structure, kit.distribution_center
        components = json.dumps(kit.components, ensure_ascii=False) if kit.components else None
    inmetro = get("inmetro")
    return CatalogItem(
        distributor=distributor,
        sku=sku,
        category=category,
        brand=product.brand,
        model=product.model,
        description=description or moved_text or name,
        power_w=power_w,
        price_brl=price_brl,
        stock_units=stock_units,
        inmetro_registration=p.normalize_inmetro(inmetro),
        inmetro_status=p.inmetro_status(inmetro, today=as_of),
        efficiency_pct=efficiency,
        technology=product.technology,
        voc_v=_optional_float(raw.get("voc"), "v"),
        isc_a=_optional_float(raw.get("isc"), "a"),
        vmp_v=_optional_float(raw.get("vmp"), "v"),
        imp_a=_optional_float(raw.get("imp"), "a"),
        mppt_count=mppt,
        phases=phases,
        max_dc_voltage_v=_optional_float(raw.get("max_dc_voltage"), "v"),
        product_key=product.product_key,
        source_file=source_file,
        line=record.line,
        name=name if name and name != description else None,
        voltage_v=voltage,
        battery_kwh=specs.battery_kwh,
        availability=x.parse_availability(fields["availability"]) if "availability" in fields else None,
        structure_type=structure,
        distribution_center=centre,
        components=components,
        url=get("url"),
        image_url=get("image") or image_in_name,
        sku_source=sku_source,
        category_rule=product.category_detail,
    )


# --------------------------------------------------------------------------------------
# one file
# --------------------------------------------------------------------------------------


@dataclass
class FeedResult:
    """A normalized feed file: items (one per SKU, the last occurrence wins),
    quarantined rows and what happened, for reporting."""

    source_file: str
    distributor: str
    format: str
    encoding: str
    rows: int
    items: list[CatalogItem]
    quarantine: list[QuarantinedRow]
    duplicate_skus: int
    unknown_headers: tuple[str, ...] = ()
    column_roles: dict = field(default_factory=dict)  # column → {role, confidence} (by content)
    non_product_rows: dict = field(default_factory=dict)  # reason → rows skipped as not products
    wide_rows_split: bool = False

    def stats(self) -> dict:
        return {
            "source_file": self.source_file,
            "distributor": self.distributor,
            "format": self.format,
            "encoding": self.encoding,
            "rows": self.rows,
            "items": len(self.items),
            "quarantined": len(self.quarantine),
            "duplicate_skus": self.duplicate_skus,
            "unknown_headers": list(self.unknown_headers),
            "column_roles": self.column_roles,
            "non_product_rows": sum(self.non_product_rows.values()),
            "non_product_by_reason": self.non_product_rows,
            "wide_rows_split": self.wide_rows_split,
            "file_error": self.file_error,
            "file_detail": self.file_detail,
        }

    def _file_row(self) -> QuarantinedRow | None:
        return next((q for q in self.quarantine if q.line == 0), None)

    @property
    def file_error(self) -> str | None:
        """The reason the whole file could not be read (``unparseable_file``,
        ``empty_file``, ``internal_error``), None when it was."""
        row = self._file_row()
        return row.reason if row is not None else None

    @property
    def file_detail(self) -> str | None:
        row = self._file_row()
        return row.detail if row is not None else None


def _with_inferred_columns(mapping: p.HeaderMapping, inference: x.ColumnInference) -> p.HeaderMapping:
    """Named headers first: an inferred role only fills a field that no header names
    (``text`` columns, a kit's component descriptions, are always added)."""
    columns = {f: list(c) for f, c in mapping.columns.items()}
    for column, role in inference.roles.items():
        target = x.ROLE_FIELDS[role.role]
        if target in columns and target != "text":
            continue  # a named header (or an earlier column of that role) fills it already
        columns.setdefault(target, []).append(column)
    unknown = tuple(h for h in mapping.unknown if h not in inference.roles)
    return p.HeaderMapping({f: tuple(c) for f, c in columns.items()}, mapping.power_unit, unknown)


def _record_ids(records: list[FeedRecord], columns: tuple[str, ...]):
    """(record, its id) for the well-formed records that have one, in file order."""
    for record in records:
        if not record.error:
            _, product_id = _first(record.fields, columns)
            if product_id is not None:
                yield record, product_id


def _shared_ids(records: list[FeedRecord], mapping: p.HeaderMapping) -> frozenset[str]:
    """Ids that one file gives to records with different product texts (a slug such as
    ``FOTUS-KP04-114kWp-Ceramico-kits`` for the same kit from two centres): not keys."""
    columns = mapping.columns.get("id", ())
    text_columns = mapping.columns.get("name", ()) + mapping.columns.get("description", ())
    if not columns:
        return frozenset()
    seen: dict[str, set[str]] = {}
    for record, product_id in _record_ids(records, columns):
        text = " ".join(t for t in (_text(record.fields.get(c)) for c in text_columns) if t)
        seen.setdefault(p.normalize_sku(product_id) or "", set()).add(text)
    return frozenset(k for k, texts in seen.items() if len(texts) > 1)


def offer_key(item: CatalogItem) -> str:
    """The key under which offers of one storefront's exports are matched across files
    (:func:`ysh.catalog.exports.offer_text_key`); empty for a distributor's own SKUs."""
    if item.sku_source == "sku":
        return ""
    return x.offer_text_key(item.distributor, item.category, item.description)


def _distinguish_model_skus(items: list[CatalogItem]) -> list[CatalogItem]:
    """A SKU taken from a model code is shared by the offers of one model that a
    storefront lists apart (``SUN-50K-G-LV`` shipped from two regions): when one file
    gives it to different product texts, each becomes ``MODEL~hash`` of its text."""
    texts: dict[str, set[str]] = {}
    for item in items:
        if item.sku_source == "model":
            texts.setdefault(item.sku, set()).add(item.description or "")
    shared = {sku for sku, seen in texts.items() if len(seen) > 1}
    if not shared:
        return items
    return [item._replace(sku=f"{item.sku}~{x.name_hash(item.description or '')[:8]}", sku_source="model+name")
            if item.sku in shared and item.sku_source == "model" else item for item in items]


def _positional_ids(records: list[FeedRecord], mapping: p.HeaderMapping) -> bool:
    """Whether a file's ids are a scraper's row counter (``solfacil_inverters_1``, ``_2``
    … one prefix, numbers rising in file order): they name a position, not a product,
    and change when the page changes, so they are no SKU."""
    columns = mapping.columns.get("id", ())
    if not columns:
        return False
    prefix, last, seen = None, -1, 0
    for _, product_id in _record_ids(records, columns):
        m = re.fullmatch(r"(.*?[^\d])(\d+)", product_id)
        if not m or (prefix is not None and m.group(1) != prefix) or int(m.group(2)) <= last:
            return False
        prefix, last, seen = m.group(1), int(m.group(2)), seen + 1
    return seen >= 3


def normalize_feed(data: bytes, source_file: str, distributor: str, as_of: date | None = None) -> FeedResult:
    """Decode and normalize one feed file. A file that cannot be read at all yields one
    quarantined row (line 0, ``unparseable_file`` or ``empty_file``) instead of an
    exception; nor does any other input raise: an unexpected error becomes one
    ``internal_error`` row (line 0), so no file stops a streaming pipeline. The result
    depends only on the arguments (``as_of`` defaults to today): a streaming engine may
    recompute it to retract a row.

    Columns whose headers name no known field get a role from their content
    (:func:`ysh.catalog.exports.infer_columns`); in a file without a SKU column, rows
    that are menus, breadcrumbs or empty are counted (``non_product_rows``) and skipped.
    """
    try:
        return _normalize_feed(data, source_file, distributor, as_of)
    except Exception as exc:  # noqa: BLE001 - hostile input must not stop a pipeline
        detail = f"{type(exc).__name__}: {exc}"[:500]
        row = QuarantinedRow(source_file, 0, INTERNAL_ERROR, detail, json.dumps({"_bytes": len(data)}), distributor)
        return FeedResult(source_file, distributor, "unknown", "unknown", 0, [], [row], 0)


def _normalize_feed(data: bytes, source_file: str, distributor: str, as_of: date | None) -> FeedResult:
    try:
        feed = read_feed(data, source_file)
    except FeedFormatError as exc:
        row = QuarantinedRow(source_file, 0, exc.reason, str(exc), json.dumps({"_bytes": len(data)}), distributor)
        return FeedResult(source_file, distributor, "unknown", "unknown", 0, [], [row], 0)
    mapping = p.map_headers(feed.headers)
    component_columns = {h: p.COMPONENT_FIELDS[p.normalize_header(h)] for h in mapping.unknown
                         if p.normalize_header(h) in p.COMPONENT_FIELDS}
    named = {c for cols in mapping.columns.values() for c in cols} | set(component_columns)
    inference = x.infer_columns(feed.headers, feed.records, named)
    mapping = _with_inferred_columns(mapping, inference)
    records, split = x.split_wide_rows(feed.headers, feed.records, inference)
    positional = _positional_ids(records, mapping)
    context = FeedContext(component_columns, _shared_ids(records, mapping), positional,
                          storefront="sku" not in mapping.columns)
    if positional:
        for column in mapping.columns.get("id", ()):
            inference.roles[column] = x.ColumnRole("row_number", 1.0)
    check_products = "sku" not in mapping.columns
    price_columns = list(mapping.columns.get("price", ()))
    text_columns = [c for f in ("description", "name", "text") for c in mapping.columns.get(f, ())]
    by_sku: dict[str, CatalogItem] = {}
    quarantine: list[QuarantinedRow] = []
    skipped: dict[str, int] = {}
    duplicates = 0
    results: list[CatalogItem] = []
    for record in records:
        if check_products and not record.error:
            reason = x.non_product_reason(record, feed.headers, price_columns, text_columns)
            if reason is not None:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
        result = normalize_record(record, mapping, distributor=distributor, source_file=source_file,
                                  as_of=as_of, context=context)
        if isinstance(result, QuarantinedRow):
            quarantine.append(result)
        else:
            results.append(result)
    for result in _distinguish_model_skus(results):
        if result.sku in by_sku:
            duplicates += 1
            del by_sku[result.sku]  # re-insert so the order follows the winning line
        by_sku[result.sku] = result
    return FeedResult(
        source_file=source_file,
        distributor=distributor,
        format=feed.format,
        encoding=feed.encoding,
        rows=len(records) - sum(skipped.values()),
        items=list(by_sku.values()),
        quarantine=quarantine,
        duplicate_skus=duplicates,
        unknown_headers=mapping.unknown,
        column_roles=inference.to_json(),
        non_product_rows=skipped,
        wide_rows_split=split,
    )
