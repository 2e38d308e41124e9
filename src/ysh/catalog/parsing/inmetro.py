"""Inmetro registration numbers: status (ok, missing, invalid) and normal form."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

# --------------------------------------------------------------------------------------
# Inmetro registration
# --------------------------------------------------------------------------------------

_INMETRO = re.compile(
    r"^(?:(?:n[ºo°.]*|reg(?:istro)?\.?|inmetro|de|do)\s*)*(\d{3,6})\s*/\s*(\d{4})$", re.I)
FIRST_INMETRO_YEAR = 2011  # Portaria Inmetro 004/2011: conformity assessment of PV equipment


def inmetro_status(registration: str | None, today: date | None = None) -> str:
    """Status of an Inmetro registration number.

    Rule: ``missing`` when empty; ``ok`` when it reads ``NNN/YYYY`` (3–6 digits, a slash,
    a 4-digit year, optionally prefixed by ``Nº``/``Registro``) with the year between
    2011 (first PV conformity ordinance, Portaria Inmetro 004/2011) and the current year;
    ``invalid`` otherwise. A missing or invalid registration flags the item, it does not
    drop it.
    """
    return _inmetro_status(registration, (today or date.today()).year)


@lru_cache(maxsize=65_536)
def _inmetro_status(registration: str | None, current_year: int) -> str:
    if registration is None or not str(registration).strip():
        return "missing"
    m = _INMETRO.match(str(registration).strip())
    if not m:
        return "invalid"
    return "ok" if FIRST_INMETRO_YEAR <= int(m.group(2)) <= current_year else "invalid"


@lru_cache(maxsize=65_536)
def normalize_inmetro(registration: str | None) -> str | None:
    """Registration as ``NNNNNN/YYYY`` when it is well formed, else the trimmed text."""
    if registration is None:
        return None
    s = str(registration).strip()
    if not s:
        return None
    m = _INMETRO.match(s)
    return f"{int(m.group(1)):06d}/{m.group(2)}" if m else s
