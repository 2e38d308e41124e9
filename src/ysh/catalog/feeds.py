"""Decoding distributor feed files into records (pure Python).

A feed file is CSV (``;``, ``,`` or tab separated), a JSON array (or an object holding
one under ``items``/``produtos``/``data``) or JSON lines, in UTF-8 (with or without
BOM) or latin-1/cp1252. The encoding and format are detected from the bytes, not
trusted from the extension alone.

Each record keeps its line number (CSV and JSON lines: the physical line where the
record starts, header = line 1; JSON array: the 1-based element index) so that a
quarantined row can be found in the original file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import NamedTuple

from .. import textio

Value = str | int | float | None


class FeedFormatError(ValueError):
    """The whole file cannot be read (not a supported format, broken JSON array …).

    ``reason`` is the quarantine code: ``unparseable_file`` or ``empty_file``."""

    def __init__(self, message: str, reason: str = "unparseable_file"):
        super().__init__(message)
        self.reason = reason


class FeedRecord(NamedTuple):
    """One record as the feed wrote it (a named tuple: hundreds of thousands are built).

    ``fields`` maps the original header to the value: text for CSV, the JSON scalar for
    JSON (numbers stay numbers so that ``1.234`` in JSON is never read as thousands).
    ``error`` is a reason code when the record itself is malformed.
    """

    line: int
    fields: dict[str, Value]
    error: str | None = None
    detail: str | None = None
    raw_text: str | None = None
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecodedFeed:
    format: str  # csv | json | jsonl
    encoding: str
    headers: list[str]
    records: list[FeedRecord]


def decode_text(data: bytes) -> tuple[str, str]:
    """:func:`ysh.textio.decode_text`, with binary content as a feed-level error: a NUL
    byte anywhere (not only in the first 64 KiB) makes the file binary, since no text
    column of PostgreSQL can hold it."""
    try:
        text, encoding = textio.decode_text(data)
    except textio.NotTextError as exc:
        raise FeedFormatError(str(exc).replace("text file", "text feed")) from exc
    if "\x00" in text:
        raise FeedFormatError(f"binary content (a NUL character at offset {text.index(chr(0))}), not a text feed")
    return text, encoding


def detect_format(text: str, filename: str) -> str:
    """``csv``, ``json`` or ``jsonl`` from the content, with the extension as a tie-breaker."""
    suffix = PurePath(filename).suffix.lower()
    stripped = text.lstrip()
    if not stripped:
        return "csv" if suffix not in (".json", ".jsonl", ".ndjson") else suffix.lstrip(".").replace("ndjson", "jsonl")
    first = stripped[0]
    if first == "[":
        return "json"
    if first == "{":
        if suffix == ".json":
            # a single object wrapping a list, or JSON lines saved as .json
            first_line = stripped.split("\n", 1)[0].strip()
            try:
                json.loads(first_line)
                return "jsonl" if "\n" in stripped.strip() else "json"
            except json.JSONDecodeError:
                return "json"
        return "jsonl"
    return "csv"


def _keep_constant(name: str) -> str:
    """``NaN``/``Infinity`` are not JSON numbers: keep them as text so the field's own
    parser rejects them (instead of a float that poisons sums and medians)."""
    return name


def _int_or_text(digits: str) -> int | str:
    """A JSON integer wider than 64 bits stays text: no field holds one, Pathway's JSON
    cannot, and past 4,300 digits Python refuses to convert it at all."""
    return int(digits) if len(digits) <= 18 else digits


def _loads(text: str) -> object:
    return json.loads(text, parse_constant=_keep_constant, parse_int=_int_or_text)


#: JSON escapes that decode to what no PostgreSQL text holds (NUL) or no UTF-8 encodes
#: (a lone surrogate); the records of a document that has none need no check
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _unstorable(text: str) -> bool:
    """A NUL character or a lone surrogate (from a ``\\u0000``/``\\ud800`` escape)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _scalar(value: object) -> Value:
    if value is None or isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def _json_record(obj: object, line: int, suspect: bool = False) -> FeedRecord:
    """One JSON element as a record. ``suspect``: the document has escapes of a NUL
    character or of a surrogate; a record holding one (in a key or a text value) is
    quarantined as ``malformed_record``, its text kept with U+FFFD in their place."""
    if not isinstance(obj, dict):
        raw = json.dumps(obj, ensure_ascii=False)
        return FeedRecord(line=line, fields={}, error="malformed_record",
                          detail=f"expected an object, got {type(obj).__name__}",
                          raw_text=_storable(raw) if suspect else raw)
    fields = {str(k): _scalar(v) for k, v in obj.items()}
    if suspect and any(_unstorable(k) or isinstance(v, str) and _unstorable(v) for k, v in fields.items()):
        return FeedRecord(line=line, fields={_storable(k): _storable(v) if isinstance(v, str) else v
                                             for k, v in fields.items()},
                          error="malformed_record",
                          detail="a NUL character or a lone surrogate (\\u0000, \\ud800…) in a key or value")
    return FeedRecord(line=line, fields=fields)


def _headers_of(records: list[FeedRecord]) -> list[str]:
    headers: dict[str, None] = {}
    for record in records:
        for key in record.fields:
            headers.setdefault(key, None)
    return list(headers)


