"""Prefect flow ``migrate_legacy``: a legacy ERP export → the platform's catalog tables.

The old ERP ("SOLARIS ERP 4.2") exports an XLSX workbook (one sheet per product family)
and CSV lists (latin-1, ``;``, decimal comma), with its own column names, type codes and
branch codes. This module has three layers:

1. **Mapping** (pure): a legacy row → the record dict the catalog normalizer reads
   (``sku``, ``description``, ``brand``, ``model``, ``category``, ``power_w``, ``price``,
   ``stock``, ``inmetro``), through the code tables below. Numbers written the legacy way
   (decimal comma) become floats, kW become W.
2. **Normalization**: each mapped record goes through
   :func:`ysh.catalog.normalize.normalize_record`, so a migrated item obeys exactly the
   catalog's rules (units, ranges, brands, Inmetro, reason codes in ``docs/catalog.md``).
3. **Prefect tasks and the flow**: read the files, normalize, diff against the warehouse,
   upsert what changed, publish a report (Prefect markdown artifact ``migration-report``).

Legacy code tables
------------------

``TIPO`` (product type) → catalog category (:data:`LEGACY_TYPE_CODES`)::

    MF  módulo fotovoltaico          module
    MB  módulo bifacial              module
    IN  inversor (string)            inverter
    IH  inversor híbrido             inverter
    MI  microinversor                microinverter
    BT  bateria                      battery
    SB  string box                   other
    CB  cabo                         other
    ES  estrutura de fixação         other
    OU  outros / acessórios          other

Codes are read trimmed and case-insensitively. ``SV`` (serviço) is deliberately *not*
mapped: services are not catalog items. A code outside the table is quarantined as
``unknown_category``; an empty code lets the normalizer infer the category from the
description (as for a distributor feed without a category column).

``COD_FILIAL`` (legacy branch) → platform distributor (:data:`LEGACY_DISTRIBUTORS`)::

    FIL01  sol_nascente_distribuidora
    FIL02  casa_do_integrador
    FIL03  lumen_solar_atacado

A branch code outside the table (or an empty one) is quarantined as
``unknown_distributor`` — the one reason code this flow adds to the catalog's (the
quarantine row's ``distributor`` is then the code as written). ``distributor=`` forces one
distributor for every row and skips the table; a source without a branch column belongs
to the distributor named by the file's stem (the catalog's convention).

Legacy columns (:data:`LEGACY_COLUMNS`; matched case-, accent- and spacing-insensitively;
other columns are kept in the quarantined row's ``raw`` only): ``COD_PROD`` (sku),
``DESCR`` (description), ``FABRIC`` (brand), ``MODELO``, ``TIPO``, ``POT_W`` (W) /
``POT_KW`` (kW; ``POT_W`` wins when both are filled), ``PRECO_VENDA``, ``ESTOQUE``,
``COD_INMETRO``, ``COD_FILIAL``, with the synonyms of the old ERP's other reports.
Required: ``COD_PROD``, ``DESCR``, ``PRECO_VENDA`` (or a synonym).

Sources, lines, idempotency
---------------------------

* An XLSX sheet is one source, ``source_file = "legacy:<file name>#<sheet>"``; a CSV is
  one source, ``source_file = "legacy:<file name>"``. Sheets named ``LEIAME``/``README``/``NOTAS``/
  ``INSTRUCOES`` are notes and are skipped. The header is the first row (among the first
  20) that names a product-code column, so title rows above it are fine.
* ``line`` is the row number in the sheet (Excel's numbering: a header on row 3 puts the
  first item on row 4), or the CSV's physical line (header = line 1).
* Items are upserted by ``(distributor, sku)`` into ``items_normalized``, quarantined rows
  by ``(source_file, line)`` into ``items_quarantine``; within one run the last row of a
  ``(distributor, sku)`` wins (files, then sheets, then rows in order). Only rows that
  differ from the warehouse are written, so a second run changes nothing (0 inserted,
  0 updated, ``ingested_at`` untouched). Quarantine rows of a migrated source whose line
  is no longer quarantined are deleted (the row was fixed); items are never deleted.
* ``dry_run=True`` computes the same plan and writes nothing (no schema migration either).

The catalog job's full runs prune only the rows of landed feeds: rows whose source starts
with ``legacy:`` are kept. After writing, the flow recomputes ``products`` from all of
``items_normalized``, so migrated items count as offers. A legacy row and a feed row with
the same (distributor, sku) are the same item: whichever was written last wins.

Command line::

    python -m ysh.flows.migrate_legacy data/sample/legacy/erp_export.xlsx \\
        data/sample/legacy/erp_export_precos.csv [--dry-run] [--distributor NAME]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime
from pathlib import Path
from typing import Any, Mapping, Sequence

import psycopg
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote
from psycopg import sql

from .. import db
from ..catalog import parsing as p
from ..catalog.feeds import FeedFormatError, FeedRecord, Value, read_feed, unique_headers
from ..catalog.normalize import (
    UNKNOWN_CATEGORY,
    CatalogItem,
    QuarantinedRow,
    normalize_record,
)
from ..settings import Settings, get_settings

__all__ = [
    "ARTIFACT_KEY",
    "ITEM_COLUMNS",
    "LEGACY_COLUMNS",
    "LEGACY_DISTRIBUTORS",
    "LEGACY_TYPE_CODES",
    "REQUIRED_COLUMNS",
    "UNKNOWN_DISTRIBUTOR",
    "Change",
    "LegacyFileError",
    "LegacySource",
    "MappedRecord",
    "MigrationPlan",
    "MigrationReport",
    "SourceCounts",
    "legacy_category",
    "legacy_distributor",
    "legacy_number",
    "legacy_power_w",
    "map_legacy_headers",
    "map_legacy_row",
    "migrate_legacy",
    "normalize_sources",
    "plan_changes",
    "read_legacy_file",
]

ARTIFACT_KEY = "migration-report"

#: reason code added by this flow: the row's legacy branch maps to no distributor.
UNKNOWN_DISTRIBUTOR = "unknown_distributor"

# --------------------------------------------------------------------------------------
# legacy code tables
# --------------------------------------------------------------------------------------

#: legacy ``TIPO`` code → catalog category (see the module docstring).
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

#: sheets that hold notes, not data.
IGNORED_SHEETS = frozenset({"leiame", "readme", "notas", "instrucoes", "info"})
HEADER_SEARCH_ROWS = 20

#: the record dict handed to the normalizer: these headers map to themselves.
RECORD_FIELDS: tuple[str, ...] = ("sku", "description", "brand", "model", "category", "power_w",
                                  "price", "stock", "inmetro")
_CATALOG_MAPPING = p.map_headers(list(RECORD_FIELDS))
assert _CATALOG_MAPPING.power_unit == "W" and not _CATALOG_MAPPING.unknown

#: ``items_normalized`` columns written by the flow (besides ``ingested_at``), in order.
ITEM_COLUMNS: tuple[str, ...] = tuple(
    "source_line" if name == "line" else name for name in CatalogItem._fields)
_QUARANTINE_COLUMNS = ("distributor", "reason", "detail", "raw")


class LegacyFileError(ValueError):
    """A legacy export that cannot be read at all (the run stops before writing anything)."""


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


# --------------------------------------------------------------------------------------
# reading exports (pure I/O, no Prefect)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LegacySource:
    """One sheet of a workbook, or one CSV: its rows with their line numbers."""

    file: str  # file name
    sheet: str | None
    headers: tuple[str, ...]
    columns: dict[str, str]  # legacy field -> header
    records: tuple[FeedRecord, ...]
    as_of: date  # the export's modification date (Inmetro registrations after it: invalid)

    @property
    def source_file(self) -> str:
        # the "legacy:" prefix keeps migrated rows apart from landed feeds, whose full
        # catalog runs prune the rows they did not write (ysh.catalog.job.reconcile)
        name = f"{self.file}#{self.sheet}" if self.sheet else self.file
        return f"{LEGACY_SOURCE_PREFIX}{name}"

    @property
    def default_distributor(self) -> str:
        return Path(self.file).stem


def expand_paths(paths: Sequence[Path | str]) -> list[Path]:
    """Files of the run: each path, or the CSV/XLSX files directly inside a folder."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith((".", "~$"))
                           and f.suffix.lower() in (".csv", ".xlsx", ".xlsm"))
            if not found:
                raise LegacyFileError(f"{path}: no .csv or .xlsx export in this folder")
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise LegacyFileError("no legacy export given")
    return files


