"""The Hélio REST API over a :class:`~ysh.rag.pipeline.RagGraph` (Pathway webserver).

Routes (JSON in, JSON out; GET takes the same fields as query parameters):

* ``POST /v1/retrieve`` {query, k=5, metadata_filter?, filepath_globpattern?, retriever?}
  → ``[{text, score, metadata: {path, title, page?, section?, modified_at, content_sha256,
  chunk_index, format, size, …}}]``, best first (score: RRF sum for hybrid, cosine
  similarity for dense, BM25 for bm25).
* ``GET|POST /v1/statistics`` → {files, chunks, last_modified, last_indexed, errors,
  embedded, cache_hits, embedding: {…}}
* ``GET|POST /v1/inputs`` → ``[{path, status: indexed|error|empty, reason, chunks,
  modified_at, size}]``
* ``POST /v2/answer`` {prompt, k=8, metadata_filter?, filepath_globpattern?} → {answer,
  citations: [{path, page, section, title, snippet, score, chunk_index}], mode, flagged}
* ``GET /_schema`` (YAML; ``?format=json`` for JSON): the OpenAPI description; public.
* ``GET /`` and ``GET /static/…``: the Hélio page (plain HTML/CSS/JS shipped in
  ``ysh/rag/static``); public — the page sends the key the user types.

``X-API-Key`` is required on every other route when ``rag_api_key`` is set (401), and
bodies over ``rag_max_request_bytes`` are refused (413). Bad input gets a 400 saying why
(JSON ``{"error": reason}``): a POST body must be a JSON object sent as
``application/json`` (415 / 400), a question at most 2,000 characters, ``metadata_filter`` a
JMESPath expression of known functions, ``filepath_globpattern`` a short plain glob
(relative globs are anchored at the documents root). On a loopback bind, a request whose
``Host`` or ``Origin`` is not local gets 403 (DNS rebinding, cross-site posts). Responses
carry paths relative to the documents root; a failure is a generic 500 (details in the log).
Routes use ``delete_completed_queries=False``: ``True`` panics Pathway 0.33's engine on
the second query (``TryFromIntError(NegOverflow)``; docs/rag.md).
"""

import asyncio
import hmac
import json
import logging
from functools import partial
from importlib import resources

import pathway as pw
from aiohttp import web
from aiohttp.streams import StreamReader

from .answer import answer_question
from .pipeline import RETRIEVERS, RagGraph, RetrieveSchema
from .security import (anchor_glob, check_globpattern, check_metadata_filter, check_question,
                       host_header_is_local, is_loopback_host, origin_is_local, relativize_paths)

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


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(STATIC_PREFIX)


class AnswerSchema(pw.Schema):
    prompt: str = pw.column_definition(description="The question, in Portuguese",
                                       example="Qual o percentual do Fio B pago em 2026?")
    k: int = pw.column_definition(default_value=ANSWER_K, description="Passages to read (1..50)", example=ANSWER_K)
    metadata_filter: str | None = pw.column_definition(default_value=None,
                                                       description="JMESPath filter over the chunk metadata")
    filepath_globpattern: str | None = pw.column_definition(default_value=None,
                                                            description="Glob over the document path")


class EmptySchema(pw.Schema):
    pass


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


# --------------------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------------------


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def _json_body_problem(request: web.Request) -> web.Response | None:
    """A POST body must be a JSON object sent as ``application/json``. The body is read here
    and handed back to the route as a fresh stream (Pathway's handler clones the request,
    which aiohttp refuses once the body was read)."""
    if request.method != "POST" or not request.body_exists:
        return None
    if request.content_type != "application/json":
        return _error(415, "the body must be JSON (Content-Type: application/json)")
    body = await request.read()
    if body.strip():
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON")
        if not isinstance(payload, dict):
            return _error(400, "the body must be a JSON object")
    fresh = StreamReader(request.protocol, 2 ** 16, loop=asyncio.get_running_loop())
    fresh.feed_data(body)
    fresh.feed_eof()
    request._payload = fresh  # private (aiohttp 3.x): let the route read the same bytes again
    request._read_bytes = None
    return None


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


def guard_middleware(api_key: str | None, max_request_bytes: int, *, local_only: bool = False,
                     docs_root: str | None = None):
    """aiohttp middleware: 403 for a non-local Host/Origin on a loopback bind, 413 over the
    size limit, 401 without the right ``X-API-Key``, 415/400 for a POST body that is not a
    JSON object; HTTP errors as JSON; no exception text to clients; paths in JSON responses
    relative to the documents root."""
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
            problem = await _json_body_problem(request)
            if problem is not None:
                return problem
            return _relativize_response(await handler(request), docs_root)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body over {max_request_bytes} bytes")
        except web.HTTPClientError as exc:  # validator rejections and unknown routes: JSON with the reason
            return _error(exc.status, exc.reason)
        except web.HTTPException:
            raise
        except Exception:  # never the exception text to the client
            log.exception("request %s %s failed", request.method, request.path)
            return _error(500, "internal error (see the service log)")

    return guard


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


