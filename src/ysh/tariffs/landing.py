"""Landing ANEEL files in ``tarifas_raw`` (Postgres), one row per data line, as published.

A *source* is a file name: landing a file again replaces that source's rows. Rows are
keyed by (source, line); the merge runs in one transaction and rewrites only the lines
whose content changed, so the CDC follower re-normalizes only those. A line inserted in
the middle of a file shifts the ones after it, which are then rewritten too (the result
is the same, the follower just does more work). Each
landing is a batch in ``tarifas_batches`` (rows inserted, updated, deleted, unchanged).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import psycopg

from ..kit.files import files_under
from .load import read_raw_file


class LandReport(NamedTuple):
    batch_id: str
    source: str
    dataset: str
    encoding: str
    rows: int
    inserted: int
    updated: int
    deleted: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.inserted - self.updated


def new_batch_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def land_bytes(conn: psycopg.Connection, data: bytes, source: str, *, batch_id: str | None = None) -> LandReport:
    """Merge one file's rows into ``tarifas_raw`` under ``source`` (commits).

    ``conn``'s search_path must be the platform schema (:func:`ysh.db.connect`).

    Raises
    ------
    ysh.tariffs.aneel.FileFormatError
        not one of the three ANEEL datasets; nothing is landed.
    """
    raw = read_raw_file(data, source)
    batch_id = batch_id or new_batch_id()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('tarifas_raw:' || %s))", (source,))
        conn.execute("CREATE TEMP TABLE tarifas_raw_in (line bigint PRIMARY KEY, record jsonb NOT NULL, "
                     "extra_fields bigint NOT NULL) ON COMMIT DROP")
        with conn.cursor().copy("COPY tarifas_raw_in (line, record, extra_fields) FROM STDIN") as copy:
            for rec in raw.records:
                copy.write_row((rec.line, json.dumps(rec.record, ensure_ascii=False), rec.extra_fields))
        changed = conn.execute(
            """INSERT INTO tarifas_raw AS r (source, line, dataset, record, extra_fields, batch_id)
               SELECT %(source)s, line, %(dataset)s, record, extra_fields, %(batch)s FROM tarifas_raw_in
               ON CONFLICT (source, line) DO UPDATE
                 SET dataset = EXCLUDED.dataset, record = EXCLUDED.record,
                     extra_fields = EXCLUDED.extra_fields, batch_id = EXCLUDED.batch_id, ingested_at = now()
                 WHERE (r.dataset, r.record, r.extra_fields)
                       IS DISTINCT FROM (EXCLUDED.dataset, EXCLUDED.record, EXCLUDED.extra_fields)
               RETURNING (xmax = 0)""",
            {"source": source, "dataset": raw.dataset, "batch": batch_id}).fetchall()
        inserted = sum(1 for (new,) in changed if new)
        deleted = conn.execute(
            "DELETE FROM tarifas_raw r WHERE r.source = %s "
            "AND NOT EXISTS (SELECT 1 FROM tarifas_raw_in i WHERE i.line = r.line)", (source,)).rowcount
        report = LandReport(batch_id, source, raw.dataset, raw.encoding, len(raw.records),
                            inserted, len(changed) - inserted, deleted)
        conn.execute(
            "INSERT INTO tarifas_batches (batch_id, source, dataset, encoding, rows, inserted, updated, deleted,"
            " unchanged) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (batch_id, source, raw.dataset, raw.encoding, report.rows, report.inserted, report.updated,
             report.deleted, report.unchanged))
    return report


def land_file(conn: psycopg.Connection, path: Path, *, source: str | None = None,
              batch_id: str | None = None) -> LandReport:
    """Land one file; its source name is the file name unless given."""
    return land_bytes(conn, path.read_bytes(), source or path.name, batch_id=batch_id)


def remove_source(conn: psycopg.Connection, source: str) -> int:
    """Delete every raw row of ``source`` (the CDC follower then retracts its rows)."""
    with conn.transaction():
        return conn.execute("DELETE FROM tarifas_raw WHERE source = %s", (source,)).rowcount


def prune_sources(conn: psycopg.Connection, keep: set[str]) -> int:
    """Delete the raw rows of every source not in ``keep`` (a mirrored landing folder
    whose files were removed); returns the rows deleted."""
    with conn.transaction():
        return conn.execute("DELETE FROM tarifas_raw WHERE NOT (source = ANY(%s))", (sorted(keep),)).rowcount


def feed_files(paths: list[Path]) -> list[Path]:
    """Files under ``paths`` (:func:`ysh.kit.files.files_under`); two different files
    with one name are refused, since a source is identified by its file name."""
    found = files_under(paths)
    names = [p.name for p in found]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"several files named {clashes}: a source is identified by its file name")
    return found
