"""Normalization of distributor feed records into catalog items (pure Python).

One record becomes either a :class:`CatalogItem` or a :class:`QuarantinedRow` with a
stable reason code; nothing is dropped silently. The rules (units, ranges, reason
codes) are documented in ``docs/catalog.md``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import PurePosixPath
from functools import lru_cache
from typing import NamedTuple

from . import parsing as p
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

#: plausible power per category [W]: module STC max power, (micro)inverter rated AC power.
POWER_RANGES_W: dict[str, tuple[float, float]] = {
    "module": (5.0, 800.0),
    "microinverter": (100.0, 3_000.0),
    "inverter": (100.0, 250_000.0),
}
POWERED_CATEGORIES = frozenset(POWER_RANGES_W)


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

    def to_dict(self) -> dict:
        return self._asdict()


class QuarantinedRow(NamedTuple):
    """A feed record that could not become an item, with a stable reason code."""

    distributor: str
    source_file: str
    line: int
    reason: str
    detail: str
    raw: str  # the original record as JSON

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
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON 12345.0 is the SKU/stock 12345
    s = str(value).strip()
    return s or None


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
    if not brand or not model or category == "other":
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


def _category(fields: dict[str, str | None], facts: p.DescriptionFacts) -> str:
    written = fields.get("category")
    if written is not None:
        category = p.parse_category(written)
        if category is None:
            raise RowRejected(UNKNOWN_CATEGORY, f"category {written!r} is not a known category")
        return category
    if facts.category is not None:
        return facts.category
    raise RowRejected(UNKNOWN_CATEGORY, "no category column and none found in the description")


def _power_w(raw_value: Value, default_unit: str, category: str, facts: p.DescriptionFacts) -> float | None:
    written = _text(raw_value)
    power: float | None
    if written is not None:
        try:
            power = _number(raw_value, lambda s: p.parse_power_w(s, default_unit))
            if isinstance(raw_value, (int, float)) and default_unit == "kW":
                power *= 1000.0
        except ValueError:
            if category not in POWERED_CATEGORIES:
                return None  # batteries/accessories: power is informative only
            raise RowRejected(UNPARSEABLE_POWER, f"power {written!r} is not a number with a W/kW unit")
    else:
        power = facts.power_w
    if category not in POWERED_CATEGORIES:
        return power
    if power is None:
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
    if category == "inverter":
        return "hybrid" if re.search(r"hibrid|hybrid", p.strip_accents(f"{written or ''} {text}"), re.I) else "string"
    return written


class _Product(NamedTuple):
    """What the text columns of a record say about the product (memoized: feeds repeat
    the same descriptions, brands and models row after row, file after file)."""

    category: str | None  # None: unknown category (the row is rejected)
    category_detail: str
    brand: str | None
    model: str | None
    technology: str | None
    product_key: str | None
    facts: p.DescriptionFacts


@lru_cache(maxsize=65_536)
def _describe(description: str | None, brand_text: str | None, model_text: str | None,
              category_text: str | None, technology_text: str | None) -> _Product:
    facts = p.infer_from_description(description)
    brand = p.canonical_brand(brand_text) or facts.brand
    model = model_text or facts.model
    try:
        category = _category({"category": category_text} if category_text is not None else {}, facts)
        detail = ""
    except RowRejected as rejected:
        return _Product(None, rejected.detail, brand, model, None, None, facts)
    text = " ".join(t for t in (description, model) if t)
    return _Product(category, detail, brand, model, _technology(category, technology_text, text),
                    product_key(brand, model, category), facts)


def normalize_record(
    record: FeedRecord, mapping: p.HeaderMapping, *, distributor: str, source_file: str,
    as_of: date | None = None,
) -> CatalogItem | QuarantinedRow:
    """Turn one feed record into a catalog item, or into a quarantined row with a reason.

    ``as_of`` is the date the feed speaks for (its modification date): an Inmetro
    registration dated after it is invalid. Never raises: an unexpected error in the rules
    quarantines the row as ``internal_error`` (with the exception) instead of failing the
    whole run.
    """
    try:
        return _normalize_record(record, mapping, distributor=distributor, source_file=source_file,
                                 as_of=as_of)
    except Exception as exc:  # noqa: BLE001 - one bad row must not stop a pipeline
        return QuarantinedRow(distributor, source_file, record.line, INTERNAL_ERROR,
                              f"{type(exc).__name__}: {exc}"[:500], _raw_json(record))


def _normalize_record(
    record: FeedRecord, mapping: p.HeaderMapping, *, distributor: str, source_file: str,
    as_of: date | None,
) -> CatalogItem | QuarantinedRow:
    def reject(reason: str, detail: str) -> QuarantinedRow:
        return QuarantinedRow(distributor, source_file, record.line, reason, detail, _raw_json(record))

    if record.error:
        return reject(record.error, record.detail or record.error)
    values = record.fields
    raw: dict[str, Value] = {}
    fields: dict[str, str | None] = {}
    for name, columns in mapping.columns.items():
        value = values.get(columns[0])
        text = _text(value)
        if text is None and len(columns) > 1:  # first non-empty synonym column
            for column in columns[1:]:
                value = values.get(column)
                text = _text(value)
                if text is not None:
                    break
        raw[name], fields[name] = value, text
    get = fields.get
    try:
        sku = p.normalize_sku(get("sku"))
        if sku is None:
            raise RowRejected(MISSING_SKU, "no SKU")
        description = get("description")
        product = _describe(description, get("brand"), get("model"), get("category"), get("technology"))
        if product.category is None:
            raise RowRejected(UNKNOWN_CATEGORY, product.category_detail)
        category, facts = product.category, product.facts
        power_w = _power_w(raw.get("power"), mapping.power_unit, category, facts)
        price_brl = _price_brl(raw.get("price"))
        stock_units = _stock_units(raw.get("stock"))
    except RowRejected as rejected:
        return reject(rejected.reason, rejected.detail)

    efficiency = _optional_float(raw.get("efficiency"), "%")
    if efficiency is None and category == "module":
        efficiency = facts.efficiency_pct
    if efficiency is not None and not 1.0 <= efficiency <= 40.0:
        efficiency = None
    phases = _optional_int(raw.get("phases"))
    if phases is None and get("phases"):
        phases = p.find_phases(fields["phases"])
    if phases is None and category in ("inverter", "microinverter"):
        phases = facts.phases
    mppt = _optional_int(raw.get("mppt"))
    if mppt is None and category in ("inverter", "microinverter"):
        mppt = facts.mppt_count
    inmetro = get("inmetro")
    return CatalogItem(
        distributor=distributor,
        sku=sku,
        category=category,
        brand=product.brand,
        model=product.model,
        description=description,
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
        }


def normalize_feed(data: bytes, source_file: str, distributor: str, as_of: date | None = None) -> FeedResult:
    """Decode and normalize one feed file. A file that cannot be read at all yields one
    quarantined row (line 0, ``unparseable_file`` or ``empty_file``) instead of an
    exception. The result depends only on the arguments (``as_of`` defaults to today): a
    streaming engine may recompute it to retract a row."""
    try:
        feed = read_feed(data, source_file)
    except FeedFormatError as exc:
        row = QuarantinedRow(distributor, source_file, 0, exc.reason, str(exc),
                             json.dumps({"_bytes": len(data)}))
        return FeedResult(source_file, distributor, "unknown", "unknown", 0, [], [row], 0)
    mapping = p.map_headers(feed.headers)
    by_sku: dict[str, CatalogItem] = {}
    quarantine: list[QuarantinedRow] = []
    duplicates = 0
    for record in feed.records:
        result = normalize_record(record, mapping, distributor=distributor, source_file=source_file,
                                  as_of=as_of)
        if isinstance(result, QuarantinedRow):
            quarantine.append(result)
            continue
        if result.sku in by_sku:
            duplicates += 1
            del by_sku[result.sku]  # re-insert so the order follows the winning line
        by_sku[result.sku] = result
    return FeedResult(
        source_file=source_file,
        distributor=distributor,
        format=feed.format,
        encoding=feed.encoding,
        rows=len(feed.records),
        items=list(by_sku.values()),
        quarantine=quarantine,
        duplicate_skus=duplicates,
        unknown_headers=mapping.unknown,
    )
