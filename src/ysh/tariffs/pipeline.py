"""The tariffs job's Pathway graph, over ANEEL files or over ``tarifas_raw`` rows.

* :func:`build_tariffs_graph` — per file chunk (:func:`ysh.tariffs.load.split_file`), one UDF
  parses it: *tarifas homologadas* column by column (:mod:`ysh.tariffs.columnar`, the
  same rows as the row parser), other datasets and unusual layouts row by row
  (:func:`ysh.tariffs.load.load_file`); chunks spread over Pathway processes;
* :func:`build_tariffs_graph_from_raw_chunks` — the batch over a snapshot of
  ``tarifas_raw``: rows read in chunks of one source (:class:`RawChunksSubject`), one UDF
  per chunk parses *tarifas homologadas* column by column
  (:func:`ysh.tariffs.columnar.parse_tariff_records_columnar`: every record a rule could
  reject goes through :func:`ysh.tariffs.load.row_from_record` itself), other datasets
  record by record;
* :func:`build_tariffs_graph_from_raw` — per raw row (as landed in ``tarifas_raw`` and
  followed by CDC), one UDF parses the record (:func:`ysh.tariffs.load.row_from_record`).

Either way each parsed row travels packed in one tuple column, and each key's validity
periods (narrow spans: a chunk sends one group per key it holds) are checked for overlaps
incrementally (a changed key re-checks only that key); the kept rows are unpacked into
columns at the end. The monthly effective tariffs of B1/B3 are derived per utility from
the kept rows and the flags.
"""

from __future__ import annotations

import datetime
import functools
import json
import pickle
import types
import typing
from dataclasses import dataclass

import pathway as pw

from .aneel import FioB, FlagMonth, QuarantinedRow, Tariff
from .book import Span, TariffBook, check_flags, check_periods, raw_json_of
from .columnar import (
    engine_row,
    jsonb_values_are_stripped_text,
    parse_tariff_records_columnar,
    parse_tariffs_columnar,
    span_of_engine_row,
)
from .load import dataset_of, load_file, row_from_record

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


@pw.udf(deterministic=True)
def _parse_file(data: bytes, path: str, line_offset: int) -> tuple:
    """One file chunk → (tariff rows, their spans by key, Fio B rows, their spans by key,
    flag rows, quarantined rows). *Tarifas homologadas* are parsed by columns
    (:mod:`ysh.tariffs.columnar`) unless the chunk's layout needs the row parser."""
    columnar = parse_tariffs_columnar(data, path, line_offset) if dataset_of(data) == "tariffs" else None
    if columnar is not None:
        return (columnar.rows, columnar.spans, [], [], [], [tuple(q) for q in columnar.quarantine])
    loaded = load_file(data, path, line_offset)
    tariffs = [engine_row(t) for t in loaded.tariffs]
    fio_b = [engine_row(f) for f in loaded.fio_b]
    return (tariffs, _spans_by_key(tariffs, Tariff), fio_b, _spans_by_key(fio_b, FioB),
            [_to_engine(f) for f in loaded.flags], [tuple(q) for q in loaded.quarantine])


def _span_positions(layout: type) -> tuple[tuple[int, ...], int]:
    values = tuple(4 + layout._fields.index(c) for c in VALUE_COLUMNS if c in layout._fields)
    return values, 4 + layout._fields.index("line")


def _spans_by_key(rows: list[tuple], layout: type) -> list[tuple]:
    """(key_text, spans) of engine rows, one entry per key."""
    values, line = _span_positions(layout)
    by_key: dict[str, list] = {}
    for row in rows:
        by_key.setdefault(row[0], []).append(span_of_engine_row(row, values, line))
    return [(k, tuple(v)) for k, v in by_key.items()]


@pw.udf(deterministic=True)
def _raw_json(text: str) -> pw.Json:
    return pw.Json(json.loads(text))


