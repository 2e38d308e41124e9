"""Categories: the catalog's categories and the named rules that find one in a text."""

from __future__ import annotations

import re
from functools import lru_cache

from .text import strip_accents

# --------------------------------------------------------------------------------------
# categories
# --------------------------------------------------------------------------------------

#: the catalog's categories (docs/catalog.md, "Categories").
CATEGORIES = ("module", "inverter", "microinverter", "hybrid_inverter", "offgrid_inverter",
              "battery", "kit", "structure", "string_box", "cable", "charge_controller",
              "ev_charger", "pump_kit", "accessory", "other")
#: categories whose power is a rated AC power (the inverter family)
INVERTER_CATEGORIES = frozenset({"inverter", "microinverter", "hybrid_inverter", "offgrid_inverter"})

# Compound names are checked first (a "kit" of fixings is a structure, a "módulo de
# bateria" a battery, a "controlador MPPT" no inverter); then the category whose keyword
# comes first in the text decides ("Cabo para módulo" is a cable, "Inversor com Wi-Fi" an
# inverter). Each rule has a name: the item records the one that decided.
_COMPOUND_RULES: tuple[tuple[str, str], ...] = (
    (r"modulo\s+de\s+bateria|battery\s+module|bateria\s+modular", "battery"),
    (r"\bkit\s+(?:de\s+)?(?:bombeamento|bomba)|bomba\s+solar|bombeamento\s+solar|solar\s+pump"
     r"|\bmotobomba", "pump_kit"),
    (r"\bkits?\s+(?:de\s+|p/?\s*)?(?:fixa|suporte|montagem|telhado|estrutura|trilho|perfil|laje"
     r"|solo|grampo|parafuso|aterramento|emenda)", "structure"),
    (r"\bkits?\s+(?:de\s+)?(?:cabos?|conectores?)\b", "cable"),
    (r"\bkits?\s+(?:gerador|fotovoltaico|solar|energia\s+solar|on[\s\-]?grid|off[\s\-]?grid|hibrido)"
     r"|gerador\s+(?:de\s+energia\s+)?(?:solar|fotovoltaico)|\bsolar\s+kit\b", "kit"),
    (r"controlador(?:es)?\s+(?:de\s+)?carga|charge\s+controller|controlador\s+(?:mppt|pwm)"
     r"|\b\d{1,3}\s*a\s+(?:mppt|pwm)\b", "charge_controller"),
    (r"carregador(?:es)?\s+(?:veicular|(?:de\s+|para\s+)?(?:veiculos?|carros?)\s*(?:eletricos?)?)|wall\s*box"
     r"|\bev\s+charger|estacao\s+de\s+recarga|carregador\s+ev\b", "ev_charger"),
    (r"unidade\s+de\s+controle|\bpcu\b|\bbms\b|medidor|smart\s*meter|datalogger|data\s+logger"
     r"|ezlogger|\bdongle\b|wi[\s\-]?fi\s+(?:stick|kit|plus|box)", "accessory"),
)
_CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    (r"micro[\s\-_]*invers|micro[\s\-_]*inverter|\bmicro\b", "microinverter"),
    (r"\bbaterias?\b|\bbatter(y|ies)\b|\bbess\b|armazenamento|\bstorage\b|\blitio\b|\blithium\b"
     r"|\b\d+\s*ah\b", "battery"),
    (r"invers|inverter|\bhibrido\b|\bhybrid\b", "inverter"),
    (r"string[\s\-_]*box|stringbox|quadro\s+de\s+prote|caixa\s+de\s+juncao", "string_box"),
    (r"\bcabos?\b|\bcables?\b|\bcabling\b", "cable"),
    (r"estrutura|suporte|trilho|\bperfil|\bperfis\b|parafuso|grampo|\bgancho|fixacao|fixador"
     r"|\bstructures?\b|mounting|\blaje\b", "structure"),
    (r"\bmodul(o|os|e|es)\b|\bpain(el|eis)\b|\bpanels?\b|\bplacas?\b|fotovoltaic|photovoltaic|\bpv\b",
     "module"),
    (r"conector|\bmc4\b|acessori|accessor|ferramenta|disjuntor|\bdps\b|otimizador|optimizer"
     r"|\bwi[\s\-_]*fi\b|monitoramento|\bkit\b|\bfusivel|\bchave\b|\btomada", "accessory"),
)
_COMPOUND_REGEX = tuple((re.compile(p), c) for p, c in _COMPOUND_RULES)
_CATEGORY_REGEX = tuple((re.compile(p), c) for p, c in _CATEGORY_RULES)
#: a category column's own words (scrapers' English plurals, distributors' menus)
_COLUMN_CATEGORIES = {
    "kits": "kit", "kit": "kit", "kits_hibridos": "kit", "kits_off_grid": "kit", "kits_on_grid": "kit",
    "geradores": "kit", "gerador": "kit", "inverters": "inverter", "panels": "module",
    "cables": "cable", "structures": "structure", "accessories": "accessory",
    "batteries": "battery", "outros": "other", "others": "other", "diversos": "other",
}
_HYBRID = re.compile(r"hibrid|hybrid")
_OFFGRID = re.compile(r"off[\s\-]?grid|isolad[oa]|autonom")


