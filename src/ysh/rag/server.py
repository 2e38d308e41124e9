"""The Hélio REST API: a plain aiohttp server over the :class:`~ysh.rag.serving.LiveIndex`
that the Pathway pipeline keeps current (docs/rag.md, "Serving").

Routes (JSON in, JSON out; GET takes the same fields as query parameters):

* ``POST /v1/retrieve`` {query, k=5, metadata_filter?, filepath_globpattern?, retriever?}
  → ``[{text, score, metadata: {path, title, page?, section?, modified_at, content_sha256,
  chunk_index, format, size, …}}]``, best first (score: fused RRF sum for hybrid, cosine
  similarity for dense, BM25 for bm25).
* ``GET|POST /v1/statistics`` → {files, chunks, last_modified, last_indexed, errors,
  embedded, cache_hits, embedding: {…}}
* ``GET|POST /v1/inputs`` → ``[{path, status: indexed|error|empty, reason, chunks,
  modified_at, size}]``
* ``POST /v2/answer`` {prompt, k=8, metadata_filter?, filepath_globpattern?} → {answer,
  citations: [{path, page, section, title, snippet, score, chunk_index}], mode, flagged}
* ``GET|POST /v1/catalog/search`` {query, k=10, category?, brand?, distributor?, power_min_w?,
  power_max_w?, voltage_v?, phases?, price_min_brl?, price_max_brl?, in_stock?, semantic?}
  → products with each distributor's offer and facets (:mod:`ysh.catalog.search`); 503
  when the service has no warehouse.
* ``GET /_schema`` (YAML; ``?format=json`` for JSON): the OpenAPI description; public.
* ``GET /`` and ``GET /static/…``: the Hélio page (plain HTML/CSS/JS shipped in
  ``ysh/rag/static``); public — the page sends the key the user types.

``X-API-Key`` is required on every other route when ``YSH_RAG_API_KEY`` is set (401), and
bodies over ``YSH_RAG_MAX_REQUEST_BYTES`` are refused (413). Bad input gets a 400 saying why
(JSON ``{"error": reason}``): a POST body must be a JSON object sent as
``application/json`` (415 / 400), a question at most 2,000 characters, ``metadata_filter`` a
JMESPath expression of known functions, ``filepath_globpattern`` a short plain glob
(relative globs are anchored at the documents root). On a loopback bind, a request whose
``Host`` or ``Origin`` is not local gets 403 (DNS rebinding, cross-site posts). Responses
carry paths relative to the documents root; a failure is a generic 500 (details in the log).

Searches go through one :class:`~ysh.rag.serving.SearchBatcher` (the questions waiting
are embedded and scored together); extractive answers run on a small thread pool;
LLM answers run on their own pool, at most ``YSH_RAG_LLM_MAX_CONCURRENT`` at once with a
``YSH_RAG_LLM_TIMEOUT_S`` timeout: when all are busy the request gets 503 with ``Retry-After``.
"""

import asyncio
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .answer import answer_question
from .serving import RETRIEVERS, LatestRow, LiveIndex, Query, SearchBatcher
from .security import (anchor_glob, check_globpattern, check_metadata_filter, check_question,
                       host_header_is_local, origin_is_local, relativize_paths)

log = logging.getLogger("ysh.rag.server")

MAX_K = 50
#: passages read for an answer: more than a retrieval shows, since the quoted unit is
#: often a few passages down (docs/rag.md, "Answers")
ANSWER_K = 8
PUBLIC_PATHS = ("/_schema", "/", "/favicon.ico")
STATIC_PREFIX = "/static/"
STATIC_FILES = {"helio.css": "text/css", "helio.js": "text/javascript"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
#: the request's fields (a POST's JSON object or a GET's query), set by the guard
PAYLOAD = web.RequestKey("payload", dict)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX)


# --------------------------------------------------------------------------------------
# request validation (runs in aiohttp before the query enters Pathway; may normalize)
# --------------------------------------------------------------------------------------


def _check_k(payload: dict, default: int = 5) -> str | None:
    k = payload.get("k", default)
    if isinstance(k, str) and k.strip().lstrip("-").isdigit():
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int):
        return "`k` must be an integer between 1 and 50"
    if not 1 <= k <= MAX_K:
        return f"`k` must be between 1 and {MAX_K}, got {k}"
    payload["k"] = k
    return None