def _make_row_json(layout: type):
    @pw.udf(deterministic=True)
    def row_json(row: tuple) -> pw.Json:
        return pw.Json(json.loads(raw_json_of(_from_engine(layout, tuple(row)[4:]))))

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
def _check_periods(groups: tuple) -> list[tuple]:
    """One key's spans (groups of (token, line, from, to as day ordinals, values)) → the
    rows to drop: (token, detail) for overlaps, (token, None) for exact repeats."""
    spans = [span for group in groups for span in group]
    if _disjoint(spans):
        return []  # the common case, decided on day numbers: no overlap, hence no repeat either
    overlapping, duplicates = check_periods(
        Span(t, line, datetime.date.fromordinal(a), datetime.date.fromordinal(b) if b else None, tuple(v))
        for t, line, a, b, v in spans)
    return [(t, d) for t, d in overlapping.items()] + [(t, None) for t in duplicates]


def _disjoint(spans: list) -> bool:
    """Whether no two validity periods (from_day, to_day; None: open) share a day."""
    if len(spans) < 2:
        return True
    last_end = None
    for _, _, start, end, _ in sorted(spans, key=lambda sp: sp[2]):
        if last_end is not None and start <= last_end:
            return False
        if end is None:
            last_end = float("inf")
        elif last_end is None or end > last_end:
            last_end = end
    return True


VALUE_COLUMNS = ("tusd_brl_per_kwh", "te_brl_per_kwh", "tusd_brl_per_kw", "te_brl_per_kw", "fio_b_brl_per_kwh")


def _keep_non_overlapping(rows: pw.Table, spans: pw.Table, layout: type) -> tuple[pw.Table, pw.Table]:
    """Rows whose validity overlaps another row of their key move to quarantine; exact
    repeats are dropped. ``rows`` holds engine rows (one tuple column ``row``: key_text,
    token, from_day, to_day, the layout's fields), ``spans`` each key's spans (``key_text``,
    ``spans``; a chunk gives one entry per key it holds, a raw row one per row). The check
    runs per key on the narrow spans (a changed key re-checks itself only); the wide rows
    stay packed in one column until they are picked by id and unpacked for output."""
    rows = rows.select(token=pw.declare_type(str, pw.this.row[1]), row=pw.this.row).with_id_from(pw.this.token)
    checked = spans.groupby(pw.this.key_text).reduce(dropped=_check_periods(pw.reducers.tuple(pw.this.spans)))
    dropped = checked.select(row=pw.this.dropped).flatten(pw.this.row).select(
        token=pw.declare_type(str, pw.this.row[0]), detail=pw.declare_type(str | None, pw.this.row[1]))
    dropped = dropped.with_id_from(pw.this.token)
    kept = rows.difference(dropped).select(key_text=pw.declare_type(str, pw.this.row[0]),
                                           **_columns(pw.this.row, layout, offset=4))
    clashing = dropped.filter(pw.this.detail.is_not_none())
    line, source = 4 + layout._fields.index("line"), 4 + layout._fields.index("source_file")
    # joined by token, not by id: a join on ids made two Pathway processes run out of memory
    overlapping = clashing.join(rows, clashing.token == rows.token).select(
        source_file=pw.declare_type(str, rows.row[source]), line=pw.declare_type(int, rows.row[line]),
        reason="overlapping_validity", detail=pw.unwrap(clashing.detail), raw=_make_row_json(layout)(rows.row))
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


def _key_utility(key_text: str) -> str:
    return key_text.split("|", 1)[0]


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
        return (TARIFF, engine_row(row))
    if isinstance(row, FioB):
        return (FIO_B, engine_row(row))
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


class RawChunkSchema(pw.Schema):
    """Rows of ``tarifas_raw`` of one source and dataset, packed (:class:`RawChunksSubject`)."""

    source: str
    dataset: str
    payload: bytes  # pickle of (lines, extra_fields, record texts), in line order