def read_legacy_file(path: Path) -> list[LegacySource]:
    """The sources of one export file (XLSX: its data sheets; CSV: itself).

    Raises
    ------
    LegacyFileError
        missing file, a format other than CSV/XLSX, a broken workbook, a binary or empty
        CSV, or a sheet without the required columns (the message lists those found).
    """
    path = Path(path)
    if not path.is_file():
        raise LegacyFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    as_of = date.fromtimestamp(path.stat().st_mtime)
    if suffix in (".xlsx", ".xlsm"):
        return _read_workbook(path, as_of)
    if suffix in (".csv", ".txt"):
        return [_read_csv(path, as_of)]
    if suffix == ".xls":
        raise LegacyFileError(f"{path.name}: legacy binary .xls is not supported; "
                              "open it and save it as .xlsx (or export CSV)")
    raise LegacyFileError(f"{path.name}: not a CSV or XLSX export (extension {suffix or 'none'!r}); "
                          "expected .csv or .xlsx")


def _read_workbook(path: Path, as_of: date) -> list[LegacySource]:
    from openpyxl import load_workbook

    if not zipfile.is_zipfile(path):
        raise LegacyFileError(f"{path.name}: not an XLSX workbook (not a zip archive)")
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for broken files
        raise LegacyFileError(f"{path.name}: cannot read the workbook: {type(exc).__name__}: {exc}") from exc
    try:
        sources = []
        for ws in wb.worksheets:
            if p.normalize_header(ws.title) in IGNORED_SHEETS:
                continue
            rows = [(number, tuple(_excel_value(v) for v in row))
                    for number, row in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1)]
            source = _source_from_rows(path.name, ws.title, rows, as_of)
            if source is not None:
                sources.append(source)
    finally:
        wb.close()
    if not sources:
        raise LegacyFileError(f"{path.name}: no data sheet (sheets: {', '.join(wb.sheetnames)})")
    return sources


