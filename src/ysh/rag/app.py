"""The Hélio service: wiring only (source → graph → REST server → ``pw.run``).

Programmatic start (blocks; run it in its own process — Pathway's graph is global)::

    from ysh.settings import get_settings
    from ysh.rag.app import serve
    serve(get_settings(), docs_dir=Path("docs"), port=8765)
"""

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pathway as pw

from .. import pw_runtime
from .embedding import make_embedder
from .pipeline import RagGraph, build_from_settings
from .serving import LiveIndex
from .server import ApiServer, HelioApi
from .security import is_loopback_host

log = logging.getLogger("ysh.rag.app")

# tantivy logs "Preparing commit … Garbage collect" at INFO on every index update
_CHATTY_LOGGERS = ("tantivy", "pathway_engine.external_index_wrappers", "pathway_engine.connectors.monitoring")


def _quiet_engine_logs() -> None:
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("RUST_LOG", "warn,pathway_engine=info,tantivy=warn")


class _RedactSecrets(logging.Filter):
    """Keep the API key out of the logs, whatever logs a header."""

    def __init__(self, secrets: Sequence[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, ()
        return True


def _install_log_filters(api_key: str | None) -> None:
    """On the handlers: a logger's own filters skip records propagated from its children."""
    filters: list[logging.Filter] = [_RedactSecrets([api_key])] if api_key else []
    for handler in logging.getLogger().handlers:
        for existing in list(handler.filters):
            if isinstance(existing, _RedactSecrets):
                handler.removeFilter(existing)
        for f in filters:
            handler.addFilter(f)


def docs_root_of(settings, docs_dir: Path | None) -> str | None:
    """The documents folder whose prefix is cut from the paths in responses (folder source only)."""
    if docs_dir is None and settings.rag.source != "fs":
        return None
    return str(Path(docs_dir or settings.rag.docs_dir).expanduser().resolve())


def _log_errors(graph: RagGraph) -> None:
    """Pathway's global error log (UDF failures under ``terminate_on_error=False``) → our log."""
    def on_change(key, row, time, is_addition):
        if is_addition:
            log.error("pipeline error: %s (operator %s)", row.get("message"), row.get("operator_id"))

    pw.io.subscribe(pw.global_error_log(), on_change=on_change, name="rag_error_log")


def _catalog_search(settings, index: LiveIndex):
    """Catalog search (/v1/catalog/search) over the warehouse when the service uses one
    (live records or the pgvector copy), its queries embedded by Hélio's own embedder."""
    if not (settings.rag.live_records or settings.rag.pgvector):
        return None
    from .. import db
    from ..catalog.search import CatalogSearch

    warehouse = db.Warehouse(db.resolve_dsn(settings, start=False), settings.warehouse.schema_name)
    return CatalogSearch(warehouse, embed_query=index.embed_queries, model=settings.rag.embedder.strip())


@dataclass
class Service:
    """The declared service: the graph, the live index it feeds and the API over it."""

    graph: RagGraph
    index: LiveIndex
    api: HelioApi
    server: ApiServer


def _check_answer_ranker() -> None:
    """The answer ranker's weights, read once at start: a malformed file stops the service
    with its reason (not every answer later); a missing one is said in the log."""
    from . import ranker

    if ranker.weights() is None:
        log.warning("no answer ranker weights at %s: answers use the formula alone", ranker.WEIGHTS_FILE)


def _check_answer_log(path: Path) -> None:
    """YSH_RAG_ANSWER_LOG must be a file the service can append to (created 0600 now)."""
    from ..errors import InputError
    from .server import open_private_log

    try:
        open_private_log(path).close()
    except OSError as exc:
        raise InputError(f"YSH_RAG_ANSWER_LOG {path}: {exc.strerror or exc}") from None


def build_service(settings, *, docs_dir: Path | None = None, host: str | None = None, port: int | None = None,
                  extra_tables: Sequence[pw.Table] = (), seed: Mapping[str, np.ndarray] | None = None,
                  on_embedded: Callable[[str, np.ndarray], None] | None = None) -> Service:
    """Declare the graph in the current Pathway graph, subscribe a live index to it and
    prepare the API over that index (not started)."""
    embedder = make_embedder(settings, seed=seed, on_embedded=on_embedded)
    graph = build_from_settings(settings, embedder, docs_dir=docs_dir, extra_tables=extra_tables)
    index = graph.live_index()
    stats, files = graph.attach(index)
    api_key = settings.rag.api_key.get_secret_value() if settings.rag.api_key else None
    llm_key = settings.rag.openai_api_key.get_secret_value() if settings.rag.openai_api_key else None
    _install_log_filters(api_key)
    _check_answer_ranker()
    if settings.rag.answer_log is not None:
        _check_answer_log(settings.rag.answer_log)
    api = HelioApi(index, stats, files, embedder.cache.stats, docs_root=docs_root_of(settings, docs_dir),
                   catalog=_catalog_search(settings, index),
                   llm_base_url=settings.rag.openai_base_url, llm_api_key=llm_key, llm_model=settings.rag.chat_model,
                   llm_timeout_s=settings.rag.llm_timeout_s, llm_max_concurrent=settings.rag.llm_max_concurrent,
                   answer_log=settings.rag.answer_log)
    host = host or settings.rag.host
    app = api.application(api_key=api_key, max_request_bytes=settings.rag.max_request_bytes,
                          local_only=is_loopback_host(host))
    _log_errors(graph)
    return Service(graph, index, api, ApiServer(app, host, port or settings.rag.port))


def serve(settings, *, docs_dir: Path | None = None, host: str | None = None, port: int | None = None,
          extra_tables: Sequence[Callable[[], pw.Table]] = (), on_ready: Callable[[RagGraph], None] | None = None,
          seed: Mapping[str, np.ndarray] | None = None,
          on_embedded: Callable[[str, np.ndarray], None] | None = None) -> None:
    """Build and run the Hélio service until the process is stopped (blocks).

    ``extra_tables``: functions that declare more document tables (``data: bytes``,
    ``_metadata: Json`` with a ``path``), e.g. live catalog/tariff records; called once
    the graph is fresh, so the tables belong to it. ``seed``/``on_embedded``: the embedding
    cache's seed (``content_sha256 → vector``) and new-vector observer (pgvector).
    ``on_ready(graph)`` is called once the graph is built, just before ``pw.run``.
    The API listens from just before ``pw.run``; ``/v1/statistics`` shows the indexing.
    """
    _quiet_engine_logs()
    pw_runtime.fresh_graph()
    service = build_service(settings, docs_dir=docs_dir, host=host, port=port,
                            extra_tables=[declare() for declare in extra_tables],
                            seed=seed, on_embedded=on_embedded)
    if on_ready is not None:
        on_ready(service.graph)
    os.environ.setdefault("PATHWAY_DISABLE_PROGRESS", "1")
    service.server.start()
    log.info("Hélio API on http://%s:%s (documents: %s)", service.server.host, service.server.port,
             docs_dir or settings.rag.docs_dir)
    try:
        pw.run(monitoring_level=pw.MonitoringLevel.NONE, terminate_on_error=False,
               with_http_server=settings.pathway.monitoring)
    finally:
        service.server.stop()


def serve_in_thread(settings, **kwargs) -> threading.Thread:
    """:func:`serve` on a daemon thread (for a process that does nothing else)."""
    thread = threading.Thread(target=serve, args=(settings,), kwargs=kwargs, name="helio", daemon=True)
    thread.start()
    return thread
