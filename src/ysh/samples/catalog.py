"""Deterministic, realistic and deliberately messy Brazilian distributor feeds.

The products are real: PV modules and inverters picked from the CEC databases bundled
with pvlib (``pvlib.pvsystem.retrieve_sam('CECMod')`` / ``('CECInverter')``), with their
datasheet values (STC power, Voc, Isc, Vmp, Imp, area, Paco, Vdcmax, MPPT window). Only
the prices (Brazilian B2B, 2026), stock levels, SKUs and Inmetro registration numbers are
synthetic. Everything is a pure function of the seed.

Three entry points:

* :func:`load_real_products` - about 120 real products (modules, string inverters,
  microinverters) with a reference price.
* :func:`write_sample_feeds` - five small feeds in five distributor dialects (latin-1
  ``;`` CSV, JSON array, JSON lines, UTF-8-with-BOM ``,`` CSV, UTF-8 ``;`` CSV) with
  deliberately bad rows, plus ``EXPECTED.md`` / ``expected.json`` that list every bad row
  with its line number and the reason code a validator should give it.
* :func:`write_benchmark_feed` - one large ``;`` CSV in the style of the first feed.

Note on the data: the CEC libraries shipped with pvlib 0.16.1 are the 2019-03-05 SAM
libraries, so the largest modules of most brands are 320-430 W (no 550 W class) and
several brands popular in Brazil (DAH Solar, WEG, Deye, GoodWe, Sofar) are absent; see
:func:`brand_coverage`. Pass newer tables to :func:`load_real_products` to use a newer
library (e.g. ``retrieve_sam(path=...)`` on a current SAM ``CEC Modules.csv``).
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pvlib

__all__ = [
    "CANONICAL_BRANDS",
    "FEED_FILES",
    "Product",
    "brand_coverage",
    "human_model_name",
    "load_real_products",
    "write_benchmark_feed",
    "write_sample_feeds",
]

# --------------------------------------------------------------------------------------
# brands and CEC name prefixes
# --------------------------------------------------------------------------------------

#: Brands the platform knows (canonical spelling).
CANONICAL_BRANDS: tuple[str, ...] = (
    "JA Solar", "Jinko Solar", "Trina Solar", "Canadian Solar", "LONGi", "Risen", "BYD",
    "DAH Solar", "Astronergy", "Growatt", "Fronius", "WEG", "Deye", "Huawei", "SolarEdge",
    "Sungrow", "GoodWe", "Hoymiles", "APsystems", "SMA", "Sofar", "Solis", "Enphase",
)

#: Canonical module brand -> regex of its manufacturer prefix in CEC module names.
MODULE_BRAND_PREFIXES: dict[str, str] = {
    "JA Solar": r"JA_Solar_",
    "Jinko Solar": r"Jinko_Solar_+Co_+Ltd_",
    "Trina Solar": r"Trina_Solar_",
    "Canadian Solar": r"Canadian_Solar_Inc_",
    "LONGi": r"LONGi_Green_Energy_Technology_Co_+Ltd_",
    "Risen": r"Risen_Energy_Co_+Ltd_",
    "BYD": r"BYD_Company_Limited_|BYD_+Huizhou_+Battery_",
    "Astronergy": r"Astronergy_Solarmodule_",
}

#: Canonical inverter brand -> regex of its manufacturer prefix in CEC inverter names.
INVERTER_BRAND_PREFIXES: dict[str, str] = {
    "Growatt": r"Shenzhen_Growatt_New_Energy_Technology_Co_+Ltd_",
    "Fronius": r"Fronius_International_GmbH_|Fronius_USA_",
    "Huawei": r"Huawei_Technologies_Co_+Ltd_",
    "SolarEdge": r"SolarEdge_Technologies_Ltd_",
    "Sungrow": r"Sungrow_Power_Supply_Co_+Ltd_",
    "SMA": r"SMA_America_",
    "Solis": r"Ningbo_Ginlong_Technologies_Co_+Ltd_",
    "Enphase": r"Enphase_Energy_Inc_",
    "Hoymiles": r"Hoymiles_Converter_Technology_(?:Co_+Ltd_)?",
    "APsystems": r"Altenergy_Power_System_Inc_",
}

#: Brands whose inverters are microinverters.
MICROINVERTER_BRANDS = frozenset({"Enphase", "Hoymiles", "APsystems"})

#: Preferred module power window [W]; brands without enough models there fall back to
#: their largest models (see :func:`load_real_products`).
MODULE_POWER_RANGE_W = (400.0, 720.0)
#: Fallback window below a brand's largest module [W] and absolute floor [W].
MODULE_FALLBACK_WINDOW_W = 45.0
MODULE_MIN_POWER_W = 290.0
#: String inverter rated AC power window [kW, after rounding to whole kW].
STRING_INVERTER_RANGE_KW = (3, 125)
#: Largest microinverter [W].
MICROINVERTER_MAX_W = 3_000.0

MODULES_PER_BRAND = 8
STRING_INVERTERS_PER_BRAND = 7
MICROINVERTERS_PER_BRAND = 5

_TECHNOLOGY = {
    "Mono-c-Si": "mono",
    "Multi-c-Si": "poly",
    "Thin Film": "thin_film",
    "CdTe": "cdte",
    "CIGS": "cigs",
}


@dataclass(frozen=True)
class Product:
    """One real product from the CEC databases, with a synthetic reference price.

    Attributes
    ----------
    brand : str
        canonical brand (one of :data:`CANONICAL_BRANDS`).
    model : str
        model as a human writes it, recovered from the CEC name (``JAM72S01-385-PR``).
    category : {"module", "inverter", "microinverter"}
    power_w : int
        module: STC maximum power [W], rounded; inverter: rated AC power Paco [W], rounded.
    price_brl : float
        reference Brazilian B2B unit price in 2026 [BRL], before distributor margins.
    cec_name : str
        the CEC database column this product comes from.
    voc_v, isc_a, vmp_v, imp_a : float or None
        module open-circuit voltage [V], short-circuit current [A], voltage [V] and
        current [A] at maximum power, all at STC.
    efficiency_pct : float or None
        module efficiency at STC [%] = STC / (A_c * 1000 W/m2) * 100, 1 decimal.
    area_m2 : float or None
        module area A_c [m2].
    technology : str or None
        module cell technology: ``mono``, ``poly``, ``thin_film``, ``cdte``, ``cigs``.
    bifacial : bool
        module is bifacial.
    max_dc_voltage_v : float or None
        inverter maximum DC input voltage Vdcmax [V].
    mppt_low_v, mppt_high_v : float or None
        inverter MPPT voltage window [V].
    ac_voltage_v : float or None
        inverter nominal AC voltage of the CEC test [V] (None when CEC gives none).
    """

    brand: str
    model: str
    category: str
    power_w: int
    price_brl: float
    cec_name: str
    voc_v: float | None = None
    isc_a: float | None = None
    vmp_v: float | None = None
    imp_a: float | None = None
    efficiency_pct: float | None = None
    area_m2: float | None = None
    technology: str | None = None
    bifacial: bool = False
    max_dc_voltage_v: float | None = None
    mppt_low_v: float | None = None
    mppt_high_v: float | None = None
    ac_voltage_v: float | None = None


# --------------------------------------------------------------------------------------
# CEC tables and model names
# --------------------------------------------------------------------------------------

_NUMERIC_MODULE_COLUMNS = ("STC", "A_c", "V_oc_ref", "I_sc_ref", "V_mp_ref", "I_mp_ref", "Bifacial")
_NUMERIC_INVERTER_COLUMNS = ("Paco", "Vdcmax", "Mppt_low", "Mppt_high", "Vac")


@lru_cache(maxsize=2)
def _cec_table(name: str) -> pd.DataFrame:
    """CEC database bundled with pvlib, one row per product (transposed from pvlib)."""
    table = pvlib.pvsystem.retrieve_sam(name).T
    return _numeric(table, _NUMERIC_MODULE_COLUMNS if name == "CECMod" else _NUMERIC_INVERTER_COLUMNS)


def _numeric(table: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    table = table.copy()
    for column in columns:
        if column in table.columns:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


_VOLTAGE_SUFFIX = re.compile(r"_+\d{3}V_*$")
# "3_8K" -> "3.8K" (Huawei SUN2000-3.8KTL), "5_0_1" -> "5.0_1" (Fronius Primo 5.0-1)
_INVERTER_DECIMAL = re.compile(r"(?<![\d.])(\d{1,2})_(\d)(?=K|_\d|_[A-Z][a-z]|$)")


def _model_part(cec_name: str, prefix: str) -> str | None:
    """What follows the manufacturer prefix in a CEC name, or None if it does not match."""
    m = re.match(f"(?:{prefix})_*", cec_name)
    return cec_name[m.end():] if m else None


def human_model_name(cec_name: str, prefix: str, *, inverter: bool = False,
                     brand: str | None = None) -> str | None:
    """Model name as a human writes it, recovered from a CEC database name.

    The manufacturer prefix is removed, for inverters the trailing test-voltage suffix
    (``__240V_``) too, decimals of power ratings are restored (``SUN2000_3_8KTL`` ->
    ``SUN2000-3.8KTL``), a leading repetition of the brand is dropped (``Fronius Primo``
    -> ``Primo``), and runs of ``_`` become ``-``.

    Parameters
    ----------
    cec_name : str
        CEC column name, e.g. ``"JA_Solar_JAM72S01_385_PR"``.
    prefix : str
        regex of the manufacturer prefix, e.g. ``"JA_Solar_"``.
    inverter : bool
        apply the inverter-only rules.
    brand : str, optional
        canonical brand, to drop its repetition at the start of an inverter model.

    Returns
    -------
    str or None
        ``"JAM72S01-385-PR"``; None when the prefix does not match or the rest is empty.
    """
    rest = _model_part(cec_name, prefix)
    if rest is None:
        return None
    if inverter:
        rest = _VOLTAGE_SUFFIX.sub("", rest)
        rest = _INVERTER_DECIMAL.sub(r"\1.\2", rest)
        if brand and rest.lower().startswith(brand.lower() + "_"):
            rest = rest[len(brand) + 1:]
    model = re.sub(r"_+", "-", rest.strip("_"))
    return model or None


def _model_key(model: str) -> str:
    """Spelling-independent key of a model (``SG-60KU-M`` = ``SG60KU_M``)."""
    return re.sub(r"[^A-Z0-9]", "", model.upper())


def brand_coverage(modules: pd.DataFrame | None = None,
                   inverters: pd.DataFrame | None = None) -> dict[str, dict[str, int]]:
    """How many CEC entries each canonical brand has, by database.

    Parameters
    ----------
    modules, inverters : pandas.DataFrame, optional
        CEC tables as returned by ``retrieve_sam`` (products as columns); default: the
        ones bundled with pvlib.

    Returns
    -------
    dict
        ``{brand: {"modules": n, "inverters": n}}`` for every brand of
        :data:`CANONICAL_BRANDS`; brands without a prefix rule count 0.
    """
    mod = _cec_table("CECMod") if modules is None else modules.T
    inv = _cec_table("CECInverter") if inverters is None else inverters.T
    out: dict[str, dict[str, int]] = {}
    for brand in CANONICAL_BRANDS:
        counts = {}
        for kind, table, prefixes in (("modules", mod, MODULE_BRAND_PREFIXES),
                                      ("inverters", inv, INVERTER_BRAND_PREFIXES)):
            prefix = prefixes.get(brand)
            counts[kind] = 0 if prefix is None else int(
                sum(1 for name in table.index if re.match(f"(?:{prefix})", name)))
        out[brand] = counts
    return out


# --------------------------------------------------------------------------------------
# prices (Brazilian B2B, 2026)
# --------------------------------------------------------------------------------------


def module_price_brl(power_w: float, technology: str | None, bifacial: bool,
                     rng: random.Random) -> float:
    """Reference B2B price of a module [BRL].

    R$/Wp drawn from 0.70-0.86 (poly), 0.76-0.98 (mono), 0.86-1.05 (bifacial); a 550 W
    mono module thus costs R$ 420-540.
    """
    if bifacial:
        low, high = 0.86, 1.05
    elif technology == "poly":
        low, high = 0.70, 0.86
    else:
        low, high = 0.76, 0.98
    return round(power_w * rng.uniform(low, high), 2)


_PREMIUM_INVERTER_BRANDS = frozenset({"Fronius", "SMA", "SolarEdge"})


def string_inverter_price_brl(power_w: float, brand: str, rng: random.Random) -> float:
    """Reference B2B price of a string inverter [BRL].

    R$/W(AC) falls log-linearly from 1.08 at 3 kW to 0.75 at 125 kW, times a jitter of
    0.92-1.08 and a 6 % premium for Fronius/SMA/SolarEdge, clamped to 0.75-1.30 R$/W,
    with a floor of R$ 2,200 (a 5 kW unit costs about R$ 4,700-5,900).
    """
    frac = math.log(max(power_w, 3_000.0) / 3_000.0) / math.log(125_000.0 / 3_000.0)
    rate = (1.08 - 0.33 * min(frac, 1.0)) * rng.uniform(0.92, 1.08)
    if brand in _PREMIUM_INVERTER_BRANDS:
        rate *= 1.06
    rate = min(max(rate, 0.75), 1.30)
    return round(max(2_200.0, power_w * rate), 2)


def microinverter_price_brl(power_w: float, rng: random.Random) -> float:
    """Reference B2B price of a microinverter [BRL]: 700 + 1.7 R$/W, +-8 %, within
    R$ 900-3,200 (a 2-panel 500-600 W unit about R$ 1,600)."""
    price = (700.0 + 1.7 * power_w) * rng.uniform(0.92, 1.08)
    return round(min(max(price, 900.0), 3_200.0), 2)


# --------------------------------------------------------------------------------------
# selection of real products
# --------------------------------------------------------------------------------------


def _spread_pick(items: list[tuple[float, str, dict]], k: int, rng: random.Random) -> list[dict]:
    """Pick ``k`` items spread over the power range: sort by power, cut into ``k``
    contiguous bins, take one item at random from each bin."""
    items = sorted(items, key=lambda it: (it[0], it[1]))
    if len(items) <= k:
        return [it[2] for it in items]
    picked = []
    for b in range(k):
        lo, hi = (b * len(items)) // k, ((b + 1) * len(items)) // k
        picked.append(items[rng.randrange(lo, hi)][2])
    return picked


def _module_products(table: pd.DataFrame, seed: int) -> list[Product]:
    products: list[Product] = []
    for brand, prefix in MODULE_BRAND_PREFIXES.items():
        rng = random.Random(f"modules:{seed}:{brand}")
        by_key: dict[str, tuple[float, str, dict]] = {}
        for name in sorted(table.index):
            rest = _model_part(name, prefix)
            if rest is None or "__" in rest.strip("_"):
                continue  # other maker, or a name mangled from parentheses/slashes
            row = table.loc[name]
            stc, area = row["STC"], row["A_c"]
            if not (stc > 0 and area > 0):
                continue
            model = human_model_name(name, prefix)
            key = _model_key(model)
            if key not in by_key:
                by_key[key] = (float(stc), name, {"name": name, "model": model, "row": row})
        pool = list(by_key.values())
        if not pool:
            continue
        low, high = MODULE_POWER_RANGE_W
        in_range = [it for it in pool if low <= it[0] <= high]
        if len(in_range) < MODULES_PER_BRAND:
            top = max(it[0] for it in pool)
            floor = max(MODULE_MIN_POWER_W, top - MODULE_FALLBACK_WINDOW_W)
            in_range = [it for it in pool if it[0] >= floor]
        for chosen in _spread_pick(in_range, MODULES_PER_BRAND, rng):
            row = chosen["row"]
            stc = float(row["STC"])
            technology = _TECHNOLOGY.get(str(row["Technology"]), str(row["Technology"]).lower())
            bifacial = bool(row["Bifacial"] == 1)
            price_rng = random.Random(f"price:{seed}:{chosen['name']}")
            products.append(Product(
                brand=brand,
                model=chosen["model"],
                category="module",
                power_w=int(round(stc)),
                price_brl=module_price_brl(stc, technology, bifacial, price_rng),
                cec_name=chosen["name"],
                voc_v=round(float(row["V_oc_ref"]), 2),
                isc_a=round(float(row["I_sc_ref"]), 2),
                vmp_v=round(float(row["V_mp_ref"]), 2),
                imp_a=round(float(row["I_mp_ref"]), 2),
                efficiency_pct=round(stc / (float(row["A_c"]) * 1000.0) * 100.0, 1),
                area_m2=round(float(row["A_c"]), 3),
                technology=technology,
                bifacial=bifacial,
            ))
    return products


def _inverter_products(table: pd.DataFrame, seed: int) -> list[Product]:
    products: list[Product] = []
    kw_low, kw_high = STRING_INVERTER_RANGE_KW
    for brand, prefix in INVERTER_BRAND_PREFIXES.items():
        micro_brand = brand in MICROINVERTER_BRANDS
        rng = random.Random(f"inverters:{seed}:{brand}")
        # voltage variants of one model: keep the one closest to Brazil's 220/230 V
        by_key: dict[str, tuple[float, str, dict]] = {}
        for name in sorted(table.index):
            rest = _model_part(name, prefix)
            if rest is None:
                continue
            if "__" in _VOLTAGE_SUFFIX.sub("", rest).strip("_"):
                continue  # mangled parentheses/brackets ("S2x___ZC____NA")
            row = table.loc[name]
            paco = row["Paco"]
            if not paco > 0:
                continue
            if micro_brand:
                if paco > MICROINVERTER_MAX_W:
                    continue
            elif not kw_low <= round(paco / 1000.0) <= kw_high:
                continue
            model = human_model_name(name, prefix, inverter=True, brand=brand)
            key = _model_key(model)
            vac = row["Vac"]
            distance = abs(float(vac) - 230.0) if vac and vac > 0 else 1_000.0
            candidate = (distance, name)
            if key not in by_key or candidate < by_key[key][0]:
                by_key[key] = (candidate, name, {"name": name, "model": model, "row": row})
        pool = [(float(it[2]["row"]["Paco"]), it[1], it[2]) for it in by_key.values()]
        k = MICROINVERTERS_PER_BRAND if micro_brand else STRING_INVERTERS_PER_BRAND
        for chosen in _spread_pick(pool, k, rng):
            row = chosen["row"]
            paco = float(row["Paco"])
            price_rng = random.Random(f"price:{seed}:{chosen['name']}")
            if micro_brand:
                category, price = "microinverter", microinverter_price_brl(paco, price_rng)
            else:
                category, price = "inverter", string_inverter_price_brl(paco, brand, price_rng)
            vac = row["Vac"]
            products.append(Product(
                brand=brand,
                model=chosen["model"],
                category=category,
                power_w=int(round(paco)),
                price_brl=price,
                cec_name=chosen["name"],
                max_dc_voltage_v=float(row["Vdcmax"]),
                mppt_low_v=float(row["Mppt_low"]),
                mppt_high_v=float(row["Mppt_high"]),
                ac_voltage_v=float(vac) if vac and vac > 0 else None,
            ))
    return products


_CATEGORY_ORDER = {"module": 0, "inverter": 1, "microinverter": 2}


def load_real_products(seed: int = 7, *, modules: pd.DataFrame | None = None,
                       inverters: pd.DataFrame | None = None) -> list[Product]:
    """About 120 real modules and inverters from the CEC databases, with B2B prices.

    Selection: for each module brand of :data:`MODULE_BRAND_PREFIXES`, 8 models spread
    over 400-720 W, or, when the brand has fewer than 8 models there (the 2019 library
    bundled with pvlib), over the brand's largest models (within 45 W of its largest,
    at least 290 W); for each string-inverter brand 7 models spread over 3-125 kW; for
    Enphase, Hoymiles and APsystems up to 5 microinverters (<= 3 kW). Voltage variants
    of one inverter model are merged (the one closest to 230 V AC is kept).

    Parameters
    ----------
    seed : int
        selection and price seed; the same seed gives the same list.
    modules, inverters : pandas.DataFrame, optional
        CEC tables as returned by ``pvlib.pvsystem.retrieve_sam`` (products as
        columns); default: the ones bundled with pvlib.

    Returns
    -------
    list of Product
        sorted by category (module, inverter, microinverter), brand, power, model.
    """
    mod = _cec_table("CECMod") if modules is None else _numeric(modules.T, _NUMERIC_MODULE_COLUMNS)
    inv = (_cec_table("CECInverter") if inverters is None
           else _numeric(inverters.T, _NUMERIC_INVERTER_COLUMNS))
    products = _module_products(mod, seed) + _inverter_products(inv, seed)
    return sorted(products, key=lambda p: (_CATEGORY_ORDER[p.category], p.brand, p.power_w, p.model))


# --------------------------------------------------------------------------------------
# Brazilian formatting helpers
# --------------------------------------------------------------------------------------


def _fmt_br(value: float, decimals: int = 2) -> str:
    """``1234.5`` -> ``"1.234,50"`` (dot thousands, comma decimals)."""
    text = f"{abs(value):,.{decimals}f}".replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return ("-" if value < 0 else "") + text


def _fmt_brl(value: float) -> str:
    """``1234.5`` -> ``"R$ 1.234,50"``; negative -> ``"-R$ 1.234,50"``."""
    return ("-" if value < 0 else "") + "R$ " + _fmt_br(abs(value))


def _fmt_thousands(watts: int) -> str:
    """``5000`` -> ``"5.000"``."""
    return f"{watts:,}".replace(",", ".")


def _fmt_kw(watts: int) -> str:
    """Exact kW with decimal comma: ``5000`` -> ``"5"``, ``5052`` -> ``"5,052"``,
    ``385`` -> ``"0,385"``."""
    text = f"{watts / 1000:.3f}".rstrip("0").rstrip(".")
    return text.replace(".", ",")


def _inmetro_for(product_key: str) -> str:
    """Stable synthetic Inmetro registration ``NNNNNN/YYYY`` of a product (2019-2026)."""
    h = zlib.crc32(product_key.encode("utf-8"))
    return f"{h % 1_000_000:06d}/{2019 + (h >> 20) % 8}"


# messy spellings a distributor uses for a brand; the first is the canonical one
_BRAND_VARIANTS: dict[str, tuple[str, ...]] = {
    "JA Solar": ("JA Solar", "Ja-Solar", "JA SOLAR", "JASolar"),
    "Jinko Solar": ("Jinko Solar", "JINKO", "Jinko", "JinkoSolar"),
    "Trina Solar": ("Trina Solar", "TRINA", "Trina", "TrinaSolar"),
    "Canadian Solar": ("Canadian Solar", "Canadian", "CANADIAN SOLAR", "CSI Solar"),
    "LONGi": ("LONGi", "LONGI Green Energy", "Longi Solar", "LONGI"),
    "Risen": ("Risen", "Risen Energy", "RISEN"),
    "BYD": ("BYD", "Byd", "BYD "),
    "Astronergy": ("Astronergy", "ASTRONERGY", "Chint Astronergy"),
    "Growatt": ("Growatt", "GROWATT", "Growatt New Energy"),
    "Fronius": ("Fronius", "FRONIUS", "fronius"),
    "Huawei": ("Huawei", "HUAWEI", "Huawei FusionSolar"),
    "SolarEdge": ("SolarEdge", "Solar Edge", "SOLAREDGE"),
    "Sungrow": ("Sungrow", "SUNGROW", "Sungrow Power"),
    "SMA": ("SMA", "SMA Solar", "sma"),
    "Solis": ("Solis", "SOLIS", "Ginlong Solis"),
    "Enphase": ("Enphase", "ENPHASE", "Enphase Energy"),
    "Hoymiles": ("Hoymiles", "HOYMILES", "hoymiles"),
    "APsystems": ("APsystems", "APSystems", "AP Systems"),
}

# legal names (some with commas, to exercise CSV quoting)
_BRAND_LEGAL: dict[str, str] = {
    "JA Solar": "JA Solar Technology Co., Ltd.",
    "Jinko Solar": "Jinko Solar Co., Ltd.",
    "Trina Solar": "Trina Solar Co., Ltd.",
    "Canadian Solar": "Canadian Solar Inc.",
    "LONGi": "LONGi Green Energy Technology Co., Ltd.",
    "Risen": "Risen Energy Co., Ltd.",
    "BYD": "BYD",
    "Astronergy": "Astronergy",
    "Growatt": "Growatt New Energy",
    "Fronius": "Fronius",
    "Huawei": "Huawei Technologies Co., Ltd.",
    "SolarEdge": "SolarEdge Technologies",
    "Sungrow": "Sungrow Power",
    "SMA": "SMA Solar Technology",
    "Solis": "Ginlong Solis",
    "Enphase": "Enphase Energy, Inc.",
    "Hoymiles": "Hoymiles",
    "APsystems": "APsystems",
}


def _brand_variant(brand: str, rng: random.Random, messy: float) -> str:
    """The canonical brand, or with probability ``messy`` one of its messy spellings."""
    variants = _BRAND_VARIANTS.get(brand, (brand,))
    if len(variants) > 1 and rng.random() < messy:
        return rng.choice(variants[1:])
    return variants[0]


def _is_perc(product: Product) -> bool:
    """Model families of the selection known to be PERC: JA ``...-PR``, LONGi LR6, Canadian ``...MS``."""
    return ((product.brand == "JA Solar" and product.model.endswith("-PR"))
            or product.brand == "LONGi"
            or (product.brand == "Canadian Solar" and product.model.endswith("MS")))


def _tech_pt(product: Product, rng: random.Random) -> str:
    """Cell technology as a Brazilian description writes it (``Mono PERC Bifacial``)."""
    if product.technology == "mono":
        base = "Mono PERC" if _is_perc(product) else rng.choice(("Mono", "Monocristalino"))
    else:
        base = {"poly": "Policristalino"}.get(product.technology or "", "")
    return (base + " Bifacial").strip() if product.bifacial else base


def _phases_pt(product: Product) -> str:
    three = (product.ac_voltage_v or 0) >= 400 or product.power_w > 15_000
    return "Trifásico" if three else "Monofásico"


def _power_text(watts: int, rng: random.Random) -> str:
    """Power for a free-text description: ``5kW``, ``5,052kW``, ``5052W`` or ``5.052W``."""
    if watts >= 1000:
        if watts % 1000 == 0:
            return f"{watts // 1000}kW"
        return rng.choice((f"{_fmt_kw(watts)}kW", f"{watts}W", f"{_fmt_thousands(watts)}W"))
    return f"{watts}W"


def _description(product: Product, brand_text: str, rng: random.Random,
                 power_w: int | None = None) -> str:
    """Portuguese product description from which brand, model, category and power can
    be read: ``Módulo Fotovoltaico JA Solar JAM72S01-385-PR 385W Mono PERC``."""
    watts = product.power_w if power_w is None else power_w
    if product.category == "module":
        head = rng.choice(("Módulo Fotovoltaico", "Módulo Fotovoltaico", "Painel Solar"))
        return f"{head} {brand_text} {product.model} {watts}W {_tech_pt(product, rng)}".strip()
    if product.category == "microinverter":
        return f"Microinversor {brand_text} {product.model} {watts}W"
    return f"Inversor {brand_text} {product.model} {_power_text(watts, rng)} {_phases_pt(product)}"


# --------------------------------------------------------------------------------------
# offers: one row of a feed before formatting
# --------------------------------------------------------------------------------------

QUARANTINE_REASONS = frozenset({
    "missing_sku", "unparseable_power", "power_out_of_range", "unparseable_price",
    "negative_price", "unknown_category", "malformed_json",
})


@dataclass
class _Offer:
    """One record of a feed, with the defect deliberately put in it (if any)."""

    sku: str
    brand: str
    model: str
    category: str  # module | inverter | microinverter | battery | accessory | service
    power_w: int | None
    price: float
    stock: int
    inmetro: str | None
    product: Product | None = None
    name: str | None = None  # description of non-CEC items (battery, accessory, service)
    power_raw: str | None = None  # written verbatim instead of the formatted power
    price_raw: str | None = None  # written verbatim instead of the formatted price
    reason: str | None = None  # expected reason code
    note: str = ""
    sql_text: bool = False
    short_row: bool = False
    malformed: bool = False
    duplicate_of: int | None = None  # index of the superseded offer with the same SKU


@dataclass
class _FileExpectation:
    """What a validator should find in one feed file."""

    rows: int = 0
    bad: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    adversarial: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def accepted(self) -> int:
        """Rows a validator keeps: all rows minus quarantined ones and superseded duplicates."""
        quarantined = sum(1 for b in self.bad if b["quarantined"])
        superseded = sum(len(d["lines"]) - 1 for d in self.duplicates)
        return self.rows - quarantined - superseded


def _offer(product: Product, sku: str, price_factor: float, rng: random.Random) -> _Offer:
    price = round(product.price_brl * price_factor * rng.uniform(0.97, 1.03), 2)
    if product.category == "module":
        stock = rng.choice((0, 36, 72, 144, 310, 620, 1240, 2480))
    else:
        stock = rng.choice((0, 1, 2, 4, 8, 15, 30, 60))
    return _Offer(sku=sku, brand=product.brand, model=product.model, category=product.category,
                  power_w=product.power_w, price=price, stock=stock,
                  inmetro=_inmetro_for(f"{product.brand}|{_model_key(product.model)}"),
                  product=product)


def _service_offer(sku: str, price: float) -> _Offer:
    """An installation service: a row whose category is not a product category."""
    return _Offer(sku=sku, brand="", model="", category="service", power_w=5000, price=price,
                  stock=0, inmetro=None, name="Serviço de Instalação Residencial (até 5 kWp)",
                  reason="unknown_category", note="installation service, not a product category")


def _apply_defect(offer: _Offer, defect: str, rng: random.Random) -> _Offer:
    """Put exactly one deliberate defect into an otherwise good offer."""
    offer.reason = defect
    if defect == "missing_sku":
        offer.sku = rng.choice(("", "   "))
        offer.note = "SKU empty" if not offer.sku else "SKU only spaces"
    elif defect == "unparseable_power":
        offer.power_raw = rng.choice(("abc", "N/D"))
        offer.note = f"power written {offer.power_raw!r}"
    elif defect == "power_out_of_range":
        if offer.category == "module":
            offer.power_w = 2000
            offer.note = "module of 2000 W"
        else:
            offer.power_w = 5
            offer.note = f"{offer.category} of 5 W"
    elif defect == "unparseable_price":
        offer.price_raw = rng.choice(("R$ --", "consultar"))
        offer.note = f"price written {offer.price_raw!r}"
    elif defect == "negative_price":
        offer.price = -offer.price
        offer.note = "price below zero"
    elif defect == "inmetro_missing":
        offer.inmetro = None
        offer.note = "empty Inmetro registration"
    elif defect == "inmetro_invalid":
        offer.inmetro = "ABC-123"
        offer.note = "Inmetro registration 'ABC-123'"
    else:
        raise ValueError(f"unknown defect {defect!r}")
    return offer


def _plan_feed(name: str, products: list[Product], core: list[Product], *, seed: int,
               n_good: int, n_core: int, sku_prefix: str, sku_width: int,
               price_factor: float, defects: tuple[str, ...], flags: tuple[str, ...] = (),
               duplicate: bool = False, sql_text: bool = False, messy_sku: float = 0.0,
               junk: dict[str, str] | None = None, out_of_range_category: str = "module",
               eligible: Callable[[Product], bool] = lambda p: True) -> list[_Offer]:
    """Ordered offers of one feed.

    ``n_good`` good offers (``n_core`` of them from the products every feed shares),
    ``flags`` applied to distinct good offers (they stay valid), one good offer with the
    SQL-ish text in its description, one extra row per entry of ``defects`` (another real
    product, or an installation service for ``unknown_category``) inserted at a random
    place, and optionally a later second row with the SKU of a good offer and another
    price. ``junk`` gives the verbatim text of unparseable values
    (``{"unparseable_power": "abc"}``); ``messy_sku`` is the share of good SKUs written in
    lower case with an inner space.
    """
    rng = random.Random(f"feed:{seed}:{name}")
    junk = junk or {}
    core_ok = [p for p in core if eligible(p)]
    chosen = rng.sample(core_ok, min(n_core, len(core_ok)))
    rest = [p for p in products if p not in core and eligible(p)]
    chosen += rng.sample(rest, n_good - len(chosen))
    rng.shuffle(chosen)
    numbers = rng.sample(range(1000, 10 ** sku_width), n_good + len(defects))
    codes = [f"{sku_prefix}{n:0{sku_width}d}" for n in numbers]
    offers = [_offer(p, codes[i], price_factor, rng) for i, p in enumerate(chosen)]

    targets = rng.sample(range(len(offers)), len(flags) + (1 if sql_text else 0))
    for defect, index in zip(flags, targets):
        _apply_defect(offers[index], defect, rng)
    if sql_text:
        offers[targets[-1]].sql_text = True

    spare = [p for p in products if p not in chosen and eligible(p)]
    extra: list[_Offer] = []
    for j, defect in enumerate(defects):
        code = codes[n_good + j]
        if defect == "unknown_category":
            extra.append(_service_offer(code, round(rng.uniform(2400, 3600), 2)))
            continue
        pool = spare
        if defect == "power_out_of_range":
            pool = [p for p in spare if p.category == out_of_range_category]
        bad = _offer(rng.choice(pool), code, price_factor, rng)
        if defect == "malformed_json":
            bad.reason, bad.malformed, bad.note = "malformed_json", True, "truncated JSON object"
        else:
            _apply_defect(bad, defect, rng)
            if defect in junk:
                raw = junk[defect]
                if defect == "unparseable_power":
                    bad.power_raw = raw
                    bad.note = f"power written {raw!r}"
                else:
                    bad.price_raw = raw
                    bad.note = f"price written {raw!r}"
        extra.append(bad)
    for bad in extra:
        offers.insert(rng.randrange(1, len(offers)), bad)

    duplicated_sku = None
    if duplicate:
        clean = [i for i, o in enumerate(offers)
                 if o.reason is None and not o.sql_text and i < len(offers) - 3]
        original = clean[rng.randrange(len(clean))]
        first = offers[original]
        later = _Offer(**first.__dict__)
        later.price = round(first.price * rng.choice((0.93, 0.95, 1.04, 1.06)), 2)
        later.stock = first.stock + rng.choice((5, 10, 20))
        later.duplicate_of = original
        offers.insert(rng.randrange(original + 2, len(offers) + 1), later)
        duplicated_sku = first.sku
    for offer in offers:
        if (messy_sku and offer.reason is None and offer.sku != duplicated_sku
                and rng.random() < messy_sku):
            offer.sku = _messy_sku(offer.sku, rng)
    return offers


# --------------------------------------------------------------------------------------
# writers of the five dialects
# --------------------------------------------------------------------------------------

#: The sample feed files, in the order they are written.
FEED_FILES: tuple[str, ...] = (
    "sol_nascente_distribuidora.csv",
    "energia_verde_atacado.json",
    "fotovolt_sul.jsonl",
    "lumen_solar_atacado.csv",
    "casa_do_integrador.csv",
)

SOL_NASCENTE_HEADER = ("Código", "Descrição", "Marca", "Modelo", "Categoria",
                       "Potência (Wp)", "Preço", "Estoque", "Registro Inmetro")
LUMEN_HEADER = ("Part Number", "Manufacturer", "Model", "Type", "Potencia_kW",
                "Valor Unitario", "Quantidade", "Inmetro")
CASA_HEADER = ("cod", "nome", "fabricante", "tipo", "pmax", "valor", "estoque",
               "tecnologia", "voc", "isc", "vmp", "imp", "eficiencia")
SQL_TEXT = "Robert'); DROP TABLE items;--"


def _csv_line(values: list[str], delimiter: str, force_quote: frozenset[int] = frozenset()) -> str:
    """One CSV line; fields are quoted when they hold the delimiter or a quote, or when
    their index is in ``force_quote``. Line breaks inside fields are not allowed (line
    numbers in the expectations are physical lines)."""
    out = []
    for i, value in enumerate(values):
        if "\n" in value or "\r" in value:
            raise ValueError(f"line break inside a field: {value!r}")
        if i in force_quote or delimiter in value or '"' in value:
            value = '"' + value.replace('"', '""') + '"'
        out.append(value)
    return delimiter.join(out)


def _sn_category(category: str, rng: random.Random) -> str:
    return {
        "module": rng.choice(("Módulo Fotovoltaico", "Módulo Fotovoltaico", "Painel Solar")),
        "inverter": rng.choice(("Inversor", "Inversor", "Inversor String", "Inversor On-Grid")),
        "microinverter": "Microinversor",
        "service": "Serviço de Instalação",
    }[category]


def _sn_power(offer: _Offer, rng: random.Random) -> str:
    if offer.power_raw is not None:
        return offer.power_raw
    watts = offer.power_w or 0
    if offer.category == "module" or watts < 1000:
        return str(watts)
    if watts % 1000 == 0 and rng.random() < 0.5:
        return f"{watts // 1000} kW"
    return rng.choice((_fmt_thousands(watts), _fmt_thousands(watts), f"{_fmt_kw(watts)} kW"))


def _messy_sku(code: str, rng: random.Random) -> str:
    """``SN-04512`` -> ``sn-045 12`` (lower case, inner space): same code once trimmed,
    upper-cased and stripped of inner whitespace."""
    cut = rng.randrange(3, len(code))
    return (code[:cut] + " " + code[cut:]).lower()


def _sol_nascente_row(offer: _Offer, rng: random.Random) -> list[str]:
    if offer.category == "service":
        description, brand, model = offer.name, "Sol Nascente", "INST-RES-5K"
    else:
        product = offer.product
        brand = _brand_variant(offer.brand, rng, messy=0.6)
        description = _description(product, brand.strip(), rng, power_w=offer.power_w)
        model = offer.model if rng.random() > 0.1 else offer.model.replace("-", " ")
    if offer.sql_text:
        description = f"{description} {SQL_TEXT}"
    if offer.price_raw is not None:
        price = offer.price_raw
    else:
        price = _fmt_brl(offer.price)
        if offer.price > 0 and rng.random() < 0.2:
            price = rng.choice((price.replace("R$ ", "R$"), price.replace("R$ ", "")))
    return [offer.sku, description, brand, model, _sn_category(offer.category, rng),
            _sn_power(offer, rng), price, str(offer.stock), offer.inmetro or ""]


def _write_sol_nascente(path: Path, offers: list[_Offer], seed: int) -> dict[int, int]:
    """``;`` CSV, latin-1/cp1252, CRLF. Returns {offer index: physical line}."""
    rng = random.Random(f"render:{seed}:{path.name}")
    lines = [_csv_line(list(SOL_NASCENTE_HEADER), ";")]
    where: dict[int, int] = {}
    for i, offer in enumerate(offers):
        lines.append(_csv_line(_sol_nascente_row(offer, rng), ";"))
        where[i] = len(lines)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("latin-1"))
    return where


_EV_CATEGORY = {
    "module": ("module", "Module", "solar module"),
    "inverter": ("inverter", "Inverter", "string inverter"),
    "microinverter": ("microinverter", "Micro Inverter"),
}


def _json_price(offer: _Offer, rng: random.Random, as_number: float) -> float | str:
    """A JSON feed's price: the planted raw text if any, else a number or (sometimes) a
    string with two decimals."""
    if offer.price_raw is not None:
        return offer.price_raw
    return offer.price if rng.random() < as_number else f"{offer.price:.2f}"


def _write_energia_verde(path: Path, offers: list[_Offer], seed: int) -> dict[int, int]:
    """JSON array, English keys, UTF-8. Returns {offer index: 1-based element index}."""
    rng = random.Random(f"render:{seed}:{path.name}")
    items = []
    where: dict[int, int] = {}
    for i, offer in enumerate(offers):
        power: int | str = offer.power_w if rng.random() < 0.8 else str(offer.power_w)
        price = _json_price(offer, rng, as_number=0.7)
        items.append({
            "sku": offer.sku,
            "brand": _brand_variant(offer.brand, rng, messy=0.2).strip(),
            "model": offer.model,
            "category": rng.choice(_EV_CATEGORY[offer.category]),
            "power_w": power,
            "price": price,
            "stock": offer.stock,
            "inmetro": offer.inmetro,
        })
        where[i] = len(items)
    path.write_text(json.dumps(items, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return where


def _write_fotovolt(path: Path, offers: list[_Offer], seed: int) -> dict[int, int]:
    """JSON lines with keys ``referencia, produto, preco_brl, qtd`` only; one blank line
    and the malformed offers written as truncated JSON. Returns {offer index: line}."""
    rng = random.Random(f"render:{seed}:{path.name}")
    lines: list[str] = []
    where: dict[int, int] = {}
    blank_after = rng.randrange(5, max(6, len(offers) - 5))
    for i, offer in enumerate(offers):
        if offer.category == "service":
            produto = offer.name
        else:
            brand = _brand_variant(offer.brand, rng, messy=0.25).strip()
            produto = _description(offer.product, brand, rng, power_w=offer.power_w)
        if offer.sql_text:
            produto = f"{produto} {SQL_TEXT}"
        price = _json_price(offer, rng, as_number=0.75)
        text = json.dumps({"referencia": offer.sku, "produto": produto, "preco_brl": price,
                           "qtd": offer.stock}, ensure_ascii=False)
        if offer.malformed:
            text = text[: text.rindex(",")]  # export cut off mid-object
        lines.append(text)
        where[i] = len(lines)
        if i == blank_after:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return where


_LUMEN_TYPE = {
    "module": ("Modulo FV", "Módulo Fotovoltaico", "Painel Solar"),
    "inverter": ("Inversor String", "Inversor On-Grid", "Inversor"),
    "microinverter": ("Micro Inversor", "Microinversor"),
}


def _write_lumen(path: Path, offers: list[_Offer], seed: int) -> dict[int, int]:
    """``,`` CSV, UTF-8 with BOM, CRLF; kW with decimal comma and prices always quoted;
    legal names with commas quoted; one empty line; short rows end after the price."""
    rng = random.Random(f"render:{seed}:{path.name}")
    lines = [_csv_line(list(LUMEN_HEADER), ",")]
    where: dict[int, int] = {}
    empty_after = rng.randrange(4, max(5, len(offers) - 4))
    for i, offer in enumerate(offers):
        if rng.random() < 0.45:
            manufacturer = _BRAND_LEGAL.get(offer.brand, offer.brand)
        else:
            manufacturer = _brand_variant(offer.brand, rng, messy=0.3).strip()
        power = offer.power_raw if offer.power_raw is not None else _fmt_kw(offer.power_w or 0)
        price = offer.price_raw if offer.price_raw is not None else _fmt_br(offer.price)
        row = [offer.sku, manufacturer, offer.model, rng.choice(_LUMEN_TYPE[offer.category]),
               power, price, str(offer.stock), offer.inmetro or ""]
        if offer.short_row:
            row = row[:6]
        lines.append(_csv_line(row, ",", force_quote=frozenset({4, 5})))
        where[i] = len(lines)
        if i == empty_after:
            lines.append("")
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return where


_CASA_EXTRAS: tuple[tuple[str, str, str, float], ...] = (
    # (name, brand, category, reference price BRL)
    ("Bateria BYD Battery-Box Premium HVS 5.1", "BYD", "battery", 17_890.00),
    ("Bateria BYD Battery-Box Premium HVS 7.7", "BYD", "battery", 25_490.00),
    ("Bateria BYD Battery-Box Premium HVM 11.0", "BYD", "battery", 36_900.00),
    ("Cabo Solar 6mm² Preto (metro)", "Cobrecom", "accessory", 6.90),
    ("Cabo Solar 6mm² Vermelho (metro)", "Cobrecom", "accessory", 6.90),
    ("Conector MC4 Stäubli (par macho + fêmea)", "Stäubli", "accessory", 24.50),
    ("String Box 2 Entradas / 2 Saídas 1000 Vcc", "Clamper", "accessory", 689.00),
)


def _casa_tipo(category: str, rng: random.Random) -> str:
    return {
        "module": rng.choice(("Módulo", "Módulo Fotovoltaico")),
        "inverter": rng.choice(("Inversor", "Inversor String")),
        "microinverter": "Microinversor",
        "battery": "Bateria",
        "accessory": "Acessório",
    }[category]


def _casa_power(offer: _Offer, rng: random.Random) -> str:
    if offer.power_raw is not None:
        return offer.power_raw
    if offer.power_w is None:
        return ""
    watts = offer.power_w
    if offer.category == "module":
        return rng.choice((f"{watts} Wp", f"{_fmt_kw(watts)} kW", f"{watts},0"))
    return rng.choice((f"{watts} W", f"{_fmt_kw(watts)} kW"))


def _casa_tecnologia(product: Product) -> str:
    base = {"mono": "Monocristalino", "poly": "Policristalino"}.get(product.technology or "", "")
    return f"{base} Bifacial" if product.bifacial else base


def _write_casa(path: Path, offers: list[_Offer], seed: int) -> dict[int, int]:
    """``;`` CSV, UTF-8 without BOM, LF, datasheet columns with decimal comma."""
    rng = random.Random(f"render:{seed}:{path.name}")
    lines = [_csv_line(list(CASA_HEADER), ";")]
    where: dict[int, int] = {}
    for i, offer in enumerate(offers):
        product = offer.product
        if product is None:
            nome, fabricante = offer.name, offer.brand
        else:
            fabricante = _brand_variant(offer.brand, rng, messy=0.5).strip()
            nome = _description(product, fabricante, rng, power_w=offer.power_w)
        if offer.price_raw is not None:
            valor = offer.price_raw
        else:
            valor = _fmt_br(offer.price) if rng.random() < 0.6 else _fmt_brl(offer.price)
            if offer.price > 0 and rng.random() < 0.3:
                valor = f"{offer.price:.2f}".replace(".", ",")
        datasheet = [""] * 6
        if product is not None and product.category == "module":
            datasheet = [_casa_tecnologia(product), _fmt_br(product.voc_v, 2), _fmt_br(product.isc_a, 2),
                         _fmt_br(product.vmp_v, 2), _fmt_br(product.imp_a, 2),
                         _fmt_br(product.efficiency_pct, 1) + rng.choice(("", "%"))]
        row = [offer.sku, nome, fabricante, _casa_tipo(offer.category, rng), _casa_power(offer, rng),
               valor, str(offer.stock), *datasheet]
        lines.append(_csv_line(row, ";"))
        where[i] = len(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return where


# --------------------------------------------------------------------------------------
# the sample feeds
# --------------------------------------------------------------------------------------


def _extras_offers(seed: int) -> list[_Offer]:
    """Batteries and accessories of Casa do Integrador (not in the CEC databases)."""
    rng = random.Random(f"extras:{seed}")
    offers = []
    for k, (name, brand, category, price) in enumerate(_CASA_EXTRAS):
        kind = "BAT" if category == "battery" else "ACS"
        offers.append(_Offer(
            sku=f"CI-{kind}-{k + 1:02d}", brand=brand, model="", category=category, power_w=None,
            price=round(price * rng.uniform(0.97, 1.03), 2),
            stock=rng.choice((3, 6, 12)) if category == "battery" else rng.choice((500, 1200, 3000)),
            inmetro=None, name=name))
    return offers


def _expectation(offers: list[_Offer], where: dict[int, int], *,
                 unit: str) -> _FileExpectation:
    exp = _FileExpectation(rows=len(offers))
    for i, offer in enumerate(offers):
        line = where[i]
        if offer.reason is not None:
            exp.bad.append({"line": line, "reason": offer.reason,
                            "quarantined": offer.reason in QUARANTINE_REASONS,
                            "note": offer.note})
        if offer.sql_text:
            exp.adversarial.append({"line": line, "field": "description",
                                    "text": SQL_TEXT,
                                    "note": "valid row; the text must be stored verbatim"})
        if offer.duplicate_of is not None:
            first = where[offer.duplicate_of]
            exp.duplicates.append({"sku": offer.sku, "lines": [first, line]})
            exp.bad.append({"line": first, "reason": "duplicate_sku", "quarantined": False,
                            "note": f"same SKU {offer.sku!r} again on {unit} {line} with another "
                                    f"price; the later one wins"})
    exp.bad.sort(key=lambda b: b["line"])
    return exp


def write_sample_feeds(out_dir: Path, seed: int = 7, expected_dir: Path | None = None) -> dict[str, int]:
    """Write the five sample distributor feeds and their expectations.

    Files written in ``out_dir``: the feeds of :data:`FEED_FILES` (the distributor is the
    file stem). Written in ``expected_dir`` (default: ``<out_dir>_expected`` beside it, so
    that landing the feed folder never lands the expectations as a feed): ``EXPECTED.md`` (human-readable list of every deliberately bad row: file,
    line, reason code) and ``expected.json`` (the same facts:
    ``{file: {"rows", "accepted", "bad": [{"line", "reason", "quarantined", "note"}],
    "duplicates": [{"sku", "lines"}], "adversarial": [...]}}``).

    Line numbers: CSV and JSON lines: physical line in the file (header = line 1, blank
    lines counted); JSON array: 1-based element index.

    Parameters
    ----------
    out_dir : pathlib.Path
        output directory (created if missing).
    seed : int
        product selection, price and layout seed; same seed, same bytes.

    Returns
    -------
    dict
        data rows written per feed file: CSV records (header and empty lines excluded,
        short rows included), JSON array elements, non-blank JSON lines (the malformed
        one included).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    products = load_real_products(seed)
    core = random.Random(f"core:{seed}").sample(products, 12)  # offered by most feeds

    def long_model(p: Product) -> bool:
        return len(_model_key(p.model)) >= 4  # "QS1" is too short to find in free text

    expectations: dict[str, _FileExpectation] = {}

    # 1. Sol Nascente: latin-1 ";" CSV, Portuguese headers, R$ prices
    name = "sol_nascente_distribuidora.csv"
    offers = _plan_feed(
        name, products, core, seed=seed, n_good=26, n_core=9, sku_prefix="SN-", sku_width=5,
        price_factor=1.00,
        defects=("missing_sku", "unparseable_power", "unparseable_price", "unknown_category"),
        flags=("inmetro_missing", "inmetro_missing", "inmetro_invalid"),
        duplicate=True, sql_text=True, messy_sku=0.15,
        junk={"unparseable_power": "abc", "unparseable_price": "R$ --"})
    where = _write_sol_nascente(out_dir / name, offers, seed)
    expectations[name] = _expectation(offers, where, unit="line")

    # 2. Energia Verde: JSON array, English keys
    name = "energia_verde_atacado.json"
    offers = _plan_feed(
        name, products, core, seed=seed, n_good=28, n_core=9, sku_prefix="EV", sku_width=6,
        price_factor=0.97, defects=("missing_sku", "power_out_of_range", "negative_price"),
        flags=("inmetro_invalid", "inmetro_missing"), duplicate=True,
        out_of_range_category="module")
    where = _write_energia_verde(out_dir / name, offers, seed)
    expectations[name] = _expectation(offers, where, unit="element")
    expectations[name].notes.append("`inmetro: null` means missing")

    # 3. Fotovolt Sul: JSON lines, facts only in the Portuguese description
    name = "fotovolt_sul.jsonl"
    offers = _plan_feed(
        name, products, core, seed=seed, n_good=26, n_core=9, sku_prefix="FVS-", sku_width=5,
        price_factor=1.04,
        defects=("unparseable_price", "unknown_category", "power_out_of_range", "malformed_json"),
        sql_text=True, junk={"unparseable_price": "consultar"},
        out_of_range_category="inverter", eligible=long_model)
    where = _write_fotovolt(out_dir / name, offers, seed)
    expectations[name] = _expectation(offers, where, unit="line")
    expectations[name].notes.append("no Inmetro field in this feed: Inmetro checks do not apply")

    # 4. Lumen Solar: UTF-8 with BOM "," CSV, power in kW
    name = "lumen_solar_atacado.csv"
    offers = _plan_feed(
        name, products, core, seed=seed, n_good=25, n_core=9, sku_prefix="LUM-", sku_width=5,
        price_factor=0.99, defects=("missing_sku", "power_out_of_range", "negative_price"),
        flags=("inmetro_missing", "inmetro_invalid", "inmetro_missing"),
        out_of_range_category="inverter")
    short = next(o for o in offers if o.reason == "inmetro_missing")
    short.short_row = True
    short.note = "short row: 6 of 8 fields (no Quantidade, no Inmetro)"
    where = _write_lumen(out_dir / name, offers, seed)
    expectations[name] = _expectation(offers, where, unit="line")

    # 5. Casa do Integrador: UTF-8 ";" CSV, datasheet columns, batteries, accessories
    name = "casa_do_integrador.csv"
    offers = _plan_feed(
        name, products, core, seed=seed, n_good=24, n_core=9, sku_prefix="CI-", sku_width=5,
        price_factor=1.06, defects=("unparseable_power", "negative_price", "unparseable_price"),
        duplicate=True, junk={"unparseable_power": "N/D", "unparseable_price": "consultar"})
    rng = random.Random(f"casa-extras:{seed}")
    for extra in _extras_offers(seed):
        offers.insert(rng.randrange(1, len(offers)), extra)
    _reindex_duplicates(offers)
    where = _write_casa(out_dir / name, offers, seed)
    expectations[name] = _expectation(offers, where, unit="line")
    expectations[name].notes.append(
        "batteries (tipo `Bateria`) and accessories (tipo `Acessório`) are valid rows without "
        "power; the accessory makers (Cobrecom, Stäubli, Clamper) are not catalog brands")
    expectations[name].notes.append("no Inmetro field in this feed: Inmetro checks do not apply")

    _write_expected(expected_dir or out_dir.parent / f"{out_dir.name}_expected", expectations, seed)
    return {file_name: exp.rows for file_name, exp in expectations.items()}


