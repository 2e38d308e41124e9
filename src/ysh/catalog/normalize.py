"""Normalization of distributor feed records into catalog items (pure Python).

One record becomes either a :class:`CatalogItem` or a :class:`QuarantinedRow` with a
stable reason code; nothing is dropped silently. The rules (units, ranges, reason
codes) are documented in ``docs/catalog.md``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath
from functools import lru_cache
from typing import NamedTuple

from . import exports as x
from . import parsing as p
from ..kit.quarantine import QuarantinedRow
from .feeds import FeedFormatError, FeedRecord, Value, read_feed

# --------------------------------------------------------------------------------------
# reason codes (stable: dashboards and checks group by them)
# --------------------------------------------------------------------------------------
MISSING_SKU = "missing_sku"
UNKNOWN_CATEGORY = "unknown_category"
MISSING_POWER = "missing_power"
UNPARSEABLE_POWER = "unparseable_power"
POWER_OUT_OF_RANGE = "power_out_of_range"
UNPARSEABLE_PRICE = "unparseable_price"
NEGATIVE_PRICE = "negative_price"
ZERO_PRICE = "zero_price"
UNPARSEABLE_STOCK = "unparseable_stock"
NEGATIVE_STOCK = "negative_stock"
MALFORMED_JSON = "malformed_json"
MALFORMED_RECORD = "malformed_record"
MALFORMED_ROW = "malformed_row"
UNPARSEABLE_FILE = "unparseable_file"
EMPTY_FILE = "empty_file"
INTERNAL_ERROR = "internal_error"

REASON_CODES = (
    MISSING_SKU, UNKNOWN_CATEGORY, MISSING_POWER, UNPARSEABLE_POWER, POWER_OUT_OF_RANGE,
    UNPARSEABLE_PRICE, NEGATIVE_PRICE, ZERO_PRICE, UNPARSEABLE_STOCK, NEGATIVE_STOCK,
    MALFORMED_JSON, MALFORMED_RECORD, MALFORMED_ROW, UNPARSEABLE_FILE, EMPTY_FILE, INTERNAL_ERROR,
)

#: plausible power per category [W]: module STC max power, inverters rated AC power, a
#: kit its DC power (kWp × 1000).
POWER_RANGES_W: dict[str, tuple[float, float]] = {
    "module": (5.0, 800.0),
    "microinverter": (100.0, 3_000.0),
    "inverter": (100.0, 250_000.0),
    "hybrid_inverter": (100.0, 250_000.0),
    "offgrid_inverter": (100.0, 250_000.0),
    "kit": (100.0, 5_000_000.0),
}
#: categories that must state a power (a module or an inverter without one is no offer)
POWERED_CATEGORIES = frozenset({"module", "microinverter", "inverter", "hybrid_inverter", "offgrid_inverter"})
#: categories whose power may be read from their text (besides the powered ones)
TEXT_POWER_CATEGORIES = POWERED_CATEGORIES | {"kit", "ev_charger", "pump_kit"}
#: categories not grouped into products across distributors (bundles and commodities)
UNGROUPED_CATEGORIES = frozenset({"kit", "structure", "cable", "accessory", "other"})


class CatalogItem(NamedTuple):
    """One normalized offer. A named tuple: cheap to build and handed to Pathway as is."""

    distributor: str
    sku: str
    category: str
    brand: str | None
    model: str | None
    description: str | None
    power_w: float | None
    price_brl: float | None
    stock_units: int | None
    inmetro_registration: str | None
    inmetro_status: str
    efficiency_pct: float | None
    technology: str | None
    voc_v: float | None
    isc_a: float | None
    vmp_v: float | None
    imp_a: float | None
    mppt_count: int | None
    phases: int | None
    max_dc_voltage_v: float | None
    product_key: str | None  # brand|MODELKEY: the physical product across distributors
    source_file: str
    line: int
    # what storefront exports add (docs/catalog.md, "Storefront exports")
    name: str | None = None  # the product's title when the export has one beside a description
    voltage_v: float | None = None  # inverters: AC voltage [V]
    battery_kwh: float | None = None  # batteries: energy [kWh]
    availability: str | None = None  # in_stock | out_of_stock | on_order
    structure_type: str | None = None  # kits: roof/ground structure ("Cerâmico", "Mini Trilho")
    distribution_center: str | None = None  # kits: where the distributor ships from
    components: str | None = None  # kits: JSON list of {kind, brand, power_w, quantity, description}
    url: str | None = None
    image_url: str | None = None
    sku_source: str = "sku"  # sku | id | id+name | sku_text | url | image_url | name_code | model | name_hash
    category_rule: str = ""  # which rule decided the category

    def to_dict(self) -> dict:
        return self._asdict()


class RowRejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _text(value: Value) -> str | None:
    """A field as text (JSON 12345.0 is the SKU/stock 12345); zero-width characters and
    non-breaking spaces are cleaned; empty → None."""
    if value.__class__ is str and value.isascii():  # the hot path of every field
        return value.strip() or None
    return x.clean_cell(value)


def _number(value: Value, parse) -> float:
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"not a finite number: {value!r}")
        return number
    return parse(str(value))


def _optional_float(value: Value, unit_suffix: str = "") -> float | None:
    """Datasheet extras: parsed when possible, else None (they never reject a row)."""
    s = _text(value)
    if s is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    s = re.sub(rf"\s*{unit_suffix}$", "", s, flags=re.I) if unit_suffix else s
    try:
        return p.parse_decimal(s)
    except ValueError:
        return None


def _optional_int(value: Value) -> int | None:
    f = _optional_float(value)
    return int(f) if f is not None and f.is_integer() and abs(f) < 2**63 else None


def product_key(brand: str | None, model: str | None, category: str) -> str | None:
    """Key of the physical product: canonical brand + model key (``JA Solar|JAM72S30550MR``).
    Accessories and items without brand or model are not grouped into products."""
    if not brand or not model or category in UNGROUPED_CATEGORIES:
        return None
    return f"{brand}|{p.model_key(model)}"


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


def _raw_json(record: FeedRecord) -> str:
    if record.raw_text is not None and not record.fields:
        return json.dumps({"_text": record.raw_text}, ensure_ascii=False)
    raw: dict[str, object] = dict(record.fields)
    if record.extra:
        raw["_extra"] = list(record.extra)
    return json.dumps(raw, ensure_ascii=False, default=str, allow_nan=False) if _finite(raw) \
        else json.dumps({k: (v if _finite({k: v}) else str(v)) for k, v in raw.items()}, ensure_ascii=False)


def _finite(values: dict) -> bool:
    return all(not isinstance(v, float) or math.isfinite(v) for v in values.values())


_COARSE_COLUMN_WORDS = frozenset({"inverters", "panels", "cables", "structures", "accessories", "batteries",
                                  "outros", "others", "diversos", "other", "produtos", "products"})


def _category(written: str | None, texts: tuple[str, ...], kit_hint: bool) -> tuple[str, str]:
    """Category and the rule that decided it.

    1. a kit: the category column says so, or the text is a generator (a kWp power, an
       inverter and a module named);
    2. the product type that opens a title or description (storefront titles start with
       it: ``MICRO INVERSOR …``, ``MEDIDOR INTELIGENTE …``) wins over a coarse category
       column (a scraper's ``inverters`` page holds meters too);
    3. else the category column (an unknown value rejects the row);
    4. else the first category keyword anywhere in the texts.
    An inverter is hybrid or off-grid when any text says so.
    """
    column, column_rule = p.category_with_rule(written) if written is not None else (None, "")
    if column == "kit" or kit_hint:
        return "kit", f"column: {written}" if column == "kit" else "kit: kWp + inverter + module in the text"
    coarse = written is not None and p.normalize_header(written) in _COARSE_COLUMN_WORDS
    all_text = " ".join(texts)
    if column is None or coarse:
        for text in texts:
            category, rule, in_head = p.category_from_text(text)
            if category is not None and in_head:
                return _refined(category, all_text), f"title: {rule}"
    if written is not None and column is not None:
        return _refined(column, all_text), f"column: {column_rule}"
    for text in texts:
        category, rule, _ = p.category_from_text(text)
        if category is not None:
            return _refined(category, all_text), f"text: {rule}"
    if written is not None:
        raise RowRejected(UNKNOWN_CATEGORY, f"category {written!r} is not a known category")
    raise RowRejected(UNKNOWN_CATEGORY, "no category column and none found in the description")


def _refined(category: str, text: str) -> str:
    return p._refine_inverter(category, p.strip_accents(text).lower()) if category == "inverter" else category


def _power_w(raw_value: Value, default_unit: str, category: str, texts: tuple[str, ...]) -> float | None:
    written = _text(raw_value)
    power: float | None = None
    if written is not None:
        try:
            power = _number(raw_value, lambda s: p.parse_power_w(s, default_unit))
            if isinstance(raw_value, (int, float)) and default_unit == "kW":
                power *= 1000.0
        except ValueError:
            if category not in POWERED_CATEGORIES:
                power = None  # batteries/accessories: power is informative only
            else:
                raise RowRejected(UNPARSEABLE_POWER, f"power {written!r} is not a number with a W/kW unit")
    elif category in TEXT_POWER_CATEGORIES:
        for text in texts:
            plain = p.strip_accents(text)
            try:
                power = p.find_kwp_w(plain) if category == "kit" else None
                power = power or p.find_power_w(plain)
            except ValueError:
                power = None
            if power is not None:
                break
    if category not in POWER_RANGES_W:
        return power
    if power is None:
        if category not in POWERED_CATEGORIES:
            return None
        raise RowRejected(MISSING_POWER, f"{category} without power (no column value, none in the description)")
    low, high = POWER_RANGES_W[category]
    if not low <= power <= high:
        raise RowRejected(POWER_OUT_OF_RANGE, f"{category} power {power:g} W outside {low:g}–{high:g} W")
    return round(power, 3)


def _price_brl(raw_value: Value) -> float | None:
    written = _text(raw_value)
    if written is None:
        return None
    try:
        price = _number(raw_value, p.parse_price_brl)
    except ValueError:
        raise RowRejected(UNPARSEABLE_PRICE, f"price {written!r} is not a BRL amount") from None
    if price < 0:
        raise RowRejected(NEGATIVE_PRICE, f"price {price:.2f} is negative")
    if price == 0:
        raise RowRejected(ZERO_PRICE, "price is zero")
    return round(price, 2)


def _stock_units(raw_value: Value) -> int | None:
    written = _text(raw_value)
    if written is None:
        return None
    try:
        if isinstance(raw_value, (int, float)):
            if not (math.isfinite(raw_value) and float(raw_value).is_integer()):
                raise ValueError(raw_value)
            stock = int(raw_value)
        else:
            stock = p.parse_stock(written)
    except ValueError:
        raise RowRejected(UNPARSEABLE_STOCK, f"stock {written!r} is not a whole number") from None
    if stock is not None and abs(stock) >= 2**63:
        raise RowRejected(UNPARSEABLE_STOCK, f"stock {written!r} is out of range")
    if stock is not None and stock < 0:
        raise RowRejected(NEGATIVE_STOCK, f"stock {stock} is negative")
    return stock


def _technology(category: str, written: str | None, text: str) -> str | None:
    if category == "module":
        return p.find_technology(written) if written else p.find_technology(text)
    if category == "microinverter":
        return "micro"
    if category == "hybrid_inverter":
        return "hybrid"
    if category == "offgrid_inverter":
        return "off-grid"
    if category == "inverter":
        return "string"
    return written


class _Product(NamedTuple):
    """What the text columns of a record say about the product (memoized: feeds repeat
    the same descriptions, brands and models row after row, file after file)."""

    category: str | None  # None: unknown category (the row is rejected)
    category_detail: str  # the rule that decided, or why none did
    brand: str | None
    model: str | None
    technology: str | None
    product_key: str | None
    facts: p.DescriptionFacts
    texts: tuple[str, ...]


@lru_cache(maxsize=4_096)
def _names_distributor(brand_text: str, distributor: str) -> bool:
    return p.is_distributor_name(brand_text, distributor)


@lru_cache(maxsize=65_536)
def _describe(texts: tuple[str, ...], brand_text: str | None, model_text: str | None,
              category_text: str | None, technology_text: str | None) -> _Product:
    """``brand_text`` is None when the row's brand column names a distributor."""
    primary = texts[0] if texts else None
    facts = p.infer_from_description(primary)
    brand = p.canonical_brand(brand_text)
    if brand is None:
        for text in texts:
            found = p.find_brand(p.strip_accents(text))
            if found:
                brand = found[0]
                break
    model = model_text or facts.model
    if model is None:
        model = next((m for m in (p.find_model(p.strip_accents(t), None) for t in texts[1:]) if m), None)
    kit_hint = category_text is None and any(x.looks_like_kit(t) for t in texts)
    try:
        category, rule = _category(category_text, texts, kit_hint)
    except RowRejected as rejected:
        return _Product(None, rejected.detail, brand, model, None, None, facts, texts)
    if category == "kit":
        brand, model = None, None  # a kit's brands are its components'
    text = " ".join(t for t in (*texts, model or "") if t)
    return _Product(category, rule, brand, model, _technology(category, technology_text, text),
                    product_key(brand, model, category), facts, texts)


class _TextSpecs(NamedTuple):
    efficiency_pct: float | None
    phases: int | None
    voltage_v: float | None
    mppt_count: int | None
    battery_kwh: float | None


@lru_cache(maxsize=65_536)
def _text_specs(texts: tuple[str, ...], category: str) -> _TextSpecs:
    """What a product's texts say of the specs its category has (memoized: feeds repeat
    their titles)."""
    all_text = " ".join(texts)
    inverter = category in p.INVERTER_CATEGORIES
    return _TextSpecs(
        efficiency_pct=p.find_marked_efficiency_pct(all_text) if category == "module" else None,
        phases=p.find_inverter_phases(all_text) if inverter else None,
        voltage_v=p.find_ac_voltage_v(all_text) if inverter else None,
        mppt_count=p.find_mppt_count(all_text) if inverter else None,
        battery_kwh=p.find_battery_kwh(all_text) if category == "battery" else None,
    )


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
        kit = x.kit_details(name or description, values, context.component_columns, structure, centre, cells)
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
        }


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
    exception. The result depends only on the arguments (``as_of`` defaults to today): a
    streaming engine may recompute it to retract a row.

    Columns whose headers name no known field get a role from their content
    (:func:`ysh.catalog.exports.infer_columns`); in a file without a SKU column, rows
    that are menus, breadcrumbs or empty are counted (``non_product_rows``) and skipped.
    """
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
