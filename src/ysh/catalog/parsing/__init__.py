"""Pure parsing rules of distributor feeds: headers, numbers, units, brands, categories.

Nothing here imports Pathway or Dagster. Every function takes plain strings and
either returns a normalized value or raises :class:`ValueError` with a message that
says what was wrong; callers turn those into quarantine reason codes.

One module per kind of rule; this package is the catalog's one entry point to them
(``from ysh.catalog import parsing as p``):

* :mod:`.text` — accents, header keys, SKU and model keys;
* :mod:`.headers` — header synonyms and the power unit a header implies;
* :mod:`.numbers` — Brazilian/English numbers, powers, BRL prices, stock;
* :mod:`.brands` — canonical brands, brands in free text, distributors' names;
* :mod:`.categories` — the categories and the named rules that find them;
* :mod:`.facts` — what a product description states (model, power, technology, …);
* :mod:`.inmetro` — Inmetro registration status and normal form.
"""

from __future__ import annotations

from .brands import BRAND_ALIASES, DISTRIBUTOR_NAMES, canonical_brand, find_brand, is_distributor_name
from .categories import (
    CATEGORIES,
    INVERTER_CATEGORIES,
    category_from_description,
    category_from_text,
    category_with_rule,
    parse_category,
)
from .facts import (
    DescriptionFacts,
    find_ac_voltage_v,
    find_battery_kwh,
    find_efficiency_pct,
    find_inverter_phases,
    find_kwp_w,
    find_marked_efficiency_pct,
    find_model,
    find_mppt_count,
    find_phases,
    find_power_w,
    find_technology,
    infer_from_description,
)
from .headers import COMPONENT_FIELDS, HEADER_SYNONYMS, KILOWATT_HEADERS, HeaderMapping, header_field, map_headers
from .inmetro import FIRST_INMETRO_YEAR, inmetro_status, normalize_inmetro
from .numbers import parse_decimal, parse_power_w, parse_price_brl, parse_stock
from .text import model_key, normalize_header, normalize_sku, strip_accents

__all__ = [
    "BRAND_ALIASES", "CATEGORIES", "COMPONENT_FIELDS", "DISTRIBUTOR_NAMES", "FIRST_INMETRO_YEAR",
    "HEADER_SYNONYMS", "INVERTER_CATEGORIES", "KILOWATT_HEADERS", "DescriptionFacts", "HeaderMapping",
    "canonical_brand", "category_from_description", "category_from_text", "category_with_rule",
    "find_ac_voltage_v", "find_battery_kwh", "find_brand", "find_efficiency_pct", "find_inverter_phases",
    "find_kwp_w", "find_marked_efficiency_pct", "find_model", "find_mppt_count", "find_phases",
    "find_power_w", "find_technology", "header_field", "infer_from_description", "inmetro_status",
    "is_distributor_name", "map_headers", "model_key", "normalize_header", "normalize_inmetro",
    "normalize_sku", "parse_category", "parse_decimal", "parse_power_w", "parse_price_brl", "parse_stock",
    "strip_accents",
]
