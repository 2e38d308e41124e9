"""Reading ANEEL's open-data tariff files (pure Python).

Three datasets, in the formats ANEEL publishes (``;``-separated, decimal comma with zero
written ``,00``, ISO dates, UTF-8 with or without BOM or latin-1, fields quoted or not):

* *Tarifas homologadas* (17 columns): one row per tariff component key and validity
  period; ``MWh`` rows carry R$/MWh, ``kW`` rows R$/kW (demand).
* *Componentes tarifárias*: rows with ``DscComponenteTarifario = TUSD_FioB`` give the
  Fio B part of the TUSD (R$/MWh) that Lei 14.300 charges on compensated energy.
* *Bandeiras acionamento*: the monthly flag and its add-on (R$/MWh).

Values become base units: R$/kWh (= R$/MWh ÷ 1000, in exact decimal arithmetic) and
R$/kW. A row that cannot be trusted becomes a :class:`QuarantinedRow` with a reason code;
nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import NamedTuple

from ..kit.quarantine import QuarantinedRow
from ..textio import NotTextError, decode_text

TARIFF_HEADER = (
    "DatGeracaoConjuntoDados", "DscREH", "SigAgente", "NumCNPJDistribuidora", "DatInicioVigencia",
    "DatFimVigencia", "DscBaseTarifaria", "DscSubGrupo", "DscModalidadeTarifaria", "DscClasse",
    "DscSubClasse", "DscDetalhe", "NomPostoTarifario", "DscUnidadeTerciaria", "SigAgenteAcessante",
    "VlrTUSD", "VlrTE",
)
COMPONENT_HEADER = (
    "SigNomeAgente", "DscComponenteTarifario", "DscBaseTarifaria", "DscSubGrupoTarifario",
    "DscModalidadeTarifaria", "DscClasseConsumidor", "DscSubClasseConsumidor", "DscDetalheConsumidor",
    "DscPostoTarifario", "VlrComponenteTarifario", "DscUnidade", "DatInicioVigencia", "DatFimVigencia",
    "DscResolucaoHomologatoria",
)
FLAG_HEADER = ("DatGeracaoConjuntoDados", "DatCompetencia", "NomBandeiraAcionada", "VlrAdicionalBandeira")

# reason codes (stable)
UNPARSEABLE_VALUE = "unparseable_value"
NEGATIVE_VALUE = "negative_value"
MISSING_KEY = "missing_key"
UNKNOWN_UNIT = "unknown_unit"
UNPARSEABLE_DATE = "unparseable_date"
INVERTED_VALIDITY = "inverted_validity"
OVERLAPPING_VALIDITY = "overlapping_validity"
MALFORMED_ROW = "malformed_row"
UNKNOWN_FLAG = "unknown_flag"
CONFLICTING_FLAG = "conflicting_flag"

BASES = {"tarifa de aplicacao": "aplicacao", "base economica": "economica"}
FLAGS = ("Verde", "Amarela", "Vermelha P1", "Vermelha P2", "Escassez Hídrica")
THOUSAND = Decimal(1000)


class FileFormatError(ValueError):
    """The file is not the expected ANEEL dataset (wrong header, not text)."""


class Tariff(NamedTuple):
    """One row of *tarifas homologadas*, in base units."""

    utility: str
    cnpj: str | None
    valid_from: date
    valid_to: date | None  # inclusive; None: open-ended
    base: str  # aplicacao | economica
    subgroup: str
    modality: str
    tariff_class: str
    subclass: str
    detail: str
    post: str
    unit: str  # MWh | kW
    accessing_agent: str
    tusd_brl_per_kwh: float | None  # energy (MWh) rows
    te_brl_per_kwh: float | None
    tusd_brl_per_kw: float | None  # demand (kW) rows
    te_brl_per_kw: float | None
    resolution: str
    source_file: str
    line: int

    @property
    def key(self) -> tuple:
        """What identifies one tariff component across validity periods."""
        return (fold(self.utility), self.base, fold(self.subgroup), fold(self.modality),
                fold(self.tariff_class), fold(self.subclass), fold(self.detail), fold(self.post),
                self.unit, fold(self.accessing_agent))


class FioB(NamedTuple):
    """A ``TUSD_FioB`` row of *componentes tarifárias* [R$/kWh]."""

    utility: str
    base: str
    subgroup: str
    modality: str
    tariff_class: str
    subclass: str
    detail: str
    post: str
    valid_from: date
    valid_to: date | None
    fio_b_brl_per_kwh: float
    resolution: str
    source_file: str
    line: int

    @property
    def key(self) -> tuple:
        return (fold(self.utility), self.base, fold(self.subgroup), fold(self.modality),
                fold(self.tariff_class), fold(self.subclass), fold(self.detail), fold(self.post))


class FlagMonth(NamedTuple):
    """The tariff flag of one month, nationwide [R$/kWh add-on]."""

    month: date  # first day of the month
    flag: str
    addon_brl_per_kwh: float
    source_file: str
    line: int


# --------------------------------------------------------------------------------------
# small parsers
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=8_192)
def fold(text: str | None) -> str:
    """Comparison key of a label: accent-free, lower-case, single spaces (memoized: ANEEL
    files repeat a few hundred labels over hundreds of thousands of rows)."""
    if text is None:
        return ""
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.lower().split())


_DECIMAL = re.compile(r"^-?\d*(,\d+)?$")


def parse_aneel_decimal(text: str | None) -> Decimal:
    """An ANEEL value: decimal comma, no thousands separator, zero written ``,00``.

    ``"271,87"`` → 271.87; ``",00"`` → 0; ``"1.234,56"`` (a thousands dot some exports
    add) → 1234.56.

    Raises
    ------
    ValueError
        empty, several commas, letters.
    """
    s = (text or "").strip().replace(" ", "")
    if "." in s and "," in s and s.index(".") < s.index(","):
        s = s.replace(".", "")
    if not s or not _DECIMAL.match(s) or s in ("-", ","):
        raise ValueError(f"not an ANEEL decimal: {text!r}")
    try:
        return Decimal(s.replace(",", "."))
    except InvalidOperation as exc:  # pragma: no cover - the regex guards it
        raise ValueError(f"not an ANEEL decimal: {text!r}") from exc


@lru_cache(maxsize=16_384)
def parse_iso_date(text: str | None) -> date:
    s = (text or "").strip()
    try:
        return date.fromisoformat(s[:10])
    except ValueError as exc:
        raise ValueError(f"not an ISO date: {text!r}") from exc


@lru_cache(maxsize=65_536)
def per_kwh(brl_per_mwh: Decimal) -> float:
    """R$/MWh → R$/kWh, exactly in decimal, then as the nearest float."""
    return float(brl_per_mwh / THOUSAND)


def _split_rows(text: str) -> list[tuple[int, list[str]]]:
    """(physical line, cells) of every line. Lines without a quote are split directly
    (ANEEL's files quote nothing, or every field); quoted ones go through the csv module,
    which also handles a quoted ``;`` or line break."""
    if '"' not in text and ("\n" in text or "\r" not in text):
        return [(i, line.rstrip("\r").split(";")) for i, line in enumerate(text.split("\n"), start=1)]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", strict=True)
    rows = []
    previous = 0
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            rows.append((start, row))
    except csv.Error as exc:  # an unbalanced quote would otherwise swallow the rest of the file
        raise FileFormatError(f"broken quoting near line {previous + 1}: {exc}") from None
    return rows


def _rows(data: bytes, expected: tuple[str, ...],
          line_offset: int = 0) -> tuple[list[str], list[tuple[int, list[str]]], str]:
    try:
        text, encoding = decode_text(data)
    except NotTextError as exc:
        raise FileFormatError(str(exc)) from exc
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for line, row in _split_rows(text):
        if not row or (len(row) == 1 and not row[0].strip()) or not "".join(row).strip():
            continue
        if header is None:
            header = [cell.strip().lstrip("\ufeff") for cell in row]
            missing = [h for h in expected if h not in header]
            if missing:
                raise FileFormatError(f"not the expected ANEEL file: missing columns {missing}")
            continue
        rows.append((line + line_offset, row))
    if header is None:
        raise FileFormatError("empty file")
    return header, rows, encoding


def _record(header: list[str], row: list[str]) -> dict[str, str]:
    if len(row) < len(header):
        row = row + [""] * (len(header) - len(row))
    return dict(zip(header, map(str.strip, row)))


def _raw(record: dict[str, str]) -> str:
    return json.dumps(record, ensure_ascii=False)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _validity(record: dict[str, str]) -> tuple[date, date | None]:
    try:
        valid_from = parse_iso_date(record["DatInicioVigencia"])
    except ValueError:
        raise _Reject(UNPARSEABLE_DATE, f"DatInicioVigencia {record['DatInicioVigencia']!r}") from None
    end = record.get("DatFimVigencia", "")
    try:
        valid_to = parse_iso_date(end) if end else None
    except ValueError:
        raise _Reject(UNPARSEABLE_DATE, f"DatFimVigencia {end!r}") from None
    if valid_to is not None and valid_to < valid_from:
        raise _Reject(INVERTED_VALIDITY, f"validity ends {valid_to} before it starts {valid_from}")
    return valid_from, valid_to


@lru_cache(maxsize=65_536)
def _decimal_or_none(text: str) -> Decimal | None:
    try:
        return parse_aneel_decimal(text)
    except ValueError:
        return None


def _value(record: dict[str, str], column: str) -> Decimal:
    value = _decimal_or_none(record[column])
    if value is None:
        raise _Reject(UNPARSEABLE_VALUE, f"{column} {record[column]!r}")
    if value < 0:
        raise _Reject(NEGATIVE_VALUE, f"{column} {record[column]} is negative")
    return value


def _base(text: str) -> str:
    base = BASES.get(fold(text))
    if base is None:
        raise _Reject(MISSING_KEY, f"DscBaseTarifaria {text!r} is neither Tarifa de Aplicação nor Base Econômica")
    return base


# --------------------------------------------------------------------------------------
# the three datasets
# --------------------------------------------------------------------------------------


class Parsed(NamedTuple):
    rows: list
    quarantine: list[QuarantinedRow]
    encoding: str


_TARIFF_KEYS = ("SigAgente", "DatInicioVigencia", "DscBaseTarifaria", "DscSubGrupo", "DscModalidadeTarifaria",
                "DscUnidadeTerciaria")


def tariff_from_record(record: dict[str, str], source_file: str, line: int,
                       extra_fields: int = 0, clean: bool = False) -> Tariff | QuarantinedRow:
    """One *tarifas homologadas* record (column name → text) → a :class:`Tariff`, or a
    quarantined row with a reason. Used for files and for rows arriving by CDC."""
    if not clean:
        record = {k: (v or "").strip() for k, v in record.items()}
    try:
        if extra_fields:
            raise _Reject(MALFORMED_ROW, f"{extra_fields} values beyond the {len(TARIFF_HEADER)} columns")
        empty = [k for k in _TARIFF_KEYS if not record.get(k)]
        if empty:
            raise _Reject(MISSING_KEY, f"empty {', '.join(empty)}")
        valid_from, valid_to = _validity(record)
        base = _base(record["DscBaseTarifaria"])
        unit = record["DscUnidadeTerciaria"]
        if unit not in ("MWh", "kW"):
            raise _Reject(UNKNOWN_UNIT, f"DscUnidadeTerciaria {unit!r} is neither MWh nor kW")
        tusd, te = _value(record, "VlrTUSD"), _value(record, "VlrTE")
    except _Reject as rejected:
        return QuarantinedRow(source_file, line, rejected.reason, rejected.detail, _raw(record))
    energy = unit == "MWh"
    return Tariff(
        utility=record["SigAgente"],
        cnpj=record.get("NumCNPJDistribuidora") or None,
        valid_from=valid_from,
        valid_to=valid_to,
        base=base,
        subgroup=record["DscSubGrupo"],
        modality=record["DscModalidadeTarifaria"],
        tariff_class=record.get("DscClasse") or "Não se aplica",
        subclass=record.get("DscSubClasse") or "Não se aplica",
        detail=record.get("DscDetalhe") or "Não se aplica",
        post=record.get("NomPostoTarifario") or "Não se aplica",
        unit=unit,
        accessing_agent=record.get("SigAgenteAcessante") or "Não se aplica",
        tusd_brl_per_kwh=per_kwh(tusd) if energy else None,
        te_brl_per_kwh=per_kwh(te) if energy else None,
        tusd_brl_per_kw=None if energy else float(tusd),
        te_brl_per_kw=None if energy else float(te),
        resolution=record.get("DscREH", ""),
        source_file=source_file,
        line=line,
    )


def parse_tariffs(data: bytes, source_file: str, line_offset: int = 0) -> Parsed:
    """*Tarifas homologadas* → :class:`Tariff` rows and quarantined rows.

    Raises
    ------
    FileFormatError
        the file does not have the 17-column header.
    """
    return _parse(data, source_file, TARIFF_HEADER, tariff_from_record, line_offset)


def fio_b_from_record(record: dict[str, str], source_file: str, line: int,
                      extra_fields: int = 0, clean: bool = False) -> FioB | QuarantinedRow | None:
    """One *componentes tarifárias* record → a :class:`FioB`, a quarantined row, or None
    for a component other than ``TUSD_FioB`` (not this job's: skipped, not quarantined)."""
    if not clean:
        record = {k: (v or "").strip() for k, v in record.items()}
    if fold(record.get("DscComponenteTarifario")) != "tusd_fiob":
        return None
    try:
        if extra_fields:
            raise _Reject(MALFORMED_ROW, f"{extra_fields} values beyond the {len(COMPONENT_HEADER)} columns")
        empty = [k for k in ("SigNomeAgente", "DscSubGrupoTarifario", "DscModalidadeTarifaria",
                             "DatInicioVigencia") if not record.get(k)]
        if empty:
            raise _Reject(MISSING_KEY, f"empty {', '.join(empty)}")
        valid_from, valid_to = _validity(record)
        unit = record.get("DscUnidade", "")
        if fold(unit) not in ("r$/mwh", "mwh"):
            raise _Reject(UNKNOWN_UNIT, f"DscUnidade {unit!r}: Fio B is expected in R$/MWh")
        value = _value(record, "VlrComponenteTarifario")
        base = _base(record.get("DscBaseTarifaria") or "Tarifa de Aplicação")
    except _Reject as rejected:
        return QuarantinedRow(source_file, line, rejected.reason, rejected.detail, _raw(record))
    return FioB(
        utility=record["SigNomeAgente"], base=base, subgroup=record["DscSubGrupoTarifario"],
        modality=record["DscModalidadeTarifaria"],
        tariff_class=record.get("DscClasseConsumidor") or "Não se aplica",
        subclass=record.get("DscSubClasseConsumidor") or "Não se aplica",
        detail=record.get("DscDetalheConsumidor") or "Não se aplica",
        post=record.get("DscPostoTarifario") or "Não se aplica",
        valid_from=valid_from, valid_to=valid_to, fio_b_brl_per_kwh=per_kwh(value),
        resolution=record.get("DscResolucaoHomologatoria", ""), source_file=source_file, line=line,
    )


def parse_fio_b(data: bytes, source_file: str, line_offset: int = 0) -> Parsed:
    """``TUSD_FioB`` rows of *componentes tarifárias* → :class:`FioB` (other components are
    not this job's and are skipped, not quarantined)."""
    return _parse(data, source_file, COMPONENT_HEADER, fio_b_from_record, line_offset)


_FLAG_BY_KEY = {fold(flag): flag for flag in FLAGS}


def flag_from_record(record: dict[str, str], source_file: str, line: int,
                     extra_fields: int = 0, clean: bool = False) -> FlagMonth | QuarantinedRow:
    """One *bandeiras acionamento* record → the month's :class:`FlagMonth` or a quarantined row."""
    if not clean:
        record = {k: (v or "").strip() for k, v in record.items()}
    try:
        if extra_fields:
            raise _Reject(MALFORMED_ROW, f"{extra_fields} values beyond the {len(FLAG_HEADER)} columns")
        try:
            month = parse_iso_date(record.get("DatCompetencia", "")).replace(day=1)
        except ValueError:
            raise _Reject(UNPARSEABLE_DATE, f"DatCompetencia {record.get('DatCompetencia')!r}") from None
        flag = _FLAG_BY_KEY.get(fold(record.get("NomBandeiraAcionada")))
        if flag is None:
            raise _Reject(UNKNOWN_FLAG, f"flag {record.get('NomBandeiraAcionada')!r}")
        addon = _value(record, "VlrAdicionalBandeira")
    except _Reject as rejected:
        return QuarantinedRow(source_file, line, rejected.reason, rejected.detail, _raw(record))
    return FlagMonth(month, flag, per_kwh(addon), source_file, line)


def parse_flags(data: bytes, source_file: str, line_offset: int = 0) -> Parsed:
    """*Bandeiras acionamento* → one :class:`FlagMonth` per row."""
    return _parse(data, source_file, FLAG_HEADER, flag_from_record, line_offset)


#: dataset name → (expected header, record parser)
DATASETS = {
    "tariffs": (TARIFF_HEADER, tariff_from_record),
    "fio_b": (COMPONENT_HEADER, fio_b_from_record),
    "flags": (FLAG_HEADER, flag_from_record),
}


class RawRecord(NamedTuple):
    """One data row of a file as published: column name → text (stripped)."""

    line: int
    record: dict[str, str]
    extra_fields: int  # non-empty values beyond the header's columns


def read_records(data: bytes, expected: tuple[str, ...], line_offset: int = 0) -> tuple[list[RawRecord], str]:
    """The data rows of one ANEEL file, as records (what ``tarifas_raw`` stores).

    Raises
    ------
    FileFormatError
        not text, or the header lacks one of ``expected``.
    """
    header, rows, encoding = _rows(data, expected, line_offset)
    return [RawRecord(line, _record(header, row), sum(1 for c in row[len(header):] if c.strip()))
            for line, row in rows], encoding


def _parse(data: bytes, source_file: str, expected: tuple[str, ...], from_record, line_offset: int = 0) -> Parsed:
    records, encoding = read_records(data, expected, line_offset)
    found: list = []
    quarantine: list[QuarantinedRow] = []
    for raw in records:
        result = from_record(raw.record, source_file, raw.line, raw.extra_fields, clean=True)
        if result is None:
            continue
        (quarantine if isinstance(result, QuarantinedRow) else found).append(result)
    return Parsed(found, quarantine, encoding)
