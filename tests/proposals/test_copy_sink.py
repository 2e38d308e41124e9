"""The batch run's COPY sink (:mod:`ysh.proposals.copy_sink`) on a real PostgreSQL: two
batch runs that write the same output at the same time (a Dagster run and a Prefect flow)
both succeed, one after the other, and the table ends with one row per key."""

from __future__ import annotations

import json
import threading
import time
from datetime import date

import pathway as pw
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


def test_a_transient_version_retracted_in_the_same_time_is_not_written():
    """One Pathway time can carry +new, +transient, −transient for a row, in any order
    (a KPI row whose kWp sum passed through a partial value): the version left standing
    is written, and a row retracted without a new version is removed."""
    sink = CopyTableSink("postgresql://unused", "unused", "kpis_b1_b3", ["state", "kwp"])
    sink.on_change("mg", {"state": "MG", "kwp": 10.0}, 2, True)
    sink.on_change("sp", {"state": "SP", "kwp": 1.0}, 2, True)
    sink.on_time_end(2)
    for change in [({"state": "MG", "kwp": 25.5}, True), ({"state": "MG", "kwp": 0.0}, True),
                   ({"state": "MG", "kwp": 10.0}, False), ({"state": "MG", "kwp": 0.0}, False)]:
        sink.on_change("mg", *change[:1], 4, change[1])
    sink.on_change("sp", {"state": "SP", "kwp": 1.0}, 4, False)
    sink.on_change("rj", {"state": "RJ", "kwp": float("nan")}, 4, True)
    sink.on_change("rj", {"state": "RJ", "kwp": float("nan")}, 4, False)
    sink.on_time_end(4)
    assert sink._state == {"mg": ("MG", 25.5)}


def test_the_sinks_of_a_run_write_their_tables_side_by_side_and_the_last_to_end_waits_for_all(platform):
    """A run's three tables are written at once, each in its own transaction; the last
    sink to end returns only when every table is in the warehouse, and a failed write is
    raised there."""
    from ysh.proposals.copy_sink import WriteGroup

    warehouse, _ = platform
    group = WriteGroup(2)
    analytics = CopyTableSink(warehouse.dsn, warehouse.schema, TABLE,
                              ["quote_id", "customer_class", "state", "quote_month", "ordered", "system_kwp"],
                              group=group)
    kpis = CopyTableSink(warehouse.dsn, warehouse.schema, "kpis_b1_b3",
                         ["customer_class", "state", "month", "quotes", "orders", "conversion", "kwp"], group=group)
    for i in range(300):
        analytics.on_change(i, {"quote_id": f"q{i}", "customer_class": "B1", "state": "MG",
                                "quote_month": "2026-03-01", "ordered": False, "system_kwp": 4.4}, 2, True)
    kpis.on_change(0, {"customer_class": "B1", "state": "MG", "month": "2026-03-01", "quotes": 300, "orders": 0,
                       "conversion": 0.0, "kwp": 1320.0}, 2, True)
    analytics.on_end()  # starts its write and returns
    kpis.on_end()  # the last: waits for both
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        assert conn.execute(f"SELECT count(*), min(quote_month)::text FROM {TABLE}").fetchone() == (300, "2026-03-01")
        assert conn.execute("SELECT quotes, kwp FROM kpis_b1_b3").fetchone() == (300, 1320.0)

    broken = WriteGroup(1)
    sink = CopyTableSink(warehouse.dsn, warehouse.schema, "no_such_table", ["x"], group=broken)
    sink.on_change(0, {"x": 1}, 2, True)
    with pytest.raises(psycopg.errors.UndefinedTable):
        sink.on_end()


KPI_COLUMNS = ["customer_class", "state", "month", "quotes", "orders", "conversion", "kwp"]
KPI_KEY = ["customer_class", "state", "month"]


def kpi(state: str, kwp: float, quotes: int = 10) -> dict:
    return {"customer_class": "B1", "state": state, "month": "2026-03-01", "quotes": quotes, "orders": 1,
            "conversion": 0.1, "kwp": kwp}


def kpis_in(warehouse) -> dict[str, tuple]:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return {r[0]: r[1:] for r in conn.execute("SELECT state, quotes, kwp FROM kpis_b1_b3")}


def test_a_streaming_sink_writes_each_time_while_the_run_goes_on_and_commits_at_the_end(platform):
    """Time 2's rows reach the server before the run ends; time 4 changes one key (its
    earlier row is replaced) and retracts another (its row is deleted); readers see the
    table as it was until the commit."""
    from ysh.proposals.copy_sink import StreamingCopySink

    warehouse, _ = platform
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("INSERT INTO kpis_b1_b3 (customer_class, state, month, quotes, orders, conversion, kwp) "
                     "VALUES ('B1', 'BA', '2026-03-01', 1, 0, 0.0, 1.0)")
        conn.commit()
    sink = StreamingCopySink(warehouse.dsn, warehouse.schema, "kpis_b1_b3", KPI_COLUMNS, KPI_KEY)
    for state, kwp in (("MG", 10.0), ("SP", 20.0), ("RJ", 30.0)):
        sink.on_change(state, kpi(state, kwp), 2, True)
    sink.on_time_end(2)
    # time 2 is in the server: its writer took the op and waits, idle in its transaction
    deadline = time.monotonic() + 30
    with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
        while not (sink._queue.empty() and conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.relation = "
                "to_regclass(%s) AND l.mode = 'ShareRowExclusiveLock' AND l.granted AND a.state = 'idle in transaction'",
                (f"{warehouse.schema}.kpis_b1_b3",)).fetchone()[0]):
            assert time.monotonic() < deadline, "the writer never wrote time 2"
            time.sleep(0.05)
    assert kpis_in(warehouse) == {"BA": (1, 1.0)}  # readers still see the old table
    sink.on_change("MG", kpi("MG", 10.0), 4, False)
    sink.on_change("MG", kpi("MG", 12.5, 11), 4, True)
    sink.on_change("SP", kpi("SP", 20.0), 4, False)
    sink.on_time_end(4)
    sink.on_end()
    assert kpis_in(warehouse) == {"MG": (11, 12.5), "RJ": (10, 30.0)}
    assert sink.written == 2


