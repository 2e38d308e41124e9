"""Numbers written the Brazilian or the English way, powers, BRL prices and stock counts.

Brazilian feeds write numbers the Brazilian way (``1.234,56``: dot for thousands,
comma for decimals) but English exports use ``1,234.56`` or ``1234.56``; the rule in
:func:`parse_decimal` decides between them without guessing from the column.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from .text import strip_accents

# --------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------

_BR_THOUSANDS = re.compile(r"^\d{1,3}(\.\d{3})+$")
_EN_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+$")
_NUMBER_CHARS = re.compile(r"^[+-]?[\d.,]+$")


def parse_decimal(text: str, *, ambiguous_comma: str = "refuse") -> float:
    """Parse a number written the Brazilian or the English way.

    Rules, in order:

    1. Both ``.`` and ``,`` present: the one that comes last is the decimal separator
       (``1.234,56`` and ``1,234.56`` are both 1234.56).
    2. Only ``,``: it is the decimal separator (``0,55`` → 0.55, ``1234,5`` → 1234.5),
       unless it appears more than once in thousands groups (``1,234,567``).
    3. Only ``.``: thousands groups when the text is ``d{1,3}(.ddd)+`` and does not start
       with ``0`` (``5.000`` → 5000, ``1.234.567`` → 1234567), else decimal (``550.5``).

    ``1,234`` (one comma, three digits after it, not starting with 0) is ambiguous between
    a Brazilian decimal and an English thousands group: refused rather than guessed
    (prices, stock), unless ``ambiguous_comma="decimal"`` says the context is Brazilian
    (a power such as ``5,052 kW``); ``0,550`` and ``1,5`` are always decimals.

    Raises
    ------
    ValueError
        empty text, letters, several decimal separators, an ambiguous or infinite number.
    """
    s = text.strip().replace(" ", "").replace("\u00a0", "")
    if s.isdigit() and len(s) < 300:  # fast paths for the common shapes: "550", "612,50"
        return float(s)
    integer, comma, fraction = s.partition(",")
    if comma and integer.isdigit() and fraction.isdigit() and len(s) < 300:
        if len(fraction) == 3 and len(integer) <= 3 and integer[0] != "0" and ambiguous_comma == "refuse":
            raise ValueError(f"ambiguous number: {text!r} (1,234 may be 1.234 or 1234)")
        return float(f"{integer}.{fraction}")
    if not s or not _NUMBER_CHARS.match(s):
        raise ValueError(f"not a number: {text!r}")
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if not s or not any(ch.isdigit() for ch in s):
        raise ValueError(f"not a number: {text!r}")
    if "." in s and "," in s:
        decimal_sep = "," if s.rfind(",") > s.rfind(".") else "."
        thousands_sep = "." if decimal_sep == "," else ","
        integer, _, fraction = s.rpartition(decimal_sep)
        if thousands_sep in fraction or decimal_sep in integer:
            raise ValueError(f"ambiguous number: {text!r}")
        groups = integer.split(thousands_sep)
        if groups[0] == "" or any(len(g) != 3 for g in groups[1:]) or len(groups[0]) > 3:
            raise ValueError(f"bad thousands grouping: {text!r}")
        s = "".join(groups) + "." + fraction
    elif "," in s:
        if s.count(",") > 1:
            if not _EN_THOUSANDS.match(s):
                raise ValueError(f"bad number: {text!r}")
            s = s.replace(",", "")
        else:
            integer, _, fraction = s.partition(",")
            if (len(fraction) == 3 and 0 < len(integer) <= 3 and integer[0] != "0"
                    and fraction.isdigit() and ambiguous_comma == "refuse"):
                raise ValueError(f"ambiguous number: {text!r} (1,234 may be 1.234 or 1234)")
            s = s.replace(",", ".")
    elif "." in s:
        if s.count(".") > 1 or (_BR_THOUSANDS.match(s) and not s.startswith("0")):
            if not _BR_THOUSANDS.match(s):
                raise ValueError(f"bad number: {text!r}")
            s = s.replace(".", "")
    if s.startswith(".") or s.endswith("."):
        raise ValueError(f"bad number: {text!r}")
    value = sign * float(s)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]!r}")
    return value


_POWER = re.compile(
    r"^(?P<num>[+-]?[\d.,\s]*\d[\d.,]*)\s*(?P<unit>mw|kwp|kw|wp|w)?$", re.IGNORECASE
)
_UNIT_FACTOR = {"w": 1.0, "wp": 1.0, "kw": 1000.0, "kwp": 1000.0, "mw": 1_000_000.0}


@lru_cache(maxsize=16_384)
def parse_power_w(text: str, default_unit: str = "W") -> float:
    """Power in watts from text such as ``550``, ``550W``, ``550 Wp``, ``0,55 kW``, ``5.000 W``.

    Parameters
    ----------
    text : str
        the value as written in the feed.
    default_unit : {"W", "kW"}
        unit of a value written without one (from the column header, e.g. ``potencia_kw``).

    Returns
    -------
    float
        power [W].

    Raises
    ------
    ValueError
        text that is not a number with an optional W/Wp/kW/kWp/MW unit.
    """
    m = _POWER.match(text.strip())
    if not m:
        raise ValueError(f"not a power: {text!r}")
    unit = (m.group("unit") or default_unit).lower()
    # "5,052 kW" is 5.052 kW: a power's comma is decimal (a wrong guess lands far outside
    # the plausible ranges and is quarantined there)
    value = parse_decimal(m.group("num"), ambiguous_comma="decimal") * _UNIT_FACTOR[unit]
    return value


_CURRENCY = re.compile(r"^(r\$|brl)\s*", re.IGNORECASE)


def parse_price_brl(text: str) -> float:
    """Unit price in BRL from ``R$ 1.234,56``, ``1.234,56``, ``1234,56``, ``1234.56``, ``BRL 99``.

    A negative price parses (it is a data error the caller reports, not a parse error).

    Raises
    ------
    ValueError
        text that is not a number after removing the currency marker.
    """
    s = text.strip()
    negative = s.startswith("-")
    s = _CURRENCY.sub("", s.lstrip("-").strip())
    value = parse_decimal(s)
    return -value if negative else value


_NO_STOCK_WORDS = frozenset({"", "-", "sob consulta", "consultar", "n/d", "nd", "na", "n/a"})


@lru_cache(maxsize=16_384)
def parse_stock(text: str) -> int | None:
    """Units in stock: ``12``, ``1.200``, ``"sob consulta"`` (unknown → None).

    Raises
    ------
    ValueError
        text that is not a whole number.
    """
    s = strip_accents(text).strip().lower()
    if s in _NO_STOCK_WORDS:
        return None
    s = re.sub(r"\s*(un|und|unid|unidades|pcs|pc)\.?$", "", s)
    value = parse_decimal(s)
    if value != int(value):
        raise ValueError(f"stock is not a whole number: {text!r}")
    return int(value)
