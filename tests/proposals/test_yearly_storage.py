"""``propostas_analytics.yearly`` as uncompressed ``json`` (migration 0014): a warehouse of
the earlier schema keeps its documents with their values, every reader (the report, the
Dagster check) gives the same results before and after, and the batch's sinks open their
transaction (lock, delete) before the run instead of at its end."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest
from psycopg import sql

from ysh import db
from ysh.proposals import assets, report
from ysh.proposals.copy_sink import StreamingCopySink
from ysh.resources import WarehouseResource

pytestmark = pytest.mark.integration

MIGRATION = "0014_proposals_yearly_json"


def yearly_table(capex: float, savings: float) -> list[dict]:
    """A yearly table as the pipeline writes it, with numbers jsonb prints differently
    (an exponent, a float's shortest repr, a negative zero) and text that needs escaping."""
    rows, cumulative = [], -capex
    for year in range(1, 26):
        flow = round(savings * 1.05 ** (year - 1), 2)
        cumulative = round(cumulative + flow, 2)
        rows.append({"year": year, "calendar_year": 2025 + year, "generation_kwh": 7829.986 - year * 0.1,
                     "savings_brl": flow, "cash_flow_brl": flow, "cumulative_brl": cumulative,
                     "discounted_cumulative_brl": round(cumulative / 1.1 ** year, 2)})
    rows[0]["generation_kwh"] = 1e-05
    rows[1]["savings_brl"] = 0.30000000000000004
    rows[2]["cash_flow_brl"] = -0.0
    rows[3]["note"] = 'aspas " barra \\ e ç'
    return rows


@pytest.fixture()
def old_warehouse(pg_server, monkeypatch):
    """A schema migrated up to the migration before 0014, as an existing warehouse is."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    dsn = pg_server.dsn()
    everything = db.load_migrations
    monkeypatch.setattr(db, "load_migrations", lambda: [m for m in everything() if m.version < 14])
    db.migrate(dsn, schema)
    yield db.Warehouse(dsn, schema), everything
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def column_of(warehouse) -> tuple[str, str]:
    """(type, storage) of propostas_analytics.yearly."""
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        return conn.execute(
            "SELECT format_type(atttypid, atttypmod), attstorage FROM pg_attribute "
            "WHERE attrelid = 'propostas_analytics'::regclass AND attname = 'yearly'").fetchone()


def readers(warehouse) -> tuple:
    """What every reader of ``yearly`` gives: the report's rows, the cash flow it draws, and
    the Dagster check's verdict."""
    rows, kpis = report._read(warehouse)
    flows = {r["quote_id"]: report._years(r) for r in rows if r["yearly"] is not None}
    check = assets.propostas_analytics_kpis_present(
        WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema))
    return rows, kpis, flows, check.passed, check.metadata["inconsistent"].value


def test_existing_yearly_documents_keep_their_values_and_readers_their_results(old_warehouse, monkeypatch):
    warehouse, everything = old_warehouse
    assert column_of(warehouse) == ("jsonb", "x")
    documents = {"q1": yearly_table(17_600.0, 4_800.0), "q2": yearly_table(90_000.0, 900.0)}
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        for quote_id, yearly in documents.items():
            conn.execute("INSERT INTO propostas_enriched (quote_id, company_id, state, municipality, utility, "
                         "customer_class, connection, quote_month, status, ordered, system_kwp, inverter_kw, "
                         "modules, capex_brl, irradiance_source, generation_kwh_year, consumption_kwh_year) "
                         "VALUES (%s, 'c1', 'MG', 'Belo Horizonte', 'CEMIG-D', 'B1', 'bi', '2026-03-01', 'sent', "
                         "false, 5.4, 5.0, 10, 17600, 'modelled', 7830, 6000)", (quote_id,))
        # q2: an IRR missing although a yearly cash flow is positive (what the check reports)
        conn.execute("INSERT INTO propostas_analytics (quote_id, customer_class, state, quote_month, ordered, "
                     "system_kwp, npv_brl, irr_pct, payback_years, roi, year1_savings_brl, yearly) VALUES "
                     "('q1', 'B1', 'MG', '2026-03-01', false, 5.4, 21000.5, 24.1, 3.6, 2.1, 4800, %s), "
                     "('q2', 'B1', 'MG', '2026-03-01', false, 5.4, -80000, NULL, NULL, -0.5, 900, %s), "
                     "('q3', 'B3', 'MG', '2026-03-01', false, 0, NULL, NULL, NULL, NULL, NULL, NULL)",
                     (json.dumps(documents["q1"]), json.dumps(documents["q2"])))
        conn.execute("UPDATE propostas_analytics SET error = 'no module with a known power' WHERE quote_id = 'q3'")
        conn.commit()
    before = readers(warehouse)
    assert before[-2:] == (False, 1)  # q2 reported, from its yearly cash flows

    monkeypatch.setattr(db, "load_migrations", everything)
    assert db.migrate(warehouse.dsn, warehouse.schema) == [MIGRATION]

    assert column_of(warehouse) == ("json", "e")
    after = readers(warehouse)
    assert after == before
    stored = {r["quote_id"]: r["yearly"] for r in after[0]}
    assert stored == {**documents, "q3": None}
    with db.connect(warehouse.dsn, warehouse.schema) as conn:  # rewritten uncompressed, still JSON arrays
        assert conn.execute("SELECT count(*) FROM propostas_analytics WHERE yearly IS NOT NULL AND "
                            "pg_column_compression(yearly) IS NULL AND json_typeof(yearly) = 'array'"
                            ).fetchone() == (2,)


