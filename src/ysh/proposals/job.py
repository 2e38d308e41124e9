"""Running the proposals graph over the warehouse: a batch over consistent snapshots of
the source tables, or a follower that keeps the outputs current through CDC (its
lifecycle is :data:`FOLLOWER`, a :class:`ysh.kit.follower.Follower`)."""

from __future__ import annotations

import gc
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pathway as pw
from psycopg import sql

from .. import db, pw_runtime
from ..db import Warehouse
from ..kit.follower import Follower
from . import copy_sink
from .pipeline import (
    BATCH_SIZE,
    CatalogItemSchema,
    CompanySchema,
    FioBRowSchema,
    OrderSchema,
    ProposalTables,
    QuoteItemSchema,
    QuoteSchema,
    Sources,
    TariffRowSchema,
    build_proposals_graph,
)

#: output → (warehouse table, primary key)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "enriched": ("propostas_enriched", ("quote_id",)),
    "analytics": ("propostas_analytics", ("quote_id",)),
    "kpis": ("kpis_b1_b3", ("customer_class", "state", "month")),
}

#: source → (table, schema, SELECT for a static snapshot: types as the schema wants them)
SOURCES: dict[str, tuple[str, type[pw.Schema], str]] = {
    "company": ("company", CompanySchema,
                "SELECT id, name, municipality, state, latitude, longitude, utility, icms_pct FROM company"),
    "quote": ("quote", QuoteSchema,
              "SELECT id, company_id, status, customer_class, connection, consumption_kwh_month, tilt_deg, "
              "azimuth_deg, access_request_date::timestamp AS access_request_date, created_at FROM quote"),
    "quote_item": ("quote_item", QuoteItemSchema,
                   "SELECT id, quote_id, distributor, sku, quantity, unit_price_brl FROM quote_item"),
    "order": ("order", OrderSchema, 'SELECT id, quote_id, status FROM "order"'),
    "items": ("items_normalized", CatalogItemSchema,
              "SELECT distributor, sku, category, power_w FROM items_normalized"),
    "tariffs": ("tarifas_normalized", TariffRowSchema, None),
    "fio_b": ("tarifas_fio_b", FioBRowSchema, None),
}


def read_snapshot(warehouse: Warehouse, query: str, schema: type[pw.Schema], *, name: str,
                  snapshot: str | None) -> pw.Table:
    """A static Pathway table of ``query``'s rows as of ``snapshot`` (:func:`ysh.pw_runtime.read_query`:
    a Python connector, one Python call per row; :class:`SnapshotFiles` falls back to it)."""
    return pw_runtime.read_query(warehouse.dsn, warehouse.schema, query, schema, name=name, snapshot=snapshot)


#: JSON text that PostgreSQL's ``row_to_json`` writes for values Pathway's JSON reader
#: cannot type (NaN and ±infinity of float8 and of timestamps, BC dates): a file holding
#: any of these is read through the Python connector instead (a string value that merely
#: contains one only costs that speed)
_UNTYPEABLE = (b'"NaN"', b'nfinity"', b' BC"')
#: a timestamp after the year 9999 (which the JSON reader cannot type either)
_FAR_FUTURE = re.compile(rb'"[0-9]{5,}-[0-9]{2}-[0-9]{2}T')


