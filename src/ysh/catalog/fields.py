"""Field rules of one feed record (pure Python): category, power, price, stock, technology,
and what the record's texts say about the product.

Each rule reads one field as written and returns the normalized value or raises
:class:`~ysh.catalog.items.RowRejected` with its reason code; :mod:`ysh.catalog.normalize`
applies them to a record. The rules are documented in ``docs/catalog.md``.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import NamedTuple

from . import exports as x
from . import parsing as p
from .feeds import FeedRecord, Value
from .items import (
    MISSING_POWER,
    NEGATIVE_PRICE,
    NEGATIVE_STOCK,
    POWER_OUT_OF_RANGE,
    POWER_RANGES_W,
    POWERED_CATEGORIES,
    TEXT_POWER_CATEGORIES,
    UNKNOWN_CATEGORY,
    UNPARSEABLE_POWER,
    UNPARSEABLE_PRICE,
    UNPARSEABLE_STOCK,
    ZERO_PRICE,
    RowRejected,
    product_key,
)
from .kits import looks_like_kit
from .parsing.categories import _refine_inverter


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
    return _refine_inverter(category, p.strip_accents(text).lower()) if category == "inverter" else category


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
    kit_hint = category_text is None and any(looks_like_kit(t) for t in texts)
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
