"""Generator kits in storefront exports: components, structure type, distribution centre (pure Python).

A kit is sold as one item; its components come from the export's nested arrays
(``panels``, ``inverters`` …), from ``2x 620Wp …`` text, from a scrape's ``Quantidade: N``
cells or from the title's segments (docs/catalog.md, "Storefront exports").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from . import parsing as p
from .exports import _QUANTITY_CELL, _words
from .feeds import Value

_STRUCTURE_WORDS = re.compile(
    r"^(?:cer[aâ]mico|fibrocimento|mini\s*trilho|met[aá]lico|trapezoidal|laje|solo|carport|colonial"
    r"|ondulad[oa]|sem\s+estrutura|telha\s+\w+|telhado\s+\w+|shingle|zipado|romana|francesa|portuguesa"
    r"|kalhetao|kalhet[aã]o|estrutura\s+.*)$", re.I)
_CD = re.compile(r"^(?:cd|centro\s+de\s+distribui[cç][aã]o)\b\s*(.*)$", re.I)
_COMPONENT_TEXT = re.compile(r"(?<![\w.,])(\d{1,4})\s*(?:x|un\.?|und\.?|pcs?)\s+([^|;+]+)", re.I)
_KIT_HINT = re.compile(r"\bkwp\b", re.I)


@dataclass(frozen=True)
class KitDetails:
    structure: str | None
    distribution_center: str | None
    components: list[dict]


def _component(kind_hint: str | None, description: str | None, brand: str | None, power_w: float | None,
               quantity: int | None) -> dict:
    text = description or ""
    category, _ = p.category_with_rule(text) if text else (None, "")
    kind = category if category not in (None, "other", "kit") else kind_hint
    if (kind == "component" or kind is None) and category is None and text:
        # "ASTRONERGY | TIER 1 | 600W N-TYPE BIFACIAL": a panel's title names no type
        watts = p.find_power_w(p.strip_accents(text)) if re.search(r"\d\s*wp?\b", text, re.I) else None
        kind = "module" if watts is not None and 5.0 <= watts <= 800.0 else None
    if kind == "component" or kind is None:
        kind = category or "accessory"
    found_brand = p.canonical_brand(brand) if brand and p.parse_category(brand) is None else None
    if found_brand is None and text:
        hit = p.find_brand(text)
        found_brand = hit[0] if hit else None
    if power_w is None and text and kind in ("module", "inverter", "microinverter", "hybrid_inverter",
                                             "offgrid_inverter"):
        try:
            power_w = p.find_power_w(p.strip_accents(text)) or _attached_power_w(text)
        except ValueError:
            power_w = None
    return {"kind": kind, "brand": found_brand, "power_w": power_w, "quantity": quantity,
            "description": description}


def _attached_power_w(text: str) -> float | None:
    """A power glued to a name (``TSUNESS2250W``)."""
    m = re.search(r"[A-Za-z](\d{3,5})\s*W\b", text)
    return float(m.group(1)) if m else None


def _components_from_json(kind: str, value: Value) -> list[dict]:
    if value is None:
        return []
    try:
        items = json.loads(value) if isinstance(value, str) else value
    except (ValueError, RecursionError):
        return []
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if isinstance(item, str):
            out.extend(components_from_text(item) or [_component(kind, item, None, None, None)])
            continue
        if not isinstance(item, dict):
            continue
        power = None
        for key, factor in (("power_w", 1.0), ("potencia_w", 1.0), ("potencia", 1.0), ("power_kw", 1000.0),
                            ("potencia_kw", 1000.0)):
            raw = item.get(key)
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
                power = round(float(raw) * factor, 3)
                break
        quantity = item.get("quantity", item.get("quantidade", item.get("qtd")))
        quantity = int(quantity) if isinstance(quantity, (int, float)) and not isinstance(quantity, bool) \
            and float(quantity).is_integer() and 0 < quantity < 100_000 else None
        description = item.get("description") or item.get("descricao") or item.get("name") or item.get("nome")
        brand = item.get("brand") or item.get("marca") or item.get("fabricante")
        out.append(_component(kind, str(description) if description else None,
                              str(brand) if brand else None, power, quantity))
    return out


def components_from_text(text: str) -> list[dict]:
    """Components written as ``2x 620Wp DAH | 1x 40A MPPT Epever | 1x 100Ah/48V Lítio``."""
    found = []
    for m in _COMPONENT_TEXT.finditer(text):
        description = m.group(2).strip(" -")
        found.append(_component(None, description, None, None, int(m.group(1))))
    return found


def _components_from_cells(cells: list[str]) -> list[dict]:
    """A scrape's component cells: a product text followed by ``Quantidade: N``."""
    out = []
    for i, cell in enumerate(cells[:-1]):
        m = _QUANTITY_CELL.match(p.strip_accents(cells[i + 1]))
        if m and len(_words(cell)) >= 2 and not _QUANTITY_CELL.match(p.strip_accents(cell)):
            out.append(_component(None, cell, None, None, int(m.group(1))))
    return out


def _components_from_name(name: str) -> list[dict]:
    """The main components named in a kit title (``KP04 - SOLAR N PLUS | 570W … -
    MICROINVERSOR DEYE 2.25KW - 1,14 kWp - Cerâmico - CD ESPÍRITO SANTO``)."""
    out = []
    for segment in re.split(r"\s+-\s+", name):
        if _KIT_HINT.search(segment) or _CD.match(segment) or _STRUCTURE_WORDS.match(segment.strip()):
            continue
        category, _ = p.category_with_rule(segment)
        has_watts = p.find_power_w(p.strip_accents(segment)) is not None or _attached_power_w(segment)
        if category in p.INVERTER_CATEGORIES or (category in (None, "module") and has_watts):
            out.append(_component(category or "module", segment.strip(), None, None, None))
    return out


def looks_like_kit(text: str) -> bool:
    """A generator sold as one item: a kWp power and a module and an inverter named."""
    if not _KIT_HINT.search(text):
        return False
    s = p.strip_accents(text).lower()
    return bool(re.search(r"invers|micro", s)) and bool(re.search(r"\d\s*wp?\b|modul|painel|placa", s))


def kit_details(name: str | None, fields: dict[str, Value], component_columns: dict[str, str],
                structure: str | None, distribution_center: str | None, cells: list[str]) -> KitDetails:
    """Components, structure type and distribution centre of a kit: components from the
    export's nested arrays (``panels``, ``inverters`` …), else from ``2x 620Wp …`` text,
    else from the scrape's ``text`` + ``Quantidade: N`` cells, else from the title's
    segments; the structure and the centre from their columns, else from the title."""
    components: list[dict] = []
    for column, kind in component_columns.items():
        components.extend(_components_from_json(kind, fields.get(column)))
    if not components and name:
        components = components_from_text(name)
    if not components:
        components = _components_from_cells(cells)
    if not components and name:
        components = _components_from_name(name)
    if name and (structure is None or distribution_center is None):
        for segment in (s.strip() for s in re.split(r"\s+-\s+", name)):
            m = _CD.match(segment)
            if m and distribution_center is None:
                distribution_center = segment
            elif structure is None and _STRUCTURE_WORDS.match(segment) and not _KIT_HINT.search(segment):
                structure = segment
    return KitDetails(structure, distribution_center, components)
