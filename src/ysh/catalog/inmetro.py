"""The Inmetro registry of PV equipment, and whether a catalog item is in it (pure Python).

Two parts, both without I/O of their own:

* **reading the registry** — :func:`read_registry` turns one published file (CSV,
  spreadsheet ``.xlsx`` or a PDF table) into :class:`RegistryRow` rows: supplier, brand,
  model, power, efficiency and efficiency class, registration number, situation and
  validity, as the Inmetro tables publish them. Columns are found by their header
  (:data:`HEADER_SYNONYMS`), never by position: the layout is documented in
  ``docs/catalog.md`` ("Inmetro registry"), with what it is based on.
* **matching** — :func:`match_keys` gives the keys a model is looked up by (its spelling
  normalized, then the variants distributors write, each rule named), :func:`choose`
  picks the registry row an item matched and :func:`registry_status` says what the
  registry says of the item: ``registered``, ``not_registered``, ``power_mismatch``,
  ``expired`` or ``unknown``. :func:`match_item` puts them together for one item (the
  Pathway graph joins on the same keys and calls :func:`choose`/:func:`registry_status`).

Sources of the rules: Portaria Inmetro 140/2022 (scope: modules ≥ 5 Wp, inverters up to
75 kW, registration in the Inmetro object registry, ENCE classes A–E), the Inmetro
registry consultation (situation ``A`` ativo / ``C`` cancelado, date of grant, supplier,
brand, model), and the spellings seen in the real distributor exports
(``data/distributors/``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, NamedTuple, Sequence

from . import parsing as p

# --------------------------------------------------------------------------------------
# statuses and scope
# --------------------------------------------------------------------------------------

REGISTERED = "registered"
NOT_REGISTERED = "not_registered"
POWER_MISMATCH = "power_mismatch"
EXPIRED = "expired"
UNKNOWN = "unknown"
STATUSES = (REGISTERED, NOT_REGISTERED, POWER_MISMATCH, EXPIRED, UNKNOWN)

#: catalog category → registry category. Only what the landed tables cover (modules and
#: inverters); batteries and charge controllers are in Portaria 140/2022's scope too, but
#: no table of theirs is landed, so their status is ``unknown``, as cables, structures,
#: kits (a kit is not registered, its components are) and accessories.
COVERED_CATEGORIES: dict[str, str] = {
    "module": "module",
    "inverter": "inverter",
    "microinverter": "inverter",
    "hybrid_inverter": "inverter",
    "offgrid_inverter": "inverter",
}

#: relative difference between the listed and the registered power above which the item
#: is a ``power_mismatch`` (and never less than :data:`POWER_TOLERANCE_MIN_W`)
POWER_TOLERANCE = 0.01
POWER_TOLERANCE_MIN_W = 1.0

ACTIVE = "active"
CANCELLED = "cancelled"


class RegistryRow(NamedTuple):
    """One registered model, as a row of an Inmetro table. A named tuple: handed to
    Pathway as is."""

    category: str  # module | inverter
    supplier: str | None  # fornecedor / fabricante (who holds the registration)
    brand: str  # marca, canonical (ysh.catalog.parsing.canonical_brand)
    model: str  # modelo, as published
    power_w: float | None  # module: maximum power Pmáx [W]; inverter: rated AC power [W]
    efficiency_pct: float | None  # eficiência [%]
    efficiency_class: str | None  # classe / faixa de eficiência (ENCE, A–E)
    registration: str | None  # nº do registro, NNNNNN/YYYY when well formed
    situation: str | None  # active | cancelled (A / C in the registry), None: not stated
    valid_until: str | None  # ISO date, when the table states a validity
    source_file: str
    line: int


# --------------------------------------------------------------------------------------
# reading the published tables
# --------------------------------------------------------------------------------------

#: field → header keys (``parsing.normalize_header``) that name it. The fields are those
#: of the Inmetro tables (docs/catalog.md, "Inmetro registry"); the keys are their
#: spellings, with and without units.
HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "supplier": ("fornecedor", "fabricante", "fabricante_importador", "fornecedor_fabricante",
                 "empresa", "solicitante", "razao_social", "detentor_do_registro"),
    "brand": ("marca", "marca_comercial"),
    "model": ("modelo", "modelo_comercial", "modelos", "modelo_do_equipamento"),
    "category": ("categoria", "tipo", "tipo_de_equipamento", "equipamento", "produto", "objeto"),
    "power": ("potencia", "potencia_w", "potencia_wp", "potencia_kw", "potencia_maxima", "potencia_maxima_w",
              "potencia_maxima_wp", "potencia_maxima_pmax", "potencia_maxima_pmax_w", "potencia_maxima_pmp_w",
              "pmax", "pmax_w", "pmp", "pmp_w", "potencia_nominal", "potencia_nominal_w", "potencia_nominal_kw",
              "potencia_nominal_ca", "potencia_nominal_ca_w", "potencia_nominal_ca_kw", "potencia_nominal_de_saida",
              "potencia_nominal_de_saida_w", "potencia_nominal_de_saida_kw"),
    "efficiency": ("eficiencia", "eficiencia_pct", "eficiencia_energetica", "eficiencia_energetica_pct",
                   "eficiencia_do_modulo", "eficiencia_maxima", "eficiencia_europeia", "eficiencia_media",
                   "eficiencia_ponderada"),
    "efficiency_class": ("classe", "classificacao", "classe_de_eficiencia", "classe_de_eficiencia_energetica",
                         "classificacao_energetica", "faixa", "faixa_de_classificacao", "ence"),
    "registration": ("registro", "n_registro", "no_registro", "n_do_registro", "no_do_registro", "numero_do_registro",
                     "numero_registro", "registro_inmetro", "n_registro_inmetro", "no_registro_inmetro",
                     "registro_de_objeto", "n_de_registro", "no_de_registro", "ato", "n_do_ato", "no_do_ato",
                     "numero_do_ato"),
    "situation": ("situacao", "status", "situacao_do_registro", "situacao_registro"),
    "valid_until": ("validade", "data_de_validade", "valido_ate", "vencimento", "validade_do_registro"),
}
_FIELD_OF_HEADER = {key: field for field, keys in HEADER_SYNONYMS.items() for key in keys}
_REQUIRED = ("brand", "model")

_MODULE_WORDS = ("modulo", "modulos", "painel", "paineis", "placa")
_INVERTER_WORDS = ("inversor", "inversores", "microinversor", "microinversores", "inverter")


@dataclass
class RegistryFile:
    """What one landed file held: its rows and what could not be read (per line)."""

    source_file: str
    format: str  # csv | xlsx | pdf
    rows: list[RegistryRow]
    problems: list[tuple[int, str]]  # (line, reason); line 0: the whole file


def registry_category(text: str | None) -> str | None:
    """``module`` or ``inverter`` from a category cell, sheet name, file name or table title."""
    if not text:
        return None
    words = set(re.findall(r"[a-z]+", p.strip_accents(str(text)).lower()))
    if words & set(_MODULE_WORDS):
        return "module"
    if words & set(_INVERTER_WORDS):
        return "inverter"
    return None


def registry_situation(text: str | None) -> str | None:
    """``active`` / ``cancelled`` from the registry's situation: ``A`` (ativo), ``C``
    (cancelado), or the words (ativo, vigente, regular / cancelado, suspenso, vencido,
    expirado, inativo)."""
    if text is None:
        return None
    s = p.strip_accents(str(text)).strip().lower()
    if not s:
        return None
    if s in ("a", "ativo", "ativa", "vigente", "regular", "valido", "concedido"):
        return ACTIVE
    if s in ("c", "i", "s", "cancelado", "cancelada", "suspenso", "suspensa", "vencido", "vencida", "expirado",
             "expirada", "inativo", "inativa", "revogado", "revogada"):
        return CANCELLED
    return None


def _date(text) -> str | None:
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        return text.date().isoformat()
    if isinstance(text, date):
        return text.isoformat()
    s = str(text).strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(s, fmt).date().isoformat()
        except ValueError:
            continue
    raise ValueError(f"not a date: {s!r}")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return re.sub(r"\s+", " ", str(value).replace("\u00a0", " ")).strip()


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return p.parse_decimal(str(value).replace("%", ""), ambiguous_comma="decimal")


def _power_w(value, header: str) -> float | None:
    if value is None or value == "":
        return None
    default = "kW" if re.search(r"(^|_)kw(p)?($|_)", header) else "W"
    if isinstance(value, (int, float)):
        return float(value) * (1000.0 if default == "kW" else 1.0)
    return p.parse_power_w(str(value), default)


def _header_map(cells: Sequence) -> dict[int, tuple[str, str]]:
    """column index → (field, header key) for the cells of a header row."""
    found: dict[int, tuple[str, str]] = {}
    taken: set[str] = set()
    for i, cell in enumerate(cells):
        key = p.normalize_header(_cell(cell))
        field = _FIELD_OF_HEADER.get(key)
        if field is None and key:
            # "Potência máxima (Pmáx) [W]" and the like: the longest known prefix names it
            field = next((_FIELD_OF_HEADER[k] for k in sorted(_FIELD_OF_HEADER, key=len, reverse=True)
                          if key.startswith(k + "_")), None)
        if field and field not in taken:
            found[i] = (field, key)
            taken.add(field)
    return found


def _is_header(cells: Sequence) -> bool:
    fields = {f for f, _ in _header_map(cells).values()}
    return "model" in fields and ("brand" in fields or "supplier" in fields)


def rows_from_table(table: Iterable[Sequence], source_file: str, *, category: str | None = None,
                    first_line: int = 1) -> tuple[list[RegistryRow], list[tuple[int, str]]]:
    """Registry rows from a table's rows (lists of cells): title lines above the header are
    skipped, the header is the first row naming a model and a brand or supplier, and a row
    that names a category (``Módulos``, ``Inversores``) between data rows sets the category of
    those below it. ``category``: the category the file, sheet or title states.

    Returns the rows and the problems ((line, reason): ``no_header``, ``missing_model``,
    ``unknown_category``, ``unparseable_power``, ...)."""
    rows: list[RegistryRow] = []
    problems: list[tuple[int, str]] = []
    columns: dict[int, tuple[str, str]] | None = None
    for line, cells in enumerate(table, start=first_line):
        cells = list(cells)
        texts = [_cell(c) for c in cells]
        if not any(texts):
            continue
        if columns is None:
            if _is_header(cells):
                columns = _header_map(cells)
            else:
                category = registry_category(" ".join(texts)) or category
            continue
        if _is_header(cells):  # a header repeated on a new page
            continue
        values = {field: (cells[i] if i < len(cells) else None, key) for i, (field, key) in columns.items()}
        text = {field: _cell(v) for field, (v, _) in values.items()}
        if not text.get("model") and sum(1 for t in texts if t) == 1:
            category = registry_category(texts[0] if texts[0] else next(t for t in texts if t)) or category
            continue  # a section title ("Inversores conectados à rede")
        if not text.get("model"):
            problems.append((line, "missing_model"))
            continue
        row_category = registry_category(text.get("category")) or category
        if row_category is None:
            problems.append((line, "unknown_category"))
            continue
        brand = p.canonical_brand(text.get("brand") or None) or p.canonical_brand(text.get("supplier") or None)
        if brand is None:
            problems.append((line, "missing_brand"))
            continue
        try:
            power = _power_w(values["power"][0], values["power"][1]) if "power" in values else None
        except ValueError:
            problems.append((line, "unparseable_power"))
            continue
        try:
            efficiency = _number(values["efficiency"][0]) if "efficiency" in values else None
        except ValueError:
            efficiency = None
        try:
            valid_until = _date(values["valid_until"][0]) if "valid_until" in values else None
        except ValueError:
            problems.append((line, "unparseable_validity"))
            continue
        klass = text.get("efficiency_class") or None
        rows.append(RegistryRow(
            category=row_category,
            supplier=text.get("supplier") or None,
            brand=brand,
            model=text["model"],
            power_w=power,
            efficiency_pct=efficiency if efficiency is None or efficiency > 1 else round(efficiency * 100, 4),
            efficiency_class=klass.upper() if klass and len(klass) <= 2 else klass,
            registration=p.normalize_inmetro(text.get("registration") or None),
            situation=registry_situation(text.get("situation")),
            valid_until=valid_until,
            source_file=source_file,
            line=line,
        ))
    if columns is None:
        problems.append((0, "no_header"))
    return rows, problems


def _csv_table(data: bytes) -> list[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    sample = "\n".join(text.splitlines()[:20])
    delimiter = max((";", ",", "\t"), key=sample.count)
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def _xlsx_tables(data: bytes) -> list[tuple[str, list[tuple]]]:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        return [(sheet.title, list(sheet.iter_rows(values_only=True))) for sheet in book.worksheets]
    finally:
        book.close()


def pdf_table_lines(lines: Iterable[str]) -> list[list[str]]:
    """Rows of cells from the lines of a PDF page extracted with their layout (pypdf
    ``extraction_mode="layout"``): the header line's column starts cut every line below;
    a line without a model that is no section title is joined to the row above (cells
    wrapped onto a second line). Lines above the header pass through as one cell."""
    table: list[list[str]] = []
    starts: list[int] | None = None
    model_column = 0
    for raw in lines:
        line = raw.rstrip()
        if not line.strip():
            continue
        chunks = [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", line)]
        if starts is None:
            cells = [c for _, c in chunks]
            if _is_header(cells):
                starts = [s for s, _ in chunks]
                model_column = next(i for i, (f, _) in _header_map(cells).items() if f == "model")
                table.append(cells)
            else:
                table.append([line.strip()])
            continue
        row = [""] * len(starts)
        for start, text in chunks:
            # the column whose header starts closest before (or just after) the chunk
            column = max((i for i, s in enumerate(starts) if s <= start + 2), default=0)
            row[column] = f"{row[column]} {text}".strip()
        # no model, and not a section title: the rest of cells wrapped from the row above
        continuation = (not row[model_column] and registry_category(" ".join(row)) is None
                        and len(table[-1]) == len(starts) and any(table[-1]))
        if continuation:
            table[-1] = [f"{a}{b}" if a.endswith("-") else f"{a} {b}".strip() for a, b in zip(table[-1], row)]
        else:
            table.append(row)
    return table


def _pdf_tables(data: bytes) -> list[list[list[str]]]:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(io.BytesIO(data))
    return [pdf_table_lines(page.extract_text(extraction_mode="layout").splitlines()) for page in reader.pages]


def file_format(data: bytes, path: str) -> str:
    """``pdf``, ``xlsx`` or ``csv``: by content (a PDF or a zip), else by the name."""
    if data[:5] == b"%PDF-":
        return "pdf"
    if data[:4] == b"PK\x03\x04":
        return "xlsx"
    return "csv"


def read_registry(data: bytes, path: str) -> RegistryFile:
    """One landed registry file as rows. Never raises: a file that cannot be read is one
    problem on line 0 (``unparseable_file``) and no rows.

    The category of a row comes from its own category column, else the section title or
    sheet above it, else the file name (``…modulos….pdf``, ``…inversores….xlsx``)."""
    fmt = file_format(data, path)
    name_category = registry_category(path.replace("\\", "/").rsplit("/", 1)[-1])
    rows: list[RegistryRow] = []
    problems: list[tuple[int, str]] = []
    try:
        if fmt == "pdf":
            line = 1
            category = name_category
            for table in _pdf_tables(data):
                got, bad = rows_from_table(table, path, category=category, first_line=line)
                rows += got
                problems += [(n, r) for n, r in bad if n]
                if got:
                    category = got[-1].category
                line += len(table)
            if not rows and not problems:
                problems.append((0, "no_header"))
        elif fmt == "xlsx":
            line = 1
            for title, table in _xlsx_tables(data):
                got, bad = rows_from_table(table, path, category=registry_category(title) or name_category,
                                           first_line=line)
                rows += got
                problems += [(n, r) for n, r in bad if n]
                line += len(table)
            if not rows and not problems:
                problems.append((0, "no_header"))
        else:
            rows, problems = rows_from_table(_csv_table(data), path, category=name_category)
    except Exception as exc:  # noqa: BLE001 - one bad file never stops the registry
        return RegistryFile(path, fmt, [], [(0, f"unparseable_file: {type(exc).__name__}: {exc}"[:300])])
    return RegistryFile(path, fmt, rows, problems)


# --------------------------------------------------------------------------------------
# matching
# --------------------------------------------------------------------------------------

#: rule → rank (lower is closer). A match's rank is the sum of both sides' ranks.
RULES = {"exact": 0, "annotation": 1, "prefix": 2, "annotation+prefix": 3}

#: text after a spaced dash or in parentheses is the distributor's note, not the model:
#: "GW 5000-DNS-30 (16A) - AFCI", "GW10K-MS-G40 - AFCI C/ RSD", "GW 30KLS-MT - AFCI RED"
#: (solfacil-raw-1.csv) list "GW5000-DNS-30", "GW10K-MS-G40", "GW30KLS-MT" (solfacil-inverters.json);
#: model codes join their parts with unspaced hyphens.
_ANNOTATION = re.compile(r"\s+[-–]\s+.*$|\s*\([^)]*\)")
#: a cell technology written before the model: "HJT HN21H-66HT" (solfacil-raw-0.csv) is
#: "HN21H-66HT" (solfacil-panels.json)
_TECHNOLOGY = {"HJT", "TOPCON", "PERC", "HALFCELL", "BIFACIAL", "MONO", "MONOCRISTALINO", "POLI", "POLICRISTALINO",
               "NTYPE", "PTYPE", "SHINGLED", "IBC"}
#: a series name written before the model code, or left out: Growatt's "MAC 36KTL3-XL",
#: "MID 25KTL3-X", "MAX 50KTL3-XL2" (solfacil-raw-1.csv) are "36KTL3-XL", "25KTL3-X",
#: "50KTL3-XL2" in solfacil-inverters.json: a letters-only word, then a code that starts
#: with a digit
_SERIES = re.compile(r"^([A-Za-z]{2,5})\s+(?=\d)")


def brand_key(brand: str | None) -> str | None:
    """The brand as matched: canonical (``"GOODWE"`` ≡ ``"GoodWe"``), upper-case alphanumerics."""
    canonical = p.canonical_brand(brand)
    return p.model_key(canonical) or None if canonical else None


def _prefix_stripped(model: str, brand: str | None) -> str | None:
    words = model.split()
    if len(words) > 1:
        first = p.model_key(words[0])
        if first in _TECHNOLOGY or (brand and p.canonical_brand(words[0]) == p.canonical_brand(brand)):
            return " ".join(words[1:])
    m = _SERIES.match(model)
    if m and p.model_key(m.group(1)) not in ("GW", "SUN"):  # a brand's own code prefix is part of the model
        return model[m.end():]
    return None


def match_keys(model: str | None, brand: str | None = None) -> tuple[tuple[str, str], ...]:
    """The keys a model is looked up by, closest first, each with the rule that made it
    (:data:`RULES`): ``exact`` (case, spaces and punctuation ignored: ``JKM550M-72HL4-V``
    ≡ ``JKM 550M 72HL4 V``), ``annotation`` (a distributor's note removed), ``prefix`` (a
    technology word, the brand or a series name before the code removed), both.

    Both sides of a match use it: a registry model written with its series
    (``MAC 36KTL3-XL``) meets an offer written without it (``36KTL3-XL``)."""
    if not model or not str(model).strip():
        return ()
    model = re.sub(r"\s+", " ", str(model)).strip()
    out: dict[str, str] = {}

    def add(text: str | None, rule: str) -> None:
        key = p.model_key(text) if text else ""
        if len(key) >= 3 and key not in out:
            out[key] = rule

    add(model, "exact")
    bare = _ANNOTATION.sub("", model).strip()
    add(bare, "annotation")
    add(_prefix_stripped(model, brand), "prefix")
    add(_prefix_stripped(bare, brand), "annotation+prefix")
    return tuple((key, rule) for key, rule in sorted(out.items(), key=lambda kv: RULES[kv[1]]))


def is_expired(row: RegistryRow, as_of: date) -> bool:
    """A cancelled registration, or one whose validity ended before ``as_of``."""
    return row.situation == CANCELLED or (row.valid_until is not None and row.valid_until < as_of.isoformat())


def power_differs(listed_w: float | None, registered_w: float | None, *, tolerance: float = POWER_TOLERANCE) -> bool:
    """Whether the listed power differs from the registered one by more than ``tolerance``
    (relative) and more than :data:`POWER_TOLERANCE_MIN_W`. Unknown on either side: no."""
    if listed_w is None or registered_w is None or registered_w <= 0:
        return False
    gap = abs(listed_w - registered_w)
    return gap > POWER_TOLERANCE_MIN_W and gap > tolerance * registered_w


class Candidate(NamedTuple):
    """A registry row an item's key met, with the rank of the rules on both sides."""

    rank: int
    rule: str
    row: RegistryRow


