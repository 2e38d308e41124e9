"""The catalog item, the quarantine reason codes and the plausible power ranges (pure Python).

What :mod:`ysh.catalog.normalize` produces: a :class:`CatalogItem`, or a quarantined row
whose reason is one of :data:`REASON_CODES` (stable: dashboards and checks group by them).
The rules are documented in ``docs/catalog.md``.
"""

from __future__ import annotations

from typing import NamedTuple

from . import parsing as p

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
FEED_SHRUNK = "feed_shrunk"  # a new version of a feed held for losing most of its items (ysh.catalog.versions)
INTERNAL_ERROR = "internal_error"

REASON_CODES = (
    MISSING_SKU, UNKNOWN_CATEGORY, MISSING_POWER, UNPARSEABLE_POWER, POWER_OUT_OF_RANGE,
    UNPARSEABLE_PRICE, NEGATIVE_PRICE, ZERO_PRICE, UNPARSEABLE_STOCK, NEGATIVE_STOCK,
    MALFORMED_JSON, MALFORMED_RECORD, MALFORMED_ROW, UNPARSEABLE_FILE, EMPTY_FILE, FEED_SHRUNK, INTERNAL_ERROR,
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


def product_key(brand: str | None, model: str | None, category: str) -> str | None:
    """Key of the physical product: canonical brand + model key (``JA Solar|JAM72S30550MR``).
    Accessories and items without brand or model are not grouped into products."""
    if not brand or not model or category in UNGROUPED_CATEGORIES:
        return None
    return f"{brand}|{p.model_key(model)}"