def _check_filters(payload: dict, docs_root: str | None = None) -> str | None:
    for name in ("metadata_filter", "filepath_globpattern"):
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            return f"`{name}` must be a string"
        if value is not None and not value.strip():
            payload[name] = value = None
        if value is None:
            continue
        problem = check_metadata_filter(value) if name == "metadata_filter" else check_globpattern(value)
        if problem:
            return problem
        if name == "filepath_globpattern":  # responses carry relative paths: so may the filter
            payload[name] = anchor_glob(value, docs_root)
    return None


def validate_retrieve(payload: dict, headers=None, *, docs_root: str | None = None) -> str | None:
    """None when the retrieve request is fine (normalizing it in place), else the reason."""
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        return "`query` is required and must be a non-empty string"
    retriever = payload.get("retriever", "hybrid")
    if retriever not in RETRIEVERS:
        return f"`retriever` must be one of {', '.join(RETRIEVERS)}"
    return check_question(query, "query") or _check_k(payload) or _check_filters(payload, docs_root)


def validate_answer(payload: dict, headers=None, *, docs_root: str | None = None) -> str | None:
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "`prompt` is required and must be a non-empty string"
    return check_question(prompt, "prompt") or _check_k(payload, ANSWER_K) or _check_filters(payload, docs_root)


CATALOG_LIST_FIELDS = ("category", "brand", "distributor")
CATALOG_NUMBER_FIELDS = ("power_min_w", "power_max_w", "voltage_v", "price_min_brl", "price_max_brl")
CATALOG_CATEGORIES = ("module", "inverter", "microinverter", "hybrid_inverter", "offgrid_inverter", "battery", "kit",
                      "structure", "string_box", "cable", "charge_controller", "ev_charger", "pump_kit", "accessory",
                      "other")


