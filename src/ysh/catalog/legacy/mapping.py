"""Legacy code tables and the mapping of a legacy row to the catalog normalizer's record
(pure; the tables are described in :mod:`ysh.catalog.legacy`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from .. import parsing as p
from ..feeds import Value
from ..items import UNKNOWN_CATEGORY

#: reason code added by this flow: the row's legacy branch maps to no distributor.
UNKNOWN_DISTRIBUTOR = "unknown_distributor"

# --------------------------------------------------------------------------------------
# legacy code tables
# --------------------------------------------------------------------------------------

#: legacy ``TIPO`` code → catalog category (see :mod:`ysh.catalog.legacy`).
LEGACY_TYPE_CODES: dict[str, str] = {
    "MF": "module",         # módulo fotovoltaico
    "MB": "module",         # módulo bifacial
    "IN": "inverter",       # inversor string / on-grid
    "IH": "inverter",       # inversor híbrido
    "MI": "microinverter",  # microinversor
    "BT": "battery",        # bateria
    "SB": "other",          # string box
    "CB": "other",          # cabo
    "ES": "other",          # estrutura de fixação
    "OU": "other",          # outros / acessórios
}

#: legacy branch code (``COD_FILIAL``) → platform distributor.
LEGACY_DISTRIBUTORS: dict[str, str] = {
    "FIL01": "sol_nascente_distribuidora",
    "FIL02": "casa_do_integrador",
    "FIL03": "lumen_solar_atacado",
}

#: legacy field → accepted headers (keys of :func:`ysh.catalog.parsing.normalize_header`).
LEGACY_COLUMNS: dict[str, tuple[str, ...]] = {
    "branch": ("cod_filial", "filial", "cd_filial", "cod_fil"),
    "sku": ("cod_prod", "cod_produto", "cd_prod", "cd_produto", "codigo"),
    "description": ("descr", "descricao", "desc_prod", "descr_prod"),
    "brand": ("fabric", "fabricante", "marca"),
    "model": ("modelo", "mod_fabric"),
    "type": ("tipo", "tp_prod", "cod_tipo"),
    "power_w": ("pot_w", "pot_wp", "potencia_w"),
    "power_kw": ("pot_kw", "pot_kwp", "potencia_kw"),
    "price": ("preco_venda", "pr_venda", "vl_venda", "vlr_venda"),
    "stock": ("estoque", "qtd_estoque", "saldo_estoque", "qt_estoque"),
    "inmetro": ("cod_inmetro", "reg_inmetro", "registro_inmetro"),
}
REQUIRED_COLUMNS: tuple[str, ...] = ("sku", "description", "price")

_LEGACY_HEADER_INDEX = {key: name for name, keys in LEGACY_COLUMNS.items() for key in keys}


# --------------------------------------------------------------------------------------
# mapping (pure)
# --------------------------------------------------------------------------------------

_BR_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?$")


def legacy_number(value: Value) -> float | int | str | None:
    """A number as the legacy ERP wrote it: an Excel number, or text with a decimal comma
    and optional dot thousands (``1.234,56`` → 1234.56, ``0,36`` → 0.36, ``1,234`` → 1.234,
    ``R$ 99,90`` → 99.9). Whole numbers come back as ``int``.

    Text that is not such a number is returned trimmed, for the normalizer to judge (it
    parses ``550.5`` and ``5 kW`` and quarantines ``consultar``); empty → None.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        number = float(value)
        if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
            return int(number)
        return number
    text = str(value).strip()
    if not text:
        return None
    compact = re.sub(r"^(?:r\$|brl)", "", text.replace("\u00a0", "").replace(" ", ""), flags=re.I)
    if _BR_NUMBER.match(compact):
        number = float(compact.replace(".", "").replace(",", "."))
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return text


