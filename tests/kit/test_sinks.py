"""The streaming snapshot sink (:mod:`ysh.kit.sinks`) against the session's real
PostgreSQL: a large time goes through ``COPY`` for a role that may create temporary
tables, and through the upsert per row, inside the same transaction, for a role that may
not (the database's ``TEMPORARY`` privilege revoked from PUBLIC), with one warning."""

from __future__ import annotations

import json
import logging
import pickle
import secrets
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ysh import db
from ysh.catalog.normalize import normalize_feed
from ysh.kit import copytext
from ysh.kit.sinks import CopyTextSink, PackedBatchSink, SnapshotSink

EXPORTS = Path(__file__).resolve().parents[2] / "data" / "distributors" / "exports"
SCHEMA = "ysh"
TABLE = "items_normalized"
KEY = ("distributor", "sku")
#: when the real exports were taken (normalize_feed's ``as_of``): fixed, so any day gives the same rows
AS_OF = date(2025, 10, 15)
INGESTED_AT = datetime(2025, 10, 15, 12, 0, tzinfo=timezone.utc)


def export_rows(columns: list[str]) -> list[dict]:
    """``items_normalized`` rows of the real Solfácil and FOTUS exports, as the catalog
    pipeline writes them (item fields, ``line`` as ``source_line``, an ``ingested_at``)."""
    rows = []
    for path in sorted(p for p in EXPORTS.rglob("*") if p.is_file()):
        result = normalize_feed(path.read_bytes(), str(path.relative_to(EXPORTS)), path.parent.name, AS_OF)
        for item in result.items:
            values = {**item.to_dict(), "source_line": item.line, "ingested_at": INGESTED_AT}
            rows.append({c: values[c] for c in columns if c in values})
    return rows


@pytest.fixture()
def roles(pg_server):
    """A database of its own (the platform schema migrated in it) whose ``TEMPORARY``
    privilege is revoked from PUBLIC, and two login roles with the sink's table grants
    only: ``no_temp`` and ``with_temp`` (``TEMPORARY`` granted back to it alone).
    Yields (role → DSN, table columns); drops the database and roles afterwards."""
    name = f"sinks_{uuid.uuid4().hex[:10]}"
    role_names = {kind: f"{name}_{kind}" for kind in ("no_temp", "with_temp")}
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = pg_server.dsn(name)
    db.migrate(dsn, SCHEMA)
    dsns = {}
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
            for kind, role in role_names.items():
                password = secrets.token_urlsafe(18)
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                                sql.Literal(password)))
                conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA),
                                                                             sql.Identifier(role)))
                conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {}.{} TO {}").format(
                    sql.Identifier(SCHEMA), sql.Identifier(TABLE), sql.Identifier(role)))
                if kind == "with_temp":
                    conn.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(name),
                                                                                       sql.Identifier(role)))
                dsns[kind] = f"host=127.0.0.1 port={pg_server.port} user={role} dbname={name} password={password}"
            may_temp = {kind: conn.execute("SELECT has_database_privilege(%s, %s, 'TEMPORARY')",
                                           (role, name)).fetchone()[0] for kind, role in role_names.items()}
            assert may_temp == {"no_temp": False, "with_temp": True}
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position", (SCHEMA, TABLE))]
        yield dsns, dsn, columns
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            for role in role_names.values():
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def one_time(sink: SnapshotSink, time: int, rows: list[dict], retract: list[dict] = ()) -> None:
    """What Pathway does for one time: each change, then the time's end."""
    for row in retract:
        sink.on_change(None, row, time, False)
    for row in rows:
        sink.on_change(None, row, time, True)
    sink.on_time_end(time)


def table_prices(dsn: str) -> dict[tuple[str, str], float | None]:
    with db.connect(dsn, SCHEMA) as conn:
        return {(d, s): p for d, s, p in conn.execute(f"SELECT distributor, sku, price_brl FROM {TABLE}")}


def expected_prices(rows: list[dict]) -> dict[tuple[str, str], float | None]:
    return {(r["distributor"], r["sku"]): r["price_brl"] for r in rows}  # the last row of a key wins


