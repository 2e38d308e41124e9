"""Brands: canonical names and aliases, brands found in free text, distributors' names."""

from __future__ import annotations

import re
from functools import lru_cache

from .text import strip_accents

# --------------------------------------------------------------------------------------
# brands
# --------------------------------------------------------------------------------------

#: canonical brand → aliases (matched without case, spaces, hyphens, dots, underscores).
BRAND_ALIASES: dict[str, tuple[str, ...]] = {
    "JA Solar": ("JA Solar", "JASolar", "JA Solar Technology", "JA"),
    "Jinko Solar": ("Jinko", "Jinko Solar", "JinkoSolar", "Jinko Solar Co"),
    "Trina Solar": ("Trina", "Trina Solar", "TrinaSolar"),
    "Canadian Solar": ("Canadian", "Canadian Solar", "CSI", "CSI Solar"),
    "LONGi": ("LONGi", "LONGi Solar", "LONGi Green Energy", "LONGi Green Energy Technology"),
    "Risen": ("Risen", "Risen Energy"),
    "BYD": ("BYD",),
    "DAH Solar": ("DAH", "DAH Solar", "DAHSolar"),
    "Astronergy": ("Astronergy", "Chint Astronergy", "Astronergy Solar"),
    "Growatt": ("Growatt", "Growatt New Energy"),
    "Fronius": ("Fronius",),
    "WEG": ("WEG",),
    "Deye": ("Deye", "Ningbo Deye"),
    "Huawei": ("Huawei", "Huawei FusionSolar", "FusionSolar", "Huawei Technologies"),
    "SolarEdge": ("SolarEdge", "Solar Edge", "SolarEdge Technologies"),
    "Sungrow": ("Sungrow", "Sungrow Power"),
    "GoodWe": ("GoodWe", "Good We"),
    "Hoymiles": ("Hoymiles",),
    "APsystems": ("APsystems", "AP Systems", "APS"),
    "SMA": ("SMA", "SMA Solar", "SMA Solar Technology"),
    "Sofar": ("Sofar", "Sofar Solar", "SofarSolar"),
    "Solis": ("Solis", "Ginlong", "Ginlong Solis"),
    "Enphase": ("Enphase", "Enphase Energy"),
    # makers seen in Brazilian distributors' storefronts (October 2025 exports)
    "Hanersun": ("Hanersun", "Hanersun Solar"),
    "OSDA": ("OSDA", "OSDA Solar"),
    "Minasol": ("Minasol",),
    "Tsuness": ("Tsuness", "TSUN", "TSUN ESS"),
    "Solar N Plus": ("Solar N Plus", "SolarNPlus"),
    "Unipower": ("Unipower", "Unip"),
    "Livoltek": ("Livoltek",),
    "Epever": ("Epever", "EPsolar"),
    "Polimax": ("Polimax",),
    "Chint": ("Chint", "Chint Power"),
    "Intelbras": ("Intelbras",),
    "Renovigi": ("Renovigi",),
    "Solplanet": ("Solplanet",),
    "SAJ": ("SAJ", "SAJ Electric"),
    "FoxESS": ("FoxESS", "Fox ESS"),
    "Auxsol": ("Auxsol",),
    "Pylontech": ("Pylontech",),
    "Dyness": ("Dyness",),
    "Victron": ("Victron", "Victron Energy"),
    "Sunova": ("Sunova", "Sunova Solar"),
    "Znshine": ("Znshine", "ZNShine Solar"),
    "Tongwei": ("Tongwei",),
    "Leapton": ("Leapton",),
    "Honor Solar": ("Honor Solar",),
    "Ecoflow": ("EcoFlow",),
    "Kehua": ("Kehua",),
    "Solax": ("Solax", "SolaX Power"),
    "Aiko": ("Aiko",),
    "CCM": ("CCM", "CCM Estruturas"),
}

