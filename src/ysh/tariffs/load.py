"""One ANEEL file → typed rows, whatever dataset it is (pure Python).

The dataset is recognized by its header, not its name: *tarifas homologadas*,
*componentes tarifárias* (Fio B) or *bandeiras acionamento*.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from typing import NamedTuple

from ..kit.files import files_under
from . import aneel
from .aneel import FileFormatError, QuarantinedRow, RawRecord
from .book import TariffBook, check_flags, split_overlaps

UNPARSEABLE_FILE = "unparseable_file"


def dataset_of(data: bytes) -> str | None:
    """``tariffs``, ``fio_b`` or ``flags`` from the file's first non-blank line; None if unknown."""
    head = data[:65536]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head[:len(head) // 2 * 2].decode("utf-16", errors="replace")
    else:
        text = head.decode("latin-1")  # the header names are ASCII
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "VlrTUSD" in first and "DscSubGrupo" in first:
        return "tariffs"
    if "DscComponenteTarifario" in first:
        return "fio_b"
    if "NomBandeiraAcionada" in first:
        return "flags"
    return None


class RawFile(NamedTuple):
    dataset: str  # tariffs | fio_b | flags
    encoding: str
    records: list[RawRecord]


def read_raw_file(data: bytes, source_file: str) -> RawFile:
    """The rows of one ANEEL file as published (column → text), for ``tarifas_raw``.

    Of *componentes tarifárias* only the ``TUSD_FioB`` rows are kept: the real file
    carries every component of every utility and this job reads only Fio B.

    Raises
    ------
    FileFormatError
        the file is none of the three datasets, or not text.
    """
    dataset = dataset_of(data)
    if dataset is None:
        raise FileFormatError(f"{source_file}: not an ANEEL tarifas, componentes or bandeiras file")
    try:
        records, encoding = aneel.read_records(data, aneel.DATASETS[dataset][0])
    except FileFormatError as exc:
        raise FileFormatError(f"{source_file}: {exc}") from None
    if dataset == "fio_b":
        records = [r for r in records if aneel.fold(r.record.get("DscComponenteTarifario")) == "tusd_fiob"]
    return RawFile(dataset, encoding, records)


def row_from_record(dataset: str, record: dict[str, str], source_file: str, line: int, extra_fields: int = 0):
    """One raw record (as stored in ``tarifas_raw``) → Tariff / FioB / FlagMonth /
    QuarantinedRow, or None (a component other than Fio B). A record that is not a JSON
    object (null, a list, a number, a string: written by hand or by another tool) is
    quarantined as ``malformed_row``, never an error that stops the batch or the follower."""
    if not isinstance(record, dict):
        return QuarantinedRow(source_file, line, aneel.MALFORMED_ROW,
                              f"the raw record is not a JSON object but {_json_kind(record)}",
                              json.dumps(record, ensure_ascii=False))
    try:
        from_record = aneel.DATASETS[dataset][1]
    except KeyError:
        return QuarantinedRow(source_file, line, UNPARSEABLE_FILE, f"unknown dataset {dataset!r}",
                              json.dumps(record, ensure_ascii=False))
    return from_record(record, source_file, line, extra_fields)


def _json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array"}.get(type(value), type(value).__name__)


class Chunk(NamedTuple):
    data: bytes  # the header line + a run of whole lines
    line_offset: int  # add to a line number within the chunk to get the file's line number


def split_file(data: bytes, chunk_bytes: int = 4 << 20) -> list[Chunk]:
    """Cut a file into chunks of whole lines that each start with the header, so that
    parsing can run in parallel (:func:`load_file` with the chunk's ``line_offset`` gives
    the same rows, with the same line numbers, as the whole file).

    A file is left whole when it is small, UTF-16, or when a cut would fall inside a
    quoted field.
    """
    if len(data) <= chunk_bytes or data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return [Chunk(data, 0)]
    end_of_header = data.find(b"\n") + 1
    if end_of_header == 0:
        return [Chunk(data, 0)]
    header, quoted = data[:end_of_header], b'"' in data
    chunks, start, lines_before = [], end_of_header, 1  # physical lines before ``start``
    quotes = data.count(b'"', 0, end_of_header)  # quotes before ``start``
    while start < len(data):
        cut = data.find(b"\n", start + chunk_bytes)
        cut = len(data) if cut < 0 else cut + 1
        quotes += data.count(b'"', start, cut) if quoted else 0
        if quotes % 2:
            return [Chunk(data, 0)]  # a line break inside quotes: do not cut
        chunks.append(Chunk(header + data[start:cut], lines_before - 1))
        lines_before += data.count(b"\n", start, cut)
        start = cut
    return chunks


@dataclass
class LoadedFile:
    source_file: str
    dataset: str
    encoding: str
    tariffs: list = field(default_factory=list)
    fio_b: list = field(default_factory=list)
    flags: list = field(default_factory=list)
    quarantine: list[QuarantinedRow] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.tariffs) + len(self.fio_b) + len(self.flags) + len(self.quarantine)


def load_file(data: bytes, source_file: str, line_offset: int = 0) -> LoadedFile:
    """Parse one ANEEL file (or a chunk of one: see :func:`split_file`). A file that is
    none of the three datasets, or not text, gives one quarantined row (line 0,
    ``unparseable_file``)."""
    dataset = dataset_of(data)
    parsers = {"tariffs": aneel.parse_tariffs, "fio_b": aneel.parse_fio_b, "flags": aneel.parse_flags}
    if dataset is None:
        return LoadedFile(source_file, "unknown", "unknown", quarantine=[QuarantinedRow(
            source_file, 0, UNPARSEABLE_FILE, "not an ANEEL tariffs, componentes or bandeiras file",
            json.dumps({"_bytes": len(data)}))])
    try:
        parsed = parsers[dataset](data, source_file, line_offset)
    except FileFormatError as exc:
        return LoadedFile(source_file, dataset, "unknown", quarantine=[QuarantinedRow(
            source_file, 0, UNPARSEABLE_FILE, str(exc), json.dumps({"_bytes": len(data)}))])
    loaded = LoadedFile(source_file, dataset, parsed.encoding, quarantine=list(parsed.quarantine))
    setattr(loaded, dataset, list(parsed.rows))
    return loaded


@dataclass
class LoadedSet:
    """Several files, with validity overlaps resolved into quarantine."""

    tariffs: list
    fio_b: list
    flags: list
    quarantine: list[QuarantinedRow]
    duplicates: int

    def book(self) -> TariffBook:
        return TariffBook(self.tariffs, self.fio_b, self.flags)


def load_paths(paths: list[Path]) -> LoadedSet:
    """Every ANEEL file under ``paths`` (files or folders), overlaps split out."""
    files = files_under(paths)
    tariffs, fio_b, flags, quarantine = [], [], [], []
    for path in files:
        loaded = load_file(path.read_bytes(), str(path))
        tariffs += loaded.tariffs
        fio_b += loaded.fio_b
        flags += loaded.flags
        quarantine += loaded.quarantine
    tariffs, overlapping_tariffs, dup_t = split_overlaps(tariffs)
    fio_b, overlapping_fio_b, dup_f = split_overlaps(fio_b)
    flags, conflicting_flags = check_flags(flags)
    return LoadedSet(tariffs, fio_b, flags, quarantine + overlapping_tariffs + overlapping_fio_b + conflicting_flags,
                     dup_t + dup_f)