def _as_list(value) -> list | None:
    """A list field: a JSON list of strings, or a comma-separated string (GET)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) and len(v) <= 100 for v in value) and len(value) <= 20:
        return [v.strip() for v in value if v.strip()]
    return None


def validate_catalog_search(payload: dict) -> str | None:
    """None when the catalog search request is fine (normalizing it in place: ``k``,
    lists, numbers, ``in_stock``, ``semantic``), else the reason."""
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        return "`query` is required and must be a non-empty string"
    problem = check_question(query, "query") or _check_k(payload, 10)
    if problem:
        return problem
    for name in CATALOG_LIST_FIELDS:
        values = _as_list(payload.get(name))
        if values is None:
            return f"`{name}` must be a list of at most 20 strings (or a comma-separated string)"
        payload[name] = values
    unknown = [c for c in payload["category"] if c not in CATALOG_CATEGORIES]
    if unknown:
        return f"unknown `category` {unknown[0]!r}; one of {', '.join(CATALOG_CATEGORIES)}"
    for name in CATALOG_NUMBER_FIELDS:
        value = payload.get(name)
        if value is None or value == "":
            payload[name] = None
            continue
        if isinstance(value, str):
            try:
                value = float(value.replace(",", "."))
            except ValueError:
                return f"`{name}` must be a number"
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9 or value != value:
            return f"`{name}` must be a number between 0 and 1e9"
        payload[name] = float(value)
    phases = payload.get("phases")
    if phases not in (None, ""):
        if isinstance(phases, str) and phases.strip().isdigit():
            phases = int(phases)
        if isinstance(phases, bool) or phases not in (1, 2, 3):
            return "`phases` must be 1, 2 or 3"
        payload["phases"] = phases
    else:
        payload["phases"] = None
    for name in ("in_stock", "semantic"):
        value = payload.get(name)
        if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
            value = value.lower() in ("true", "1")
        if value is not None and not isinstance(value, bool):
            return f"`{name}` must be true or false"
        payload[name] = value
    return None


# --------------------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------------------


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def _payload(request: web.Request) -> dict | web.Response:
    """The request's fields: the JSON object of a POST (``application/json`` only), or the
    query parameters of a GET."""
    if request.method != "POST":
        return dict(request.query)
    if not request.body_exists:
        return {}
    if request.content_type != "application/json":
        return _error(415, "the body must be JSON (Content-Type: application/json)")
    body = await request.read()
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body is not valid JSON")
    if not isinstance(payload, dict):
        return _error(400, "the body must be a JSON object")
    return payload


def guard_middleware(api_key: str | None, max_request_bytes: int, *, local_only: bool = False,
                     docs_root: str | None = None):
    """aiohttp middleware: 403 for a non-local Host/Origin on a loopback bind, 413 over the
    size limit, 401 without the right ``X-API-Key``, 415/400 for a POST body that is not a
    JSON object (the parsed fields go to the route as ``request[PAYLOAD]``); HTTP errors
    as JSON; no exception text to clients; paths in JSON responses relative to the
    documents root."""
    expected = api_key.encode() if api_key else None

    @web.middleware
    async def guard(request: web.Request, handler):
        if local_only:
            if not host_header_is_local(request.headers.get("Host")):
                return _error(403, "Host header is not a loopback name (127.0.0.1, localhost, ::1): "
                                   "DNS rebinding is refused")
            if not origin_is_local(request.headers.get("Origin")):
                return _error(403, "cross-origin request refused: the Origin is not local")
        if request.content_length is not None and request.content_length > max_request_bytes:
            return _error(413, f"request body over {max_request_bytes} bytes")
        if expected is not None and not _is_public(request.path):
            given = request.headers.get("X-API-Key", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "missing or wrong API key (header X-API-Key)")
        try:
            payload = await _payload(request)
            if isinstance(payload, web.Response):
                return payload
            request[PAYLOAD] = payload
            return _relativize_response(await handler(request), docs_root)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body over {max_request_bytes} bytes")
        except web.HTTPClientError as exc:  # unknown routes, wrong methods: JSON with the reason
            return _error(exc.status, exc.reason)
        except web.HTTPException:
            raise
        except Exception:  # never the exception text to the client
            log.exception("request %s %s failed", request.method, request.path)
            return _error(500, "internal error (see the service log)")

    return guard


def _relativize_response(response, docs_root: str | None):
    if not docs_root or not isinstance(response, web.Response) or response.content_type != "application/json":
        return response
    body = response.body
    if not isinstance(body, bytes | bytearray):
        return response
    needles = (docs_root.encode(), json.dumps(docs_root)[1:-1].encode())  # raw, or as JSON escapes it
    if not any(needle in body for needle in needles):
        return response
    data = relativize_paths(json.loads(body), docs_root)
    return web.json_response(data, status=response.status, dumps=partial(json.dumps, ensure_ascii=False))


async def _page(request: web.Request) -> web.Response:
    return web.Response(body=_static_bytes("index.html"), content_type="text/html", charset="utf-8",
                        headers=PAGE_HEADERS)


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:  # a fixed list: no path from the request reaches the file system
        return _error(404, "not found")
    return web.Response(body=_static_bytes(name), content_type=STATIC_FILES[name], charset="utf-8",
                        headers=PAGE_HEADERS)


async def _favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _static_bytes(name: str) -> bytes:
    return resources.files("ysh.rag").joinpath("static", name).read_bytes()


def _static_bytes(name: str) -> bytes:
    return resources.files("ysh.rag").joinpath("static", name).read_bytes()


# --------------------------------------------------------------------------------------
# the API
# --------------------------------------------------------------------------------------


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Method, path (never the query string: a GET carries the question), status, time."""

    def log(self, request, response, time_s: float) -> None:
        self.logger.info("%s %s %s %.1f ms", request.method, request.path, response.status, time_s * 1000)