def add_page_routes(webserver: pw.io.http.PathwayWebserver) -> None:
    """The Hélio page: plain aiohttp GET routes beside Pathway's (before the app starts)."""
    router = webserver._app.router  # private attribute (pathway 0.33 pinned), as the middleware
    router.add_get("/", _page)
    router.add_get("/favicon.ico", _favicon)
    router.add_get(STATIC_PREFIX + "{name}", _static)


def make_webserver(host: str, port: int, *, api_key: str | None, max_request_bytes: int,
                   docs_root: str | None = None, with_page: bool = True) -> pw.io.http.PathwayWebserver:
    webserver = pw.io.http.PathwayWebserver(host=host, port=port, with_schema_endpoint=True, with_cors=False)
    # Private attribute (pathway 0.33 pinned): the middleware list freezes when the app starts.
    webserver._app.middlewares.append(guard_middleware(api_key, max_request_bytes, local_only=is_loopback_host(host),
                                                       docs_root=docs_root))
    webserver._app._client_max_size = max_request_bytes  # aiohttp's own limit (chunked bodies too)
    webserver._ysh_docs_root = docs_root
    if with_page:
        add_page_routes(webserver)
    return webserver


def _route(webserver, route: str, schema, handler, *, methods=("GET", "POST"), validator=None,
           summary: str = "", description: str = "") -> None:
    queries, writer = pw.io.http.rest_connector(
        webserver=webserver, route=route, schema=schema, methods=methods, autocommit_duration_ms=50,
        delete_completed_queries=False, request_validator=validator,
        documentation=pw.io.http.EndpointDocumentation(summary=summary, description=description,
                                                       tags=["helio"], method_types=methods),
    )
    writer(handler(queries))


def answer_handler(graph: RagGraph, settings):
    """The ``/v2/answer`` transformer: hybrid retrieval, then :func:`answer_question`."""
    base_url = settings.rag_openai_base_url
    key = settings.rag_openai_api_key.get_secret_value() if settings.rag_openai_api_key else None
    model = settings.rag_chat_model

    @pw.udf
    def compose(prompt: str, hits: pw.Json) -> pw.Json:
        try:
            result = answer_question(prompt, list(hits.value or []), base_url=base_url, model=model, api_key=key)
        except Exception as exc:  # never an engine error: answer with the failure
            log.exception("answer failed")  # the details stay in the log, never in the response
            result = {"answer": "Não foi possível responder agora.", "citations": [], "mode": "error",
                      "error": "internal error (see the service log)"}
        return pw.Json(result)

    def handler(queries: pw.Table) -> pw.Table:
        retrieval = queries.select(query=pw.this.prompt, k=pw.this.k, metadata_filter=pw.this.metadata_filter,
                                   filepath_globpattern=pw.this.filepath_globpattern, retriever="hybrid")
        hits = graph.retrieve(retrieval)
        # hits share the query ids: restrict/with_universe_of aligns them with the prompts
        joined = queries.join(hits, queries.id == hits.id, id=queries.id)
        return joined.select(result=compose(pw.left.prompt, pw.right.result))

    return handler


def register_routes(webserver, graph: RagGraph, settings) -> None:
    docs_root = getattr(webserver, "_ysh_docs_root", None)
    _route(webserver, "/v1/retrieve", RetrieveSchema, graph.retrieve,
           validator=partial(validate_retrieve, docs_root=docs_root),
           summary="Passages for a query",
           description="Hybrid (RRF of usearch KNN and accent-insensitive BM25), dense or BM25 retrieval over "
                       "the live index. Returns [{text, score, metadata}], best first.")
    _route(webserver, "/v1/statistics", EmptySchema, graph.statistics,
           summary="Index statistics", description="files, chunks, last_modified, last_indexed (unix s), errors, "
                                                   "embedding counters (embedded, cache_hits).")
    _route(webserver, "/v1/inputs", EmptySchema, graph.inputs,
           summary="Indexed documents", description="Each document with status indexed | error | empty, reason, "
                                                    "chunks, modified_at, size.")
    _route(webserver, "/v2/answer", AnswerSchema, answer_handler(graph, settings), methods=("POST",),
           validator=partial(validate_answer, docs_root=docs_root), summary="Hélio's answer with citations",
           description="Extractive by default; an OpenAI-compatible chat endpoint when configured. Document text "
                       "is treated as data (prompt-injection text is flagged, never quoted).")


def schema_paths(openapi: str | dict) -> list[str]:
    doc = json.loads(openapi) if isinstance(openapi, str) else openapi
    return sorted(doc.get("paths", {}))
