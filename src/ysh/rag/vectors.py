"""The durable pgvector copy of Hélio's index: ``rag_chunks`` (migration 0007).

One row per chunk (``chunk_id`` = sha256 of ``path|chunk_index``) with its text, metadata,
content hash, model, dimension and vector. It serves two readers that are not the
running service: SQL consumers (:meth:`VectorStore.search`, a KNN over the HNSW cosine
index) and a restarting service, which seeds its embedder cache from
:meth:`VectorStore.load_cache` (content_sha256 → vector) instead of re-embedding
everything.

:func:`attach_pgvector_sink` keeps the table equal to the index: a ``pw.io.subscribe``
sink over the chunk table that, at the end of every Pathway batch, upserts the chunks that
appeared or changed and deletes those that disappeared (a modified file arrives as
retractions plus insertions of the same ``chunk_id``: upserts). No Python pgvector
package: vectors travel as text literals (``[x,y,…]``) cast to ``vector``.
"""

import hashlib
import json
import logging
import threading
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg import sql

from .. import db
from ..db import Warehouse

log = logging.getLogger("ysh.rag.vectors")

TABLE = "rag_chunks"
#: the dimension the HNSW expression index covers (all-MiniLM-L6-v2)
INDEXED_DIM = 384


def content_sha256(text: str) -> str:
    """The embed-cache key of a chunk: sha256 of its UTF-8 text, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id_of(path: str, chunk_index: int) -> str:
    """Stable identity of a chunk position in a document (hex sha256 of ``path|index``)."""
    return hashlib.sha256(f"{path}|{chunk_index}".encode("utf-8")).hexdigest()


def vector_literal(vector) -> str:
    """pgvector's text form of a vector (``[0.1,-0.2,…]``)."""
    arr = np.asarray(vector, dtype=np.float32).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError("vector has NaN or infinite components")
    return "[" + ",".join(f"{x:.7g}" for x in arr.tolist()) + "]"


def parse_vector(text: str) -> np.ndarray:
    """pgvector's text form → float32 array."""
    return np.array(text.strip()[1:-1].split(","), dtype=np.float32)


@dataclass(frozen=True)
class ChunkVector:
    """A chunk of the index with its embedding."""

    path: str
    chunk_index: int
    text: str
    vector: Any  # np.ndarray (1-D)
    title: str | None = None
    section: str | None = None
    page: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def chunk_id(self) -> str:
        return chunk_id_of(self.path, self.chunk_index)

    @property
    def content_sha256(self) -> str:
        return content_sha256(self.text)


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    path: str
    chunk_index: int
    title: str | None
    section: str | None
    page: int | None
    text: str
    metadata: dict
    score: float  # cosine similarity (1 - cosine distance)


def _json_safe(value):
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "value") and not callable(value.value):  # pw.Json
        return _json_safe(value.value)
    return str(value)


def latest_by_id(chunks: Iterable[ChunkVector]) -> dict[str, ChunkVector]:
    """The chunks by ``chunk_id``, the last one winning (a batch may carry a chunk twice)."""
    return {chunk.chunk_id: chunk for chunk in chunks}


