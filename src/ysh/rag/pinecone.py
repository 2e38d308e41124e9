"""An optional Pinecone copy of Hélio's chunk vectors, behind the interface of
:class:`~ysh.rag.vectors.VectorStore`.

:class:`PineconeStore` speaks Pinecone's data-plane REST API (the index host, an
``Api-Key`` header; no Pinecone SDK) and offers what :class:`~ysh.rag.vectors.PgvectorSink`
calls (``upsert``, ``delete``, ``delete_except``) plus the readers of the pgvector store
(``load_cache``, ``count``, ``search``, ``stats``, ``chunk_ids``, ``delete_paths``). So the
same sink keeps an index equal to the chunk table::

    store = PineconeStore.from_settings(settings)       # None without key and host
    if store is not None:
        attach_pgvector_sink(chunks, store, vector_of, name="rag_pinecone")

Layout in the index: one namespace per embedding model (the model name), vector id =
``chunk_id`` (sha256 of ``path|chunk_index``), metadata = path, chunk_index, title, section,
page, content_sha256, model and the chunk's text, cut so the metadata stays under
Pinecone's 40 KB per record (``text_truncated`` is then true). ``None`` values are left out
(Pinecone rejects null metadata).

Listing ids (``GET /vectors/list``) exists only on serverless indexes; ``delete_except``,
``load_cache``, ``delete_paths`` and ``chunk_ids`` need it. Writes go in batches of at most
100 vectors and under the 2 MB request limit; 429 and 5xx answers (and connection errors)
are retried with exponential backoff (``Retry-After`` honoured), anything else raises
:class:`PineconeError` with Pinecone's message.
"""

from __future__ import annotations

import json
import logging
import threading
import time as _time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import numpy as np

from .vectors import ChunkVector, SearchHit, latest_by_id

log = logging.getLogger("ysh.rag.pinecone")

#: data-plane API version sent in ``X-Pinecone-API-Version``
API_VERSION = "2025-04"
#: Pinecone's metadata limit per record is 40 KB; keep a margin below it
METADATA_LIMIT_BYTES = 40 * 1024
METADATA_BUDGET_BYTES = METADATA_LIMIT_BYTES - 1024
#: recommended upsert batch (Pinecone's hard limit is 1000 and 2 MB per request)
UPSERT_BATCH = 100
REQUEST_BUDGET_BYTES = 2 * 1024 * 1024 - 64 * 1024
#: at most 1000 ids per delete or fetch; fetch ids travel in the URL, so fewer there
DELETE_BATCH = 1000
FETCH_BATCH = 100
LIST_PAGE = 100

_RESERVED = ("path", "chunk_index", "title", "section", "page", "content_sha256", "model", "text",
             "text_truncated")


class PineconeError(RuntimeError):
    """A Pinecone request failed (after retries for 429/5xx)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _json_size(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _truncate_utf8(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max(0, max_bytes)].decode("utf-8", errors="ignore")


def _metadata_value(value) -> Any:
    """Pinecone metadata accepts strings, numbers, booleans and lists of strings."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def record_metadata(chunk: ChunkVector, model: str, budget: int = METADATA_BUDGET_BYTES) -> dict[str, Any]:
    """The Pinecone metadata of a chunk: its flat extra metadata, then path, chunk_index,
    title, section, page, content_sha256, model and text (cut to fit ``budget`` bytes of
    JSON). Null values are left out."""
    md: dict[str, Any] = {}
    for key, value in dict(chunk.metadata).items():
        key = str(key)
        if key.startswith("_") or key.startswith("$") or key in _RESERVED:
            continue
        value = _metadata_value(value)
        if value is not None:
            md[key] = value
    fixed = {"path": chunk.path, "chunk_index": int(chunk.chunk_index), "title": chunk.title,
             "section": chunk.section, "page": None if chunk.page is None else int(chunk.page),
             "content_sha256": chunk.content_sha256, "model": model}
    md.update({k: v for k, v in fixed.items() if v is not None})
    if _json_size(md) > budget // 2:  # extra metadata must not crowd out the text
        md = {k: v for k, v in md.items() if k in fixed}
    text = chunk.text
    md["text"] = text
    size = _json_size(md)
    if size > budget:
        md["text_truncated"] = True
        over = _json_size(md) - budget
        text = _truncate_utf8(text, len(text.encode("utf-8")) - over)
        md["text"] = text
        while _json_size(md) > budget and text:  # JSON escapes count more than their bytes
            text = _truncate_utf8(text, len(text.encode("utf-8")) - max(16, _json_size(md) - budget))
            md["text"] = text
    return md