class SnapshotFiles:
    """The batch's sources as of one instant, read by Pathway's own (Rust) JSON-lines reader.

    One read-only ``REPEATABLE READ`` transaction copies each source query's rows as JSON
    lines (``COPY`` of ``row_to_json``) into a file of a temporary folder, and
    :meth:`table` reads it with ``pw.io.jsonlines.read`` in static mode. The Python
    connector (:func:`read_snapshot`) hands Pathway one row per Python call, a dictionary
    and a queue step each, and Pathway converts every value from a Python object: that
    was ~0.45 CPU s of the 20,000 quotes alone, against ~0.07 s this way (the same rows,
    the same row keys: tested). A file whose text holds a value the JSON reader cannot
    type (:data:`_UNTYPEABLE`, e.g. a NaN float) is read through the Python connector,
    over the same snapshot (exported by the transaction), so such rows are never dropped.

    Use as a context manager that stays open while the graph runs (the files and the
    snapshot live until it exits)."""

    def __init__(self, warehouse: Warehouse):
        self._warehouse = warehouse
        self._snapshot: pw_runtime.SharedSnapshot | None = None
        self._folder: Path | None = None
        self.snapshot: str | None = None
        self.fallbacks: list[str] = []  # sources read through the Python connector
        self._written: dict[str, tuple[Path, bool]] = {}  # name → (file, typeable): prefetch()

    def __enter__(self) -> "SnapshotFiles":
        self._folder = Path(tempfile.mkdtemp(prefix="ysh-proposals-snapshot-"))
        try:
            # the first statement fixes the transaction's snapshot; a fallback reads it too
            self._snapshot = pw_runtime.SharedSnapshot(self._warehouse.dsn).__enter__()
            self.snapshot = self._snapshot.id
            self._snapshot.connection.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(
                sql.Identifier(self._warehouse.schema)))
            # timestamps as UTC: an old date's local offset has seconds ("-03:06:28" in
            # America/Sao_Paulo before 1914), which the JSON reader cannot parse (it would
            # drop the row with a logged error)
            self._snapshot.connection.execute("SET LOCAL TimeZone TO 'UTC'")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        snapshot, self._snapshot = self._snapshot, None
        folder, self._folder = self._folder, None
        try:
            if snapshot is not None:
                snapshot.__exit__(*exc_info)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def write(self, query: str, path: Path, connection=None) -> bool:
        """``query``'s rows as JSON lines in ``path``; False when a value cannot be typed
        by Pathway's JSON reader (:data:`_UNTYPEABLE`). ``connection``: one in a transaction
        on this snapshot (:meth:`_snapshot_connection`); the snapshot's own by default."""
        # CSV with a quote and a delimiter that JSON text never holds raw: each line is
        # row_to_json's text as it is (the text format would double every backslash)
        copy = sql.SQL("COPY (SELECT row_to_json(r) FROM ({}) r) TO STDOUT "
                       "(FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')").format(sql.SQL(query))
        with (connection or self._snapshot.connection).cursor().copy(copy) as rows:
            text = b"".join(rows)  # a block per row: joined once, scanned and written at C speed
        path.write_bytes(text)
        return not any(token in text for token in _UNTYPEABLE) and _FAR_FUTURE.search(text) is None

    def _snapshot_connection(self):
        """A second connection reading as of this snapshot (``SET TRANSACTION SNAPSHOT``:
        a read-only ``REPEATABLE READ`` transaction sees exactly what the first one sees)."""
        import psycopg

        conn = psycopg.connect(self._warehouse.dsn)
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot)))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(self._warehouse.schema)))
            conn.execute("SET LOCAL TimeZone TO 'UTC'")
        except BaseException:
            conn.close()
            raise
        return conn

    def prefetch(self, queries: dict[str, str], connections: int = 2) -> None:
        """Write the files of ``queries`` (table name → query, as :meth:`table` names them)
        over ``connections`` connections at once, all reading this snapshot: the server's
        ``row_to_json`` of the quotes and of their lines (~0.2 s each for 20,000 quotes)
        run side by side on its two cores instead of one after the other in front of the
        graph. :meth:`table` then uses the files written here."""
        todo = list(queries.items())
        lock = threading.Lock()
        errors: list[BaseException] = []

        def work(connection) -> None:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    name, query = todo.pop(0)
                path = self._folder / f"{name}.jsonl"
                try:
                    self._written[name] = (path, self.write(query, path, connection))
                except BaseException as exc:
                    with lock:
                        errors.append(exc)
                    return

        def helper() -> None:  # its own connection, opened on its thread while the first one copies
            try:
                conn = self._snapshot_connection()
            except Exception:  # e.g. no connection slot left: the first connection copies them all
                return
            try:
                work(conn)
            finally:
                try:
                    conn.rollback()
                finally:
                    conn.close()

        helpers = [threading.Thread(target=helper, name="snapshot_copy", daemon=True)
                   for _ in range(max(connections, 1) - 1)]
        for thread in helpers:
            thread.start()
        try:
            work(self._snapshot.connection)
        finally:
            for thread in helpers:
                thread.join()
        if errors:
            raise errors[0]

    def table(self, query: str, schema: type[pw.Schema], *, name: str) -> pw.Table:
        """A static Pathway table of ``query``'s rows as of the transaction's snapshot."""
        written = self._written.pop(name, None)
        if written is not None:  # prefetch() wrote it
            path, typeable = written
        else:
            path = self._folder / f"{name}.jsonl"
            typeable = self.write(query, path)
        if typeable:
            return pw.io.jsonlines.read(path, schema=schema, mode="static", name=name)
        self.fallbacks.append(name)
        return read_snapshot(self._warehouse, query, schema, name=name, snapshot=self.snapshot)


def _select_all(table: str, schema: type[pw.Schema]) -> str:
    """Every column of the schema, dates cast to timestamp (Pathway DateTimeNaive)."""
    columns = []
    for name, column in schema.columns().items():
        text = str(column.dtype)
        columns.append(f"{name}::timestamp AS {name}" if "DATE_TIME_NAIVE" in text.upper() or "DateTimeNaive" in text
                       else name)
    return f"SELECT {', '.join(columns)} FROM {table}"


