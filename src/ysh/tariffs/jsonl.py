"""JSON lines of many rows, column by column: the bytes :func:`ysh.pw_runtime.write_jsonl`
writes for the same rows as dicts, without a ``json.dumps`` call per row.

:func:`ysh.pw_runtime.write_jsonl` writes ``json.dumps(row, ensure_ascii=False,
default=...)`` per row (dates through their ``isoformat()``). ANEEL files repeat a few
hundred labels over hundreds of thousands of rows, so here each distinct text or date of a
column is encoded once, numbers by their ``repr`` (what ``json`` writes), and a row is one
``str.format`` of its encoded cells. A column holding any other type is encoded value by
value by ``json`` itself. ``tests/tariffs/test_packed_graph.py`` holds the two writers equal.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from json.encoder import encode_basestring
from pathlib import Path

#: what ``json`` writes for the floats whose ``repr`` is not JSON
_FLOAT_WORDS = {"None": "null", "nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_BATCH = 20_000


def _default(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


_TEXT_TYPES = ({str, type(None)}, {datetime.datetime, datetime.date, type(None)})


def _text(value) -> str:
    """A text, date or None as ``json`` writes it (dates through their ISO text)."""
    if value is None:
        return "null"
    return encode_basestring(value if isinstance(value, str) else value.isoformat())


def _encoded(column: Sequence) -> list[str]:
    """Each value of one column as ``json.dumps(value, ensure_ascii=False)`` writes it
    (dates and datetimes as their ISO text)."""
    types = set(map(type, column))
    if any(types <= kinds for kinds in _TEXT_TYPES):
        table = {v: _text(v) for v in set(column)}
        return list(map(table.__getitem__, column))
    if types <= {float, type(None)}:
        # not through a table: 0.0 and -0.0 are one key, and json writes them apart
        texts = list(map(repr, column))
        return list(map(_FLOAT_WORDS.get, texts, texts))
    if types == {int}:
        return list(map(int.__repr__, column))
    dumps = json.JSONEncoder(ensure_ascii=False, default=_default).encode
    return list(map(dumps, column))


def write_rows(path: Path, names: Sequence[str], rows: list[tuple],
               together: Sequence[Sequence[str]] = ()) -> int:
    """Write ``rows`` (tuples of values in ``names`` order, already in output order) as
    JSON lines of objects with the keys ``names``; returns the count. The file holds what
    :func:`ysh.pw_runtime.write_jsonl` writes for ``[dict(zip(names, row)) for row in rows]``
    (``together``: see :func:`lines`)."""
    return write_lines(path, lines(names, rows, together))


def write_lines(path: Path, text_lines: list[str]) -> int:
    """Write lines made by :func:`lines` (each ending in a line break); returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, len(text_lines), _BATCH):
            f.write("".join(text_lines[start:start + _BATCH]))
    return len(text_lines)


def lines(names: Sequence[str], rows: list[tuple], together: Sequence[Sequence[str]] = ()) -> list[str]:
    """Each row as its JSON line (with the line break): ``json.dumps(dict(zip(names, row)),
    ensure_ascii=False)`` with dates as their ISO text.

    ``together``: runs of adjacent names whose values repeat together (labels of one key,
    the two ends of a validity), encoded once per distinct combination when they hold
    texts, dates or None (otherwise column by column)."""
    keys = [encode_basestring(name) + ": " for name in names]
    runs, i, first = [], 0, {run[0]: tuple(run) for run in together}
    while i < len(names):
        run = first.get(names[i], (names[i],))
        if tuple(names[i:i + len(run)]) != run:
            raise ValueError(f"{run}: not adjacent names of {tuple(names)}")
        runs.append((i, i + len(run)))
        i += len(run)
    out: list[str] = []
    for start in range(0, len(rows), _BATCH):
        columns = list(zip(*rows[start:start + _BATCH]))
        if len(columns) != len(names):
            raise ValueError(f"rows of {len(columns)} values for {len(names)} names")
        pieces, parts = [], []
        for a, b in runs:
            texts = b - a > 1 and all(any(set(map(type, columns[j])) <= kinds for kinds in _TEXT_TYPES)
                                      for j in range(a, b))
            if not texts:
                for j in range(a, b):
                    parts.append(keys[j].replace("{", "{{").replace("}", "}}") + "{}")
                    pieces.append(_encoded(columns[j]))
                continue
            parts.append(keys[a].replace("{", "{{").replace("}", "}}") + "{}")
            combos = list(zip(*columns[a:b]))
            table = {combo: ", ".join([_text(combo[0]), *(keys[a + j] + _text(v) for j, v in enumerate(combo[1:], 1))])
                     for combo in set(combos)}
            pieces.append(list(map(table.__getitem__, combos)))
        out += map(("{{" + ", ".join(parts) + "}}\n").format, *pieces)
    return out
