"""*Tarifas homologadas* parsed column by column: the same rows as :func:`ysh.tariffs.aneel.parse_tariffs`,
built for the Pathway graph without a Python call per cell.

The file (or a chunk of it: :func:`ysh.tariffs.load.split_file`) is split by pandas' C
reader, and the rules of :func:`ysh.tariffs.aneel.tariff_from_record` run on columns:
each distinct date, value, base and label is parsed once with the domain functions, and
a row is a plain tuple lookup. A row that any rule could reject (an empty key, a date,
unit, base or value that does not parse, a negative value, an inverted validity) goes
through :func:`~ysh.tariffs.aneel.tariff_from_record` itself, so its reason and detail are
the domain's. A file whose layout pandas might read differently from
:func:`ysh.tariffs.aneel.parse_tariffs` (a line break inside quotes, a quote inside a
field, a line with more fields than the header, blank lines, a lone carriage return,
another header, UTF-16) gives ``None``: the caller parses it row by row instead (a short
line is padded with empty cells by both).

The same rules run on the records of ``tarifas_raw`` (:func:`parse_tariff_records_columnar`,
the warehouse batch): there a record the columns cannot vouch for (a value beyond the
header, a missing column, a value that is not stripped text) goes to the row parser too.

The rows come out in the graph's layout (:func:`engine_rows_of`): ``(key_text, token,
from_day, to_day, *Tariff fields)`` with dates as naive datetimes, plus each key's spans
for the overlap check. ``tests/tariffs/test_columnar.py`` holds both parsers equal.
"""

from __future__ import annotations

import datetime
import io
import operator
import re
import warnings
from collections import defaultdict
from typing import NamedTuple

from ..textio import NotTextError, decode_text
from .aneel import (
    BASES,
    TARIFF_HEADER,
    QuarantinedRow,
    Tariff,
    _decimal_or_none,
    fold,
    parse_iso_date,
    per_kwh,
    tariff_from_record,
)
from .book import row_token

_NA = "Não se aplica"
_N = len(TARIFF_HEADER)
_COL = {name: i for i, name in enumerate(TARIFF_HEADER)}
_KEYS = ("SigAgente", "DatInicioVigencia", "DscBaseTarifaria", "DscSubGrupo", "DscModalidadeTarifaria",
         "DscUnidadeTerciaria")


class ColumnarTariffs(NamedTuple):
    rows: list[tuple]  # engine rows: (key_text, token, from_day, to_day, *Tariff fields)
    spans: list[tuple]  # (key_text, ((token, line, from_day, to_day, values), ...)) per key
    quarantine: list[QuarantinedRow]
    encoding: str


def _datetime(day: datetime.date | None) -> datetime.datetime | None:
    return None if day is None else datetime.datetime(day.year, day.month, day.day)


def _date_or_none(text: str):
    try:
        return parse_iso_date(text)
    except ValueError:
        return None


def _layout_is_plain(text: str) -> bool:
    """No blank line, no lone carriage return, and quotes only around whole fields (a line
    break inside quotes is caught by the row count, a line with too many fields by pandas;
    a short line is padded with empty cells by both parsers)."""
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return False  # a lone carriage return: the csv module splits there
    body = text[:-1] if text.endswith("\n") else text
    if not body or "\n\n" in body or "\n\r\n" in body or body.startswith(("\n", "\r\n")):
        return False  # blank lines: skipped by the row parser (and numbered), kept apart here
    quotes = text.count('"')
    if quotes:
        # each quote opens or closes a whole field: after ``;`` or a line start, before ``;`` or a line end
        edges = (text.count(';"') + text.count('";') + text.count('\n"') + text.count('"\n')
                 + text.count('"\r\n') + text.startswith('"') + text.endswith('"'))
        if edges != quotes:
            return False
    return True


