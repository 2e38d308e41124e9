"""The tariffs job's Pathway graph, over ANEEL files or over ``tarifas_raw`` rows.

* :func:`build_tariffs_graph` — per file chunk (:func:`ysh.tariffs.load.split_file`), one UDF
  parses it (:func:`ysh.tariffs.load.load_file`); chunks spread over Pathway processes;
* :func:`build_tariffs_graph_from_raw` — per raw row (as landed in ``tarifas_raw`` and
  followed by CDC), one UDF parses the record (:func:`ysh.tariffs.load.row_from_record`).

Either way rows flow as Pathway rows grouped by tariff key, and each key's validity periods are checked for overlaps
incrementally (a changed key re-checks only that key). The monthly effective tariffs of
B1/B3 are derived from the kept rows and the flags.
"""

from __future__ import annotations

import datetime
import functools
import json
import types
import typing
from dataclasses import dataclass

import pathway as pw

from .aneel import FioB, FlagMonth, QuarantinedRow, Tariff
from .book import Span, TariffBook, check_flags, check_periods, raw_json_of, row_token
from .load import load_file, row_from_record

EFFECTIVE_SUBGROUPS = ("b1", "b3")


@dataclass
class TariffTables:
    tariffs: pw.Table  # tarifas_normalized
    fio_b: pw.Table  # tarifas_fio_b
    flags: pw.Table  # tarifas_bandeiras
    monthly: pw.Table  # tarifas_efetivas_mensais
    quarantine: pw.Table  # tarifas_quarantine


def _engine_value(value):
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return datetime.datetime(value.year, value.month, value.day)
    return value


def _to_engine(row: tuple) -> tuple:
    """A domain row for Pathway: dates as naive datetimes (written to ``date`` columns)."""
    dates = _date_fields(type(row))
    if not dates:
        return tuple(row)
    values = list(row)
    for i in dates:
        values[i] = _engine_value(values[i])
    return tuple(values)


def _engine_type(hint):
    if hint is datetime.date:
        return pw.DateTimeNaive
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and datetime.date in typing.get_args(hint):
        return pw.DateTimeNaive | None
    return hint


def _columns(row: pw.ColumnExpression, layout: type, offset: int = 0) -> dict:
    hints = typing.get_type_hints(layout)
    return {name: pw.declare_type(_engine_type(hints[name]), row[offset + i])
            for i, name in enumerate(layout._fields)}


def _engine_row(row) -> tuple:
    """(key_text, token, from_day, to_day, *fields) of a tariff or Fio B row."""
    valid_to = row.valid_to
    return ("|".join(row.key), row_token(row), row.valid_from.toordinal(),
            valid_to.toordinal() if valid_to else None, *_to_engine(row))


@pw.udf(deterministic=True)
def _parse_file(data: bytes, path: str, line_offset: int) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
    loaded = load_file(data, path, line_offset)
    return ([_engine_row(t) for t in loaded.tariffs],
            [_engine_row(f) for f in loaded.fio_b],
            [_to_engine(f) for f in loaded.flags],
            [tuple(q) for q in loaded.quarantine])


@pw.udf(deterministic=True)
def _raw_json(text: str) -> pw.Json:
    return pw.Json(json.loads(text))


def _make_row_json(layout: type):
    @pw.udf(deterministic=True)
    def row_json(values: tuple) -> pw.Json:
        return pw.Json(json.loads(raw_json_of(_from_engine(layout, tuple(values)))))

    return row_json


@functools.lru_cache(maxsize=None)
def _date_fields(layout: type) -> frozenset[int]:
    hints = typing.get_type_hints(layout)
    return frozenset(i for i, name in enumerate(layout._fields)
                     if hints[name] in (datetime.date, datetime.date | None))


def _from_engine(layout: type, values: tuple):
    """A Pathway tuple back into the domain row (naive datetimes → dates)."""
    dates = _date_fields(layout)
    return layout(*[v.date() if i in dates and isinstance(v, datetime.datetime) else v
                    for i, v in enumerate(values)])


@pw.udf(deterministic=True)
def _check_periods(spans: tuple) -> list[tuple]:
    """One key's spans (token, line, from, to as day ordinals, values) → the rows to drop:
    (token, detail) for overlaps, (token, None) for exact repeats."""
    overlapping, duplicates = check_periods(
        Span(t, line, datetime.date.fromordinal(a), datetime.date.fromordinal(b) if b else None, tuple(v))
        for t, line, a, b, v in spans)
    return [(t, d) for t, d in overlapping.items()] + [(t, None) for t in duplicates]