def test_a_batch_writes_yearly_as_json_text_uncompressed(platform):
    """A batch's yearly documents land as JSON arrays (not JSON strings), stored without
    compression, and read back as the lists of dictionaries the pipeline made."""
    from ysh.proposals import job

    from .conftest import seed

    warehouse, settings = platform
    seed(warehouse)
    job.run_batch(warehouse, settings)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        rows = conn.execute("SELECT quote_id, yearly, json_typeof(yearly), pg_column_compression(yearly) "
                            "FROM propostas_analytics WHERE error IS NULL ORDER BY quote_id").fetchall()
    assert [r[0] for r in rows] == ["q1", "q2"]
    for _, yearly, kind, compression in rows:
        assert (kind, compression) == ("array", None)
        assert len(yearly) == 25 and list(yearly[0]) == ["year", "calendar_year", "generation_kwh", "savings_brl",
                                                         "cash_flow_brl", "cumulative_brl",
                                                         "discounted_cumulative_brl"]


KPI_COLUMNS = ["customer_class", "state", "month", "quotes", "orders", "conversion", "kwp"]
KPI_KEY = ["customer_class", "state", "month"]


def held_by_idle_writer(warehouse, table: str) -> bool:
    with db.connect(warehouse.dsn, warehouse.schema, autocommit=True) as conn:
        return bool(conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.relation = to_regclass(%s) "
            "AND l.mode = 'ShareRowExclusiveLock' AND l.granted AND a.state = 'idle in transaction'",
            (f"{warehouse.schema}.{table}",)).fetchone()[0])


def test_a_started_sink_locks_and_deletes_before_any_row_and_readers_keep_the_old_table(platform):
    """``start`` (what ``write_tables`` calls when the graph is declared) opens the run's
    transaction at once: the old rows are deleted in it while the run goes on, readers
    still see them, and an aborted run keeps them."""
    warehouse, _ = platform
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("INSERT INTO kpis_b1_b3 (customer_class, state, month, quotes, orders, conversion, kwp) "
                     "VALUES ('B1', 'BA', '2026-03-01', 1, 0, 0.0, 1.0)")
        conn.commit()
    sink = StreamingCopySink(warehouse.dsn, warehouse.schema, "kpis_b1_b3", KPI_COLUMNS, KPI_KEY)
    sink.start()
    deadline = time.monotonic() + 30
    while not held_by_idle_writer(warehouse, "kpis_b1_b3"):  # locked, its DELETE done, no row sent yet
        assert time.monotonic() < deadline, "the started sink never took the table"
        time.sleep(0.05)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        assert conn.execute("SELECT state FROM kpis_b1_b3").fetchall() == [("BA",)]
        conn.execute("SET lock_timeout = '200ms'")  # another writer waits
        with pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute("LOCK TABLE kpis_b1_b3 IN SHARE ROW EXCLUSIVE MODE")
    sink.abort()
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        assert conn.execute("SELECT state FROM kpis_b1_b3").fetchall() == [("BA",)]


def test_write_tables_opens_every_transaction_when_the_graph_is_declared(platform):
    """The batch's three sinks hold their tables before Pathway runs; aborting releases them."""
    import pathway as pw

    from ysh import pw_runtime
    from ysh.proposals import copy_sink, job

    warehouse, settings = platform
    pw_runtime.fresh_graph()
    with job.SnapshotFiles(warehouse) as snapshot:
        tables = {name: snapshot.table(query or job._select_all(table, schema), schema, name=f"{name}_snapshot")
                  for name, (table, schema, query) in job.SOURCES.items()}
        outputs = job.build_proposals_graph(job.Sources(**tables), settings.proposals.assumptions, settings)
        sinks = copy_sink.write_tables(outputs, job.TABLES, warehouse)
        try:
            deadline = time.monotonic() + 30
            while not all(held_by_idle_writer(warehouse, table) for table in sinks):
                assert time.monotonic() < deadline, "a sink did not open its transaction"
                time.sleep(0.05)
        finally:
            for sink in sinks.values():
                sink.abort()
    pw_runtime.fresh_graph()
    assert not any(held_by_idle_writer(warehouse, table) for table in sinks)
    assert isinstance(outputs.analytics, pw.Table)