def _excel_value(value: Any) -> Value:
    if value is None or isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == dtime(0) else value.isoformat()
    if isinstance(value, (date, dtime)):
        return value.isoformat()
    return str(value)


def _blank(cells: Sequence[Value]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _source_from_rows(file: str, sheet: str, rows: list[tuple[int, tuple[Value, ...]]],
                      as_of: date) -> LegacySource | None:
    where = f"{file} sheet {sheet!r}"
    filled = [(n, cells) for n, cells in rows if not _blank(cells)]
    if not filled:
        return None  # an empty sheet: nothing to migrate
    header_at = None
    for index, (number, cells) in enumerate(filled[:HEADER_SEARCH_ROWS]):
        if "sku" in map_legacy_headers([str(c) for c in cells if c is not None]):
            header_at = index
            break
    if header_at is None:
        first = [str(c) for c in filled[0][1] if c is not None]
        raise LegacyFileError(
            f"{where}: no header row naming a product code column "
            f"({', '.join(a.upper() for a in LEGACY_COLUMNS['sku'])}) in its first {HEADER_SEARCH_ROWS} "
            f"rows; first row found: {', '.join(first)}")
    header_cells = filled[header_at][1]
    width = max((i + 1 for i, c in enumerate(header_cells) if c is not None and str(c).strip()), default=0)
    headers = unique_headers(["" if c is None else str(c) for c in header_cells[:width]])
    columns = _check_columns(where, headers)
    records = []
    for number, cells in filled[header_at + 1:]:
        cells = tuple(cells[:width]) + (None,) * (width - len(cells))
        if _blank(cells):
            continue
        records.append(FeedRecord(line=number, fields=dict(zip(headers, cells))))
    return LegacySource(file, sheet, tuple(headers), columns, tuple(records), as_of)


def _check_columns(where: str, headers: Sequence[str]) -> dict[str, str]:
    columns = map_legacy_headers(headers)
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        wanted = "; ".join(f"{name} ({'/'.join(a.upper() for a in LEGACY_COLUMNS[name])})" for name in missing)
        raise LegacyFileError(f"{where}: missing required columns: {wanted}; "
                              f"columns found: {', '.join(headers) or '(none)'}")
    return columns


def _read_csv(path: Path, as_of: date) -> LegacySource:
    """A CSV export through the catalog's feed reader: encoding detection (latin-1 …),
    delimiter, physical line numbers, ``malformed_row`` for broken lines."""
    try:
        feed = read_feed(path.read_bytes(), path.name)
    except FeedFormatError as exc:
        raise LegacyFileError(f"{path.name}: cannot read as CSV: {exc}") from exc
    if feed.format != "csv":
        raise LegacyFileError(f"{path.name}: the content is {feed.format.upper()}, not a CSV export")
    columns = _check_columns(path.name, feed.headers)
    return LegacySource(path.name, None, tuple(feed.headers), columns, tuple(feed.records), as_of)


# --------------------------------------------------------------------------------------
# normalization through the catalog normalizer (pure)
# --------------------------------------------------------------------------------------


@dataclass
class SourceCounts:
    source: str
    rows: int = 0
    items: int = 0  # rows that became an item (before de-duplication across rows)
    quarantined: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class NormalizedBatch:
    items: dict[tuple[str, str], CatalogItem]  # (distributor, sku) -> the winning row
    quarantine: dict[tuple[str, int], QuarantinedRow]  # (source_file, line)
    sources: dict[str, SourceCounts]
    duplicate_skus: int = 0


def _legacy_raw(record: FeedRecord) -> str:
    raw: dict[str, Any] = {k: v for k, v in record.fields.items()}
    if record.raw_text is not None and not record.fields:
        raw = {"_text": record.raw_text}
    if record.extra:
        raw["_extra"] = list(record.extra)
    safe = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in raw.items()}
    return json.dumps(safe, ensure_ascii=False, default=str)


