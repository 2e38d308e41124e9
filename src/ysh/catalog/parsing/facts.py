"""Facts a product description states: brand, model, category, power, technology, phases, ..."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .brands import find_brand
from .categories import category_from_description
from .numbers import parse_decimal, parse_power_w
from .text import strip_accents

# --------------------------------------------------------------------------------------
# facts inferred from a description
# --------------------------------------------------------------------------------------

_POWER_IN_TEXT = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:\.\d{3})+|\d+(?:[.,]\d+)?)\s*(kwp|kw|wp|w)(?![a-z0-9])", re.IGNORECASE
)
_EFFICIENCY_IN_TEXT = re.compile(r"(\d{1,2}(?:[.,]\d{1,2})?)\s*%")
_MPPT_IN_TEXT = re.compile(r"(\d{1,2})\s*mppts?\b", re.IGNORECASE)
_TECHNOLOGIES = (
    (re.compile(r"topcon|n[\s\-]?type", re.I), "TOPCon"),
    (re.compile(r"\bhjt\b|heterojun", re.I), "HJT"),
    (re.compile(r"\bibc\b|back[\s\-]?contact|\bhpbc\b|\babc\b", re.I), "BC"),
    (re.compile(r"\bperc\b", re.I), "PERC"),
    (re.compile(r"\bpoly|policristal|multi[\s\-]?c", re.I), "poly"),
    (re.compile(r"\bmono(?!fas)|monocristal", re.I), "mono"),
    (re.compile(r"\bcdte\b|thin[\s\-]?film|filme\s+fino", re.I), "thin-film"),
)
_PHASES = (
    (re.compile(r"trifasic|three[\s\-]?phase|\b3f\b|\b3ph\b", re.I), 3),
    (re.compile(r"bifasic|split[\s\-]?phase|\b2f\b", re.I), 2),
    (re.compile(r"monofasic|single[\s\-]?phase|\b1f\b|\b1ph\b", re.I), 1),
)
_MODEL_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-/.+_]*")


def find_power_w(text: str) -> float | None:
    """First power written with a unit in free text (``"550W"``, ``"5 kW"``, ``"0,55kWp"``) [W]."""
    m = _POWER_IN_TEXT.search(text)
    if not m:
        return None
    return parse_power_w(m.group(1) + m.group(2))


def _first_match(table, text: str):
    """The value of the first ``(regex, value)`` of ``table`` found in the accent-free text."""
    plain = strip_accents(text)
    return next((value for regex, value in table if regex.search(plain)), None)


@lru_cache(maxsize=16_384)
def find_technology(text: str) -> str | None:
    """Cell/inverter technology named in text; the most specific one wins."""
    return _first_match(_TECHNOLOGIES, text)


def find_phases(text: str) -> int | None:
    return _first_match(_PHASES, text)


def find_mppt_count(text: str) -> int | None:
    m = _MPPT_IN_TEXT.search(text)
    return int(m.group(1)) if m else None


def find_efficiency_pct(text: str) -> float | None:
    m = _EFFICIENCY_IN_TEXT.search(text)
    return parse_decimal(m.group(1)) if m else None


_VOLTAGE_IN_TEXT = re.compile(r"(?<![\d.,])(\d{3})\s*v(?:ac|ca)?\b", re.I)
_AC_VOLTAGES = frozenset({110, 115, 120, 127, 208, 220, 230, 240, 254, 380, 400, 415, 440, 480, 800})
_SHORT_PHASES = (
    (re.compile(r"\btri\b|\btrif\b", re.I), 3),
    (re.compile(r"\bbif?\b", re.I), 2),
    (re.compile(r"\bmono\b|\bmonof\b", re.I), 1),
)
_KWH_IN_TEXT = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s*kwh\b", re.I)
_AH_IN_TEXT = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s*ah\b", re.I)
_BATTERY_V_IN_TEXT = re.compile(r"(?<![\w.,])(\d{1,3}(?:[.,]\d+)?)\s*v(?:dc|cc)?\b", re.I)
_EFFICIENCY_MARKED = re.compile(r"\bef(?:f|ic(?:iencia)?)?\.?\s*:?\s*(\d{1,2}(?:[.,]\d{1,2})?)\s*%", re.I)
_KWP_IN_TEXT = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s*kwp\b", re.I)


def find_ac_voltage_v(text: str) -> float | None:
    """AC voltage stated in an inverter's text (``"MONO 220V"`` → 220) [V]; only the
    grid's standard voltages count, so a battery's 48 V or a string's 1100 V is not one."""
    for m in _VOLTAGE_IN_TEXT.finditer(strip_accents(text)):
        value = int(m.group(1))
        if value in _AC_VOLTAGES:
            return float(value)
    return None