class VectorStore:
    """``rag_chunks`` of one warehouse schema. Thread-safe (one connection, one lock);
    reconnects after a lost connection.

    Parameters
    ----------
    warehouse : Warehouse
        server DSN and platform schema (the pgvector extension lives in ``public``).
    model : str
        name of the embedder whose vectors are written (default for :meth:`upsert`,
        :meth:`load_cache`, :meth:`count` and :meth:`search`).
    """

    def __init__(self, warehouse: Warehouse, model: str = "minilm"):
        self.warehouse, self.model = warehouse, model
        self._conn = None
        self._lock = threading.RLock()

    # ---- connection --------------------------------------------------------------------
    def _connection(self):
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = db.connect(self.warehouse.dsn, self.warehouse.schema, autocommit=True)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "VectorStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writes ------------------------------------------------------------------------
    def upsert(self, chunks: Iterable[ChunkVector], model: str | None = None) -> int:
        """Insert or update chunks by ``chunk_id`` (rows whose text, vector source and
        metadata did not change are left alone, so ``updated_at`` is the last real change).
        Returns the number of rows written."""
        model = model or self.model
        latest = latest_by_id(chunks)
        if not latest:
            return 0
        columns = ("chunk_id", "path", "chunk_index", "title", "section", "page", "text", "metadata",
                   "content_sha256", "model", "dim", "embedding")
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS _rag_chunks_in "
                             "(LIKE rag_chunks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
                with conn.cursor().copy(sql.SQL("COPY _rag_chunks_in ({}) FROM STDIN").format(
                        sql.SQL(", ").join(sql.Identifier(c) for c in columns))) as copy:
                    for chunk_id, c in latest.items():
                        vec = np.asarray(c.vector, dtype=np.float32).ravel()
                        copy.write_row((chunk_id, c.path, int(c.chunk_index), c.title, c.section,
                                        None if c.page is None else int(c.page), c.text,
                                        json.dumps(_json_safe(dict(c.metadata)), ensure_ascii=False),
                                        c.content_sha256, model, int(vec.size), vector_literal(vec)))
                cur = conn.execute(
                    f"INSERT INTO rag_chunks ({', '.join(columns)}, updated_at) "
                    f"SELECT {', '.join(columns)}, now() FROM _rag_chunks_in "
                    "ON CONFLICT (chunk_id) DO UPDATE SET "
                    + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:]) + ", updated_at = now() "
                    "WHERE rag_chunks.content_sha256 IS DISTINCT FROM EXCLUDED.content_sha256 "
                    "OR rag_chunks.model IS DISTINCT FROM EXCLUDED.model "
                    "OR rag_chunks.metadata IS DISTINCT FROM EXCLUDED.metadata "
                    "OR rag_chunks.path IS DISTINCT FROM EXCLUDED.path")
                return cur.rowcount

    def delete(self, chunk_ids: Iterable[str]) -> int:
        ids = sorted(set(chunk_ids))
        if not ids:
            return 0
        with self._lock:
            return self._connection().execute("DELETE FROM rag_chunks WHERE chunk_id = ANY(%s)", (ids,)).rowcount

    def delete_paths(self, paths: Iterable[str]) -> int:
        """Delete every chunk of these documents."""
        paths = sorted(set(paths))
        if not paths:
            return 0
        with self._lock:
            return self._connection().execute("DELETE FROM rag_chunks WHERE path = ANY(%s)", (paths,)).rowcount

    def delete_except(self, keep_chunk_ids: Iterable[str], model: str | None = None) -> int:
        """Delete every chunk of ``model`` (default this store's) not in ``keep_chunk_ids``
        (reconciliation after a restart: documents removed while the service was down)."""
        keep = sorted(set(keep_chunk_ids))
        with self._lock:
            return self._connection().execute(
                "DELETE FROM rag_chunks WHERE model = %s AND NOT (chunk_id = ANY(%s))",
                (model or self.model, keep)).rowcount

    # ---- reads -------------------------------------------------------------------------
    def load_cache(self, model: str | None = None) -> dict[str, np.ndarray]:
        """content_sha256 → vector of every stored chunk of ``model`` (the embedder cache
        of a restarting service)."""
        with self._lock:
            rows = self._connection().execute(
                "SELECT DISTINCT ON (content_sha256) content_sha256, embedding::text FROM rag_chunks "
                "WHERE model = %s", (model or self.model,)).fetchall()
        return {sha: parse_vector(text) for sha, text in rows}

    def count(self, model: str | None = None) -> int:
        with self._lock:
            if model is None:
                return self._connection().execute("SELECT count(*) FROM rag_chunks").fetchone()[0]
            return self._connection().execute("SELECT count(*) FROM rag_chunks WHERE model = %s",
                                              (model,)).fetchone()[0]

    def chunk_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._connection().execute("SELECT chunk_id FROM rag_chunks").fetchall()}

    def search(self, vector, k: int = 5, model: str | None = None) -> list[SearchHit]:
        """The ``k`` chunks nearest to ``vector`` by cosine distance (HNSW index for
        384-dimension vectors, exact scan otherwise), best first."""
        vec = np.asarray(vector, dtype=np.float32).ravel()
        literal, dim = vector_literal(vec), int(vec.size)
        cast = f"public.vector({dim})"
        query = (f"SELECT chunk_id, path, chunk_index, title, section, page, text, metadata, "
                 f"1 - (embedding::{cast} <=> %(q)s::{cast}) AS score FROM rag_chunks "
                 f"WHERE dim = %(dim)s AND model = %(model)s "
                 f"ORDER BY embedding::{cast} <=> %(q)s::{cast} LIMIT %(k)s")
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                # pgvector >= 0.8: keep scanning the HNSW graph when the model filter drops rows
                conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                rows = conn.execute(query, {"q": literal, "dim": dim, "model": model or self.model,
                                            "k": int(k)}).fetchall()
        hits = [SearchHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or {}, float(r[8])) for r in rows]
        return sorted(hits, key=lambda h: -h.score)

    def stats(self) -> dict[str, Any]:
        """Summary for the catalog: chunks, documents, models and dimensions, last update,
        chunks by document format (``metadata.format``, else the path's scheme/extension)."""
        with self._lock:
            conn = self._connection()
            total, docs, last = conn.execute(
                "SELECT count(*), count(DISTINCT path), max(updated_at) FROM rag_chunks").fetchone()
            models = conn.execute("SELECT model, dim, count(*) FROM rag_chunks GROUP BY 1, 2 ORDER BY 3 DESC").fetchall()
            formats = conn.execute(
                "SELECT coalesce(metadata->>'format', CASE WHEN path ~ '^[a-z]+://' "
                "THEN split_part(path, ':', 1) ELSE lower(substring(path from '\\.([A-Za-z0-9]+)$')) END, "
                "'unknown') AS fmt, count(*) FROM rag_chunks GROUP BY 1 ORDER BY 2 DESC").fetchall()
        return {"chunks": total, "documents": docs, "last_update": last,
                "models": [{"model": m, "dim": d, "chunks": n} for m, d, n in models],
                "by_format": {f or "unknown": n for f, n in formats}}