def parse_tariffs_columnar(data: bytes, source_file: str, line_offset: int = 0, *,
                           with_spans: bool = True) -> ColumnarTariffs | None:
    """A *tarifas homologadas* file (or chunk) → engine rows, key spans and quarantined
    rows, equal to :func:`ysh.tariffs.aneel.parse_tariffs` followed by
    :func:`engine_row`; ``None`` when its layout needs the row-by-row parser.
    ``with_spans=False``: the spans are left empty (a caller that groups the rows by key
    itself)."""
    import numpy as np
    import pandas as pd

    try:
        text, encoding = decode_text(data)
    except NotTextError:
        return None
    if encoding == "utf-16" or not _layout_is_plain(text):
        return None
    try:
        with warnings.catch_warnings():
            # a line with more fields than the header is an error (the first one only a warning)
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), sep=";", dtype=object, keep_default_na=False, na_filter=False,
                                index_col=False, header=0, quotechar='"', doublequote=True, skip_blank_lines=False,
                                engine="c")
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning):
        return None
    header = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if tuple(header) != TARIFF_HEADER or len(frame) != lines - 1:
        return None
    # a cell with spaces around it: the row parser strips every cell; strip the columns that have one
    cols: list[list[str]] = []
    for i in range(_N):
        values = frame.iloc[:, i].tolist()
        if any(v != v.strip() for v in set(values)):
            values = [v.strip() for v in values]
        cols.append(values)
    n = len(frame)
    if n == 0:
        return ColumnarTariffs([], [], [], encoding)
    first = 2 + line_offset

    def redo(i: int, line: int):
        record = dict(zip(TARIFF_HEADER, (col[i] for col in cols)))
        if not any(record.values()):
            return None  # a line of empty fields: the row parser skips it
        return tariff_from_record(record, source_file, line, 0, clean=True)

    parsed = _from_columns(cols, source_file, list(range(first, first + n)), np.zeros(n, dtype=bool), redo,
                           with_spans=with_spans)
    return None if parsed is None else ColumnarTariffs(*parsed, encoding)


def parse_tariff_records_columnar(records: list[dict], source_file: str, lines: list[int], extra_fields: list[int],
                                  redo, *, stripped_text: bool = False,
                                  with_spans: bool = True) -> ColumnarTariffs | None:
    """*Tarifas homologadas* records of one source as stored in ``tarifas_raw`` (column →
    text, with their line numbers and counts of values beyond the header) → engine rows,
    key spans and quarantined rows, by columns. A record the columns cannot vouch for
    (a value beyond the header, a missing column, a value that is not text or has spaces
    around it, or any rule that could reject it) is given to ``redo(i)``, which must
    return what the row parser gives for record ``i`` (a :class:`Tariff` or a
    :class:`QuarantinedRow`). ``None`` when the records hold values that are not plain
    text (the caller then parses them one by one). ``stripped_text``: the caller has
    checked that every value is text without spaces around it
    (:func:`jsonb_values_are_stripped_text`), so the values are not checked one by one.
    ``with_spans=False``: the spans are left empty (as :func:`parse_tariffs_columnar`)."""
    import numpy as np

    n = len(records)
    if n == 0:
        return ColumnarTariffs([], [], [], "")
    if not all(type(r) is dict for r in records):  # a JSON null, array, ...: the row parser quarantines it
        return None
    try:
        cols = [list(c) for c in zip(*map(_RECORD_VALUES, records))]
    except KeyError:  # a record without some column: each reads what it has, missing values are None
        cols = [[r.get(name) for r in records] for name in TARIFF_HEADER]
        stripped_text = False  # a missing value is no text: checked below like the others
    suspicious = np.fromiter((e != 0 for e in extra_fields), dtype=bool, count=n)
    try:
        for col in cols if not stripped_text else ():
            table = {v: not isinstance(v, str) or v != v.strip() for v in set(col)}
            suspicious |= np.fromiter(map(table.__getitem__, col), dtype=bool, count=n)
    except TypeError:  # a value that is not hashable (a JSON list or object): not a record of text
        return None
    if suspicious.any():  # keep the columns plain text for the shared rules below
        bad = suspicious.tolist()
        cols = [[v if not b else "" for v, b in zip(col, bad)] for col in cols]
    parsed = _from_columns(cols, source_file, list(lines), suspicious, lambda i, line: redo(i),
                           with_spans=with_spans)
    return None if parsed is None else ColumnarTariffs(*parsed, "")


_RECORD_VALUES = operator.itemgetter(*TARIFF_HEADER)