def normalize_source(source: LegacySource, *, distributor: str | None = None
                     ) -> list[CatalogItem | QuarantinedRow]:
    """Every row of one source as a catalog item or a quarantined row (in row order).

    A quarantined row's ``raw`` is the legacy row as exported (legacy column names)."""
    results: list[CatalogItem | QuarantinedRow] = []
    for record in source.records:
        if record.error:  # a CSV line the reader could not split (malformed_row)
            mapped = MappedRecord({}, distributor or source.default_distributor,
                                  (record.error, record.detail or record.error))
        else:
            mapped = map_legacy_row(record.fields, source.columns,
                                    default_distributor=source.default_distributor,
                                    distributor=distributor)
        reason, detail = mapped.rejection or (None, None)
        feed_record = FeedRecord(line=record.line, fields=mapped.fields, error=reason, detail=detail)
        result = normalize_record(feed_record, _CATALOG_MAPPING, distributor=mapped.distributor,
                                  source_file=source.source_file, as_of=source.as_of)
        if isinstance(result, QuarantinedRow):
            result = result._replace(raw=_legacy_raw(record))
        results.append(result)
    return results


def normalize_sources(sources: Sequence[LegacySource], *, distributor: str | None = None) -> NormalizedBatch:
    """All sources, in order: the last row of a ``(distributor, sku)`` wins."""
    batch = NormalizedBatch({}, {}, {})
    for source in sources:
        counts = batch.sources.setdefault(source.source_file, SourceCounts(source.source_file))
        for result in normalize_source(source, distributor=distributor):
            counts.rows += 1
            if isinstance(result, QuarantinedRow):
                counts.quarantined += 1
                batch.quarantine[(result.source_file, result.line)] = result
                continue
            counts.items += 1
            key = (result.distributor, result.sku)
            if key in batch.items:
                batch.duplicate_skus += 1
                del batch.items[key]  # re-insert: the order follows the winning row
            batch.items[key] = result
    return batch