# --------------------------------------------------------------------------------------
# the Pathway sink
# --------------------------------------------------------------------------------------
def _as_dict(value) -> dict:
    if value is None:
        return {}
    if hasattr(value, "value") and not isinstance(value, Mapping):  # pw.Json
        value = value.value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def chunk_from_row(text: str, metadata: Mapping[str, Any], vector) -> ChunkVector:
    """A :class:`ChunkVector` from a chunk row's text and metadata (path, chunk_index,
    title, section, page — ``page_number`` accepted too). A chunk without ``chunk_index``
    is identified by its content hash."""
    md = _json_safe(dict(metadata))
    path = str(md.get("path") or "")
    index = md.get("chunk_index")
    if index is None:
        index = int(content_sha256(text)[:12], 16)
    page = md.get("page", md.get("page_number"))
    return ChunkVector(path=path, chunk_index=int(index), text=text, vector=vector,
                       title=md.get("title"), section=md.get("section") or None,
                       page=int(page) if isinstance(page, (int, float)) else None,
                       metadata={k: v for k, v in md.items() if not k.startswith("_")})


class PgvectorSink:
    """Applies a chunk table's changes to ``rag_chunks`` at the end of each Pathway batch.

    Use :func:`attach_pgvector_sink`. Counters: ``upserted``, ``deleted`` (rows written),
    ``pending`` (chunks waiting for their vector), ``errors`` (failed flushes, retried)."""

    def __init__(self, store: VectorStore, vector_of: Callable[[str], Any] | None, *, model: str | None = None,
                 text_column: str = "text", metadata_column: str = "metadata", vector_column: str | None = None,
                 reconcile_after_s: float | None = 60.0, retry_s: float = 1.0):
        if vector_of is None and vector_column is None:
            raise ValueError("give vector_of (text → vector) or vector_column")
        self.store, self.vector_of, self.model = store, vector_of, model or store.model
        self.text_column, self.metadata_column, self.vector_column = text_column, metadata_column, vector_column
        self.reconcile_after_s = reconcile_after_s
        self.started = _time.monotonic()
        self.reconciled = reconcile_after_s is None
        self.last_change = _time.monotonic()
        self.live: dict[str, str] = {}  # chunk_id → path, what the index holds now
        self._upserts: dict[str, tuple[str, dict, Any]] = {}  # chunk_id → (text, metadata, vector or None)
        self._deletes: set[str] = set()
        self._lock = threading.RLock()
        self.upserted = self.deleted = self.errors = 0
        self._failures = 0  # consecutive failed flushes: the retry loop backs off
        self._stop = threading.Event()
        self._retry_s = retry_s
        self._retry = threading.Thread(target=self._retry_loop, args=(retry_s,), daemon=True, name="rag-pgvector")
        self._retry.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._upserts) + len(self._deletes)

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        text = row[self.text_column]
        metadata = _as_dict(row.get(self.metadata_column))
        chunk = chunk_from_row(text, metadata, None)
        with self._lock:
            self.last_change = _time.monotonic()
            if is_addition:
                vector = row.get(self.vector_column) if self.vector_column else None
                self._upserts[chunk.chunk_id] = (text, metadata, vector)
                self._deletes.discard(chunk.chunk_id)
                self.live[chunk.chunk_id] = chunk.path
            elif chunk.chunk_id not in self._upserts or self._upserts[chunk.chunk_id][0] == text:
                # a retraction; an addition of the same id in this batch (other text) wins
                self._upserts.pop(chunk.chunk_id, None)
                self._deletes.add(chunk.chunk_id)
                self.live.pop(chunk.chunk_id, None)

    def on_time_end(self, time: int) -> None:
        self.flush()

    def on_end(self) -> None:
        self.flush()
        self._stop.set()

    def flush(self) -> None:
        """Write what is pending; chunks whose vector is not available yet stay pending."""
        with self._lock:
            ready, waiting = [], {}
            for chunk_id, (text, metadata, vector) in self._upserts.items():
                if vector is None and self.vector_of is not None:
                    try:
                        vector = self.vector_of(text)
                    except Exception as exc:  # the embedder failed: keep it pending
                        log.warning("pgvector sink: no vector for a chunk of %s (%s)", metadata.get("path"), exc)
                        vector = None
                if vector is None:
                    waiting[chunk_id] = (text, metadata, None)
                else:
                    ready.append(chunk_from_row(text, metadata, vector))
            deletes = set(self._deletes)
            try:
                if deletes:
                    self.deleted += self.store.delete(deletes)
                if ready:
                    self.upserted += self.store.upsert(ready, model=self.model)
            except Exception as exc:  # warehouse down: keep everything, retry later
                self.errors += 1
                self._failures += 1
                log.error("pgvector sink: writing rag_chunks failed (attempt %d: %s); %d chunk changes kept, "
                          "retrying in %.0f s", self._failures, exc, len(self._upserts) + len(self._deletes),
                          self._retry_delay())
                return
            if self._failures:
                log.info("pgvector sink: rag_chunks written again after %d failed attempt(s)", self._failures)
                self._failures = 0
            self._deletes -= deletes
            self._upserts = waiting
            # reconcile once the index has delivered its initial documents: something came
            # and no change arrived for reconcile_after_s (while nothing came at all, a large
            # first batch is still being embedded: the index holds nothing yet)
            if (not self.reconciled and self.live
                    and _time.monotonic() - self.last_change >= self.reconcile_after_s):
                self.reconcile()

    def reconcile(self) -> int:
        """Delete the stored chunks the index does not hold (documents removed while the
        service was down). Call once the initial documents are indexed (done automatically
        ``reconcile_after_s`` after the sink started, at the next batch end)."""
        with self._lock:
            try:
                removed = self.store.delete_except(set(self.live) | set(self._upserts), self.model)
            except Exception as exc:
                log.error("pgvector sink: reconcile failed (%s)", exc)
                return 0
            self.reconciled = True
            self.deleted += removed
            if removed:
                log.info("pgvector sink: %d stale chunks removed from rag_chunks", removed)
            return removed

    def _retry_delay(self, cap_s: float = 10.0) -> float:
        """Seconds until the next retry: ``retry_s``, doubled after each consecutive
        failure, at most ``cap_s``."""
        return min(self._retry_s * 2.0 ** min(self._failures, 8), max(cap_s, self._retry_s)) \
            if self._failures else self._retry_s

    def _retry_loop(self, every_s: float) -> None:
        while not self._stop.wait(self._retry_delay()):
            with self._lock:
                busy = bool(self._upserts or self._deletes) or (not self.reconciled and bool(self.live))
            if busy:  # pending writes, or a reconciliation waiting for the index to go quiet
                self.flush()

    def stop(self) -> None:
        self._stop.set()


