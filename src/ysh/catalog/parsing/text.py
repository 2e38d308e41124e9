"""Text keys of the feeds: accents stripped, header keys, SKU and model keys."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# --------------------------------------------------------------------------------------
# text helpers
# --------------------------------------------------------------------------------------


_ACCENTED = "áàâãäåÁÀÂÃÄÅéèêëÉÈÊËíìîïÍÌÎÏóòôõöÓÒÔÕÖúùûüÚÙÛÜçÇñÑ"
_PLAIN = "aaaaaaAAAAAAeeeeEEEEiiiiIIIIoooooOOOOOuuuuUUUUcCnN"
_ACCENT_TABLE = str.maketrans(_ACCENTED, _PLAIN)


@lru_cache(maxsize=65_536)
def _strip_accents_slow(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def strip_accents(text: str) -> str:
    """Remove diacritics: ``"Potência"`` → ``"Potencia"``.

    ASCII text is returned as is and Portuguese letters go through a translation table;
    anything else falls back to Unicode decomposition (NFKD).
    """
    if text.isascii():
        return text
    translated = text.translate(_ACCENT_TABLE)
    return translated if translated.isascii() else _strip_accents_slow(translated)


def normalize_header(header: str) -> str:
    """Header key used for synonym matching: accent-free, lower-case, ``_``-joined words.

    ``"Potência (Wp)"`` → ``"potencia_wp"``; ``"\\ufeffCódigo"`` → ``"codigo"``;
    ``"Valor Unitário"`` → ``"valor_unitario"``.
    """
    text = strip_accents(header.replace("\ufeff", "")).lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


# --------------------------------------------------------------------------------------
# identifiers
# --------------------------------------------------------------------------------------


def normalize_sku(text: str | None) -> str | None:
    """SKU key: trimmed, upper-case, inner whitespace removed; empty → None."""
    if text is None:
        return None
    sku = re.sub(r"\s+", "", str(text)).upper()
    return sku or None


@lru_cache(maxsize=65_536)
def model_key(model: str) -> str:
    """Key that groups spellings of one model: ``JAM72S30-550/MR`` ≡ ``jam72s30 550 mr``."""
    return re.sub(r"[^A-Z0-9]", "", strip_accents(model).upper())