# --------------------------------------------------------------------------------------
# the plan: what differs from the warehouse (pure)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One item that would be (or was) written: ``fields`` maps a changed column to
    ``(old, new)`` (empty for an insert)."""

    action: str  # insert | update
    distributor: str
    sku: str
    source: str
    line: int
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.action == "insert":
            return "new item"
        return "; ".join(f"{name}: {_fmt(old)} → {_fmt(new)}" for name, (old, new) in self.fields.items())


@dataclass
class MigrationPlan:
    inserts: list[dict[str, Any]]
    updates: list[dict[str, Any]]
    unchanged: int
    quarantine_upserts: list[dict[str, Any]]
    quarantine_deletes: list[tuple[str, int]]
    changes: list[Change]


def item_row(item: CatalogItem) -> dict[str, Any]:
    """An item as the columns of ``items_normalized`` (without ``ingested_at``)."""
    values = item._asdict()
    values["source_line"] = values.pop("line")
    return {name: values[name] for name in ITEM_COLUMNS}


def quarantine_row(row: QuarantinedRow) -> dict[str, Any]:
    return {"source_file": row.source_file, "line": row.line, "distributor": row.distributor,
            "reason": row.reason, "detail": row.detail, "raw": json.loads(row.raw)}


def plan_changes(batch: NormalizedBatch, existing_items: Mapping[tuple[str, str], Mapping[str, Any]],
                 existing_quarantine: Mapping[tuple[str, int], Mapping[str, Any]]) -> MigrationPlan:
    """Compare the batch with the warehouse rows of the same keys (and, for quarantine,
    of the same sources) and update the per-source counts of ``batch.sources``."""
    plan = MigrationPlan([], [], 0, [], [], [])
    for key, item in batch.items.items():
        new = item_row(item)
        old = existing_items.get(key)
        counts = batch.sources[item.source_file]
        if old is None:
            plan.inserts.append(new)
            counts.inserted += 1
            plan.changes.append(Change("insert", item.distributor, item.sku, item.source_file, item.line))
            continue
        diff = {name: (old.get(name), new[name]) for name in ITEM_COLUMNS if old.get(name) != new[name]}
        if diff:
            plan.updates.append(new)
            counts.updated += 1
            plan.changes.append(Change("update", item.distributor, item.sku, item.source_file, item.line, diff))
        else:
            plan.unchanged += 1
            counts.unchanged += 1
    for key, row in batch.quarantine.items():
        new = quarantine_row(row)
        old = existing_quarantine.get(key)
        if old is None or any(old.get(c) != new[c] for c in _QUARANTINE_COLUMNS):
            plan.quarantine_upserts.append(new)
    plan.quarantine_deletes = sorted(k for k in existing_quarantine
                                     if k[0] in batch.sources and k not in batch.quarantine)
    return plan


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------


@dataclass
class MigrationReport:
    dry_run: bool
    files: list[str]
    rows_in: int
    items: int  # distinct (distributor, sku) after the last-row-wins rule
    inserted: int
    updated: int
    unchanged: int
    duplicate_skus: int
    quarantined_by_reason: dict[str, int]
    quarantine_written: int  # quarantine rows new or different from the warehouse
    quarantine_cleared: int  # stale quarantine rows of these sources removed (fixed rows)
    sources: list[SourceCounts]
    changes: list[Change]
    schema: str = ""

    @property
    def quarantined(self) -> int:
        return sum(self.quarantined_by_reason.values())

    @property
    def upserted(self) -> int:
        return self.inserted + self.updated

    @property
    def changed(self) -> int:
        """Rows written (or, in a dry run, that would be): 0 on a repeated run."""
        return self.inserted + self.updated + self.quarantine_written + self.quarantine_cleared

    def to_markdown(self, max_changes: int = 50) -> str:
        verb = "would be written" if self.dry_run else "written"
        title = ("# Legacy ERP migration — dry run: nothing was written" if self.dry_run
                 else "# Legacy ERP migration")
        lines = [
            title, "",
            f"Files: {', '.join(f'`{f}`' for f in self.files)}"
            + (f" · warehouse schema `{self.schema}`" if self.schema else ""), "",
            "| rows in | items | inserted | updated | upserted | unchanged | quarantined | duplicate SKUs |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {self.rows_in} | {self.items} | {self.inserted} | {self.updated} | {self.upserted} "
            f"| {self.unchanged} | {self.quarantined} | {self.duplicate_skus} |",
            "",
            f"Quarantine rows {verb}: {self.quarantine_written} new or changed, "
            f"{self.quarantine_cleared} cleared (rows fixed since the last run).",
            "", "## Quarantined by reason", "",
            "| reason | rows |", "|---|---:|",
        ]
        if self.quarantined_by_reason:
            lines += [f"| {reason} | {n} |" for reason, n in self.quarantined_by_reason.items()]
        else:
            lines.append("| (none) | 0 |")
        lines += ["", "## Per sheet", "",
                  "| source | rows | items | inserted | updated | unchanged | quarantined |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {_cell(s.source)} | {s.rows} | {s.items} | {s.inserted} | {s.updated} "
                  f"| {s.unchanged} | {s.quarantined} |" for s in self.sources]
        lines += ["", f"## Changes ({len(self.changes)} {'would be made' if self.dry_run else 'made'})", ""]
        if self.changes:
            lines += ["| action | distributor | sku | source:line | change |", "|---|---|---|---|---|"]
            lines += [f"| {c.action} | {_cell(c.distributor)} | {_cell(c.sku)} | {_cell(c.source)}:{c.line} "
                      f"| {_cell(c.describe())} |" for c in self.changes[:max_changes]]
            if len(self.changes) > max_changes:
                lines.append(f"\n… and {len(self.changes) - max_changes} more.")
        else:
            lines.append("No item changes.")
        return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    return "∅" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------------------
# warehouse access
# --------------------------------------------------------------------------------------


def _transient_db_error(task_, task_run, state) -> bool:
    """Retry a warehouse task only on connection-level errors (not on a bad row)."""
    error = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(error, (psycopg.OperationalError, psycopg.errors.SerializationFailure,
                              psycopg.errors.DeadlockDetected))


def _tables_exist(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('items_normalized') IS NOT NULL "
                        "AND to_regclass('items_quarantine') IS NOT NULL").fetchone()[0]


def load_existing(warehouse: db.Warehouse, keys: Sequence[tuple[str, str]], sources: Sequence[str]
                  ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, int], dict[str, Any]]]:
    items: dict[tuple[str, str], dict[str, Any]] = {}
    quarantine: dict[tuple[str, int], dict[str, Any]] = {}
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        if not _tables_exist(conn):
            return items, quarantine  # an unmigrated warehouse (dry run): everything is new
        if keys:
            cur = conn.execute(
                sql.SQL("SELECT {} FROM items_normalized JOIN unnest(%s::text[], %s::text[]) "
                        "AS k(distributor, sku) USING (distributor, sku)").format(
                    sql.SQL(", ").join(sql.Identifier("items_normalized", c) for c in ITEM_COLUMNS)),
                ([k[0] for k in keys], [k[1] for k in keys]))
            for values in cur.fetchall():
                row = dict(zip(ITEM_COLUMNS, values))
                items[(row["distributor"], row["sku"])] = row
        if sources:
            cur = conn.execute(
                "SELECT source_file, line, distributor, reason, detail, raw FROM items_quarantine "
                "WHERE source_file = ANY(%s)", (list(sources),))
            for source_file, line, *rest in cur.fetchall():
                quarantine[(source_file, line)] = dict(zip(_QUARANTINE_COLUMNS, rest))
    return items, quarantine


def apply_plan(warehouse: db.Warehouse, plan: MigrationPlan) -> None:
    """Write the plan in one transaction (all or nothing: a retry is safe)."""
    item_sql = sql.SQL(
        "INSERT INTO items_normalized ({cols}, ingested_at) VALUES ({vals}, now()) "
        "ON CONFLICT (distributor, sku) DO UPDATE SET {sets}, ingested_at = EXCLUDED.ingested_at"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, ITEM_COLUMNS)),
        vals=sql.SQL(", ").join(sql.Placeholder(c) for c in ITEM_COLUMNS),
        sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                for c in ITEM_COLUMNS if c not in ("distributor", "sku")),
    )
    quarantine_sql = (
        "INSERT INTO items_quarantine (distributor, source_file, line, reason, detail, raw, ingested_at) "
        "VALUES (%(distributor)s, %(source_file)s, %(line)s, %(reason)s, %(detail)s, %(raw)s::jsonb, now()) "
        "ON CONFLICT (source_file, line) DO UPDATE SET distributor = EXCLUDED.distributor, "
        "reason = EXCLUDED.reason, detail = EXCLUDED.detail, raw = EXCLUDED.raw, "
        "ingested_at = EXCLUDED.ingested_at")
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        with conn.transaction(), conn.cursor() as cur:
            rows = plan.inserts + plan.updates
            if rows:
                cur.executemany(item_sql, rows)
            if plan.quarantine_upserts:
                cur.executemany(quarantine_sql, [
                    {**q, "raw": json.dumps(q["raw"], ensure_ascii=False)} for q in plan.quarantine_upserts])
            if plan.quarantine_deletes:
                cur.execute(
                    "DELETE FROM items_quarantine q USING unnest(%s::text[], %s::bigint[]) AS k(source_file, line) "
                    "WHERE q.source_file = k.source_file AND q.line = k.line",
                    ([k[0] for k in plan.quarantine_deletes], [k[1] for k in plan.quarantine_deletes]))


# --------------------------------------------------------------------------------------
# Prefect tasks and flow
# --------------------------------------------------------------------------------------

_TASK_DEFAULTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="read_legacy_export", timeout_seconds=300, **_TASK_DEFAULTS)
def read_export_task(path: Path) -> list[LegacySource]:
    """Read one export (no retries: an unreadable file stays unreadable)."""
    sources = read_legacy_file(path)
    get_run_logger().info("%s: %s", path.name, ", ".join(
        f"{s.sheet or 'csv'} ({len(s.records)} rows)" for s in sources))
    return sources


@task(name="normalize_legacy_rows", timeout_seconds=600, **_TASK_DEFAULTS)
def normalize_task(sources: list[LegacySource], distributor: str | None) -> NormalizedBatch:
    batch = normalize_sources(sources, distributor=distributor)
    get_run_logger().info("%d rows: %d items, %d quarantined", sum(s.rows for s in batch.sources.values()),
                          len(batch.items), len(batch.quarantine))
    return batch


@task(name="diff_against_warehouse", timeout_seconds=300, retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=_transient_db_error, **_TASK_DEFAULTS)
def diff_task(warehouse: db.Warehouse, batch: NormalizedBatch) -> MigrationPlan:
    existing_items, existing_quarantine = load_existing(warehouse, list(batch.items), list(batch.sources))
    return plan_changes(batch, existing_items, existing_quarantine)


@task(name="upsert_catalog_rows", timeout_seconds=600, retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=_transient_db_error, **_TASK_DEFAULTS)
def upsert_task(warehouse: db.Warehouse, plan: MigrationPlan) -> None:
    apply_plan(warehouse, plan)
    get_run_logger().info("upserted %d items, %d quarantine rows; cleared %d quarantine rows",
                          len(plan.inserts) + len(plan.updates), len(plan.quarantine_upserts),
                          len(plan.quarantine_deletes))


@task(name="refresh_products", timeout_seconds=900, **_TASK_DEFAULTS)
def refresh_products_task(settings: Settings) -> None:
    """``products`` from all of ``items_normalized`` (a Pathway run, in its own process:
    Pathway wants the main thread and a fresh graph)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "YSH_POSTGRES_SCHEMA": settings.postgres_schema}
    if settings.postgres_dsn is not None:
        env["YSH_POSTGRES_DSN"] = settings.postgres_dsn.get_secret_value()
    done = subprocess.run([sys.executable, "-m", "ysh.cli", "catalog", "products"], env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"recomputing products failed: {done.stderr[-2000:]}")
    get_run_logger().info(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "products recomputed")