def test_a_new_keys_row_goes_to_the_copy_before_its_time_ends(platform, monkeypatch):
    """The rows of a time are sent to the server as the engine hands them over (in chunks),
    not when the time ends; a row the same time then replaces or retracts is corrected."""
    from ysh.proposals import copy_sink
    from ysh.proposals.copy_sink import StreamingCopySink

    monkeypatch.setattr(copy_sink, "EARLY_CHUNK", 2)
    warehouse, _ = platform
    sink = StreamingCopySink(warehouse.dsn, warehouse.schema, "kpis_b1_b3", KPI_COLUMNS, KPI_KEY)
    sent = []
    send = sink._send
    sink._send = lambda op: (sent.append(op), send(op))
    sink.on_change("MG", kpi("MG", 10.0), 2, True)
    sink.on_change("SP", kpi("SP", 20.0), 2, True)
    assert [len(rows) for _, rows in sent] == [2]  # a chunk of two rows, before the time ends
    sink.on_change("RJ", kpi("RJ", 30.0), 2, True)
    sink.on_change("MG", kpi("MG", 10.0), 2, False)  # MG replaced within the time
    sink.on_change("MG", kpi("MG", 12.5, 11), 2, True)
    sink.on_change("SP", kpi("SP", 20.0), 2, False)  # SP retracted within the time
    sink.on_change("BA", kpi("BA", 5.0), 2, True)  # BA added and retracted within the time
    sink.on_change("BA", kpi("BA", 5.0), 2, False)
    sink.on_time_end(2)
    sink.on_end()
    assert kpis_in(warehouse) == {"MG": (11, 12.5), "RJ": (10, 30.0)}
    assert sink.written == 2


def test_a_row_sent_early_gives_way_to_the_row_that_takes_its_primary_key(platform, monkeypatch):
    """Another Pathway key that takes the same primary key within the time (the first one
    retracted) is not sent early, and ends as the table's row; a key written by an earlier
    time is changed through the time's end, not sent early."""
    from ysh.proposals import copy_sink
    from ysh.proposals.copy_sink import StreamingCopySink

    monkeypatch.setattr(copy_sink, "EARLY_CHUNK", 1)
    warehouse, _ = platform
    sink = StreamingCopySink(warehouse.dsn, warehouse.schema, "kpis_b1_b3", KPI_COLUMNS, KPI_KEY)
    sink.on_change("k1", kpi("MG", 10.0), 2, True)
    sink.on_change("k2", kpi("MG", 11.0, 12), 2, True)  # same primary key: waits for the time's end
    sink.on_change("k1", kpi("MG", 10.0), 2, False)
    sink.on_time_end(2)
    sink.on_change("k2", kpi("MG", 11.0, 12), 4, False)
    sink.on_change("k2", kpi("MG", 13.0, 14), 4, True)
    sink.on_change("k3", kpi("SP", 1.0), 4, True)
    sink.on_time_end(4)
    sink.on_end()
    assert kpis_in(warehouse) == {"MG": (14, 13.0), "SP": (10, 1.0)}


def test_a_failed_run_writes_nothing_and_releases_the_table(platform):
    from ysh.proposals.copy_sink import StreamingCopySink

    warehouse, _ = platform
    sink = StreamingCopySink(warehouse.dsn, warehouse.schema, "kpis_b1_b3", KPI_COLUMNS, KPI_KEY)
    sink.on_change("MG", kpi("MG", 10.0), 2, True)
    sink.on_time_end(2)
    sink.abort()
    assert kpis_in(warehouse) == {}
    with db.connect(warehouse.dsn, warehouse.schema) as conn:  # the lock went with the transaction
        conn.execute("SET lock_timeout = '2s'")
        conn.execute("LOCK TABLE kpis_b1_b3 IN SHARE ROW EXCLUSIVE MODE")


def test_the_engines_row_values_reach_the_sink_in_its_column_order(platform):
    """``copy_sink.subscribe`` hands the sink each row's values as Pathway's callback sink
    gives them (no dictionary per row): the columns must be the table's, in its order."""
    from ysh.proposals import copy_sink

    warehouse, _ = platform
    pw_runtime_fresh()
    table = pw.debug.table_from_markdown("""
        state | kwp  | quotes
        MG    | 10.5 | 3
        SP    | 2.0  | 1
    """)
    sink = CopyTableSink(warehouse.dsn, warehouse.schema, "t", ("state", "kwp", "quotes"))
    sink.write = lambda: None  # the state is what this test reads
    copy_sink.subscribe(table, sink, name="t")
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
    assert sorted(sink._state.values()) == [("MG", 10.5, 3), ("SP", 2.0, 1)]
    with pytest.raises(ValueError, match="columns"):
        copy_sink.subscribe(table, CopyTableSink(warehouse.dsn, warehouse.schema, "t", ("kwp", "state", "quotes")),
                            name="t2")


def pw_runtime_fresh():
    from ysh import pw_runtime

    pw_runtime.fresh_graph()