def _values(vector) -> list[float]:
    arr = np.asarray(vector, dtype=np.float32).ravel()
    if arr.size == 0:
        raise ValueError("empty vector")
    if not np.all(np.isfinite(arr)):
        raise ValueError("vector has NaN or infinite components")
    return [float(x) for x in arr.tolist()]


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class PineconeStore:
    """One Pinecone index (serverless for listing) over its data-plane REST API.

    Parameters
    ----------
    index_host : str
        the index's host (``my-index-abc123.svc.aped-4627-b74a.pinecone.io``; ``https://``
        is added when no scheme is given).
    api_key : str
        the project's API key (sent as ``Api-Key``).
    model : str
        the embedder's name: the namespace used when a method gets no ``model``.
    timeout_s, max_retries, backoff_s, max_backoff_s
        per-request timeout; retries of 429/5xx/connection errors, with backoff
        ``backoff_s * 2**attempt`` capped at ``max_backoff_s`` (or ``Retry-After``).
    """

    def __init__(self, index_host: str, api_key: str, model: str = "minilm", *, timeout_s: float = 30.0,
                 max_retries: int = 5, backoff_s: float = 0.5, max_backoff_s: float = 20.0,
                 api_version: str = API_VERSION, transport: httpx.BaseTransport | None = None):
        if not index_host:
            raise ValueError("Pinecone index host is empty")
        if not api_key:
            raise ValueError("Pinecone API key is empty")
        host = index_host.strip().rstrip("/")
        if "://" not in host:
            host = "https://" + host
        self.base_url, self.model = host, model
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self._client = httpx.Client(
            base_url=host, timeout=timeout_s, transport=transport,
            headers={"Api-Key": api_key, "X-Pinecone-API-Version": api_version,
                     "Accept": "application/json", "User-Agent": "ysh-rag"})
        self._lock = threading.RLock()
        self.requests = 0
        self.retries = 0

    @classmethod
    def from_settings(cls, settings, **kwargs) -> PineconeStore | None:
        """A store when ``YSH_RAG_PINECONE_API_KEY`` and ``YSH_RAG_PINECONE_INDEX_HOST`` are
        set, else None (Pinecone stays optional). The namespace is ``settings.rag.embedder``."""
        rag = settings.rag
        key = rag.pinecone_api_key.get_secret_value() if rag.pinecone_api_key else None
        if not key or not rag.pinecone_index_host:
            return None
        return cls(str(rag.pinecone_index_host), key, model=rag.embedder, **kwargs)

    # ---- HTTP --------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PineconeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("Retry-After")
            if retry_after:
                try:
                    return min(self.max_backoff_s, max(0.0, float(retry_after)))
                except ValueError:
                    pass
        return min(self.max_backoff_s, self.backoff_s * (2 ** attempt))

    def _request(self, method: str, path: str, *, json_body: Any = None,
                 params: list[tuple[str, str]] | None = None) -> dict:
        what = f"Pinecone {method} {path}"
        attempt = 0
        while True:
            response = None
            try:
                self.requests += 1
                response = self._client.request(method, path, json=json_body, params=params)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise PineconeError(f"{what}: {self.base_url} unreachable after {attempt + 1} attempts "
                                        f"({type(exc).__name__}: {exc})") from exc
                error = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status < 300:
                    if not response.content:
                        return {}
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise PineconeError(f"{what}: answer is not JSON ({response.text[:200]!r})",
                                            status) from exc
                detail = _error_detail(response)
                if status == 429 or status >= 500:
                    if attempt >= self.max_retries:
                        raise PineconeError(f"{what} failed with HTTP {status} after {attempt + 1} attempts: "
                                            f"{detail}", status)
                    error = f"HTTP {status}: {detail}"
                elif status in (401, 403):
                    raise PineconeError(f"{what}: HTTP {status}, the API key was rejected ({detail})", status)
                elif status == 404:
                    raise PineconeError(f"{what}: HTTP 404 ({detail}); is {self.base_url} the index host "
                                        "(and a serverless index, for listing ids)?", status)
                else:
                    raise PineconeError(f"{what}: HTTP {status}: {detail}", status)
            delay = self._delay(attempt, response)
            self.retries += 1
            log.warning("%s: %s; retrying in %.2fs", what, error, delay)
            _time.sleep(delay)
            attempt += 1

    # ---- writes ------------------------------------------------------------------------
    def upsert(self, chunks: Iterable[ChunkVector], model: str | None = None) -> int:
        """Write chunks into the model's namespace by ``chunk_id`` (Pinecone overwrites a
        record with the same id). Returns the number of records upserted."""
        model = model or self.model
        latest = latest_by_id(chunks)
        if not latest:
            return 0
        records = [{"id": chunk_id, "values": _values(c.vector), "metadata": record_metadata(c, model)}
                   for chunk_id, c in latest.items()]
        written = 0
        batch: list[dict] = []
        size = 0
        for record in records:
            rsize = _json_size(record) + 1
            if batch and (len(batch) >= UPSERT_BATCH or size + rsize > REQUEST_BUDGET_BYTES):
                written += self._upsert_batch(batch, model)
                batch, size = [], 0
            batch.append(record)
            size += rsize
        if batch:
            written += self._upsert_batch(batch, model)
        return written

    def _upsert_batch(self, records: list[dict], namespace: str) -> int:
        with self._lock:
            answer = self._request("POST", "/vectors/upsert", json_body={"vectors": records, "namespace": namespace})
        return int(answer.get("upsertedCount", len(records)))

    def delete(self, chunk_ids: Iterable[str], model: str | None = None) -> int:
        """Delete records by id from the model's namespace. Pinecone does not say how many
        existed: returns the number of ids sent."""
        ids = sorted(set(chunk_ids))
        namespace = model or self.model
        with self._lock:
            for batch in _batches(ids, DELETE_BATCH):
                self._request("POST", "/vectors/delete", json_body={"ids": batch, "namespace": namespace})
        return len(ids)

    def delete_paths(self, paths: Iterable[str], model: str | None = None) -> int:
        """Delete every chunk of these documents (lists and fetches the namespace: ids are
        hashes, so there is no prefix to list by)."""
        paths = set(paths)
        if not paths:
            return 0
        doomed = [rid for rid, rec in self._fetch(self.chunk_ids(model), model).items()
                  if (rec.get("metadata") or {}).get("path") in paths]
        return self.delete(doomed, model) if doomed else 0

    def delete_except(self, keep_chunk_ids: Iterable[str], model: str | None = None) -> int:
        """Delete every record of the model's namespace not in ``keep_chunk_ids``
        (reconciliation after a restart). Other models' namespaces are not touched."""
        keep = set(keep_chunk_ids)
        doomed = sorted(self.chunk_ids(model) - keep)  # list everything first, then delete
        return self.delete(doomed, model) if doomed else 0

    # ---- reads -------------------------------------------------------------------------
    def iter_ids(self, model: str | None = None, prefix: str | None = None) -> Iterator[str]:
        """Every record id of the model's namespace (``GET /vectors/list``, paginated)."""
        namespace = model or self.model
        token = None
        while True:
            params = [("namespace", namespace), ("limit", str(LIST_PAGE))]
            if prefix:
                params.append(("prefix", prefix))
            if token:
                params.append(("paginationToken", token))
            with self._lock:
                answer = self._request("GET", "/vectors/list", params=params)
            for vector in answer.get("vectors") or []:
                yield vector["id"]
            token = (answer.get("pagination") or {}).get("next")
            if not token:
                return

    def chunk_ids(self, model: str | None = None) -> set[str]:
        return set(self.iter_ids(model))

    def _fetch(self, ids: Iterable[str], model: str | None = None) -> dict[str, dict]:
        namespace = model or self.model
        found: dict[str, dict] = {}
        for batch in _batches(sorted(set(ids)), FETCH_BATCH):
            params = [("ids", i) for i in batch] + [("namespace", namespace)]
            with self._lock:
                answer = self._request("GET", "/vectors/fetch", params=params)
            found.update(answer.get("vectors") or {})
        return found

    def fetch(self, chunk_ids: Iterable[str], model: str | None = None) -> dict[str, dict]:
        """id → {id, values, metadata} of the given records that exist."""
        return self._fetch(chunk_ids, model)

    def load_cache(self, model: str | None = None) -> dict[str, np.ndarray]:
        """content_sha256 → vector of every record of the model's namespace (the embedder
        cache of a restarting service)."""
        cache: dict[str, np.ndarray] = {}
        for record in self._fetch(self.chunk_ids(model), model).values():
            sha = (record.get("metadata") or {}).get("content_sha256")
            values = record.get("values")
            if sha and values:
                cache.setdefault(sha, np.asarray(values, dtype=np.float32))
        return cache

    def describe(self) -> dict:
        """``POST /describe_index_stats``: dimension, namespaces → vectorCount, total."""
        with self._lock:
            return self._request("POST", "/describe_index_stats", json_body={})

    def count(self, model: str | None = None) -> int:
        """Records of ``model``'s namespace; all records when ``model`` is None (as
        :meth:`VectorStore.count`). Pinecone's counts are eventually consistent."""
        stats = self.describe()
        if model is None:
            return int(stats.get("totalVectorCount") or 0)
        return int(((stats.get("namespaces") or {}).get(model) or {}).get("vectorCount") or 0)

    def search(self, vector, k: int = 5, model: str | None = None) -> list[SearchHit]:
        """The ``k`` records nearest to ``vector`` (``POST /query``), best first; the score
        is the index's metric (cosine similarity for a cosine index)."""
        body = {"vector": _values(vector), "topK": int(k), "namespace": model or self.model,
                "includeMetadata": True, "includeValues": False}
        with self._lock:
            answer = self._request("POST", "/query", json_body=body)
        hits = []
        for match in answer.get("matches") or []:
            md = dict(match.get("metadata") or {})
            page = md.get("page")
            extra = {k2: v for k2, v in md.items() if k2 not in _RESERVED}
            hits.append(SearchHit(
                chunk_id=match["id"], path=str(md.get("path") or ""), chunk_index=int(md.get("chunk_index") or 0),
                title=md.get("title"), section=md.get("section"),
                page=int(page) if isinstance(page, (int, float)) else None, text=str(md.get("text") or ""),
                metadata=extra, score=float(match.get("score") or 0.0)))
        return sorted(hits, key=lambda h: -h.score)

    def stats(self) -> dict[str, Any]:
        """Summary in the shape of :meth:`VectorStore.stats` (what Pinecone can tell
        cheaply: chunks per model namespace and the dimension)."""
        stats = self.describe()
        dim = stats.get("dimension")
        models = [{"model": ns, "dim": dim, "chunks": int((info or {}).get("vectorCount") or 0)}
                  for ns, info in (stats.get("namespaces") or {}).items()]
        return {"chunks": int(stats.get("totalVectorCount") or 0), "documents": None, "last_update": None,
                "models": sorted(models, key=lambda m: -m["chunks"]), "by_format": {}}


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]