#: what separates the values of one column gathered by the server (``string_agg``):
#: the unit separator, itself a character ``str.strip`` removes, so never inside a
#: value the columns take as plain text
SEPARATOR = "\x1f"
_SPACES = "".join(c for c in map(chr, range(0x110000)) if c.isspace() and c != SEPARATOR)
_SPACE_SET = frozenset(_SPACES)
#: a value of a gathered column (not the first) that starts with a character ``str.strip``
#: removes; searched in the reversed text too, it finds a value (not the last) that ends
#: with one (a literal first character: the regular expression engine skips to each
#: separator instead of trying every position)
_SPACE_AFTER_SEPARATOR = re.compile("{0}[{1}]".format(SEPARATOR, re.escape(_SPACES)))


def gathered_columns_hold(joined: list[str], n: int) -> bool:
    """Whether each of the server's gathered columns (``n`` values joined by
    :data:`SEPARATOR`) splits into exactly ``n`` values (no value holds the separator)."""
    return all(text.count(SEPARATOR) == n - 1 for text in joined)


def rows_with_edge_spaces(joined: list[str]) -> set[int]:
    """The rows (positions) of gathered columns (:func:`gathered_columns_hold` checked)
    with a value that ``str.strip`` would change: the columns cannot vouch for them. A
    value changes when its first or last character is one ``str.strip`` removes: the
    text's first and last characters, and the characters next to a separator (the
    reversed text for those before one) are looked at; a column with such a value is
    split to find its rows."""
    rows: set[int] = set()
    for text in joined:
        if (text[:1] in _SPACE_SET or text[-1:] in _SPACE_SET or _SPACE_AFTER_SEPARATOR.search(text)
                or _SPACE_AFTER_SEPARATOR.search(text[::-1])):
            rows.update(i for i, v in enumerate(text.split(SEPARATOR)) if v != v.strip())
    return rows


def parse_gathered_tariffs(cols: list[list[str]], source_file: str, lines: list[int], odd: set[int],
                           redo) -> ColumnarTariffs | None:
    """*Tarifas homologadas* rows of one source gathered by the server as columns (the
    ``TARIFF_HEADER`` columns, each its values joined by :data:`SEPARATOR`, in line
    order; :func:`gathered_columns_hold` checked), split into ``cols`` → what
    :func:`parse_tariff_records_columnar` gives for the same records, without a record
    decoded in Python. ``odd``: the rows the columns cannot vouch for (a value beyond
    the header, a missing column, a value that is not text or has spaces around it),
    each given to ``redo(i)`` (the row parser's result for row ``i``), as is any row
    the shared rules reject. ``cols`` is not changed."""
    import numpy as np

    n = len(lines)
    if n == 0:
        return ColumnarTariffs([], [], [], "")
    suspicious = np.zeros(n, dtype=bool)
    if odd:
        suspicious[sorted(odd)] = True
        cols = [[v if i not in odd else "" for i, v in enumerate(col)] for col in cols]
    parsed = _from_columns(cols, source_file, list(lines), suspicious, lambda i, line: redo(i), with_spans=False)
    return None if parsed is None else ColumnarTariffs(*parsed, "")

# PostgreSQL's jsonb text: ``{"key": "value", "key": "value"}``, with the control
# characters (below U+0020) escaped (backslash t, n, r, f, b or u00XX) and every other
# one as is. The characters from U+0020 up that ``str.strip`` removes, but the space:
_OTHER_SPACES = ("\x85", "\xa0", "\u1680", *map(chr, range(0x2000, 0x200B)), "\u2028", "\u2029", "\u202f",
                 "\u205f", "\u3000")
_CONTROL_ESCAPES = ("\\t", "\\n", "\\r", "\\f", "\\u00")


def jsonb_values_are_stripped_text(text: str) -> bool:
    """Whether every value in ``text`` (records as PostgreSQL prints ``jsonb``, e.g.
    ``record::text``, possibly joined) is a string that ``str.strip`` leaves as it is,
    decided by a few substring searches. A false ``False`` is allowed (the values are
    then checked one by one; an escaped control character anywhere gives one), never a
    false ``True``."""
    if '": " ' in text or ' ", "' in text or ' "}' in text:
        return False  # a space at the start or the end of a value
    if text.count('": "') != text.count('": '):
        return False  # a value that is not a string (number, null, list, object)
    if "\\" in text and any(e in text for e in _CONTROL_ESCAPES):
        return False  # a tab, line break, … somewhere (maybe at a value's edge)
    return not any(ch in text for ch in _OTHER_SPACES)  # a non-breaking space, … somewhere