def attach_pgvector_sink(chunks_table, store: VectorStore, vector_of: Callable[[str], Any] | None = None, *,
                         model: str | None = None, text_column: str = "text", metadata_column: str = "metadata",
                         vector_column: str | None = None, reconcile_after_s: float | None = 60.0,
                         name: str = "rag_pgvector") -> PgvectorSink:
    """Keep ``rag_chunks`` equal to ``chunks_table`` (e.g. ``DocumentStore.chunked_docs``:
    ``text`` + ``metadata`` Json with path, chunk_index, section, page, title).

    Parameters
    ----------
    chunks_table : pw.Table
        the chunks the index holds.
    store : VectorStore
        where to write.
    vector_of : callable, optional
        text → vector (the embedder's cache lookup; may compute on a miss). ``None`` from it
        keeps the chunk pending; it is retried every second and at every batch end.
    vector_column : str, optional
        instead of ``vector_of``: a column of ``chunks_table`` holding the vector.
    model : str, optional
        the embedder's name stored with each row (default ``store.model``).
    reconcile_after_s : float or None
        after this long, at the next batch end, delete stored chunks the index does not
        hold (documents removed while the service was down); None: never.
    """
    import pathway as pw

    sink = PgvectorSink(store, vector_of, model=model, text_column=text_column, metadata_column=metadata_column,
                        vector_column=vector_column, reconcile_after_s=reconcile_after_s)
    pw.io.subscribe(chunks_table, on_change=sink.on_change, on_time_end=sink.on_time_end, on_end=sink.on_end,
                    name=name)
    return sink
