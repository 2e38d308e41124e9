import pandas as pd
import pathway as pw
from pathway.internals import dtype as dt

from ysh.cdc.values import parser_for


def test_parsers(dsn):
    import psycopg
    from ysh.cdc.values import SESSION_OPTIONS
    from ysh.cdc.values import raw_text_cursor
    query = ("SELECT 1.25::float8, 0.1::float8, true, '\\xdeadbeef'::bytea,"
             " '{\"a\": [1, 2]}'::jsonb, '2026-01-02 03:04:05.678+02'::timestamptz,"
             " '2026-01-02 03:04:05'::timestamp, '1 day 2 hours'::interval,"
             " 12345678901234::bigint")
    with psycopg.connect(dsn, options=SESSION_OPTIONS) as c:
        oids = [d.type_code for d in c.execute(query).description]
        row = raw_text_cursor(c, oids).execute(query).fetchone()
        assert row[2] == "t" and row[7] == "P1DT2H"  # output functions, not ::text
    assert parser_for(dt.FLOAT)(row[0]) == 1.25
    assert parser_for(dt.FLOAT)(row[1]) == 0.1  # extra_float_digits=3 round-trips
    assert parser_for(dt.BOOL)(row[2]) is True
    assert parser_for(dt.BYTES)(row[3]) == bytes.fromhex("deadbeef")
    assert parser_for(dt.JSON)(row[4]) == pw.Json({"a": [1, 2]})
    ts = parser_for(dt.DATE_TIME_UTC)(row[5])
    assert ts == pd.Timestamp("2026-01-02 01:04:05.678", tz="UTC")
    assert parser_for(dt.DATE_TIME_NAIVE)(row[6]) == pd.Timestamp("2026-01-02 03:04:05")
    assert parser_for(dt.DURATION)(row[7]) == pd.Timedelta(hours=26)
    assert parser_for(dt.INT)(row[8]) == 12345678901234
    assert parser_for(dt.Optional(dt.STR))(None) is None