def _keep_non_overlapping(rows: pw.Table, layout: type) -> tuple[pw.Table, pw.Table]:
    """Rows whose validity overlaps another row of their key move to quarantine; exact
    repeats are dropped. The check runs per key on narrow spans (a changed key re-checks
    itself only); the wide rows are picked by id afterwards."""
    value_columns = [c for c in ("tusd_brl_per_kwh", "te_brl_per_kwh", "tusd_brl_per_kw", "te_brl_per_kw",
                                 "fio_b_brl_per_kwh") if c in layout._fields]
    rows = rows.with_id_from(pw.this.token)
    spans = rows.select(pw.this.key_text, span=pw.make_tuple(
        pw.this.token, pw.this.line, pw.this.from_day, pw.this.to_day,
        pw.make_tuple(*[rows[c] for c in value_columns])))
    checked = spans.groupby(pw.this.key_text).reduce(dropped=_check_periods(pw.reducers.tuple(pw.this.span)))
    dropped = checked.select(row=pw.this.dropped).flatten(pw.this.row).select(
        token=pw.declare_type(str, pw.this.row[0]), detail=pw.declare_type(str | None, pw.this.row[1]))
    dropped = dropped.with_id_from(pw.this.token)
    kept = rows.difference(dropped).without(pw.this.token, pw.this.from_day, pw.this.to_day)
    clashing = dropped.filter(pw.this.detail.is_not_none())
    overlapping = clashing.join(rows, clashing.id == rows.id).select(
        rows.source_file, rows.line, reason="overlapping_validity", detail=pw.unwrap(clashing.detail),
        raw=_make_row_json(layout)(pw.make_tuple(*[rows[c] for c in layout._fields])))
    return kept, overlapping


@pw.udf(deterministic=True)
def _check_flags(rows: tuple) -> tuple:
    """One month's flag rows → (the kept row or None, quarantined rows) by :func:`check_flags`."""
    kept, quarantined = check_flags(_from_engine(FlagMonth, tuple(r)) for r in rows)
    return (_to_engine(kept[0]) if kept else None, [tuple(q) for q in quarantined])


@pw.udf(deterministic=True)
def _monthly(tariffs: tuple, flags: tuple | None) -> list[tuple]:
    # Fio B is not part of the monthly tariff: the book gets none (a Fio B ambiguity must
    # not drop a month); a month without a published flag gets add-on 0.
    book = TariffBook([_from_engine(Tariff, tuple(t)[1:]) for t in tariffs], [],
                      [_from_engine(FlagMonth, tuple(f)) for f in flags or ()])
    out = []
    for utility in book.utilities:
        for subgroup in ("B1", "B3"):
            for m in book.months(utility, subgroup):
                out.append((m.utility, m.subgroup, _engine_value(m.month), m.te_brl_per_kwh, m.tusd_brl_per_kwh,
                            m.flag, m.flag_addon_brl_per_kwh, m.total_brl_per_kwh))
    return out


class RawRowSchema(pw.Schema):
    """``tarifas_raw`` as the pipeline reads it (static query or CDC)."""

    source: str = pw.column_definition(primary_key=True)
    line: int = pw.column_definition(primary_key=True)
    dataset: str
    record: pw.Json
    extra_fields: int


TARIFF, FIO_B, FLAG, QUARANTINE, SKIPPED = range(5)


@pw.udf(deterministic=True)
def _parse_record(dataset: str, record: pw.Json, source: str, line: int, extra_fields: int) -> tuple:
    row = row_from_record(dataset, record.as_dict(), source, line, extra_fields)
    if isinstance(row, Tariff):
        return (TARIFF, _engine_row(row))
    if isinstance(row, FioB):
        return (FIO_B, _engine_row(row))
    if isinstance(row, FlagMonth):
        return (FLAG, _to_engine(row))
    if isinstance(row, QuarantinedRow):
        return (QUARANTINE, tuple(row))
    return (SKIPPED, ())


class FileChunkSchema(pw.Schema):
    data: bytes  # the header line + whole lines (or a whole file)
    path: str
    line_offset: int


class FileChunksSubject(pw.io.python.ConnectorSubject):
    """Files as chunks of whole lines (:func:`ysh.tariffs.load.split_file`), emitted once
    (a static source)."""

    def __init__(self, files: list, chunk_bytes: int = 4 << 20):
        super().__init__(datasource_name="aneel_file_chunks")
        self._files, self._chunk_bytes = files, chunk_bytes

    def run(self) -> None:
        from .load import split_file

        for path in self._files:
            for chunk in split_file(path.read_bytes(), self._chunk_bytes):
                self.next(data=chunk.data, path=str(path), line_offset=chunk.line_offset)


def build_tariffs_graph(chunks: pw.Table) -> TariffTables:
    """Build the tariffs graph over file chunks (:class:`FileChunkSchema`: a whole file is
    one chunk with ``line_offset`` 0)."""
    parsed = chunks.select(result=_parse_file(pw.this.data, pw.this.path, pw.this.line_offset))

    def flattened(index: int) -> pw.Table:
        return parsed.select(row=pw.declare_type(list[tuple], pw.this.result[index])).flatten(pw.this.row)

    return _build_from_rows(flattened(0), flattened(1), flattened(2), flattened(3))