class RawChunksSubject(pw.io.python.ConnectorSubject):
    """A consistent snapshot of ``tarifas_raw`` (one statement, server-side cursor) as
    chunks: each fetch of ``chunk_rows`` rows becomes one chunk per source and dataset it
    holds, the records left as JSON text for the parsing UDF (a static source)."""

    def __init__(self, dsn: str, schema: str, chunk_rows: int = 20_000, table: str = "tarifas_raw"):
        super().__init__(datasource_name="tarifas_raw_chunks")
        self._dsn, self._schema, self._chunk_rows, self._table = dsn, schema, chunk_rows, table

    def run(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn) as conn:
            conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self._schema)))
            with conn.cursor(name="ysh_tarifas_raw_chunks") as cur:
                cur.execute(sql.SQL("SELECT source, dataset, line, extra_fields, record::text FROM {}").format(
                    sql.Identifier(self._table)))
                while batch := cur.fetchmany(self._chunk_rows):
                    groups: dict[tuple[str, str], list[tuple]] = {}
                    for source, dataset, line, extra_fields, text in batch:
                        groups.setdefault((source, dataset), []).append((line, extra_fields, text))
                    for (source, dataset), rows in groups.items():
                        rows.sort(key=lambda r: r[0])
                        lines, extra_fields, texts = zip(*rows)
                        self.next(source=source, dataset=dataset,
                                  payload=pickle.dumps((lines, extra_fields, texts), protocol=pickle.HIGHEST_PROTOCOL))


def _rows_one_by_one(dataset: str, records: list, source: str, lines, extra_fields) -> tuple:
    """Records parsed as the CDC path does (:func:`_parse_record`), gathered like a chunk."""
    tariffs, fio_b, flags, quarantine = [], [], [], []
    for record, line, extra in zip(records, lines, extra_fields):
        row = row_from_record(dataset, record, source, line, extra)
        if isinstance(row, Tariff):
            tariffs.append(engine_row(row))
        elif isinstance(row, FioB):
            fio_b.append(engine_row(row))
        elif isinstance(row, FlagMonth):
            flags.append(_to_engine(row))
        elif isinstance(row, QuarantinedRow):
            quarantine.append(tuple(row))
    return (tariffs, _spans_by_key(tariffs, Tariff), fio_b, _spans_by_key(fio_b, FioB), flags, quarantine)


@pw.udf(deterministic=True)
def _parse_raw_chunk(dataset: str, source: str, payload: bytes) -> tuple:
    """One chunk of ``tarifas_raw`` (:class:`RawChunkSchema`) → the same six lists as
    :func:`_parse_file`: *tarifas homologadas* by columns, the rest record by record."""
    lines, extra_fields, texts = pickle.loads(payload)
    joined = "[" + ",".join(texts) + "]"
    records = json.loads(joined)
    if dataset == "tariffs":
        columnar = parse_tariff_records_columnar(
            records, source, lines, extra_fields,
            lambda i: row_from_record(dataset, records[i], source, lines[i], extra_fields[i]),
            stripped_text=jsonb_values_are_stripped_text(joined))
        if columnar is not None:
            return (columnar.rows, columnar.spans, [], [], [], [tuple(q) for q in columnar.quarantine])
    return _rows_one_by_one(dataset, records, source, lines, extra_fields)


def build_tariffs_graph(chunks: pw.Table) -> TariffTables:
    """Build the tariffs graph over file chunks (:class:`FileChunkSchema`: a whole file is
    one chunk with ``line_offset`` 0)."""
    return _build_from_parsed(chunks.select(result=_parse_file(pw.this.data, pw.this.path, pw.this.line_offset)))