def _refine_inverter(category: str, s: str) -> str:
    if category != "inverter":
        return category
    if _HYBRID.search(s):
        return "hybrid_inverter"
    if _OFFGRID.search(s):
        return "offgrid_inverter"
    return category


@lru_cache(maxsize=8_192)
def category_with_rule(text: str | None) -> tuple[str | None, str]:
    """Category named in ``text`` and the rule that decided it (``"compound: kit fixacao"``,
    ``"keyword: micro inversor"``); ``(None, "")`` when no rule matches. An inverter is a
    hybrid or an off-grid inverter when the text says so anywhere."""
    if text is None:
        return None, ""
    s = strip_accents(str(text)).lower().strip()
    if not s:
        return None, ""
    if s in CATEGORIES:
        return s, f"canonical: {s}"
    key = re.sub(r"[^a-z0-9]+", "_", s).strip("_")
    if key in _COLUMN_CATEGORIES:
        return _COLUMN_CATEGORIES[key], f"category word: {s}"
    best: tuple[int, str, str] | None = None
    for regex, category in _COMPOUND_REGEX:
        m = regex.search(s)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), category, f"compound: {m.group(0)}")
    if best is None:
        for regex, category in _CATEGORY_REGEX:
            m = regex.search(s)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), category, f"keyword: {m.group(0)}")
    if best is None:
        return None, ""
    category = _refine_inverter(best[1], s)
    rule = best[2] if category == best[1] else f"{best[2]} + {category.replace('_inverter', '')}"
    return category, rule


def parse_category(text: str | None) -> str | None:
    """Category from a category column value (``"Módulo Fotovoltaico"`` → ``"module"``).

    Returns None when the text names no known category (the caller quarantines the row
    as ``unknown_category``); returns the value itself when it already is canonical.
    """
    return category_with_rule(text)[0]


def category_from_description(text: str) -> str | None:
    """Category from a product description; only its first words are looked at, since
    descriptions start with the product type (``"Inversor Growatt ... para módulos"``)."""
    return category_from_text(text)[0]


@lru_cache(maxsize=16_384)
def category_from_text(text: str) -> tuple[str | None, str, bool]:
    """Category of a product text, the rule, and whether it was found in the text's head
    (its first three words, where storefront titles name the product type)."""
    s = strip_accents(text).lower()
    head = " ".join(s.split()[:3])
    category, rule = category_with_rule(head)
    if category is not None:
        # the head decides the kind; hybrid/off-grid may be said later in the text
        refined = _refine_inverter(category, s)
        return refined, rule if refined == category else f"{rule} + {refined.replace('_inverter', '')}", True
    category, rule = category_with_rule(s)
    return category, rule, False