def build_tariffs_graph_from_raw(raw: pw.Table) -> TariffTables:
    """Build the tariffs graph over ``tarifas_raw`` rows (:class:`RawRowSchema`). A change
    of one raw row re-parses that row only, and re-checks only its tariff key."""
    parsed = raw.select(result=_parse_record(pw.this.dataset, pw.this.record, pw.this.source, pw.this.line,
                                             pw.this.extra_fields))
    parsed = parsed.select(kind=pw.declare_type(int, pw.this.result[0]),
                           row=pw.declare_type(tuple, pw.this.result[1]))

    def of_kind(kind: int) -> pw.Table:
        return parsed.filter(pw.this.kind == kind).select(pw.this.row)

    return _build_from_rows(of_kind(TARIFF), of_kind(FIO_B), of_kind(FLAG), of_kind(QUARANTINE))


def _build_from_rows(tariff_rows: pw.Table, fio_b_rows: pw.Table, flag_rows: pw.Table,
                     quarantine_rows: pw.Table) -> TariffTables:
    """The shared graph from parsed rows (each table has one tuple column ``row``)."""

    def typed(flat: pw.Table, layout: type) -> pw.Table:
        return flat.select(
            key_text=pw.declare_type(str, pw.this.row[0]), token=pw.declare_type(str, pw.this.row[1]),
            from_day=pw.declare_type(int, pw.this.row[2]), to_day=pw.declare_type(int | None, pw.this.row[3]),
            **_columns(pw.this.row, layout, offset=4))

    tariffs, overlapping_tariffs = _keep_non_overlapping(typed(tariff_rows, Tariff), Tariff)
    fio_b, overlapping_fio_b = _keep_non_overlapping(typed(fio_b_rows, FioB), FioB)

    flag_rows = flag_rows.select(**_columns(pw.this.row, FlagMonth))
    checked_flags = flag_rows.groupby(pw.this.month).reduce(result=_check_flags(
        pw.reducers.tuple(pw.make_tuple(*[pw.this[c] for c in FlagMonth._fields]))))
    flags = checked_flags.filter(pw.this.result[0].is_not_none()).select(
        **_columns(pw.declare_type(tuple, pw.this.result[0]), FlagMonth))
    conflicting_flags = checked_flags.select(row=pw.declare_type(list[tuple], pw.this.result[1])).flatten(
        pw.this.row).select(**_columns(pw.this.row, QuarantinedRow)).select(
        pw.this.source_file, pw.this.line, pw.this.reason, pw.this.detail, raw=_raw_json(pw.this.raw))

    parse_quarantine = quarantine_rows.select(**_columns(pw.this.row, QuarantinedRow)).select(
        pw.this.source_file, pw.this.line, pw.this.reason, pw.this.detail, raw=_raw_json(pw.this.raw))
    quarantine = pw.Table.concat_reindex(parse_quarantine, overlapping_tariffs, overlapping_fio_b, conflicting_flags)

    # monthly effective tariffs (B1/B3, Tarifa de Aplicação): recomputed from the kept rows
    subgroup = pw.this.subgroup.str.lower()
    residential = tariffs.filter(
        ((subgroup == EFFECTIVE_SUBGROUPS[0]) | (subgroup == EFFECTIVE_SUBGROUPS[1]))
        & (pw.this.base == "aplicacao") & (pw.this.unit == "MWh")
    )
    pack = lambda t, layout: t.select(row=pw.make_tuple(pw.this.key_text, *[t[c] for c in layout._fields]))  # noqa: E731
    all_tariffs = pack(residential, Tariff).reduce(rows=pw.reducers.tuple(pw.this.row))
    all_flags = flags.select(row=pw.make_tuple(*[flags[c] for c in FlagMonth._fields])).reduce(
        rows=pw.reducers.tuple(pw.this.row))
    joined = all_tariffs.join_left(all_flags, id=all_tariffs.id).select(
        tariffs=all_tariffs.rows, flags=all_flags.rows)
    monthly = joined.select(row=_monthly(pw.this.tariffs, pw.this.flags)).flatten(pw.this.row)
    monthly = monthly.select(
        utility=pw.declare_type(str, pw.this.row[0]), subgroup=pw.declare_type(str, pw.this.row[1]),
        month=pw.declare_type(pw.DateTimeNaive, pw.this.row[2]),
        te_brl_per_kwh=pw.declare_type(float, pw.this.row[3]), tusd_brl_per_kwh=pw.declare_type(float, pw.this.row[4]),
        flag=pw.declare_type(str | None, pw.this.row[5]),
        flag_addon_brl_per_kwh=pw.declare_type(float, pw.this.row[6]),
        total_brl_per_kwh=pw.declare_type(float, pw.this.row[7]),
    )
    return TariffTables(tariffs=tariffs, fio_b=fio_b, flags=flags, monthly=monthly, quarantine=quarantine)
