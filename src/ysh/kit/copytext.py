"""PostgreSQL ``COPY … FROM STDIN`` text format: rows written as text by the code that
has them (in parallel, inside the graph's UDFs) and sent to the server as they are
(:class:`ysh.kit.sinks.CopyTextSink`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence

NULL = "\\N"
# backslash, tab, newline and carriage return are escaped; NULL is \N
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _plain(value: object) -> str:
    """A value other than None and str as text, unescaped: a bool as t/f, a float as the
    shortest text that reads back as the same double, a datetime in ISO 8601 (aware ones
    in UTC). A str subclass is written as its str value (not as its ``str()``: an enum's
    member name)."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return float.__repr__(value)  # a subclass's own repr may not be a number (numpy's)
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.timezone.utc) if value.tzinfo else value).isoformat()
    return str(value)


def field(value: object) -> str:
    """One value as COPY text (escaped; None is NULL)."""
    if value is None:
        return NULL
    return (value if isinstance(value, str) else _plain(value)).translate(_ESCAPES)


def _line(row: Sequence[object]) -> str:
    # unescaped: str as it is, floats by repr (the common types inline: a call per value
    # costs more than the rest)
    return "\t".join([NULL if v is None else v if v.__class__ is str else repr(v) if v.__class__ is float
                      else _plain(v) for v in row])


def encode(rows: Iterable[Sequence[object]], tail: Sequence[object] = ()) -> bytes:
    """Rows as the text of a ``COPY … FROM STDIN`` (UTF-8, one line per row), each
    followed by the values of ``tail`` (the same for every row).

    The values are written unescaped first. The text then holds exactly one tab between
    two values, one newline per row, no carriage return and one backslash per NULL —
    unless some value holds one of those characters, and only then is every value
    escaped (the rare file: escaping each value costs more than the rest of the
    encoding)."""
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return b""
    end = "".join("\t" + field(v) for v in tail) + "\n"
    text = end.join(map(_line, rows)) + end
    # `end` is escaped already: its tabs separate the tail's values, its backslashes are its own
    backslashes = sum([v is None for row in rows for v in row]) + len(rows) * end.count("\\")
    tabs = sum(len(row) - 1 for row in rows) + len(rows) * len(tail)
    if (text.count("\t") == tabs and text.count("\n") == len(rows) and "\r" not in text
            and text.count("\\") == backslashes):
        return text.encode()
    return "".join("\t".join(map(field, row)) + end for row in rows).encode()


def _unescape(cell: str) -> str:
    out, i = [], 0
    while i < len(cell):
        char = cell[i]
        if char == "\\" and i + 1 < len(cell) and cell[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[cell[i + 1]])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _lines(text: bytes) -> list[str]:
    lines = text.decode().split("\n")
    if lines[-1] == "":  # the newline that ends the last row
        lines.pop()
    return lines


def _values(cells: list[str]) -> list[str | None]:
    return [None if cell == NULL else _unescape(cell) if "\\" in cell else cell for cell in cells]


def decode(text: bytes) -> Iterator[list[str | None]]:
    """The rows of :func:`encode`'s output, each value as text (None for NULL): for a
    writer that binds them as statement parameters instead (the server casts the text
    to each column's type, as COPY does)."""
    for line in _lines(text):
        yield _values(line.split("\t"))


def leading(text: bytes, count: int) -> list[tuple[str | None, ...]]:
    """The first ``count`` values of each row of :func:`encode`'s output, as
    :func:`decode` gives them (the keys of the rows, say), without splitting the rest."""
    return [tuple(_values(line.split("\t", count)[:count])) for line in _lines(text)]
