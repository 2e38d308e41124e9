"""Reading legacy exports: an XLSX workbook (one source per data sheet) or a CSV list →
:class:`LegacySource` rows with their line numbers (no Prefect, no warehouse)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time as dtime
from pathlib import Path
from typing import Any, Sequence

from .. import parsing as p
from ..feeds import FeedFormatError, FeedRecord, Value, read_feed, unique_headers
from .mapping import LEGACY_COLUMNS, LEGACY_SOURCE_PREFIX, REQUIRED_COLUMNS, map_legacy_headers

#: sheets that hold notes, not data.
IGNORED_SHEETS = frozenset({"leiame", "readme", "notas", "instrucoes", "info"})
HEADER_SEARCH_ROWS = 20


class LegacyFileError(ValueError):
    """A legacy export that cannot be read at all (the run stops before writing anything)."""


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