#: the proposals follower: the seven sources followed by CDC, the outputs kept current
FOLLOWER = Follower(
    pipeline="proposals", sources={name: (table, schema) for name, (table, schema, _) in SOURCES.items()},
    outputs=TABLES, lead="quote",
    busy="a proposals follower of schema {schema} is running and keeps the outputs current; "
         "stop it to recompute in batch",
)


#: the young generation's threshold of Python's cyclic garbage collector during a batch
#: (CPython's default is 700): a run allocates millions of short-lived containers
GC_YOUNG_THRESHOLD = 50_000


@contextmanager
def quiet_gc(young: int = GC_YOUNG_THRESHOLD):
    """Python's cyclic garbage collector kept off the objects that live before the run.

    A batch allocates millions of containers (rows, tuples, the yearly tables); each
    full collection walked every object of the process — the modules of Pathway, pandas,
    pvlib, Dagster — and that was ~15 % of a run's CPU (``perf``: ``gc_collect_main``
    under Pathway's graph build and the evaluation UDF). ``gc.freeze()`` moves the objects
    that exist now out of the collector's reach, the young generation is collected
    every ``young`` allocations instead of 700; both are undone at the end (the caller
    may be a long-lived Dagster or test process). A process that froze objects itself
    keeps its own freeze: nothing is frozen or unfrozen then."""
    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(young, threshold[0]), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()


def run_batch(warehouse: Warehouse, settings, *, billing: str = "vectorized",
              batch_size: int = BATCH_SIZE, timings: dict[str, float] | None = None) -> dict[str, int]:
    """Evaluate every quote as the tables stand (consistent snapshots), write the three
    outputs and delete rows this run did not write. Returns the row counts.
    ``billing="reference"`` evaluates one quote at a time with the month-by-month model
    (the benchmark's and the tests' comparison; production uses the default);
    ``batch_size``: quotes per call of the vectorized billing; ``timings``, when given,
    receives ``graph_built`` and ``written`` (``time.perf_counter()`` when the graph and
    its sinks were declared, and when the outputs were written and pruned): the benchmark
    tells the fixed cost of declaring the graph from the run.

    Raises
    ------
    ysh.kit.follower.FollowerRunning
        ``ysh proposals follow`` is running for this schema.
    """
    @contextmanager
    def graph():
        with SnapshotFiles(warehouse) as snapshot:  # all seven tables as of one instant
            queries = {name: query or _select_all(table, schema) for name, (table, schema, query) in SOURCES.items()}
            snapshot.prefetch({f"{name}_snapshot": query for name, query in queries.items()})
            tables = {name: snapshot.table(queries[name], schema, name=f"{name}_snapshot")
                      for name, (table, schema, query) in SOURCES.items()}
            yield build_proposals_graph(Sources(**tables), settings.proposals.assumptions, settings,
                                        billing=billing, batch_size=batch_size)

    sinks: dict[str, copy_sink.CopyTableSink] = {}

    def write(tables, outputs, warehouse):
        # the outputs by COPY (copy_sink) instead of one upsert per row: a batch rewrites
        # every row, each table in one transaction written while the graph runs.
        # propostas_analytics first: Pathway hands the sinks a time's rows in the order they
        # were declared, and its COPY (the yearly documents) is the longest, so it then runs
        # while the other tables' rows are handed over instead of after them
        ordered = {name: outputs[name] for name in sorted(outputs, key=lambda name: name != "analytics")}
        sinks.update(copy_sink.write_tables(tables, ordered, warehouse))
        if timings is not None:
            timings["graph_built"] = time.perf_counter()
        return sinks

    with quiet_gc():
        try:
            FOLLOWER.recompute(warehouse, graph, write=write)
        except BaseException:
            for sink in sinks.values():  # roll back what the failed run had written (and its locks)
                sink.abort()
            raise
    if timings is not None:
        timings["written"] = time.perf_counter()
    return counts(warehouse)


def counts(warehouse: Warehouse) -> dict[str, int]:
    return db.row_counts(warehouse, FOLLOWER.output_tables)


def follow(warehouse: Warehouse, settings, persistence_dir: Path, *, autocommit_duration_ms: int = 200) -> None:
    """Follow the seven source tables by CDC and keep the outputs current. Blocks.

    A first start (no persisted state) runs a batch first, so outputs of quotes deleted
    earlier do not linger; later starts resume from the persisted replication positions."""
    FOLLOWER.follow(warehouse, persistence_dir, batch=lambda: run_batch(warehouse, settings),
                    graph=lambda sources: build_proposals_graph(Sources(**sources),
                                                                settings.proposals.assumptions, settings),
                    autocommit_duration_ms=autocommit_duration_ms)