def find_inverter_phases(text: str) -> int | None:
    """Phases of an inverter, also from the storefronts' short forms (``MONO 220V``,
    ``TRI 380V``); ``mono`` alone is not read on modules, where it means monocrystalline."""
    return _first_match(_PHASES + _SHORT_PHASES, text)


def find_battery_kwh(text: str) -> float | None:
    """Usable energy of a battery [kWh]: a stated kWh (``5.1KWH``) first, else Ah × V
    (``48V 100AH`` → 4.8)."""
    s = strip_accents(text)
    m = _KWH_IN_TEXT.search(s)
    try:
        if m:
            return parse_decimal(m.group(1), ambiguous_comma="decimal")
        ah, volts = _AH_IN_TEXT.search(s), _BATTERY_V_IN_TEXT.search(s)
        if ah and volts:
            return round(parse_decimal(ah.group(1), ambiguous_comma="decimal")
                         * parse_decimal(volts.group(1), ambiguous_comma="decimal") / 1000.0, 3)
    except ValueError:
        return None
    return None


def find_kwp_w(text: str) -> float | None:
    """A generator's DC power written in kWp (``"1,14 kWp"``, ``"9.92kWp"``) [W]."""
    m = _KWP_IN_TEXT.search(text)
    if not m:
        return None
    try:
        return round(parse_decimal(m.group(1), ambiguous_comma="decimal") * 1000.0, 3)
    except ValueError:
        return None


def find_marked_efficiency_pct(text: str) -> float | None:
    """Efficiency written with its marker (``EF. 22.6%``, ``(22,1% EF.)``, ``eficiência 21%``)."""
    s = strip_accents(text)
    m = _EFFICIENCY_MARKED.search(s) or re.search(r"(\d{1,2}(?:[.,]\d{1,2})?)\s*%\s*ef\b", s, re.I)
    if not m:
        return None
    try:
        return parse_decimal(m.group(1), ambiguous_comma="decimal")
    except ValueError:
        return None


_NOT_A_MODEL = re.compile(
    r"ip\d{2}|\d+([.,]\d+)?(mm2?|m|mts?|v|vdc|vac|vcc|vca|kv|kvcc|kvca|a|hz|mppts?|kwh|wh|ah|kva|va|mm²)"
    r"|\d+x\d+", re.I)


def find_model(text: str, brand_span: tuple[int, int] | None) -> str | None:
    """Model code in a description, e.g. ``"JAM72S30-550/MR"`` in
    ``"Módulo JA Solar JAM72S30-550/MR 550W"``.

    Candidates are tokens of at least 4 characters mixing letters and digits that are not a
    power, a rating (``IP65``, ``60Hz``, ``5.1kWh``, ``6mm``) or a quantity. Tokens after the
    brand come first; among them a code with a hyphen or slash (``CS6W-550MS``) beats a
    plain one (a series name such as ``HiKu6``). ``brand_span`` indexes ``text``.
    """
    start = brand_span[1] if brand_span else 0
    for segment in (text[start:], text) if start else (text,):
        plain = None
        for m in _MODEL_TOKEN.finditer(segment):
            token = m.group(0).strip(".-/_+")
            if len(token) < 4:
                continue
            if not (re.search(r"[A-Za-z]", token) and re.search(r"\d", token)):
                continue
            if _POWER_IN_TEXT.fullmatch(token) or _NOT_A_MODEL.fullmatch(token):
                continue
            if "-" in token or "/" in token:
                return token
            plain = plain or token
        if plain:
            return plain
    return None


@dataclass(frozen=True)
class DescriptionFacts:
    """What a product description says about the product (None: not said)."""

    brand: str | None = None
    model: str | None = None
    category: str | None = None
    power_w: float | None = None
    technology: str | None = None
    efficiency_pct: float | None = None
    phases: int | None = None
    mppt_count: int | None = None


@lru_cache(maxsize=32_768)
def infer_from_description(description: str | None) -> DescriptionFacts:
    """Facts from a free-text description such as
    ``"Módulo Fotovoltaico JA Solar JAM72S30-550/MR 550W Mono PERC"``."""
    if not description:
        return DescriptionFacts()
    text = strip_accents(str(description))  # spans of find_brand index this text
    found = find_brand(text)
    brand, span = (found if found else (None, None))
    try:
        power = find_power_w(text)
    except ValueError:
        power = None
    try:
        efficiency = find_efficiency_pct(text)
    except ValueError:
        efficiency = None
    return DescriptionFacts(
        brand=brand,
        model=find_model(text, span),
        category=category_from_description(text),
        power_w=power,
        technology=find_technology(text),
        efficiency_pct=efficiency,
        phases=find_phases(text),
        mppt_count=find_mppt_count(text),
    )