def choose(candidates: Iterable[Candidate], power_w: float | None, category: str, as_of: date, *,
           tolerance: float = POWER_TOLERANCE) -> Candidate | None:
    """The row an item matched: of the rows of its registry category, the closest rule
    first; then an active registration before an expired one, one whose power agrees with
    the listed power before one that does not (one model line registered at several
    powers), and the lowest registration number (stable)."""
    wanted = COVERED_CATEGORIES.get(category)
    fitting = [c for c in candidates if c.row.category == wanted]
    if not fitting:
        return None
    return min(fitting, key=lambda c: (c.rank, is_expired(c.row, as_of),
                                       power_differs(power_w, c.row.power_w, tolerance=tolerance),
                                       c.row.registration or "~", c.row.model, c.row.source_file, c.row.line))


def registry_status(category: str, brand: str | None, model: str | None, power_w: float | None,
                    matched: Candidate | None, as_of: date, *, tolerance: float = POWER_TOLERANCE) -> str:
    """What the registry says of an item.

    * ``unknown``: a category the landed tables do not cover (:data:`COVERED_CATEGORIES`:
      cables, structures, kits, batteries…), or an item without brand or model, which
      cannot be looked up;
    * ``not_registered``: a module or inverter whose brand and model are in no row;
    * ``expired``: its row's registration is cancelled or past its validity on ``as_of``;
    * ``power_mismatch``: the row is active but the listed power differs from the
      registered one (:func:`power_differs`);
    * ``registered``: otherwise.
    """
    if category not in COVERED_CATEGORIES or not brand or not model:
        return UNKNOWN
    if matched is None:
        return NOT_REGISTERED
    if is_expired(matched.row, as_of):
        return EXPIRED
    if power_differs(power_w, matched.row.power_w, tolerance=tolerance):
        return POWER_MISMATCH
    return REGISTERED