def legacy_power_w(power_w: Value, power_kw: Value) -> float | int | str | None:
    """Power in W from the legacy ``POT_W`` (W) or, when it is empty, ``POT_KW`` (kW).

    A value that is no number is handed on as text with its unit (``"abc kW"``) so the
    normalizer quarantines it as ``unparseable_power``."""
    watts = legacy_number(power_w)
    if watts is not None:
        return watts
    kilowatts = legacy_number(power_kw)
    if kilowatts is None:
        return None
    if isinstance(kilowatts, str):
        return f"{kilowatts} kW"
    return round(kilowatts * 1000.0, 6)


def legacy_category(code: Value) -> tuple[str | None, str | None]:
    """``(category, None)`` for a known ``TIPO`` code, ``(None, None)`` for an empty one
    (the normalizer infers it from the description), ``(None, detail)`` for an unknown one."""
    text = _cell_text(code)
    if text is None:
        return None, None
    key = text.upper()
    if key in LEGACY_TYPE_CODES:
        return LEGACY_TYPE_CODES[key], None
    known = ", ".join(sorted(LEGACY_TYPE_CODES))
    return None, f"legacy TIPO code {text!r} is not in the code table ({known})"


def legacy_distributor(code: Value) -> str | None:
    """Platform distributor of a legacy branch code (``" fil01 "`` → its name), else None."""
    text = _cell_text(code)
    return LEGACY_DISTRIBUTORS.get(text.upper()) if text else None


def map_legacy_headers(headers: Sequence[str]) -> dict[str, str]:
    """Legacy field → the first header that names it (``{"sku": "COD_PROD", …}``)."""
    columns: dict[str, str] = {}
    for header in headers:
        name = _LEGACY_HEADER_INDEX.get(p.normalize_header(str(header)))
        if name is not None and name not in columns:
            columns[name] = header
    return columns


LEGACY_SOURCE_PREFIX = "legacy:"


@dataclass(frozen=True)
class MappedRecord:
    """A legacy row in the catalog's terms: ``fields`` for the normalizer, the distributor,
    and a rejection found by the code tables (``(reason, detail)``) if any."""

    fields: dict[str, Value]
    distributor: str
    rejection: tuple[str, str] | None = None


def map_legacy_row(row: Mapping[str, Value], columns: Mapping[str, str], *,
                   default_distributor: str, distributor: str | None = None) -> MappedRecord:
    """Map one legacy row (original header → value) to the normalizer's record dict.

    ``columns`` comes from :func:`map_legacy_headers`; ``distributor`` forces the
    distributor, else the branch column decides through :data:`LEGACY_DISTRIBUTORS`, else
    ``default_distributor`` (no branch column).
    """
    def get(name: str) -> Value:
        header = columns.get(name)
        return row.get(header) if header is not None else None

    category, category_error = legacy_category(get("type"))
    fields: dict[str, Value] = {
        "sku": _cell_text(get("sku")),
        "description": _cell_text(get("description")),
        "brand": _cell_text(get("brand")),
        "model": _cell_text(get("model")),
        "category": category,
        "power_w": legacy_power_w(get("power_w"), get("power_kw")),
        "price": legacy_number(get("price")),
        "stock": legacy_number(get("stock")),
        "inmetro": _cell_text(get("inmetro")),
    }
    rejection = None
    if distributor is not None:
        owner = distributor
    elif "branch" in columns:
        code = _cell_text(get("branch"))
        owner = legacy_distributor(code) or code or default_distributor
        if legacy_distributor(code) is None:
            known = ", ".join(sorted(LEGACY_DISTRIBUTORS))
            rejection = (UNKNOWN_DISTRIBUTOR,
                         f"legacy branch code {code!r} maps to no distributor ({known})" if code
                         else "no legacy branch code (COD_FILIAL) on the row")
    else:
        owner = default_distributor
    # the normalizer checks the SKU first: an unknown code on a row without SKU stays missing_sku
    if rejection is None and category_error is not None and p.normalize_sku(fields["sku"]) is not None:
        rejection = (UNKNOWN_CATEGORY, category_error)
    return MappedRecord(fields, owner, rejection)


def _cell_text(value: Value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None
