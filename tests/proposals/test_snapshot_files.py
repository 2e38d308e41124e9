"""The batch reads its seven sources through files of one snapshot (``job.SnapshotFiles``:
``COPY`` as JSON lines, then Pathway's own reader): the same rows and row keys as the
Python connector, values its JSON reader cannot type read the slow way instead of being
dropped, and one snapshot for every source."""

from __future__ import annotations

import math
from datetime import date

import pathway as pw
import pytest

from ysh import db, pw_runtime
from ysh.proposals import job
from ysh.samples.medusa import seed_medusa

from .conftest import seed

pytestmark = pytest.mark.integration


def rows_of(table: pw.Table) -> dict:
    """Pointer → row (JSON values as Python values) of a static table, after a run."""
    rows = {}
    pw.io.subscribe(table, on_change=lambda key, row, time, is_addition: rows.__setitem__(
        key, {c: v.value if isinstance(v, pw.Json) else v for c, v in row.items()}))
    return rows


def read_both(warehouse, source: str) -> tuple[dict, dict, list[str]]:
    """A source's rows read through the files and through the Python connector, in one run."""
    table, schema, query = job.SOURCES[source]
    query = query or job._select_all(table, schema)
    pw_runtime.fresh_graph()
    with job.SnapshotFiles(warehouse) as snapshot:
        files = rows_of(snapshot.table(query, schema, name=f"{source}_files"))
        python = rows_of(job.read_snapshot(warehouse, query, schema, name=f"{source}_python",
                                           snapshot=snapshot.snapshot))
        pw_runtime.run()
        fallbacks = list(snapshot.fallbacks)
    return files, python, fallbacks


@pytest.mark.parametrize("source", list(job.SOURCES))
def test_every_source_read_from_its_file_has_the_python_connectors_rows_and_keys(platform, source):
    warehouse, _ = platform
    seed(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        seed_medusa(conn, companies=4, quotes=40, seed=3, today=date(2026, 5, 15))
        conn.commit()
    files, python, fallbacks = read_both(warehouse, source)
    assert fallbacks == []
    assert files and files == python


@pytest.mark.parametrize("source, update, row_id, column", [
    ("quote_item", "UPDATE quote_item SET unit_price_brl = 'NaN' WHERE id = 'i5'", "i5", "unit_price_brl"),
    ("quote", "UPDATE quote SET tilt_deg = 'Infinity' WHERE id = 'q4'", "q4", "tilt_deg"),
])
def test_a_value_the_json_reader_cannot_type_is_read_through_the_python_connector_not_dropped(
        platform, source, update, row_id, column):
    warehouse, _ = platform
    seed(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute(update)
        conn.commit()
    files, python, fallbacks = read_both(warehouse, source)
    assert fallbacks == [f"{source}_files"]
    assert len(files) == len(python) and row_id in {r["id"] for r in files.values()}
    value = next(r[column] for r in files.values() if r["id"] == row_id)
    assert math.isnan(value) or math.isinf(value)


def test_an_old_timestamp_in_a_local_time_zone_keeps_its_row(platform):
    # before 1914 São Paulo's offset was -03:06:28: in that session time zone PostgreSQL writes
    # it with seconds, which Pathway's JSON reader cannot parse (it drops the row); the
    # snapshot reads timestamps in UTC
    warehouse, _ = platform
    seed(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("UPDATE quote SET created_at = '1900-01-01 12:00:00+00' WHERE id = 'q4'")
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f"ALTER DATABASE {database} SET timezone TO 'America/Sao_Paulo'")
        conn.commit()
    try:
        files, python, fallbacks = read_both(warehouse, "quote")
    finally:
        with db.connect(warehouse.dsn, warehouse.schema) as conn:
            conn.execute(f"ALTER DATABASE {database} RESET timezone")
            conn.commit()
    assert fallbacks == []
    assert {r["id"] for r in files.values()} == {"q1", "q2", "q3", "q4"}
    assert files == python


def test_the_sources_are_read_as_of_the_instant_the_snapshot_was_taken(platform):
    warehouse, _ = platform
    seed(warehouse)
    table, schema, query = job.SOURCES["quote"]
    pw_runtime.fresh_graph()
    with job.SnapshotFiles(warehouse) as snapshot:
        with db.connect(warehouse.dsn, warehouse.schema) as conn:  # after the snapshot, before the read
            conn.execute("DELETE FROM quote_item WHERE quote_id = 'q4'")
            conn.execute("DELETE FROM quote WHERE id = 'q4'")
            conn.commit()
        rows = rows_of(snapshot.table(query, schema, name="quote_files"))
        pw_runtime.run()
    assert {r["id"] for r in rows.values()} == {"q1", "q2", "q3", "q4"}


def test_sources_copied_side_by_side_are_read_as_of_the_same_instant(platform):
    """``prefetch`` copies the sources over two connections at once; the second one reads
    the first one's snapshot, so a change made after it is in neither file."""
    warehouse, _ = platform
    seed(warehouse)
    pw_runtime.fresh_graph()
    with job.SnapshotFiles(warehouse) as snapshot:
        with db.connect(warehouse.dsn, warehouse.schema) as conn:  # after the snapshot, before the copies
            conn.execute("DELETE FROM quote_item WHERE quote_id = 'q4'")
            conn.execute("DELETE FROM quote WHERE id = 'q4'")
            conn.commit()
        names = ("quote", "quote_item", "company")
        snapshot.prefetch({f"{name}_prefetched": job.SOURCES[name][2] for name in names}, connections=2)
        tables = {name: rows_of(snapshot.table(job.SOURCES[name][2], job.SOURCES[name][1],
                                               name=f"{name}_prefetched")) for name in names}
        pw_runtime.run()
    assert {r["id"] for r in tables["quote"].values()} == {"q1", "q2", "q3", "q4"}
    assert "q4" in {r["quote_id"] for r in tables["quote_item"].values()}
    assert snapshot.fallbacks == []


def test_the_snapshot_files_are_removed_when_the_run_ends(platform):
    warehouse, _ = platform
    seed(warehouse)
    table, schema, query = job.SOURCES["company"]
    pw_runtime.fresh_graph()
    with job.SnapshotFiles(warehouse) as snapshot:
        snapshot.table(query, schema, name="company_files")
        folder = snapshot._folder
        assert any(folder.iterdir())
    assert not folder.exists()


@pytest.mark.parametrize("value, typeable", [
    ("'2026-03-15 12:00'::timestamp", True), ("'1.5'::float8", True), ("'a NaN-ish name'::text", True),
    ("'NaN'::float8", False), ("'-Infinity'::float8", False), ("'infinity'::timestamp", False),
    ("'10000-01-01'::timestamp", False), ("'0044-03-15 BC'::timestamp", False),
])
def test_values_the_json_reader_cannot_type_are_told_apart(platform, tmp_path, value, typeable):
    warehouse, _ = platform
    with job.SnapshotFiles(warehouse) as snapshot:
        assert snapshot.write(f"SELECT {value} AS v", tmp_path / "v.jsonl") is typeable