@dataclass
class HelioApi:
    """The routes over a live index and the pipeline's status rows."""

    index: LiveIndex
    stats: LatestRow
    files: LatestRow
    embedding_stats: Callable[[], dict]
    docs_root: str | None = None
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 30.0
    llm_max_concurrent: int = 4
    answer_threads: int = 4
    #: the catalog search (``ysh.catalog.search.CatalogSearch``) behind /v1/catalog/search; None: 503
    catalog: object | None = None
    #: where each answer's question and passages are appended (settings ``rag.answer_log``); None: nowhere
    answer_log: Path | None = None
    _batcher: SearchBatcher = field(init=False, repr=False)
    _pool: ThreadPoolExecutor = field(init=False, repr=False)
    _llm_pool: ThreadPoolExecutor = field(init=False, repr=False)
    _llm_slots: threading.BoundedSemaphore = field(init=False, repr=False)
    _log_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self):
        self._batcher = SearchBatcher(self.index)
        self._pool = ThreadPoolExecutor(self.answer_threads, thread_name_prefix="helio-answer")
        self._llm_pool = ThreadPoolExecutor(self.llm_max_concurrent, thread_name_prefix="helio-llm")
        self._llm_slots = threading.BoundedSemaphore(self.llm_max_concurrent)

    async def _run(self, fn, *args, pool=None):
        return await asyncio.get_running_loop().run_in_executor(pool or self._pool, partial(fn, *args))

    async def _search(self, payload: dict, retriever: str | None = None) -> list[dict]:
        query = Query(payload.get("query") or payload.get("prompt"), payload["k"],
                      retriever or payload.get("retriever", "hybrid"), payload.get("metadata_filter"),
                      payload.get("filepath_globpattern"))
        return await asyncio.wrap_future(self._batcher.submit(query))

    async def retrieve(self, request: web.Request) -> web.Response:
        payload = request[PAYLOAD]
        problem = validate_retrieve(payload, docs_root=self.docs_root)
        if problem:
            return _error(400, problem)
        return _json(await self._search(payload))

    def statistics_of(self) -> dict:
        row = self.stats.get() or {}
        counters = self.embedding_stats()
        return {"files": row.get("files") or 0, "chunks": row.get("chunks") or 0,
                "last_modified": row.get("last_modified") or None, "last_indexed": row.get("last_indexed") or None,
                "errors": row.get("errors") or 0, "indexed_chunks": len(self.index),
                "embedded": counters["embedded"], "cache_hits": counters["cache_hits"], "embedding": counters}

    async def statistics(self, request: web.Request) -> web.Response:
        return _json(self.statistics_of())

    async def inputs(self, request: web.Request) -> web.Response:
        row = self.files.get() or {}
        rows = [e.as_dict() if hasattr(e, "as_dict") else e for e in (row.get("entries") or ())]
        return _json(sorted(rows, key=lambda e: str(e.get("path") or "")))

    def _answer(self, payload: dict, hits: list[dict]) -> dict:
        try:
            # a sentence the chunking cut, whole (within the request's own filters)
            filters = {"metadata_filter": payload.get("metadata_filter"),
                       "filepath_globpattern": payload.get("filepath_globpattern")}
            hits = hits + self.index.continuations(hits, **filters)
            if not self.llm_base_url:  # the extractive reader only: a model gets the hits it asked for
                hits = hits + self.index.rest_of_document(hits, **filters)
            if self.answer_log is not None:
                self._log_answer_input(payload["prompt"], hits)
            return answer_question(payload["prompt"], hits, base_url=self.llm_base_url, model=self.llm_model,
                                   api_key=self.llm_api_key, timeout_s=self.llm_timeout_s)
        except Exception:  # the details stay in the log, never in the response
            log.exception("answer failed")
            return {"answer": "Não foi possível responder agora.", "citations": [], "mode": "error",
                    "error": "internal error (see the service log)"}

    def _log_answer_input(self, question: str, hits: list[dict]) -> None:
        """One JSON line {question, hits} in :attr:`answer_log` (one writer at a time within
        the process, as answers run on a thread pool). A log that cannot be written costs a
        warning, never the answer."""
        line = json.dumps({"question": question, "hits": hits}, ensure_ascii=False, default=str) + "\n"
        try:
            with self._log_lock, open_private_log(self.answer_log) as out:
                out.write(line)
        except OSError:
            log.warning("could not append to the answer log %s", self.answer_log, exc_info=True)

    async def answer(self, request: web.Request) -> web.Response:
        payload = request[PAYLOAD]
        problem = validate_answer(payload, docs_root=self.docs_root)
        if problem:
            return _error(400, problem)
        if not self.llm_base_url:
            return _json(await self._run(self._answer, payload, await self._search(payload, "hybrid")))
        if not self._llm_slots.acquire(blocking=False):  # every model call busy: say when to come back
            response = _error(503, f"all {self.llm_max_concurrent} answer slots are busy; retry shortly")
            response.headers["Retry-After"] = str(max(1, round(self.llm_timeout_s / 4)))
            return response
        try:
            hits = await self._search(payload, "hybrid")
            return _json(await self._run(self._answer, payload, hits, pool=self._llm_pool))
        finally:
            self._llm_slots.release()

    def _catalog_search(self, payload: dict) -> dict:
        from ..catalog.search import SearchFilters

        filters = SearchFilters(
            categories=tuple(payload["category"]), brands=tuple(payload["brand"]),
            distributors=tuple(payload["distributor"]), power_min_w=payload["power_min_w"],
            power_max_w=payload["power_max_w"], voltage_v=payload["voltage_v"], phases=payload["phases"],
            price_min_brl=payload["price_min_brl"], price_max_brl=payload["price_max_brl"],
            in_stock=bool(payload["in_stock"]))
        return self.catalog.search(payload["query"], k=payload["k"], filters=filters,
                                   semantic=payload["semantic"]).as_dict()

    async def catalog_search(self, request: web.Request) -> web.Response:
        payload = request[PAYLOAD]
        problem = validate_catalog_search(payload)
        if problem:
            return _error(400, problem)
        if self.catalog is None:
            return _error(503, "catalog search is not configured on this service (no warehouse)")
        return _json(await self._run(self._catalog_search, payload))

    async def schema(self, request: web.Request) -> web.Response:
        document = openapi_document()
        if request.query.get("format") == "json":
            return _json(document)
        import yaml

        return web.Response(text=yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
                            content_type="text/x-yaml", charset="utf-8")

    def application(self, *, api_key: str | None, max_request_bytes: int, local_only: bool,
                    with_page: bool = True) -> web.Application:
        app = web.Application(client_max_size=max_request_bytes,
                              middlewares=[guard_middleware(api_key, max_request_bytes, local_only=local_only,
                                                            docs_root=self.docs_root)])
        for path, handler in (("/v1/retrieve", self.retrieve), ("/v1/statistics", self.statistics),
                              ("/v1/inputs", self.inputs), ("/v1/catalog/search", self.catalog_search)):
            app.router.add_get(path, handler)
            app.router.add_post(path, handler)
        app.router.add_post("/v2/answer", self.answer)
        app.router.add_get("/_schema", self.schema)
        if with_page:
            app.router.add_get("/", _page)
            app.router.add_get("/favicon.ico", _favicon)
            app.router.add_get(STATIC_PREFIX + "{name}", _static)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _shutdown(self, app) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._llm_pool.shutdown(wait=False, cancel_futures=True)