def _from_columns(cols: list[list[str]], source_file: str, line_numbers: list[int], suspicious, redo, *,
                  with_spans: bool = True):
    """The shared rules on columns (each a list of stripped texts in ``TARIFF_HEADER``
    order): (engine rows, spans by key, quarantined rows), or None when ``redo`` gives up
    on a row (``redo(i, line)`` → the row parser's result for row ``i``, or None)."""
    import numpy as np

    n = len(line_numbers)

    def mapped(col: list, f) -> list:
        table = {v: f(v) for v in set(col)}
        return list(map(table.__getitem__, col))

    def flags(col: list, f) -> "np.ndarray":
        return np.fromiter(mapped(col, f), dtype=bool, count=n)

    for name in _KEYS:
        suspicious |= flags(cols[_COL[name]], lambda v: v == "")
    starts = mapped(cols[_COL["DatInicioVigencia"]], _date_or_none)
    ends = mapped(cols[_COL["DatFimVigencia"]], lambda v: None if v == "" else _date_or_none(v) or _BAD)
    suspicious |= np.fromiter((d is None for d in starts), dtype=bool, count=n)
    suspicious |= np.fromiter((d is _BAD for d in ends), dtype=bool, count=n)
    suspicious |= np.fromiter((e is not None and s is not None and e is not _BAD and e < s
                               for s, e in zip(starts, ends)), dtype=bool, count=n)
    bases = mapped(cols[_COL["DscBaseTarifaria"]], lambda v: BASES.get(fold(v)))
    suspicious |= np.fromiter((b is None for b in bases), dtype=bool, count=n)
    unit = cols[_COL["DscUnidadeTerciaria"]]
    suspicious |= flags(unit, lambda v: v not in ("MWh", "kW"))
    energy = mapped(unit, lambda v: v == "MWh")
    converted = {}
    for name in ("VlrTUSD", "VlrTE"):
        parsed = _values_of(cols[_COL[name]])
        suspicious |= np.fromiter((v is None for v in parsed), dtype=bool, count=n)
        converted[name] = ([v[0] if v and e else None for v, e in zip(parsed, energy)],
                           [None if e or not v else v[1] for v, e in zip(parsed, energy)])

    def na(name: str) -> list[str]:
        return [v or _NA for v in cols[_COL[name]]]

    utility, subgroup, modality = cols[_COL["SigAgente"]], cols[_COL["DscSubGrupo"]], cols[_COL["DscModalidadeTarifaria"]]
    tariff_class, subclass, detail = na("DscClasse"), na("DscSubClasse"), na("DscDetalhe")
    post, agent = na("NomPostoTarifario"), na("SigAgenteAcessante")
    key_text = list(map("|".join, zip(
        mapped(utility, fold), [b or "" for b in bases], mapped(subgroup, fold), mapped(modality, fold), mapped(tariff_class, fold),
        mapped(subclass, fold), mapped(detail, fold), mapped(post, fold), unit, mapped(agent, fold))))
    tokens = [f"{source_file}\x1f{line:010d}" for line in line_numbers]
    from_day = mapped(starts, lambda d: d.toordinal() if d else None)
    to_day = mapped(ends, lambda d: d.toordinal() if d and d is not _BAD else None)
    start_dt = mapped(starts, _datetime)
    end_dt = mapped(ends, lambda d: None if d is _BAD else _datetime(d))
    cnpj = [v or None for v in cols[_COL["NumCNPJDistribuidora"]]]
    (tusd, tusd_w), (te, te_w) = converted["VlrTUSD"], converted["VlrTE"]
    rows = list(zip(key_text, tokens, from_day, to_day, utility, cnpj, start_dt, end_dt, bases, subgroup, modality,
                    tariff_class, subclass, detail, post, unit, agent, tusd, te, tusd_w, te_w,
                    cols[_COL["DscREH"]], [source_file] * n, line_numbers))
    quarantine: list[QuarantinedRow] = []
    if suspicious.any():
        kept = []
        bad = suspicious.tolist()
        for i, row in enumerate(rows):
            if not bad[i]:
                kept.append(row)
                continue
            result = redo(i, row[-1])
            if result is None:
                return None
            if isinstance(result, QuarantinedRow):
                quarantine.append(result)
            else:
                kept.append(engine_row(result))  # every rule passed after all: the domain's row
        rows = kept
    if not with_spans:
        return rows, [], quarantine
    by_key: dict[str, list[tuple]] = defaultdict(list)
    for row, span in zip(rows, zip([r[1] for r in rows], [r[_LINE] for r in rows], [r[2] for r in rows],
                                   [r[3] for r in rows], zip(*[[r[i] for r in rows] for i in _TARIFF_VALUES]))):
        by_key[row[0]].append(span)
    return rows, [(k, tuple(v)) for k, v in by_key.items()], quarantine


