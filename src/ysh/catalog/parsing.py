"""Pure parsing rules of distributor feeds: headers, numbers, units, brands, categories.

Nothing here imports Pathway or Dagster. Every function takes plain strings and
either returns a normalized value or raises :class:`ValueError` with a message that
says what was wrong; callers turn those into quarantine reason codes.

Brazilian feeds write numbers the Brazilian way (``1.234,56``: dot for thousands,
comma for decimals) but English exports use ``1,234.56`` or ``1234.56``; the rule in
:func:`parse_decimal` decides between them without guessing from the column.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
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