def _reindex_duplicates(offers: list[_Offer]) -> None:
    """After inserting rows, point each duplicate at the earlier offer with its SKU."""
    for i, offer in enumerate(offers):
        if offer.duplicate_of is not None:
            offer.duplicate_of = next(j for j in range(i) if offers[j].sku == offer.sku
                                      and offers[j].duplicate_of is None)


def _write_expected(expected_dir: Path, expectations: dict[str, _FileExpectation], seed: int) -> None:
    doc = {
        name: {
            "rows": exp.rows,
            "accepted": exp.accepted(),
            "bad": exp.bad,
            "duplicates": exp.duplicates,
            "adversarial": exp.adversarial,
            "notes": exp.notes,
        }
        for name, exp in expectations.items()
    }
    expected_dir.mkdir(parents=True, exist_ok=True)
    (expected_dir / "expected.json").write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
    md = [
        "# Sample distributor feeds: expected validation results",
        "",
        f"Generated by `ysh.samples.catalog.write_sample_feeds(seed={seed})` "
        "(`scripts/make_sample_catalog.py`); do not edit by hand. Products are real CEC "
        "modules/inverters (pvlib 0.16.1 bundled library, 2019-03-05); prices, stock, SKUs "
        "and Inmetro numbers are synthetic.",
        "",
        "Line numbers: CSV and JSON lines = physical line in the file (header = line 1, "
        "blank lines counted); JSON array = 1-based element index.",
        "Rows = data records: CSV rows without header and empty lines (the short row "
        "counts), JSON array elements, non-blank JSON lines (the malformed one counts).",
        "Accepted = rows - quarantined rows - superseded duplicates "
        "(flagged Inmetro rows are accepted).",
        "",
        "Reason codes: `missing_sku`, `unparseable_power`, `power_out_of_range`, "
        "`unparseable_price`, `negative_price`, `unknown_category`, `malformed_json` "
        "(quarantined); `duplicate_sku` (not quarantined, the later row wins; listed on the "
        "superseded line); `inmetro_missing`, `inmetro_invalid` (flagged, not quarantined).",
        "",
        "| file | rows | bad rows listed | quarantined | accepted |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, exp in expectations.items():
        quarantined = sum(1 for b in exp.bad if b["quarantined"])
        md.append(f"| `{name}` | {exp.rows} | {len(exp.bad)} | {quarantined} | {exp.accepted()} |")
    for name, exp in expectations.items():
        unit = "element" if name.endswith(".json") else "line"
        md += ["", f"## `{name}`", "", f"{exp.rows} data rows.", "",
               f"| {unit} | reason | quarantined | note |", "|---:|---|---|---|"]
        for b in exp.bad:
            md.append(f"| {b['line']} | `{b['reason']}` | {'yes' if b['quarantined'] else 'no'} "
                      f"| {b['note'].replace('|', '/')} |")
        for d in exp.duplicates:
            md.append("")
            md.append(f"Duplicate SKU `{d['sku']}` on {unit}s {d['lines'][0]} and "
                      f"{d['lines'][1]} (different prices; {unit} {d['lines'][1]} wins).")
        for a in exp.adversarial:
            md.append("")
            md.append(f"Adversarial but valid: {unit} {a['line']} has `{a['text']}` in its "
                      f"description; it must be accepted and stored verbatim.")
        for note in exp.notes:
            md.append("")
            md.append(f"Note: {note}.")
    (expected_dir / "EXPECTED.md").write_text("\n".join(md) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------
# benchmark feed
# --------------------------------------------------------------------------------------


def write_benchmark_feed(path: Path, n_rows: int, seed: int = 11) -> None:
    """Write one large feed in the style of ``sol_nascente_distribuidora.csv``.

    ``;``-separated UTF-8 CSV (CRLF) with the Sol Nascente header, ``n_rows`` data rows
    drawn from :func:`load_real_products` (default product seed), unique SKUs
    ``BM-0000001``..., and about 1 % bad rows, equally split between missing SKU (empty),
    unparseable power (``abc``) and negative price. Written with the csv module
    (200,000 rows take about a second).

    Parameters
    ----------
    path : pathlib.Path
        output file (parent directories are created).
    n_rows : int
        number of data rows (header excluded).
    seed : int
        row seed; same seed and ``n_rows``, same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    products = load_real_products()
    rng = random.Random(f"benchmark:{seed}")
    templates = []
    for product in products:
        variants = _BRAND_VARIANTS.get(product.brand, (product.brand,))
        descriptions = [_description(product, v.strip(), rng) for v in variants[:3]]
        powers = ([str(product.power_w)] if product.category == "module" or product.power_w < 1000
                  else [_fmt_thousands(product.power_w), f"{_fmt_kw(product.power_w)} kW"])
        categories = {"module": ("Módulo Fotovoltaico", "Painel Solar"),
                      "inverter": ("Inversor", "Inversor String"),
                      "microinverter": ("Microinversor",)}[product.category]
        templates.append((product, [v.strip() for v in variants[:3]], descriptions, powers,
                          categories, _inmetro_for(f"{product.brand}|{_model_key(product.model)}")))

    def rows():
        n_templates = len(templates)
        for i in range(1, n_rows + 1):
            product, brands, descriptions, powers, categories, inmetro = templates[rng.randrange(n_templates)]
            k = rng.randrange(len(brands))
            sku = f"BM-{i:07d}"
            power = powers[rng.randrange(len(powers))]
            price = product.price_brl * (0.92 + 0.16 * rng.random())
            r = rng.random()
            if r < 0.01:
                defect = int(r * 300) % 3
                if defect == 0:
                    sku = ""
                elif defect == 1:
                    power = "abc"
                else:
                    price = -price
            yield (sku, descriptions[k], brands[k], product.model,
                   categories[i % len(categories)], power, _fmt_brl(price),
                   str(rng.randrange(0, 500)), inmetro)

    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        writer.writerow(SOL_NASCENTE_HEADER)
        writer.writerows(rows())
