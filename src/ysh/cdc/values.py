"""Text-format PostgreSQL values -> Python values for a Pathway schema.

pgoutput v1 sends every column in its text output format, as produced by the
*walsender's* session settings. The connector therefore pins DateStyle, TimeZone,
IntervalStyle, extra_float_digits and bytea_output on both the replication connection and
the snapshot connection (see ``SESSION_OPTIONS``), and the snapshot reads columns through
:class:`RawText` (the type's own output function, exactly what pgoutput sends), so both
paths go through the same parser below. Note that ``col::text`` is NOT the same text:
``true::text`` is ``'true'`` (output: ``'t'``), ``inet`` gains ``/32``, ``char(n)`` loses
its padding.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable

import pandas as pd
import pathway as pw
import psycopg
from pathway.internals import dtype as dt
from psycopg.adapt import Loader

#: libpq ``options`` that make text output deterministic for the parsers below.
SESSION_OPTIONS = (
    "-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=iso_8601 "
    "-c extra_float_digits=3 -c bytea_output=hex"
)


class RawText(Loader):
    """psycopg 3 loader returning a column's text output as ``str``, whatever its type."""

    def load(self, data) -> str:
        return bytes(data).decode("utf-8")


def raw_text_cursor(conn: psycopg.Connection, type_oids, name: str | None = None):
    """A cursor (server-side if ``name``) whose results for ``type_oids`` stay raw text."""
    cur = conn.cursor(name=name) if name else conn.cursor()
    for oid in set(type_oids):
        cur.adapters.register_loader(oid, RawText)
    return cur


def _bool(text: str) -> bool:
    return text == "t"


def _bytes(text: str) -> bytes:
    if not text.startswith("\\x"):
        raise ValueError(f"bytea not in hex format: {text[:16]!r}")
    return bytes.fromhex(text[2:])


def _timestamp_utc(text: str) -> pd.Timestamp:
    # timestamptz in ISO style with TimeZone=UTC: '2026-11-26 00:26:39.375+00'
    return pd.Timestamp(datetime.fromisoformat(text)).tz_convert(timezone.utc)


def _timestamp_naive(text: str) -> pd.Timestamp:
    return pd.Timestamp(datetime.fromisoformat(text))


def _json(text: str) -> pw.Json:
    return pw.Json(json.loads(text))


def _duration(text: str) -> pd.Timedelta:
    return pd.Timedelta(text)  # IntervalStyle=iso_8601 ('P1DT2H'); no months/years support


_PARSERS: dict[Any, Callable[[str], Any]] = {
    dt.INT: int,
    dt.FLOAT: float,
    dt.BOOL: _bool,
    dt.STR: str,
    dt.BYTES: _bytes,
    dt.JSON: _json,
    dt.DATE_TIME_UTC: _timestamp_utc,
    dt.DATE_TIME_NAIVE: _timestamp_naive,
    dt.DURATION: _duration,
}


def parser_for(dtype: dt.DType) -> Callable[[str | None], Any]:
    """A function turning the text (or None for NULL) of one column into its Python value."""
    base = dt.unoptionalize(dtype)
    parse = _PARSERS.get(base)
    if parse is None:
        if base == dt.ANY:
            parse = str
        else:
            raise TypeError(f"no text parser for Pathway type {dtype!r}")

    def convert(text: str | None) -> Any:
        return None if text is None else parse(text)

    return convert