def test_a_role_without_temp_writes_a_large_time_by_upserts_with_one_warning(roles, caplog):
    dsns, owner_dsn, columns = roles
    rows = export_rows(columns)
    want = expected_prices(rows)
    assert len(want) >= SnapshotSink.copy_min_rows  # a time large enough for COPY
    sink = SnapshotSink(dsns["no_temp"], SCHEMA, TABLE, KEY, retry_budget_s=5)
    caplog.set_level(logging.WARNING, logger="ysh.kit.sinks")
    try:
        one_time(sink, 2, rows)
        assert table_prices(owner_dsn) == want
        assert (sink.copied_rows, sink.upserted_rows) == (0, len(want))

        # the next large time: every price up 10 % (retraction of the old row, addition of the new)
        repriced = [{**r, "price_brl": None if r["price_brl"] is None else round(r["price_brl"] * 1.1, 2)}
                    for r in rows]
        one_time(sink, 4, repriced, retract=rows)
        assert table_prices(owner_dsn) == expected_prices(repriced) != want
        # a row the repricing left as it was (no price) nets to nothing within its time
        changed = sum(1 for key, price in expected_prices(repriced).items() if price != want[key])
        assert 0 < changed < len(want)
        assert (sink.copied_rows, sink.upserted_rows) == (0, len(want) + changed)
    finally:
        sink.close()
    warnings = [r for r in caplog.records if r.name == "ysh.kit.sinks" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "temporary tables" in warnings[0].getMessage()


def test_a_role_with_temp_writes_a_large_time_by_copy(roles, caplog):
    dsns, owner_dsn, columns = roles
    rows = export_rows(columns)
    want = expected_prices(rows)
    sink = SnapshotSink(dsns["with_temp"], SCHEMA, TABLE, KEY, retry_budget_s=5)
    caplog.set_level(logging.WARNING, logger="ysh.kit.sinks")
    try:
        one_time(sink, 2, rows)
        # a small time after it: below copy_min_rows, one upsert per row
        final = list({(r["distributor"], r["sku"]): r for r in rows}.values())[:3]
        few = [{**r, "stock_units": 7} for r in final]
        one_time(sink, 4, few, retract=final)
    finally:
        sink.close()
    assert table_prices(owner_dsn) == want
    assert (sink.copied_rows, sink.upserted_rows) == (len(want), len(few))
    with db.connect(owner_dsn, SCHEMA) as conn:
        assert conn.execute(f"SELECT count(*) FROM {TABLE} WHERE stock_units = 7").fetchone()[0] == len(few)
    assert not [r for r in caplog.records if r.name == "ysh.kit.sinks" and r.levelno >= logging.WARNING]


def packed_by_distributor(rows: list[dict], columns: list[str]) -> list[dict]:
    """The rows packed as the tariffs graph packs its own: one Pathway row per
    distributor, its rows as a tuple of pickled lists of value tuples."""
    groups: dict[str, list[tuple]] = {}
    for row in rows:
        groups.setdefault(row["distributor"], []).append(tuple(row[c] for c in columns))
    return [{"distributor": d, "rows": (pickle.dumps(g[: len(g) // 2]), pickle.dumps(g[len(g) // 2:]))}
            for d, g in groups.items()]


def unpack(row: dict) -> list[tuple]:
    return [values for blob in row["rows"] for values in pickle.loads(blob)]


def one_batch(sink: PackedBatchSink, packed: list[dict], stale: list[dict] = ()) -> None:
    """What Pathway gives a batch's sink: a stale version of a row added and retracted,
    the final versions added (across two times), then the end."""
    for row in stale:
        sink.on_change(row["distributor"], row, 2, True)
    sink.on_time_end(2)
    for row in stale:
        sink.on_change(row["distributor"], row, 4, False)
    for row in packed:
        sink.on_change(row["distributor"], row, 4, True)
    sink.on_time_end(4)
    sink.on_end()


@pytest.mark.parametrize("role", ["no_temp", "with_temp"])
def test_a_packed_batch_copies_into_an_empty_table_and_upserts_into_a_full_one(roles, role, caplog):
    dsns, owner_dsn, columns = roles
    rows = list({(r["distributor"], r["sku"]): r for r in export_rows(columns)}.values())  # one row per key
    columns = list(rows[0])  # the columns the pipeline writes (no generated ones)
    packed = packed_by_distributor(rows, columns)
    assert len(packed) >= 2
    # a stale version of the first distributor's row (other prices), retracted before the end
    stale = [{**packed[0], "rows": (pickle.dumps([(*v[:-1], "stale") for v in unpack(packed[0])]),)}]
    caplog.set_level(logging.WARNING, logger="ysh.kit.sinks")

    first = PackedBatchSink(dsns[role], SCHEMA, TABLE, KEY, columns, unpack, retry_budget_s=5)
    one_batch(first, packed, stale)
    assert table_prices(owner_dsn) == expected_prices(rows)
    assert (first.written_rows, first.write_method) == (len(rows), "copy")  # an empty table: no staging table

    repriced = [{**r, "price_brl": 1.0 if r["price_brl"] is None else r["price_brl"] + 1} for r in rows]
    second = PackedBatchSink(dsns[role], SCHEMA, TABLE, KEY, columns, unpack, retry_budget_s=5)
    one_batch(second, packed_by_distributor(repriced, columns))
    assert table_prices(owner_dsn) == expected_prices(repriced) != expected_prices(rows)
    assert second.written_rows == len(rows)
    assert second.write_method == {"with_temp": "staged copy", "no_temp": "upserts"}[role]
    warnings = [r for r in caplog.records if r.name == "ysh.kit.sinks" and r.levelno == logging.WARNING]
    assert len(warnings) == (1 if role == "no_temp" else 0)

    # a full recompute replaces the table: the rows of the distributors it no longer has go
    kept = [r for r in rows if r["distributor"] != packed[0]["distributor"]]
    third = PackedBatchSink(dsns[role], SCHEMA, TABLE, KEY, columns, unpack, replace=True,
                            source_finished=lambda: True, retry_budget_s=5)
    one_batch(third, packed_by_distributor(kept, columns))
    assert table_prices(owner_dsn) == expected_prices(kept)
    assert (third.written_rows, third.write_method) == (len(kept), "copy")  # no staging table, no conflict

    # a batch whose source failed (Pathway may still end it through on_end): no partial replace
    partial = PackedBatchSink(dsns[role], SCHEMA, TABLE, KEY, columns, unpack, replace=True,
                              source_finished=lambda: False, retry_budget_s=5)
    with pytest.raises(RuntimeError, match="did not read everything"):
        one_batch(partial, packed_by_distributor(kept, columns)[:1])
    assert table_prices(owner_dsn) == expected_prices(kept)
    assert partial.written_rows == 0
    with pytest.raises(ValueError, match="needs source_finished"):
        PackedBatchSink(dsns[role], SCHEMA, TABLE, KEY, columns, unpack, replace=True)


def test_a_packed_batch_with_nothing_alive_writes_nothing(roles):
    dsns, owner_dsn, columns = roles
    rows = export_rows(columns)
    columns = list(rows[0])
    packed = packed_by_distributor(rows, columns)
    sink = PackedBatchSink(dsns["with_temp"], SCHEMA, TABLE, KEY, columns, unpack, retry_budget_s=5)
    one_batch(sink, [], stale=packed)  # every row added, then retracted
    assert table_prices(owner_dsn) == {}
    assert (sink.written_rows, sink.write_method) == (0, "")


def table_rows(dsn: str, columns: list[str]) -> dict[tuple[str, str], tuple]:
    with db.connect(dsn, SCHEMA) as conn:
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        return {(r[0], r[1]): r for r in conn.execute(
            sql.SQL("SELECT distributor, sku, {} FROM {}").format(names, sql.Identifier(TABLE)))}


def expected_rows(rows: list[dict], columns: list[str]) -> dict[tuple[str, str], tuple]:
    """The rows as :func:`table_rows` reads them back (``components``, jsonb, parsed)."""
    def value(row: dict, column: str):
        v = row[column]
        return json.loads(v) if column == "components" and v is not None else v

    return {(r["distributor"], r["sku"]): (r["distributor"], r["sku"], *[value(r, c) for c in columns]) for r in rows}


def as_text(rows: list[dict], columns: list[str]) -> list[dict]:
    """The rows packed as the catalog graph packs a feed: one Pathway row per
    distributor, its rows as COPY text in two chunks."""
    groups: dict[str, list[tuple]] = {}
    for row in rows:
        groups.setdefault(row["distributor"], []).append(tuple(row[c] for c in columns))
    return [{"distributor": d, "text": copytext.encode(g[: len(g) // 2]) + copytext.encode(g[len(g) // 2:])}
            for d, g in groups.items()]


@pytest.mark.parametrize("role", ["no_temp", "with_temp"])
def test_copy_text_goes_in_as_written_by_copy_staged_copy_or_upserts(roles, role):
    dsns, owner_dsn, columns = roles
    rows = list({(r["distributor"], r["sku"]): r for r in export_rows(columns)}.values())
    columns = list(rows[0])
    # cells with every character the text format escapes, and the NULL marker as text
    rows[0] = {**rows[0], "description": "tab\there\nnewline\rreturn \\ backslash \\N not null", "brand": None}
    distributors = sorted({r["distributor"] for r in rows})
    assert len(distributors) >= 2
    mine = [r for r in rows if r["distributor"] != distributors[-1]]
    other = [r for r in rows if r["distributor"] == distributors[-1]]
    # another writer's rows of another distributor are there: the batch's own scope is empty
    with db.connect(owner_dsn, SCHEMA) as conn:
        with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(TABLE), sql.SQL(", ").join(map(sql.Identifier, columns)))) as copy:
            for row in other:
                copy.write_row([row[c] for c in columns])
        conn.commit()

    def text_of(row: dict) -> tuple[bytes]:
        return (row["text"],)

    first = CopyTextSink(dsns[role], SCHEMA, TABLE, KEY, columns, text_of, scope="distributor", retry_budget_s=5)
    for packed in as_text(mine, columns):
        first.on_change(packed["distributor"], packed, 2, True)
    first.on_end()
    assert (first.written_rows, first.write_method) == (len(mine), "copy")  # no staging table: a plain COPY
    assert table_rows(owner_dsn, columns) == expected_rows(rows, columns)

    repriced = [{**r, "price_brl": 1.0 if r["price_brl"] is None else r["price_brl"] + 1} for r in mine]
    second = CopyTextSink(dsns[role], SCHEMA, TABLE, KEY, columns, text_of, scope="distributor", retry_budget_s=5)
    for packed in as_text(repriced, columns):
        second.on_change(packed["distributor"], packed, 2, True)
    second.on_end()
    assert second.written_rows == len(mine)
    assert second.write_method == {"with_temp": "staged copy", "no_temp": "upserts"}[role]
    assert table_rows(owner_dsn, columns) == expected_rows([*repriced, *other], columns)


def test_copy_text_reads_back_as_written():
    at = datetime(2025, 10, 15, 12, 0, 0, 123456, tzinfo=timezone.utc)
    rows = [("a", None, 1.1, 3, True, "x\ty\nz\\w\r"), ("\\N", "", 1e-300, -2, False, "plain")]
    text = copytext.encode(rows, tail=(at,))
    assert text == ("a\t\\N\t1.1\t3\tt\tx\\ty\\nz\\\\w\\r\t2025-10-15T12:00:00.123456+00:00\n"
                    "\\\\N\t\t1e-300\t-2\tf\tplain\t2025-10-15T12:00:00.123456+00:00\n").encode()
    assert list(copytext.decode(text)) == [
        ["a", None, "1.1", "3", "t", "x\ty\nz\\w\r", "2025-10-15T12:00:00.123456+00:00"],
        ["\\N", "", "1e-300", "-2", "f", "plain", "2025-10-15T12:00:00.123456+00:00"]]
    # the leading values alone (a batch's keys), unescaped as decode gives them
    assert copytext.leading(text, 2) == [("a", None), ("\\N", "")]
    assert copytext.leading(copytext.encode([("k\tey", "x", "y")]), 1) == [("k\tey",)]
    plain = [("a", None, 2.5), ("b", "c", None)]  # nothing to escape: the fast path
    assert copytext.encode(plain) == b"a\t\\N\t2.5\nb\tc\t\\N\n"
    assert copytext.encode([]) == b""


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_a_copy_spread_over_two_connections_writes_all_or_nothing(roles, which):
    dsns, owner_dsn, columns = roles
    rows = list({(r["distributor"], r["sku"]): r for r in export_rows(columns)}.values())
    columns = list(rows[0])
    packed = sorted(as_text(rows, columns), key=lambda row: len(row["text"]), reverse=True)
    assert len(packed) == 2  # two distributors: the COPY goes over two connections, the largest on the sink's own
    # one distributor's text ends with a line the server refuses (a row too short)
    bad = 0 if which == "largest" else 1
    broken = [{**row, "text": row["text"] + b"only\tthree\tvalues\n"} if i == bad else row
              for i, row in enumerate(packed)]

    def text_of(row: dict) -> tuple[bytes]:
        return (row["text"],)

    sink = CopyTextSink(dsns["with_temp"], SCHEMA, TABLE, KEY, columns, text_of, scope="distributor",
                        retry_budget_s=5)
    for row in broken:
        sink.on_change(row["distributor"], row, 2, True)
    with pytest.raises(psycopg.errors.BadCopyFileFormat):
        sink.on_end()
    assert table_prices(owner_dsn) == {}  # the other connection's COPY was rolled back too
    assert sink.written_rows == 0

    sink = CopyTextSink(dsns["with_temp"], SCHEMA, TABLE, KEY, columns, text_of, scope="distributor",
                        retry_budget_s=5)
    for row in packed:
        sink.on_change(row["distributor"], row, 2, True)
    sink.on_end()
    assert (sink.written_rows, sink.write_method) == (len(rows), "copy")
    assert table_rows(owner_dsn, columns) == expected_rows(rows, columns)


def test_copy_text_writes_values_not_their_reprs():
    import enum

    class Kind(str, enum.Enum):
        MODULE = "module"

    class Price(float):
        def __repr__(self) -> str:
            return f"Price({float(self)})"

    class NoneLike:
        def __eq__(self, other):
            return other is None

        def __str__(self) -> str:
            return "x"

    # a str subclass as its value, a float subclass as a number, and an object equal to
    # None (not None) does not hide the backslash beside it
    assert copytext.encode([(Kind.MODULE, Price(2.5), "plain")]) == b"module\t2.5\tplain\n"  # the fast path
    assert copytext.encode([(Kind.MODULE, NoneLike(), "a\\b")]) == b"module\tx\ta\\\\b\n"
    assert list(copytext.decode(copytext.encode([("",), (None,), ("z",)]))) == [[""], [None], ["z"]]


def test_copy_text_goes_in_as_utf8_whatever_the_database_encoding(pg_server):
    name = f"latin_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
                     .format(sql.Identifier(name)))
    try:
        dsn = pg_server.dsn(name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA s")
            conn.execute("CREATE TABLE s.t (distributor text, sku text, description text, PRIMARY KEY (distributor, sku))")
        rows = [("d1", "1", "Módulo fotovoltaico"), ("d2", "2", "Inversor trifásico"), ("d2", "3", "Ação")]
        sink = CopyTextSink(dsn, "s", "t", ("distributor", "sku"), ("distributor", "sku", "description"),
                            lambda row: (row["text"],), scope="distributor", retry_budget_s=5)
        for d in ("d1", "d2"):
            sink.on_change(d, {"distributor": d, "text": copytext.encode([r for r in rows if r[0] == d])}, 2, True)
        sink.on_end()
        assert sink.write_method == "copy"
        with psycopg.connect(dsn) as conn:
            conn.execute("SET client_encoding = 'UTF8'")
            assert conn.execute("SELECT distributor, sku, description FROM s.t ORDER BY 1, 2").fetchall() == rows
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize("role", ["no_temp", "with_temp"])
def test_an_upsert_with_skip_unchanged_leaves_rows_equal_but_for_their_time_alone(roles, role):
    dsns, owner_dsn, columns = roles
    rows = list({(r["distributor"], r["sku"]): r for r in export_rows(columns)}.values())
    columns = list(rows[0])
    assert "ingested_at" in columns

    def text_of(row: dict) -> tuple[bytes]:
        return (row["text"],)

    def versions() -> dict[tuple[str, str], tuple]:
        with db.connect(owner_dsn, SCHEMA) as conn:
            return {(d, s): (x, t, p) for d, s, x, t, p in conn.execute(
                f"SELECT distributor, sku, xmin::text, ingested_at, price_brl FROM {TABLE}")}

    first = CopyTextSink(dsns[role], SCHEMA, TABLE, KEY, columns, text_of, scope="distributor", retry_budget_s=5)
    for packed in as_text(rows, columns):
        first.on_change(packed["distributor"], packed, 2, True)
    first.on_end()
    before = versions()

    # the next day's batch: every row again with a later time, one of them repriced
    later = INGESTED_AT.replace(day=16)
    again = [{**r, "ingested_at": later} for r in rows]
    again[3] = {**again[3], "price_brl": (again[3]["price_brl"] or 0) + 10}
    changed = (again[3]["distributor"], again[3]["sku"])
    written: list[tuple[int, str]] = []
    second = CopyTextSink(dsns[role], SCHEMA, TABLE, KEY, columns, text_of, scope="distributor",
                          skip_unchanged="ingested_at", retry_budget_s=5,
                          on_written=lambda alive, method: written.append((len(alive), method)))
    packed_again = as_text(again, columns)
    for packed in packed_again:
        second.on_change(packed["distributor"], packed, 2, True)
    second.on_end()
    after = versions()
    method = {"with_temp": "staged copy", "no_temp": "upserts"}[role]
    assert written == [(len(packed_again), method)]
    assert after.keys() == before.keys()
    assert after[changed][1:] == (later, again[3]["price_brl"]) and after[changed][0] != before[changed][0]
    # every other row: the same row version (not rewritten), its first write time kept
    assert {k: v for k, v in after.items() if k != changed} == {k: v for k, v in before.items() if k != changed}
    with pytest.raises(ValueError, match="not one of the columns"):
        CopyTextSink(dsns[role], SCHEMA, TABLE, KEY, columns, text_of, skip_unchanged="updated_at")