def build_tariffs_graph_from_raw_chunks(chunks: pw.Table) -> TariffTables:
    """Build the tariffs graph over chunks of ``tarifas_raw`` (:class:`RawChunkSchema`):
    the same tables as :func:`build_tariffs_graph_from_raw` over the same rows, with one
    UDF call per chunk instead of one per row (a static batch; the follower keeps the
    per-row graph, so that a change re-parses one row)."""
    return _build_from_parsed(chunks.select(result=_parse_raw_chunk(pw.this.dataset, pw.this.source,
                                                                    pw.this.payload)))


def _build_from_parsed(parsed: pw.Table) -> TariffTables:
    """The graph from parsed chunks (one tuple column ``result``: see :func:`_parse_file`)."""

    def flattened(index: int) -> pw.Table:
        return parsed.select(row=pw.declare_type(list[tuple], pw.this.result[index])).flatten(pw.this.row)

    def span_groups(index: int) -> pw.Table:
        return flattened(index).select(key_text=pw.declare_type(str, pw.this.row[0]),
                                       spans=pw.declare_type(tuple, pw.this.row[1]))

    return _build_from_rows(flattened(0), span_groups(1), flattened(2), span_groups(3), flattened(4), flattened(5))


def build_tariffs_graph_from_raw(raw: pw.Table) -> TariffTables:
    """Build the tariffs graph over ``tarifas_raw`` rows (:class:`RawRowSchema`). A change
    of one raw row re-parses that row only, and re-checks only its tariff key."""
    parsed = raw.select(result=_parse_record(pw.this.dataset, pw.this.record, pw.this.source, pw.this.line,
                                             pw.this.extra_fields))
    parsed = parsed.select(kind=pw.declare_type(int, pw.this.result[0]),
                           row=pw.declare_type(tuple, pw.this.result[1]))

    def of_kind(kind: int) -> pw.Table:
        return parsed.filter(pw.this.kind == kind).select(pw.this.row)

    def span_groups(rows: pw.Table, layout: type) -> pw.Table:
        values, line = _span_positions(layout)
        span = pw.make_tuple(rows.row[1], rows.row[line], rows.row[2], rows.row[3],
                             pw.make_tuple(*[rows.row[i] for i in values]))
        return rows.select(key_text=pw.declare_type(str, rows.row[0]), spans=pw.make_tuple(span))

    tariff_rows, fio_b_rows = of_kind(TARIFF), of_kind(FIO_B)
    return _build_from_rows(tariff_rows, span_groups(tariff_rows, Tariff), fio_b_rows, span_groups(fio_b_rows, FioB),
                            of_kind(FLAG), of_kind(QUARANTINE))


def _build_from_rows(tariff_rows: pw.Table, tariff_spans: pw.Table, fio_b_rows: pw.Table, fio_b_spans: pw.Table,
                     flag_rows: pw.Table, quarantine_rows: pw.Table) -> TariffTables:
    """The shared graph from parsed rows (each rows table has one tuple column ``row``;
    spans tables ``key_text`` and ``spans``: see :func:`_keep_non_overlapping`)."""
    tariffs, overlapping_tariffs = _keep_non_overlapping(tariff_rows, tariff_spans, Tariff)
    fio_b, overlapping_fio_b = _keep_non_overlapping(fio_b_rows, fio_b_spans, FioB)

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
    # one book per utility (the key's first part: the folded name), so that a chunk or a
    # change recomputes its utilities only; the flags (one row per month) go to each
    by_utility = residential.select(
        utility_key=pw.apply_with_type(_key_utility, str, pw.this.key_text),
        row=pw.make_tuple(pw.this.key_text, *[residential[c] for c in Tariff._fields]),
    ).groupby(pw.this.utility_key).reduce(rows=pw.reducers.tuple(pw.this.row), one=0)
    all_flags = flags.select(row=pw.make_tuple(*[flags[c] for c in FlagMonth._fields])).reduce(
        rows=pw.reducers.tuple(pw.this.row), one=0)
    joined = by_utility.join_left(all_flags, by_utility.one == all_flags.one).select(
        tariffs=by_utility.rows, flags=all_flags.rows)
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
