"""The tariffs job's Pathway graph, over ANEEL files or over ``tarifas_raw`` rows.

* :func:`build_tariffs_graph` — per file chunk (:func:`ysh.tariffs.load.split_file`), one UDF
  parses it: *tarifas homologadas* column by column (:mod:`ysh.tariffs.columnar`, the
  same rows as the row parser), other datasets and unusual layouts row by row
  (:func:`ysh.tariffs.load.load_file`); chunks spread over Pathway processes. A static
  graph: the tariff and Fio B rows stay packed per chunk and utility (pickled lists), each
  utility's keys are checked for overlaps in one reduce, and the kept rows reach the sink
  still packed (:attr:`TariffTables.packed`), so the engine moves a few values per
  utility instead of a row per tariff;
* :func:`build_tariffs_graph_from_raw_chunks` — the batch over a snapshot of
  ``tarifas_raw``: rows read in chunks of one source, *tarifas homologadas* gathered by
  the server as columns (:class:`RawChunksSubject`), one UDF per chunk parses them column
  by column (:func:`ysh.tariffs.columnar.parse_gathered_tariffs`: every record the columns
  cannot vouch for, or a rule could reject, goes through
  :func:`ysh.tariffs.load.row_from_record` itself), other datasets record by record; then
  the file graph's packed rows (:func:`_build_packed`);
* :func:`build_tariffs_graph_from_raw` — per raw row (as landed in ``tarifas_raw`` and
  followed by CDC), one UDF parses the record (:func:`ysh.tariffs.load.row_from_record`).

In the per-row graph each parsed row travels packed in one tuple column, and each key's
validity periods are checked for overlaps incrementally (a changed key re-checks only that
key); the kept rows are unpacked into columns at the end. The monthly effective tariffs of
B1/B3 are derived per utility from the kept rows and the flags.
"""

from __future__ import annotations

import datetime
import functools
import json
import operator
import pickle
import types
import typing
from dataclasses import dataclass, field

import pathway as pw
from pathway.internals import api