#: Brazilian distributors: a ``manufacturer`` that names one of them (storefront dumps
#: write the seller there) is no brand, and the brand comes from the product text.
DISTRIBUTOR_NAMES = ("Solfácil", "Solfacil", "FOTUS", "NeoSolar", "Aldo", "Aldo Solar", "ODEX",
                     "Edeltec", "BelEnergy", "WEG Distribuidor", "Renovigi Distribuidor",
                     "Soollar", "Serrana Solar", "SICES", "Elgin Distribuidor", "Solaryum")


def is_distributor_name(text: str | None, distributor: str | None = None) -> bool:
    """Whether ``text`` names a distributor (a known one, or the feed's own) rather than
    a manufacturer."""
    if not text:
        return False
    key = _brand_key(str(text))
    names = DISTRIBUTOR_NAMES + ((distributor,) if distributor else ())
    return any(key == _brand_key(n) or (len(key) > 3 and key.startswith(_brand_key(n)) and len(_brand_key(n)) > 3)
               for n in names)


def _brand_key(text: str) -> str:
    key = re.sub(r"[\s\-_.,]+", "", strip_accents(text).lower())
    return re.sub(r"(co|ltd|inc|sa|ltda|corp)+$", "", key) or key


_BRAND_INDEX: dict[str, str] = {
    _brand_key(alias): brand for brand, aliases in BRAND_ALIASES.items() for alias in aliases
}


@lru_cache(maxsize=4_096)
def canonical_brand(text: str | None) -> str | None:
    """Canonical brand name: ``"JINKO"`` → ``"Jinko Solar"``, and a known brand inside a
    company name (``"SMA Solar Technology AG"`` → ``"SMA"``). Unknown brands are trimmed,
    inner spaces collapsed, and title-cased when written all upper or all lower case
    (``"ACME SOLAR"`` ≡ ``"acme solar"`` → ``"Acme Solar"``); empty → None."""
    if text is None:
        return None
    cleaned = re.sub(r"\s+", " ", str(text)).strip()
    if not cleaned:
        return None
    known = _BRAND_INDEX.get(_brand_key(cleaned))
    if known:
        return known
    found = find_brand(cleaned)
    if found:
        return found[0]
    return cleaned.title() if cleaned.isupper() or cleaned.islower() else cleaned


def _alias_pattern(alias: str) -> str:
    # letters of each word joined by optional separators: "JA Solar" ≈ "ja-solar" ≈ "jasolar"
    words = re.split(r"[\s\-_.]+", strip_accents(alias).lower())
    return r"[\s\-_.]*".join(re.escape(w) for w in words if w)


@lru_cache(maxsize=1)
def _brand_regex() -> re.Pattern[str]:
    aliases = sorted(
        ((alias, brand) for brand, al in BRAND_ALIASES.items() for alias in al
         if len(_brand_key(alias)) >= 3 or alias in ("JA",)),
        key=lambda ab: -len(ab[0]),
    )
    parts = [f"(?P<b{i}>{_alias_pattern(a)})" for i, (a, _) in enumerate(aliases)]
    _brand_regex.brands = [b for _, b in aliases]  # type: ignore[attr-defined]
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?![a-z0-9])")


def find_brand(text: str) -> tuple[str, tuple[int, int]] | None:
    """First known brand mentioned in free text, with its span in the accent-free
    lower-cased text. ``"Módulo JA Solar JAM72S30"`` → ``("JA Solar", (7, 15))``."""
    regex = _brand_regex()
    m = regex.search(strip_accents(text).lower())
    if not m:
        return None
    index = int(m.lastgroup[1:])  # type: ignore[index]
    brand = _brand_regex.brands[index]  # type: ignore[attr-defined]
    if brand == "JA Solar" and m.group(0).strip() == "ja":
        # bare "JA" only counts when followed by a JA model code (JAM...)
        if not re.match(r"\s*jam", strip_accents(text).lower()[m.end():]):
            return None
    return brand, m.span()