_BAD = object()  # an end date that does not parse


_PLAIN_DECIMAL = re.compile(r"[0-9]{1,15}(?:,[0-9]{1,10})?|,[0-9]{1,10}")


_PLAIN_DECIMAL_LINES = re.compile(r"(?:(?:[0-9]{1,15}(?:,[0-9]{1,10})?|,[0-9]{1,10})\n)*")


def _values_of(column: list[str]) -> list[tuple[float, float] | None]:
    """:func:`value_of` of every value of a column, each distinct value once; when every
    distinct value is a plain decimal (one regex over them all), converted by ``float``
    without a Python call per value (the same conversion :func:`value_of` makes)."""
    distinct = list(set(column))
    joined = "\n".join(distinct) + "\n"
    dotted = joined.replace(",", ".").split("\n")[:-1] if _PLAIN_DECIMAL_LINES.fullmatch(joined) else None
    if dotted is not None and len(dotted) == len(distinct):  # (a value holding a line break is not plain)
        table = dict(zip(distinct, zip(map(float, [d + "e-3" for d in dotted]), map(float, dotted))))
    else:
        table = {v: value_of(v) for v in distinct}
    return list(map(table.__getitem__, column))


def value_of(text: str) -> tuple[float, float] | None:
    """(R$/kWh from R$/MWh, the value as a float) of a valid ANEEL value, None for one
    :func:`ysh.tariffs.aneel.tariff_from_record` rejects (unparseable or negative).

    A plain decimal (at most 25 digits) is read by ``float`` with the point moved three
    places (``"377,80"`` → ``float("377.80e-3")``): both are correctly rounded from the
    exact decimal, so they equal :func:`~ysh.tariffs.aneel.per_kwh` and ``float(Decimal)``."""
    if _PLAIN_DECIMAL.fullmatch(text):
        plain = text.replace(",", ".")
        return float(plain + "e-3"), float(plain)
    value = _decimal_or_none(text)
    if value is None or value < 0:
        return None
    return per_kwh(value), float(value)


#: positions of the value columns in an engine row of each layout (for the overlap check)
_TARIFF_VALUES = tuple(4 + Tariff._fields.index(c)
                       for c in ("tusd_brl_per_kwh", "te_brl_per_kwh", "tusd_brl_per_kw", "te_brl_per_kw"))
_LINE = 4 + Tariff._fields.index("line")


def span_of_engine_row(row: tuple, value_positions: tuple[int, ...] = _TARIFF_VALUES, line_at: int = _LINE) -> tuple:
    """(token, line, from_day, to_day, values) of an engine row (the overlap check's input)."""
    return (row[1], row[line_at], row[2], row[3], tuple(row[i] for i in value_positions))


def engine_row(row) -> tuple:
    """(key_text, token, from_day, to_day, *fields) of a Tariff or FioB, dates as naive datetimes."""
    valid_to = row.valid_to
    fields = tuple(_datetime(v) if isinstance(v, datetime.date) and not isinstance(v, datetime.datetime) else v
                   for v in row)
    return ("|".join(row.key), row_token(row), row.valid_from.toordinal(),
            valid_to.toordinal() if valid_to else None, *fields)