from .aneel import OVERLAPPING_VALIDITY, TARIFF_HEADER, FioB, FlagMonth, QuarantinedRow, Tariff
from .book import Span, TariffBook, check_flags, check_periods, raw_json_of
from .columnar import (
    engine_row,
    SEPARATOR,
    gathered_columns_hold,
    jsonb_values_are_stripped_text,
    parse_gathered_tariffs,
    parse_tariff_records_columnar,
    parse_tariffs_columnar,
    rows_with_edge_spaces,
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
    #: whether the static source read everything (the chunked batch: ``RawChunksSubject.finished``)
    source_finished: typing.Callable[[], bool] | None = None
    #: the same rows as ``tariffs`` / ``fio_b``, packed (the static graphs only: files and
    #: the chunked batch, :func:`_build_packed`): one row per
    #: utility, column ``rows`` a tuple of pickled lists of engine rows (:func:`unpack_rows`)
    packed: dict[str, pw.Table] = field(default_factory=dict)


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
    """One file chunk → (tariff groups, Fio B groups, flag rows, quarantined rows), the
    tariff and Fio B rows packed per utility (:func:`_utility_groups`). *Tarifas
    homologadas* are parsed by columns (:mod:`ysh.tariffs.columnar`) unless the chunk's
    layout needs the row parser."""
    columnar = (parse_tariffs_columnar(data, path, line_offset, with_spans=False)
                if dataset_of(data) == "tariffs" else None)
    if columnar is not None:
        return (_utility_groups(columnar.rows, Tariff), [], [], [tuple(q) for q in columnar.quarantine])
    loaded = load_file(data, path, line_offset)
    return (_utility_groups([engine_row(t) for t in loaded.tariffs], Tariff),
            _utility_groups([engine_row(f) for f in loaded.fio_b], FioB),
            [_to_engine(f) for f in loaded.flags], [tuple(q) for q in loaded.quarantine])


_pack = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
_SUBGROUP, _BASE, _UNIT = (4 + Tariff._fields.index(c) for c in ("subgroup", "base", "unit"))


def _is_residential(row: tuple) -> bool:
    """Whether an engine row of a tariff belongs to the monthly view: B1 or B3 (any case),
    Tarifa de Aplicação, energy (the rule of the row graphs' filter in :func:`_build_from_rows`)."""
    return row[_BASE] == "aplicacao" and row[_UNIT] == "MWh" and row[_SUBGROUP].lower() in EFFECTIVE_SUBGROUPS


def _utility_groups(rows: list[tuple], layout: type) -> list[tuple[str, bytes, bytes, bytes]]:
    """Engine rows (of one chunk) → one entry per utility (the key's first part, as
    :func:`_key_utility`): ``(utility_key, spans, rows, residential)``, each pickled:
    the validity periods by key (from and to as day numbers: enough to tell that a key's
    periods are disjoint, the common case), the rows outside the monthly
    view and the rows in it (:func:`_is_residential`; tariffs only). An empty list is
    ``b""``."""
    days = operator.itemgetter(2, 3)
    tariffs = layout is Tariff
    groups: dict[str, tuple[dict, list, list]] = {}
    # where a row goes, by key (and, for tariffs, by subgroup as written: the monthly view's
    # test reads it): its key's spans and its group's list; worked out once per key
    placed: dict = {}
    for row in rows:
        key = row[0]
        at = (key, row[_SUBGROUP]) if tariffs else key
        where = placed.get(at)
        if where is None:
            utility = key.split("|", 1)[0]
            group = groups.get(utility)
            if group is None:
                group = groups[utility] = ({}, [], [])
            spans = group[0].get(key)
            if spans is None:
                spans = group[0][key] = []
            where = placed[at] = (spans, group[2] if tariffs and _is_residential(row) else group[1])
        where[0].append(days(row))
        where[1].append(row)
    return [(utility, _pack(spans), _pack(rest) if rest else b"", _pack(res) if res else b"")
            for utility, (spans, rest, res) in groups.items()]


def unpack_rows(blobs) -> list[tuple]:
    """The engine rows of packed blobs (a ``rows`` cell of :attr:`TariffTables.packed`)."""
    return [row for blob in blobs if blob for row in pickle.loads(blob)]


def _make_check_utility(layout: type):
    @pw.udf(deterministic=True)
    def check_utility(spans: tuple, rows: tuple, residential: tuple) -> tuple:
        """One utility's packed groups, from every chunk → (kept row blobs, the residential
        ones among them, quarantined rows): per key, rows whose validity overlaps another row of the
        key are quarantined and exact repeats dropped (:func:`ysh.tariffs.book.check_periods`),
        the common case (disjoint periods) decided on day numbers without unpacking a row."""
        by_key: dict[str, list] = {}
        for blob in spans:
            for key, group in pickle.loads(blob).items():
                found = by_key.get(key)
                if found is None:
                    by_key[key] = group
                else:
                    found.extend(group)
        clashing = {key for key, days in by_key.items() if not _disjoint_days(days)}
        if not clashing:
            return (rows + residential, residential, [])  # no overlap, hence no repeat either
        # the keys whose periods share a day: their full spans, from their rows
        value_at, line_at = _span_positions(layout)
        spans_of: dict[str, list] = {key: [] for key in clashing}
        for row in unpack_rows(rows + residential):
            if row[0] in clashing:
                spans_of[row[0]].append(span_of_engine_row(row, value_at, line_at))
        dropped: dict[str, str | None] = {}
        for group in spans_of.values():
            overlapping, duplicates = check_periods(
                Span(t, line, datetime.date.fromordinal(a), datetime.date.fromordinal(b) if b else None, tuple(v))
                for t, line, a, b, v in group)
            dropped.update(overlapping)
            dropped.update(dict.fromkeys(duplicates))
        quarantine: list[tuple] = []

        def keep(blobs: tuple) -> tuple:
            kept_blobs = []
            for blob in blobs:
                kept = []
                for row in pickle.loads(blob) if blob else ():
                    token = row[1]
                    if token not in dropped:
                        kept.append(row)
                    elif dropped[token] is not None:
                        domain = _from_engine(layout, row[4:])
                        quarantine.append((domain.source_file, domain.line, OVERLAPPING_VALIDITY, dropped[token],
                                           raw_json_of(domain)))
                if kept:
                    kept_blobs.append(_pack(kept))
            return tuple(kept_blobs)

        kept_residential = keep(residential)
        return (keep(rows) + kept_residential, kept_residential, quarantine)

    return check_utility


_CHECK_UTILITY = {layout: _make_check_utility(layout) for layout in (Tariff, FioB)}


def _keep_non_overlapping_packed(groups: pw.Table, layout: type) -> tuple[pw.Table, pw.Table, pw.Table]:
    """The overlap check over packed groups (``row``: see :func:`_utility_groups`), one
    reduce per utility: (kept rows per utility, kept residential rows per utility, both
    with ``utility_key`` and ``rows``, and the quarantined overlapping rows)."""
    groups = groups.select(utility_key=pw.declare_type(str, pw.this.row[0]),
                           spans=pw.declare_type(bytes, pw.this.row[1]),
                           rows=pw.declare_type(bytes, pw.this.row[2]),
                           residential=pw.declare_type(bytes, pw.this.row[3]))
    checked = groups.groupby(pw.this.utility_key).reduce(
        pw.this.utility_key,
        result=_CHECK_UTILITY[layout](pw.reducers.tuple(pw.this.spans), pw.reducers.tuple(pw.this.rows),
                                      pw.reducers.tuple(pw.this.residential)))
    kept = checked.select(pw.this.utility_key, rows=pw.declare_type(tuple, pw.this.result[0]))
    residential = checked.select(pw.this.utility_key, rows=pw.declare_type(tuple, pw.this.result[1]))
    overlapping = _quarantine_table(checked.select(row=pw.declare_type(list[tuple], pw.this.result[2])).flatten(
        pw.this.row))
    return kept, residential, overlapping


@pw.udf(deterministic=True)
def _unpack(blobs: tuple) -> list[tuple]:
    return unpack_rows(blobs)


def _unpacked(packed: pw.Table, layout: type) -> pw.Table:
    """Packed rows (:func:`_keep_non_overlapping_packed`) as a table of one row per tariff
    (``key_text`` and the layout's fields), for consumers of single rows (computed only
    when a sink reads it)."""
    return packed.select(row=_unpack(pw.this.rows)).flatten(pw.this.row).select(
        key_text=pw.declare_type(str, pw.this.row[0]), **_columns(pw.this.row, layout, offset=4))


def _span_positions(layout: type) -> tuple[tuple[int, ...], int]:
    values = tuple(4 + layout._fields.index(c) for c in VALUE_COLUMNS if c in layout._fields)
    return values, 4 + layout._fields.index("line")


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


def _disjoint_days(periods: list) -> bool:
    """Whether no two validity periods (from_day, to_day; None: open) share a day."""
    if len(periods) < 2:
        return True
    last_end = None
    for start, end in sorted(periods, key=operator.itemgetter(0)):
        if last_end is not None and start <= last_end:
            return False
        if end is None:
            last_end = float("inf")
        elif last_end is None or end > last_end:
            last_end = end
    return True


def _disjoint(spans: list) -> bool:
    """Whether no two validity periods (spans: (_, _, from_day, to_day, _)) share a day."""
    return _disjoint_days([(sp[2], sp[3]) for sp in spans])


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
    return _monthly_rows([_from_engine(Tariff, tuple(t)[1:]) for t in tariffs], flags)


@pw.udf(deterministic=True)
def _monthly_packed(blobs: tuple, flags: tuple | None) -> list[tuple]:
    """:func:`_monthly` over packed residential rows (:func:`_utility_groups`)."""
    rows = unpack_rows(blobs)
    # in the order the row graph's tuple reducer gives them: by row id, the token's pointer
    # (a book names a utility after its first row)
    rows.sort(key=lambda row: api.ref_scalar(row[1]))
    return _monthly_rows([_tariff_of(row) for row in rows], flags)


def _tariff_of(row: tuple) -> Tariff:
    """The :class:`Tariff` of a packed engine row (its dates naive datetimes): what
    :func:`_from_engine` gives, with less work per row."""
    values = list(row[4:])
    values[_VALID_FROM] = values[_VALID_FROM].date()
    if values[_VALID_TO] is not None:
        values[_VALID_TO] = values[_VALID_TO].date()
    return Tariff._make(values)


_VALID_FROM, _VALID_TO = Tariff._fields.index("valid_from"), Tariff._fields.index("valid_to")


def _monthly_rows(tariffs: list[Tariff], flags: tuple | None) -> list[tuple]:
    # Fio B is not part of the monthly tariff: the book gets none (a Fio B ambiguity must
    # not drop a month); a month without a published flag gets add-on 0.
    book = TariffBook(tariffs, [], [_from_engine(FlagMonth, tuple(f)) for f in flags or ()])
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
    row = row_from_record(dataset, record.value, source, line, extra_fields)  # any JSON: non-objects quarantined
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
    payload: bytes  # pickle of a gathered chunk: see RawChunksSubject


class RawChunksSubject(pw.io.python.ConnectorSubject):
    """A consistent snapshot of ``tarifas_raw`` (one read-only ``REPEATABLE READ``
    transaction) as chunks: per source, up to ``chunk_rows`` rows at a time in line order
    (a range of its primary key), one chunk per dataset among them, gathered by the
    server, which builds the next chunk while the graph parses this one (a static source).

    A chunk of *tarifas homologadas* comes as columns: the server takes each record
    apart (``jsonb_to_record``) and joins each ``TARIFF_HEADER`` column's values with
    :data:`ysh.tariffs.columnar.SEPARATOR`; the records themselves come only for the rows
    the columns cannot vouch for (a value beyond the header, a missing column, a key
    beyond the header, a value that is not a string — told by the server — or a value
    with spaces around it — told here); any other record is exactly its columns' values.
    Payload ``("columns", lines, extra_fields, joined columns, {row: record text})``.
    Any other chunk (other datasets, or a value holding the separator) comes as its
    records: ``("records", lines, extra_fields, the records as one JSON array text)``."""

    #: one chunk of a source: its rows after a line (``{after}``: ``line > %(after)s``, or
    #: ``true`` for the first chunk), by dataset
    CHUNK = """
        SELECT dataset, array_agg(line ORDER BY line), array_agg(extra_fields ORDER BY line),
               array_agg(line ORDER BY line) FILTER (WHERE NOT plain),
               array_agg(record::text ORDER BY line) FILTER (WHERE NOT plain),
               {gathered}, max(line)
        FROM (SELECT chunk.*, cols.*,
                     chunk.dataset = 'tariffs' AND chunk.extra_fields = 0
                     AND num_nonnulls({cols}) = {count} AND chunk.record - {keys} = jsonb_build_object()
                     AND NOT jsonb_path_exists(chunk.record, 'strict $.* ? (@.type() != "string")', jsonb_build_object(), true)
                     AS plain
              FROM (SELECT line, dataset, extra_fields, record FROM {table}
                    WHERE source = %(source)s AND {after} ORDER BY line LIMIT %(rows)s) AS chunk
              CROSS JOIN LATERAL jsonb_to_record(CASE jsonb_typeof(chunk.record) WHEN 'object' THEN chunk.record
                                                 ELSE jsonb_build_object() END) AS cols({typed})) AS rows
        GROUP BY dataset ORDER BY dataset"""

    def __init__(self, dsn: str, schema: str, chunk_rows: int = 20_000, table: str = "tarifas_raw"):
        super().__init__(datasource_name="tarifas_raw_chunks")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows {chunk_rows}: at least 1 row per chunk")
        self._dsn, self._schema, self._chunk_rows, self._table = dsn, schema, chunk_rows, table
        #: True once every chunk is sent (a sink that replaces a table checks it)
        self.finished = False

    def run(self) -> None:
        import psycopg
        from psycopg import sql

        table = sql.Identifier(self._table)
        columns = dict(
            gathered=sql.SQL(", ").join(sql.SQL("string_agg(COALESCE({}, ''), chr(31) ORDER BY line)").format(
                sql.Identifier("rows", c)) for c in TARIFF_HEADER),
            cols=sql.SQL(", ").join(sql.Identifier("cols", c) for c in TARIFF_HEADER),
            count=sql.Literal(len(TARIFF_HEADER)),
            keys=sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(map(sql.Literal, TARIFF_HEADER))),
            typed=sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in TARIFF_HEADER))
        # the first chunk of a source, then the ones after a line (no sentinel: any bigint is a line)
        first, next_ = (sql.SQL(self.CHUNK).format(after=sql.SQL(after), table=table, **columns)
                        for after in ("true", "line > %(after)s"))
        records_of = sql.SQL("SELECT line, record::text FROM {} WHERE source = %s AND line = ANY(%s)").format(table)
        with psycopg.connect(self._dsn) as conn:
            # every statement below in one transaction: one snapshot of the table
            conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(self._schema)))
            sources = [s for (s,) in conn.execute(sql.SQL("SELECT DISTINCT source FROM {} ORDER BY source").format(
                table)).fetchall()]
            for source in sources:
                after = None  # the first chunk: from the source's lowest line (any bigint)
                while True:
                    groups = (conn.execute(first, {"source": source, "rows": self._chunk_rows}) if after is None else
                              conn.execute(next_, {"source": source, "after": after, "rows": self._chunk_rows})
                              ).fetchall()
                    if not groups:
                        break
                    for dataset, lines, extra_fields, odd_lines, odd_texts, *joined, last in groups:
                        odd = dict(zip(odd_lines or (), odd_texts or ()))
                        if dataset == "tariffs" and gathered_columns_hold(joined, len(lines)):
                            spaced = [lines[i] for i in rows_with_edge_spaces(joined) if lines[i] not in odd]
                            if spaced:
                                odd.update(conn.execute(records_of, (source, spaced)).fetchall())
                            at = {line: i for i, line in enumerate(lines)}
                            payload = ("columns", lines, extra_fields, joined,
                                       {at[line]: text for line, text in odd.items()})
                        else:
                            if len(odd) < len(lines):  # plain tariffs rows too: their records
                                odd.update(conn.execute(records_of, (source, list(lines))).fetchall())
                            payload = ("records", lines, extra_fields,
                                       "[" + ",".join(odd[line] for line in lines) + "]")
                        self.next(source=source, dataset=dataset,
                                  payload=pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
                    after = max(last for *_, last in groups)
            conn.rollback()
        self.finished = True


def _rows_one_by_one(dataset: str, records: list, source: str, lines, extra_fields) -> tuple:
    """Records parsed as the CDC path does (:func:`_parse_record`), gathered like a chunk
    of :func:`_parse_file`."""
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
    return (_utility_groups(tariffs, Tariff), _utility_groups(fio_b, FioB), flags, quarantine)


@pw.udf(deterministic=True)
def _parse_raw_chunk(dataset: str, source: str, payload: bytes) -> tuple:
    """One chunk of ``tarifas_raw`` (:class:`RawChunksSubject`) → what :func:`_parse_file`
    gives for a file chunk (tariff and Fio B rows packed per utility, flag rows,
    quarantined rows): *tarifas homologadas* by columns, the rest record by record."""
    kind, lines, extra_fields, *rest = pickle.loads(payload)

    if kind == "columns":
        joined, odd_texts = rest
        cols = [text.split(SEPARATOR) for text in joined]
        records: dict[int, dict] = {i: json.loads(text) for i, text in odd_texts.items()}

        def record(i: int) -> dict:
            # a row the columns vouch for is exactly its columns' values (the server checked)
            if i in records:  # its record as stored (a JSON null or array too: the row parser quarantines it)
                return records[i]
            return {name: col[i] for name, col in zip(TARIFF_HEADER, cols)}

        columnar = parse_gathered_tariffs(cols, source, lines, set(records),
                                          lambda i: row_from_record(dataset, record(i), source, lines[i],
                                                                    extra_fields[i]))
        if columnar is None:  # the row parser gave nothing for a tariffs record: it always gives a row
            raise RuntimeError(f"{source}: a tarifas homologadas record gave no row")
        return (_utility_groups(columnar.rows, Tariff), [], [], [tuple(q) for q in columnar.quarantine])
    (joined,) = rest
    records = json.loads(joined)
    if dataset == "tariffs":
        columnar = parse_tariff_records_columnar(records, source, lines, extra_fields,
                                                 lambda i: row_from_record(dataset, records[i], source, lines[i],
                                                                           extra_fields[i]),
                                                 stripped_text=jsonb_values_are_stripped_text(joined),
                                                 with_spans=False)
        if columnar is not None:
            return (_utility_groups(columnar.rows, Tariff), [], [], [tuple(q) for q in columnar.quarantine])
    return _rows_one_by_one(dataset, records, source, lines, extra_fields)


def build_tariffs_graph(chunks: pw.Table) -> TariffTables:
    """Build the tariffs graph over file chunks (:class:`FileChunkSchema`: a whole file is
    one chunk with ``line_offset`` 0): see :func:`_build_packed`."""
    return _build_packed(chunks.select(result=_parse_file(pw.this.data, pw.this.path, pw.this.line_offset)))


def build_tariffs_graph_from_raw_chunks(chunks: pw.Table) -> TariffTables:
    """Build the tariffs graph over chunks of ``tarifas_raw`` (:class:`RawChunkSchema`):
    the same tables as :func:`build_tariffs_graph_from_raw` over the same rows, with one
    UDF call per chunk instead of one per row and the rows packed as the file graph keeps
    them (:func:`_build_packed`; a static batch: the follower keeps the per-row graph, so
    that a change re-parses one row)."""
    return _build_packed(chunks.select(result=_parse_raw_chunk(pw.this.dataset, pw.this.source, pw.this.payload)))


def _build_packed(parsed: pw.Table) -> TariffTables:
    """The graph over parsed chunks (one tuple column ``result``: see :func:`_parse_file`).

    A static graph: the tariff and Fio B rows stay packed (pickled lists, per chunk and
    utility) from the parsing UDF to the sink, and each utility's keys are checked for
    overlaps in one reduce (:func:`_keep_non_overlapping_packed`); the monthly view is
    computed per utility from its packed residential rows. :attr:`TariffTables.packed`
    holds the kept rows so (the JSONL writer of :func:`ysh.tariffs.job.run_static` and the
    batch's COPY sink of :func:`ysh.tariffs.job.run_warehouse` read them); ``tariffs`` and
    ``fio_b`` unpack them into one row per tariff for a sink that wants rows."""

    def flattened(index: int) -> pw.Table:
        return parsed.select(row=pw.declare_type(list[tuple], pw.this.result[index])).flatten(pw.this.row)

    tariffs, residential, overlapping_tariffs = _keep_non_overlapping_packed(flattened(0), Tariff)
    fio_b, _, overlapping_fio_b = _keep_non_overlapping_packed(flattened(1), FioB)
    flags, conflicting_flags = _checked_flags(flattened(2))
    quarantine = pw.Table.concat_reindex(_quarantine_table(flattened(3)), overlapping_tariffs, overlapping_fio_b,
                                         conflicting_flags)
    monthly = _monthly_view(residential.select(pw.this.rows, one=0), flags, _monthly_packed)
    return TariffTables(tariffs=_unpacked(tariffs, Tariff), fio_b=_unpacked(fio_b, FioB), flags=flags,
                        monthly=monthly, quarantine=quarantine, packed={"tariffs": tariffs, "fio_b": fio_b})


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

    flags, conflicting_flags = _checked_flags(flag_rows)
    quarantine = pw.Table.concat_reindex(_quarantine_table(quarantine_rows), overlapping_tariffs, overlapping_fio_b,
                                         conflicting_flags)

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
    monthly = _monthly_view(by_utility, flags, _monthly)
    return TariffTables(tariffs=tariffs, fio_b=fio_b, flags=flags, monthly=monthly, quarantine=quarantine)


def _quarantine_table(rows: pw.Table) -> pw.Table:
    """Quarantined rows (one tuple column ``row``: a :class:`QuarantinedRow`) as the
    quarantine table's columns, the raw record as JSON."""
    return rows.select(**_columns(pw.this.row, QuarantinedRow)).select(
        pw.this.source_file, pw.this.line, pw.this.reason, pw.this.detail, raw=_raw_json(pw.this.raw))


def _checked_flags(flag_rows: pw.Table) -> tuple[pw.Table, pw.Table]:
    """Flag rows (one tuple column ``row``) → (one flag per month, conflicting rows quarantined)."""
    flag_rows = flag_rows.select(**_columns(pw.this.row, FlagMonth))
    checked_flags = flag_rows.groupby(pw.this.month).reduce(result=_check_flags(
        pw.reducers.tuple(pw.make_tuple(*[pw.this[c] for c in FlagMonth._fields]))))
    flags = checked_flags.filter(pw.this.result[0].is_not_none()).select(
        **_columns(pw.declare_type(tuple, pw.this.result[0]), FlagMonth))
    conflicting_flags = _quarantine_table(checked_flags.select(
        row=pw.declare_type(list[tuple], pw.this.result[1])).flatten(pw.this.row))
    return flags, conflicting_flags


def _monthly_view(by_utility: pw.Table, flags: pw.Table, monthly_udf) -> pw.Table:
    """``tarifas_efetivas_mensais`` from one row per utility (``rows``, ``one=0``) and the
    flags, by ``monthly_udf`` (:func:`_monthly` or :func:`_monthly_packed`)."""
    all_flags = flags.select(row=pw.make_tuple(*[flags[c] for c in FlagMonth._fields])).reduce(
        rows=pw.reducers.tuple(pw.this.row), one=0)
    joined = by_utility.join_left(all_flags, by_utility.one == all_flags.one).select(
        tariffs=by_utility.rows, flags=all_flags.rows)
    monthly = joined.select(row=monthly_udf(pw.this.tariffs, pw.this.flags)).flatten(pw.this.row)
    return monthly.select(
        utility=pw.declare_type(str, pw.this.row[0]), subgroup=pw.declare_type(str, pw.this.row[1]),
        month=pw.declare_type(pw.DateTimeNaive, pw.this.row[2]),
        te_brl_per_kwh=pw.declare_type(float, pw.this.row[3]), tusd_brl_per_kwh=pw.declare_type(float, pw.this.row[4]),
        flag=pw.declare_type(str | None, pw.this.row[5]),
        flag_addon_brl_per_kwh=pw.declare_type(float, pw.this.row[6]),
        total_brl_per_kwh=pw.declare_type(float, pw.this.row[7]),
    )