class Match(NamedTuple):
    """An item's status with the registry row it matched (None: no row)."""

    status: str
    rule: str | None
    row: RegistryRow | None


class RegistryIndex:
    """The registry's rows by (brand key, model key), for :func:`match_item` outside the
    graph (the CLI, tests); the graph joins on the same keys."""

    def __init__(self, rows: Iterable[RegistryRow]):
        self._by_key: dict[tuple[str | None, str], list[tuple[str, RegistryRow]]] = {}
        for row in rows:
            bkey = brand_key(row.brand)
            for key, rule in match_keys(row.model, row.brand):
                self._by_key.setdefault((bkey, key), []).append((rule, row))

    def candidates(self, brand: str | None, model: str | None) -> list[Candidate]:
        bkey = brand_key(brand)
        return [candidate(rule, registry_rule, row)
                for key, rule in match_keys(model, brand)
                for registry_rule, row in self._by_key.get((bkey, key), ())]


def candidate(item_rule: str, registry_rule: str, row: RegistryRow) -> Candidate:
    """A candidate met on a key made by ``item_rule`` on the item and ``registry_rule`` on
    the registry row (rule ``"prefix|registry:prefix"`` when the registry side needed one)."""
    rule = item_rule if registry_rule == "exact" else f"{item_rule}|registry:{registry_rule}"
    return Candidate(RULES[item_rule] + RULES[registry_rule], rule, row)


def match_item(index: RegistryIndex, category: str, brand: str | None, model: str | None, power_w: float | None,
               as_of: date, *, tolerance: float = POWER_TOLERANCE) -> Match:
    """An item's status and the registry row it matched."""
    if category not in COVERED_CATEGORIES or not brand or not model:
        return Match(UNKNOWN, None, None)
    chosen = choose(index.candidates(brand, model), power_w, category, as_of, tolerance=tolerance)
    status = registry_status(category, brand, model, power_w, chosen, as_of, tolerance=tolerance)
    return Match(status, chosen.rule if chosen else None, chosen.row if chosen else None)
