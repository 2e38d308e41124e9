"""Header synonyms: which canonical field each of a feed's columns names, and the power unit."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import normalize_header, strip_accents

# --------------------------------------------------------------------------------------
# header synonyms
# --------------------------------------------------------------------------------------

#: canonical field → header keys (already passed through :func:`normalize_header`).
HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sku": ("sku", "codigo", "cod", "part_number", "partnumber", "pn", "referencia", "ref",
            "codigo_produto", "cod_produto"),
    "brand": ("brand", "marca", "fabricante", "manufacturer"),
    "model": ("model", "modelo"),
    "description": ("descricao", "description", "produto", "nome", "descricao_produto",
                    "nome_produto"),
    "category": ("category", "categoria", "tipo", "type"),
    "power": ("power_w", "potencia", "potencia_w", "potencia_wp", "pmax", "pmax_w", "power",
              "potencia_nominal", "potencia_kw", "potencia_kwp", "power_kw"),
    "price": ("price", "preco", "valor", "valor_unitario", "preco_brl", "preco_unitario",
              "price_brl"),
    "stock": ("stock", "estoque", "qtd", "quantidade", "qty"),
    "inmetro": ("inmetro", "registro_inmetro", "inmetro_registration", "reg_inmetro"),
    "efficiency": ("eficiencia", "efficiency", "eficiencia_pct", "efficiency_pct"),
    "technology": ("tecnologia", "technology", "celula", "tipo_celula"),
    "voc": ("voc", "voc_v"),
    "isc": ("isc", "isc_a"),
    "vmp": ("vmp", "vmp_v", "vmpp"),
    "imp": ("imp", "imp_a", "impp"),
    "mppt": ("mppt", "mppts", "mppt_count", "num_mppt", "qtd_mppt"),
    "phases": ("fases", "phases", "fase"),
    "max_dc_voltage": ("max_dc_voltage_v", "tensao_max_cc", "vdc_max", "max_dc_voltage",
                       "tensao_maxima_cc"),
    # storefront exports (JSON dumps, scrapes): an id, a title, a link, an image, a
    # stated availability, and for kits the structure, the distribution centre and the
    # component lists
    "id": ("id", "product_id", "id_produto", "produto_id", "item_id"),
    "name": ("name", "title", "titulo", "product_name", "nome_do_produto"),
    "url": ("url", "link", "product_url", "href", "permalink", "url_produto"),
    "image": ("image", "image_url", "imagem", "img", "foto", "thumbnail", "url_imagem"),
    "availability": ("availability", "disponibilidade", "status_estoque", "stock_status",
                     "situacao"),
    "pricing": ("pricing", "precos", "offer", "offers"),
    "structure": ("estrutura", "structure", "tipo_estrutura", "tipo_de_estrutura", "telhado"),
    "distribution_center": ("centro_distribuicao", "centro_de_distribuicao", "cd",
                            "distribution_center", "filial", "deposito"),
    "voltage": ("tensao", "tensao_v", "voltage", "voltage_v", "tensao_ca", "tensao_saida"),
}

#: fields whose value is a JSON list of a kit's components, by component kind.
COMPONENT_FIELDS: dict[str, str] = {
    "panels": "module", "paineis": "module", "modulos": "module", "modules": "module",
    "inverters": "inverter", "inversores": "inverter", "microinversores": "microinverter",
    "batteries": "battery", "baterias": "battery",
    "structures": "structure", "estruturas": "structure",
    "accessories": "accessory", "acessorios": "accessory",
    "components": "component", "componentes": "component", "itens_kit": "component",
}

_HEADER_INDEX: dict[str, str] = {
    key: field for field, keys in HEADER_SYNONYMS.items() for key in keys
}

#: header keys whose unit-less values are kilowatts.
KILOWATT_HEADERS = frozenset({"potencia_kw", "potencia_kwp", "power_kw"})


@dataclass(frozen=True)
class HeaderMapping:
    """How one feed's columns map to canonical fields.

    ``columns[field]`` lists every column that names the field, in file order; a record's
    value is the first non-empty one (so ``preco`` empty falls back to ``valor``).
    """

    columns: dict[str, tuple[str, ...]]  # canonical field -> original headers
    power_unit: str  # "W" or "kW": unit of unit-less values in the power column(s)
    unknown: tuple[str, ...]  # headers we did not recognize (kept in ``raw``)

    @property
    def first(self) -> dict[str, str]:
        """The first column of each field."""
        return {field: cols[0] for field, cols in self.columns.items()}


_UNIT_SUFFIX = re.compile(r"_?(r|brl|w|wp|kw|kwp|un|und|unid|pcs|pct|v|a)$")
_NUMBER_PREFIX = re.compile(r"^(n|no|num|numero|nr)_")


def header_field(header: str) -> tuple[str | None, str]:
    """Canonical field of one header and the power unit it implies.

    ``"Potência (kW)"`` → ``("power", "kW")``; ``"Preço (R$)"`` → ``("price", "W")``;
    ``"Nº Registro Inmetro"`` → ``("inmetro", "W")``; unknown → ``(None, "W")``.
    """
    key = normalize_header(header)
    field = _HEADER_INDEX.get(key)
    unit_key = key
    if field is None:
        # a unit in parentheses or a trailing unit word: "preco_r", "estoque_un"
        bare = re.sub(r"\(.*?\)", " ", strip_accents(header.replace("\ufeff", "")).lower())
        bare_key = re.sub(r"[^a-z0-9]+", "_", bare).strip("_")
        for candidate in (bare_key, _UNIT_SUFFIX.sub("", key), _NUMBER_PREFIX.sub("", key),
                          _NUMBER_PREFIX.sub("", bare_key)):
            field = _HEADER_INDEX.get(candidate)
            if field is not None:
                break
    if field != "power":
        return field, "W"
    kilowatts = unit_key in KILOWATT_HEADERS or bool(re.search(r"(^|_)kwp?($|_)", key))
    return field, "kW" if kilowatts else "W"


def map_headers(headers: list[str]) -> HeaderMapping:
    """Map a feed's original headers to canonical fields.

    Matching is case-, accent- and spacing-insensitive and ignores a unit in parentheses
    (``Preço (R$)``, ``Potência (kW)`` — which also sets the power unit).
    """
    columns: dict[str, list[str]] = {}
    unknown: list[str] = []
    power_unit = None
    for header in headers:
        field, unit = header_field(header)
        if field is None:
            unknown.append(header)
            continue
        if field == "power":
            if power_unit is not None and unit != power_unit:
                unknown.append(header)  # a second power column in another unit: ignored
                continue
            power_unit = unit
        columns.setdefault(field, []).append(header)
    return HeaderMapping(columns={f: tuple(c) for f, c in columns.items()},
                         power_unit=power_unit or "W", unknown=tuple(unknown))
