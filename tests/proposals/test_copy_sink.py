"""The batch run's COPY sink (:mod:`ysh.proposals.copy_sink`) on a real PostgreSQL: two
batch runs that write the same output at the same time (a Dagster run and a Prefect flow)
both succeed, one after the other, and the table ends with one row per key."""

from __future__ import annotations

import json
import threading
import time
from datetime import date

import psycopg
import pytest
from psycopg import sql

from ysh import db
from ysh.proposals import job
from ysh.proposals.copy_sink import CopyTableSink
from ysh.samples.medusa import seed_medusa

from .conftest import seed

pytestmark = pytest.mark.integration

TABLE = "propostas_analytics"


def written_rows(warehouse) -> tuple[list[str], list[tuple]]:
    """(columns the batch writes, rows) of ``TABLE`` after a real batch run."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "AND column_name <> 'updated_at' ORDER BY ordinal_position", (warehouse.schema, TABLE))]
        rows = conn.execute(sql.SQL("SELECT {} FROM {} ORDER BY quote_id").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(TABLE))).fetchall()
    return columns, rows


def sink_of(warehouse, columns: list[str], rows: list[tuple]) -> CopyTableSink:
    """A sink holding ``rows`` as its final state, as Pathway would leave it (the yearly
    table as JSON text, as :func:`ysh.proposals.enrich.evaluate_quote_rows` gives it)."""
    sink = CopyTableSink(warehouse.dsn, warehouse.schema, TABLE, columns)
    for key, row in enumerate(rows):
        sink.on_change(key, {c: json.dumps(v) if isinstance(v, (list, dict)) else v for c, v in zip(columns, row)},
                       0, True)
    sink.on_time_end(0)
    return sink


def waiting_on(conn: psycopg.Connection, warehouse) -> int:
    """Sessions waiting for a lock on ``TABLE``."""
    return conn.execute("SELECT count(*) FROM pg_locks WHERE relation = to_regclass(%s) AND NOT granted",
                        (f"{warehouse.schema}.{TABLE}",)).fetchone()[0]


def test_two_batch_writes_of_the_same_keys_at_once_both_succeed_one_row_per_key(platform):
    warehouse, settings = platform
    seed(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        seed_medusa(conn, companies=4, quotes=60, seed=5, today=date(2026, 5, 15))
    job.run_batch(warehouse, settings)
    columns, rows = written_rows(warehouse)
    assert len(rows) == 64  # 4 hand-made quotes + 60 seeded
    npv = columns.index("npv_brl")
    # two runs of the same keys with different results: the second's NPVs are doubled
    first = sink_of(warehouse, columns, rows)
    second = sink_of(warehouse, columns, [r[:npv] + (None if r[npv] is None else 2 * r[npv],) + r[npv + 1:]
                                          for r in rows])

    # both writes start while another session holds the table, so they meet at once
    errors: list[BaseException] = []

    def write(sink: CopyTableSink) -> None:
        try:
            sink.write()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    with db.connect(warehouse.dsn, warehouse.schema) as blocker, db.connect(warehouse.dsn, warehouse.schema) as watch:
        watch.autocommit = True
        blocker.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.Identifier(TABLE)))
        threads = [threading.Thread(target=write, args=(sink,)) for sink in (first, second)]
        for thread in threads:
            thread.start()
        for _ in range(600):  # both writers queued behind the blocker (at most 60 s)
            if waiting_on(watch, warehouse) >= 2:
                break
            time.sleep(0.1)
        assert waiting_on(watch, warehouse) == 2
        blocker.commit()
        for thread in threads:
            thread.join(120)
    assert not errors, errors
    assert first.written == second.written == len(rows)

    _, after = written_rows(warehouse)
    assert len(after) == len({r[0] for r in after}) == len(rows)  # one row per key
    npvs = [r[npv] for r in after]
    # all from one run (the one that wrote last), never a mix
    assert npvs in ([r[npv] for r in rows], [None if r[npv] is None else 2 * r[npv] for r in rows])
    assert any(v is not None for v in npvs)