@flow(name="migrate_legacy", timeout_seconds=3600)
def migrate_legacy(paths: list[Path], *, dry_run: bool = False, distributor: str | None = None,
                   settings: Settings | None = None) -> MigrationReport:
    """Import a legacy ERP export (XLSX workbooks and CSV lists) into the catalog tables.

    Idempotent (only differing rows are written); ``dry_run`` writes nothing and reports
    what would change; ``distributor`` forces the distributor of every row. Publishes
    the report as the markdown artifact ``migration-report`` and returns it.

    Raises
    ------
    LegacyFileError
        a file cannot be read; nothing is written then.
    """
    logger = get_run_logger()
    settings = settings or get_settings()
    files = expand_paths(paths)
    sources: list[LegacySource] = []
    for path in files:  # read every file before writing anything
        sources.extend(read_export_task(path))
    batch = normalize_task(quote(sources), distributor)
    dsn = db.resolve_dsn(settings)
    if not dry_run:
        db.migrate(dsn, settings.postgres_schema)
    warehouse = db.Warehouse(dsn, settings.postgres_schema)
    plan = diff_task(warehouse, quote(batch))
    if not dry_run:
        upsert_task(warehouse, quote(plan))
        if plan.inserts or plan.updates:
            refresh_products_task(settings)
    report = MigrationReport(
        dry_run=dry_run,
        files=[f.name for f in files],
        rows_in=sum(s.rows for s in batch.sources.values()),
        items=len(batch.items),
        inserted=len(plan.inserts),
        updated=len(plan.updates),
        unchanged=plan.unchanged,
        duplicate_skus=batch.duplicate_skus,
        quarantined_by_reason=dict(Counter(q.reason for q in batch.quarantine.values()).most_common()),
        quarantine_written=len(plan.quarantine_upserts),
        quarantine_cleared=len(plan.quarantine_deletes),
        sources=list(batch.sources.values()),
        changes=plan.changes,
        schema=settings.postgres_schema,
    )
    create_markdown_artifact(
        markdown=report.to_markdown(), key=ARTIFACT_KEY,
        description=("Legacy ERP migration (dry run)" if dry_run else "Legacy ERP migration")
        + f": {report.rows_in} rows, {report.upserted} upserted, {report.quarantined} quarantined")
    logger.info("%s: %d rows in, %d inserted, %d updated, %d unchanged, quarantined %s",
                "dry run" if dry_run else "migration", report.rows_in, report.inserted, report.updated,
                report.unchanged, report.quarantined_by_reason or "none")
    return report


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ysh.flows.migrate_legacy",
        description="Import a legacy ERP export (XLSX/CSV) into the catalog (Prefect flow migrate_legacy).")
    parser.add_argument("paths", nargs="+", type=Path, help="export files (.xlsx, .csv) or folders")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    parser.add_argument("--distributor", help="distributor of every row (default: from COD_FILIAL)")
    args = parser.parse_args(argv)
    try:
        report = migrate_legacy(args.paths, dry_run=args.dry_run, distributor=args.distributor)
    except LegacyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.to_markdown(max_changes=len(report.changes) or 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