def _read_json(text: str) -> list[FeedRecord]:
    try:
        doc = _loads(text)
    except json.JSONDecodeError as exc:
        raise FeedFormatError(f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise FeedFormatError("JSON nested too deeply to read (hundreds of levels)") from exc
    except ValueError as exc:
        raise FeedFormatError(f"invalid JSON: {str(exc)[:200]}") from exc
    suspect = _SUSPECT_ESCAPE.search(text) is not None
    if isinstance(doc, dict):
        for key in ("items", "produtos", "data", "products", "itens"):
            if isinstance(doc.get(key), list):
                doc = doc[key]
                break
        else:
            doc = [doc]
    if not isinstance(doc, list):
        raise FeedFormatError("JSON document is neither an array nor an object")
    return [_json_record(obj, i, suspect) for i, obj in enumerate(doc, start=1)]


def _read_jsonl(text: str) -> list[FeedRecord]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = _loads(line)
        except RecursionError:
            records.append(FeedRecord(line=number, fields={}, error="malformed_json",
                                      detail="JSON nested too deeply to read (hundreds of levels)",
                                      raw_text=line[:1000]))
            continue
        except ValueError as exc:  # JSONDecodeError included
            records.append(FeedRecord(line=number, fields={}, error="malformed_json",
                                      detail=str(exc)[:500], raw_text=line))
            continue
        records.append(_json_record(obj, number, _SUSPECT_ESCAPE.search(line) is not None))
    return records


def detect_delimiter(header_line: str) -> str:
    """The most frequent of ``;``, ``,``, tab and ``|`` outside quotes in the header line."""
    counts = {d: 0 for d in (";", ",", "\t", "|")}
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def unique_headers(cells: list[str]) -> list[str]:
    """Header names made unique so that no column is lost: a repeated ``Preço`` becomes
    ``Preço#2``, an empty header ``_col3`` (3 = its 1-based position)."""
    seen: dict[str, int] = {}
    headers = []
    for position, cell in enumerate(cells, start=1):
        name = cell.strip() or f"_col{position}"
        count = seen.get(name, 0) + 1
        seen[name] = count
        headers.append(name if count == 1 else f"{name}#{count}")
    return headers


def _read_csv(text: str) -> tuple[list[str], list[FeedRecord]]:
    """CSV records with their starting physical line.

    A quoted field may span lines (a multi-line description), but a quote that is never
    closed would swallow every following row. So a record whose embedded line break is
    followed by the delimiter, or that the strict parser rejects, is reported as
    ``malformed_row`` (its first physical line as ``raw``) and parsing resumes on the
    next physical line.
    """
    lines = text.splitlines(keepends=True)
    header_line = next((line for line in lines if line.strip()), "")
    if not header_line:
        return [], []
    delimiter = detect_delimiter(header_line)
    headers: list[str] | None = None
    width = 0
    records: list[FeedRecord] = []
    offset = 0  # physical lines consumed before the current reader's first line
    while offset < len(lines):
        reader = csv.reader(io.StringIO("".join(lines[offset:]), newline=""),
                            delimiter=delimiter, strict=True)
        previous_line = 0
        restart_at: int | None = None
        while True:
            start_line = offset + previous_line + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                records.append(FeedRecord(line=start_line, fields={}, error="malformed_row",
                                          detail=f"CSV: {exc}", raw_text=lines[start_line - 1].rstrip("\r\n")))
                restart_at = start_line  # resume right after the broken record's first line
                break
            spanned = reader.line_num - previous_line
            previous_line = reader.line_num
            # a quote never closed swallows the following rows: the record then spans lines,
            # its broken cell holds delimiters after the line break, and it comes up short
            # of columns. A title that merely wraps (a storefront scrape's "…\n - 4,80 kWp")
            # leaves the row its full width.
            if spanned > 1 and (headers is None or len(row) < width) and any(
                    "\n" in cell and delimiter in cell.split("\n", 1)[1] for cell in row):
                records.append(FeedRecord(
                    line=start_line, fields={}, error="malformed_row",
                    detail="unterminated quote: the field runs into the following rows",
                    raw_text=lines[start_line - 1].rstrip("\r\n")))
                restart_at = start_line
                break
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            if headers is None:
                headers = unique_headers(row)
                width = len(headers)
                continue
            if len(row) >= width:
                values: dict[str, Value] = dict(zip(headers, row))
            else:  # short row: the missing trailing fields are absent (None)
                values = dict(zip(headers, row + [None] * (width - len(row))))
            extra = tuple(row[width:])
            if extra and any(cell.strip() for cell in extra):
                records.append(FeedRecord(
                    line=start_line, fields=values, error="malformed_row",
                    detail=f"{len(row)} fields for {width} columns", extra=extra,
                ))
                continue
            records.append(FeedRecord(line=start_line, fields=values))
        if restart_at is None:
            break
        offset = restart_at
    return headers or [], records


def read_feed(data: bytes, filename: str) -> DecodedFeed:
    """Decode a feed file's bytes into records.

    Raises
    ------
    FeedFormatError
        the file as a whole cannot be read (e.g. a truncated JSON array).
    """
    text, encoding = decode_text(data)
    if not text.strip():
        raise FeedFormatError("empty file: no header, no rows", reason="empty_file")
    fmt = detect_format(text, filename)
    if fmt == "json":
        records = _read_json(text)
        return DecodedFeed("json", encoding, _headers_of(records), records)
    if fmt == "jsonl":
        records = _read_jsonl(text)
        return DecodedFeed("jsonl", encoding, _headers_of(records), records)
    headers, records = _read_csv(text)
    return DecodedFeed("csv", encoding, headers, records)
