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
* ``POST /v2/answer`` {prompt, k=5, metadata_filter?, filepath_globpattern?} → {answer,
  citations: [{path, page, section, title, snippet, score, chunk_index}], mode, flagged}
* ``GET /_schema`` (YAML; ``?format=json`` for JSON): the OpenAPI description; public.

``X-API-Key`` is required on every other route when ``rag_api_key`` is set (401), and
bodies over ``rag_max_request_bytes`` are refused (413). Bad input gets a 400 saying why.
Routes use ``delete_completed_queries=False``: ``True`` panics Pathway 0.33's engine on
the second query (``TryFromIntError(NegOverflow)``; docs/rag.md).
"""

import hmac
import json
import logging

import pathway as pw
from aiohttp import web

from .answer import answer_question
from .pipeline import RETRIEVERS, RagGraph, RetrieveSchema

log = logging.getLogger("ysh.rag.server")

MAX_K = 50
PUBLIC_PATHS = ("/_schema",)


class AnswerSchema(pw.Schema):
    prompt: str = pw.column_definition(description="The question, in Portuguese",
                                       example="Qual o percentual do Fio B pago em 2026?")
    k: int = pw.column_definition(default_value=5, description="Passages to read (1..50)", example=5)
    metadata_filter: str | None = pw.column_definition(default_value=None,
                                                       description="JMESPath filter over the chunk metadata")
    filepath_globpattern: str | None = pw.column_definition(default_value=None,
                                                            description="Glob over the document path")


class EmptySchema(pw.Schema):
    pass


# --------------------------------------------------------------------------------------
# request validation (runs in aiohttp before the query enters Pathway; may normalize)
# --------------------------------------------------------------------------------------


def _check_k(payload: dict) -> str | None:
    k = payload.get("k", 5)
    if isinstance(k, str) and k.strip().lstrip("-").isdigit():
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int):
        return "`k` must be an integer between 1 and 50"
    if not 1 <= k <= MAX_K:
        return f"`k` must be between 1 and {MAX_K}, got {k}"
    payload["k"] = k
    return None


def _check_filters(payload: dict) -> str | None:
    for name in ("metadata_filter", "filepath_globpattern"):
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            return f"`{name}` must be a string"
        if value is not None and not value.strip():
            payload[name] = None
    return None


def validate_retrieve(payload: dict, headers=None) -> str | None:
    """None when the retrieve request is fine (normalizing it in place), else the reason."""
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        return "`query` is required and must be a non-empty string"
    retriever = payload.get("retriever", "hybrid")
    if retriever not in RETRIEVERS:
        return f"`retriever` must be one of {', '.join(RETRIEVERS)}"
    return _check_k(payload) or _check_filters(payload)


def validate_answer(payload: dict, headers=None) -> str | None:
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "`prompt` is required and must be a non-empty string"
    return _check_k(payload) or _check_filters(payload)


# --------------------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------------------


def guard_middleware(api_key: str | None, max_request_bytes: int):
    """aiohttp middleware: 413 over the size limit, 401 without the right ``X-API-Key``."""
    expected = api_key.encode() if api_key else None

    @web.middleware
    async def guard(request: web.Request, handler):
        if request.content_length is not None and request.content_length > max_request_bytes:
            return web.json_response({"error": f"request body over {max_request_bytes} bytes"}, status=413)
        if expected is not None and request.path not in PUBLIC_PATHS:
            given = request.headers.get("X-API-Key", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json_response({"error": "missing or wrong API key (header X-API-Key)"}, status=401)
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": f"request body over {max_request_bytes} bytes"}, status=413)

    return guard


def make_webserver(host: str, port: int, *, api_key: str | None, max_request_bytes: int) -> pw.io.http.PathwayWebserver:
    webserver = pw.io.http.PathwayWebserver(host=host, port=port, with_schema_endpoint=True, with_cors=False)
    # Private attribute (pathway 0.33 pinned): the middleware list freezes when the app starts.
    webserver._app.middlewares.append(guard_middleware(api_key, max_request_bytes))
    webserver._app._client_max_size = max_request_bytes  # aiohttp's own limit (chunked bodies too)
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
            log.exception("answer failed")
            result = {"answer": "Não foi possível responder agora.", "citations": [], "mode": "error",
                      "error": f"{type(exc).__name__}: {exc}"}
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
    _route(webserver, "/v1/retrieve", RetrieveSchema, graph.retrieve, validator=validate_retrieve,
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
           validator=validate_answer, summary="Hélio's answer with citations",
           description="Extractive by default; an OpenAI-compatible chat endpoint when configured. Document text "
                       "is treated as data (prompt-injection text is flagged, never quoted).")


def schema_paths(openapi: str | dict) -> list[str]:
    doc = json.loads(openapi) if isinstance(openapi, str) else openapi
    return sorted(doc.get("paths", {}))