def open_private_log(path: Path):
    """``path`` opened for appending as a file only its owner reads (0600, also when it
    existed with wider permissions; a symlink is refused): it holds questions and document
    text."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def _json(data) -> web.Response:
    return web.json_response(data, dumps=partial(json.dumps, ensure_ascii=False))


_FILTERS = {
    "metadata_filter": {"type": "string", "nullable": True,
                        "description": "JMESPath filter over the chunk metadata, e.g. contains(path, `lei`)"},
    "filepath_globpattern": {"type": "string", "nullable": True,
                             "description": "Glob over the document path, e.g. **/*.pdf"},
}


def openapi_document() -> dict:
    """The OpenAPI 3 description of the routes (public at ``/_schema``)."""
    def body(properties: dict, required: list[str]) -> dict:
        return {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": properties, "required": required}}}}

    def ok(description: str) -> dict:
        return {"200": {"description": description}, "400": {"description": "bad input, with the reason"},
                "401": {"description": "missing or wrong X-API-Key"}}

    retrieve = {"summary": "Passages for a query", "tags": ["helio"],
                "description": "Hybrid (weighted RRF of dense KNN and Portuguese BM25, reranked by code and "
                               "number agreement), dense or BM25 retrieval over the live index. Returns "
                               "[{text, score, metadata}], best first.",
                "requestBody": body({"query": {"type": "string", "example": "Qual o percentual do Fio B em 2026?"},
                                     "k": {"type": "integer", "default": 5, "minimum": 1, "maximum": MAX_K},
                                     "retriever": {"type": "string", "enum": list(RETRIEVERS), "default": "hybrid"},
                                     **_FILTERS}, ["query"]),
                "responses": ok("passages, best first")}
    answer = {"summary": "Hélio's answer with citations", "tags": ["helio"],
              "description": "Extractive by default; an OpenAI-compatible chat endpoint when configured (503 with "
                             "Retry-After when its slots are busy). Document text is treated as data.",
              "requestBody": body({"prompt": {"type": "string", "example": "Qual o percentual do Fio B em 2026?"},
                                   "k": {"type": "integer", "default": ANSWER_K, "minimum": 1, "maximum": MAX_K},
                                   **_FILTERS}, ["prompt"]),
              "responses": {**ok("{answer, citations, mode, flagged}"),
                            "503": {"description": "every LLM answer slot is busy (Retry-After)"}}}
    statistics = {"summary": "Index statistics", "tags": ["helio"],
                  "description": "files, chunks, last_modified, last_indexed (unix s), errors, embedding counters.",
                  "responses": ok("statistics")}
    inputs = {"summary": "Indexed documents", "tags": ["helio"],
              "description": "Each document with status indexed | error | empty, reason, chunks, modified_at, size.",
              "responses": ok("documents by path")}
    number = {"type": "number", "nullable": True}
    catalog = {"summary": "Search the distributors' catalog", "tags": ["catalog"],
               "description": "Portuguese full-text search (unaccent) + model-code trigrams + the catalog_embeddings "
                              "signal over items_normalized. The query is read as integrators type it (inv, mod, "
                              "micro, mono/tri, bat; 5kw, 5000W, 8 kWp; 220v; \"ate 5 mil\"); the fields below "
                              "are hard filters. Returns {query (as understood), filters, total_offers, relaxed, "
                              "semantic, products: [{product_key, category, brand, model, title, power_w, "
                              "voltage_v, phases, score, exact_model, min_price_brl, offers: [{distributor, sku, "
                              "price_brl, availability, stock_units, name, url, score}]}], facets: {category, "
                              "brand, distributor, phases, voltage_v, availability, power_w, price_brl: "
                              "[{value, offers}]}}. 503 when the service has no warehouse.",
               "requestBody": body({
                   "query": {"type": "string", "example": "inversor 5 kw monofásico growatt"},
                   "k": {"type": "integer", "default": 10, "minimum": 1, "maximum": MAX_K},
                   "category": {"type": "array", "items": {"type": "string", "enum": list(CATALOG_CATEGORIES)}},
                   "brand": {"type": "array", "items": {"type": "string"}},
                   "distributor": {"type": "array", "items": {"type": "string"}},
                   "power_min_w": number, "power_max_w": number, "voltage_v": number,
                   "phases": {"type": "integer", "enum": [1, 2, 3], "nullable": True},
                   "price_min_brl": number, "price_max_brl": number,
                   "in_stock": {"type": "boolean", "default": False},
                   "semantic": {"type": "boolean", "nullable": True,
                                "description": "fuse the semantic signal (default: the configured weight)"}},
                   ["query"]),
               "responses": {**ok("products with their offers, and facets"),
                             "503": {"description": "catalog search not configured"}}}
    return {"openapi": "3.0.3", "info": {"title": "Hélio RAG API", "version": "2"},
            "paths": {"/v1/retrieve": {"post": retrieve, "get": {k: v for k, v in retrieve.items() if k != "requestBody"}},
                      "/v1/statistics": {"get": statistics, "post": statistics},
                      "/v1/inputs": {"get": inputs, "post": inputs},
                      "/v2/answer": {"post": answer},
                      "/v1/catalog/search": {"post": catalog,
                                             "get": {k: v for k, v in catalog.items() if k != "requestBody"}}},
            "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}}}


class ApiServer:
    """The aiohttp application on its own thread and event loop (Pathway's ``pw.run`` owns
    the main thread)."""

    def __init__(self, app: web.Application, host: str, port: int):
        self.app, self.host, self.port = app, host, port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="helio-api", daemon=True)

    def start(self, timeout_s: float = 30.0) -> "ApiServer":
        self.thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"the Hélio API did not start on {self.host}:{self.port} in {timeout_s:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"the Hélio API could not listen on {self.host}:{self.port}: {self._error}")
        return self

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, access_log_class=PathOnlyAccessLogger,
                               access_log=logging.getLogger("ysh.rag.access"))
        try:
            self._loop.run_until_complete(runner.setup())
            self._loop.run_until_complete(web.TCPSite(runner, self.host, self.port).start())
        except BaseException as exc:  # port taken, bad address: reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self.thread.join(timeout_s)
