"""``ysh rag …``: the Hélio service (live document index + answer API)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from ..errors import InputError

app = typer.Typer(help="Hélio RAG: live hybrid index over documents, answers with citations. `serve` the HTTP "
                       "API (it follows the documents while it runs).", no_args_is_help=True)
console = Console()


@app.command()
def serve(
    docs: Path | None = typer.Option(None, "--docs", help="Documents folder (default: YSH_RAG_DOCS_DIR or HOME/docs)."),
    host: str | None = typer.Option(None, "--host", help="Listen address (default: YSH_RAG_HOST)."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port (default: YSH_RAG_PORT)."),
    insecure: bool = typer.Option(False, "--insecure",
                                  help="Allow a non-loopback --host without an API key of at least 32 characters."),
) -> None:
    """Serve the Hélio API and page over a live index of the documents, until stopped.

    Indexes PDF, DOCX, HTML, Markdown and TXT as they change; serves /v1/retrieve,
    /v1/statistics, /v1/inputs, /v2/answer, /_schema and the Hélio page (/). Beyond
    loopback it needs YSH_RAG_API_KEY (≥ 32 characters)."""
    import os

    from ..settings import get_settings
    from .security import exposure_problem

    settings = get_settings()
    bind = host or settings.rag.host
    problem = exposure_problem(bind, settings.rag.api_key.get_secret_value() if settings.rag.api_key else None,
                               insecure=insecure)
    if problem:
        console.print(f"[red]{problem}[/]")
        raise typer.Exit(2)
    if insecure and bind != "127.0.0.1":
        console.print("[yellow]--insecure: serving without the API key rule; anyone who reaches the port can "
                      "query the documents[/]")
    os.umask(0o077)  # whatever the service creates (folders, logs, state) is private: 0600 files, 0700 folders
    if settings.rag.source == "fs" or docs is not None:
        folder = (docs or settings.rag.docs_dir).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            console.print(f"[red]--docs {folder} is not a folder[/]")
            raise typer.Exit(2)
        if not folder.exists():
            folder.mkdir(parents=True)
            console.print(f"documents folder {folder} did not exist: created it (empty; add files to index them)")
        where = str(folder)
    else:
        folder = None
        where = {"s3": f"s3://{settings.rag.s3_bucket}/{settings.rag.s3_prefix}",
                 "gdrive": f"Google Drive folder {settings.rag.gdrive_object_id}"}[settings.rag.source]
    host = host or settings.rag.host
    port = port or settings.rag.port
    auth = "X-API-Key required" if settings.rag.api_key else "no API key (YSH_RAG_API_KEY unset)"
    answers = f"LLM {settings.rag.chat_model} at {settings.rag.openai_base_url}" if settings.rag.openai_base_url \
        else "extractive answers"
    console.print(f"Hélio: indexing [bold]{where}[/] with {settings.rag.embedder}; API on "
                  f"[cyan]http://{host}:{port}[/] ({auth}; {answers}); Ctrl-C to stop")
    from .app import serve as run_service

    extra_tables, seed, on_ready = _warehouse_parts(settings)
    try:
        run_service(settings, docs_dir=folder, host=host, port=port, extra_tables=extra_tables, seed=seed,
                    on_ready=on_ready)
    except KeyboardInterrupt:
        console.print("stopped")
    except (ValueError, OSError) as exc:
        console.print(f"[red]cannot start the Hélio service:[/] {exc}")
        raise typer.Exit(1) from None


def _warehouse_parts(settings):
    """The live catalog/tariff records (``YSH_RAG_LIVE_RECORDS``) and the pgvector copy
    (``YSH_RAG_PGVECTOR``): extra document tables, the embedding cache's seed (no full
    re-embed after a restart) and the sink attached before the run. Without a reachable
    warehouse the service still runs, over the documents alone, and says so."""
    from .pinecone import PineconeStore

    pinecone = PineconeStore.from_settings(settings)
    if pinecone is not None:
        console.print(f"Pinecone: the chunk vectors also go to {settings.rag.pinecone_index_host} "
                      f"(namespace {settings.rag.embedder})")
    if not (settings.rag.live_records or settings.rag.pgvector):
        return [], None, _pinecone_only(pinecone, settings)
    from .. import db

    try:
        warehouse = db.Warehouse.from_settings(settings)
    except Exception as exc:  # the documents alone are still worth serving
        console.print(f"[yellow]warehouse unavailable ({exc}); serving the documents only, without live records "
                      "or the pgvector copy[/]")
        return [], None, _pinecone_only(pinecone, settings)
    extra, seed, on_ready = [], None, None
    if settings.rag.live_records:
        from .records import live_records_table

        extra.append(lambda: live_records_table(warehouse, settings.rag.records_poll_s,
                                                today=settings.rag.records_as_of))
        console.print(f"live records: catalog products and B1/B3 tariffs from schema {warehouse.schema}, "
                      f"re-read every {settings.rag.records_poll_s:g} s")
    if settings.rag.pgvector:
        from .vectors import VectorStore

        store = VectorStore(warehouse, model=settings.rag.embedder)
        seed = store.load_cache(settings.rag.embedder)
        console.print(f"pgvector: {len(seed)} chunk vectors of {settings.rag.embedder} loaded from rag_chunks "
                      "(not embedded again)")

        def on_ready(graph):
            _attach_copy(graph, store, settings, "rag_pgvector")
            if pinecone is not None:
                _pinecone_only(pinecone, settings)(graph)
    else:
        on_ready = _pinecone_only(pinecone, settings)
    return extra, seed, on_ready


def _pinecone_only(pinecone, settings):
    """The optional Pinecone copy: the same sink as pgvector's, over a PineconeStore."""
    if pinecone is None:
        return None
    def on_ready(graph):
        _attach_copy(graph, pinecone, settings, "rag_pinecone")

    return on_ready


def _attach_copy(graph, store, settings, name: str) -> None:
    """Keep ``store`` (pgvector or Pinecone) equal to the chunks the index holds, with the
    vectors the pipeline computed."""
    from .vectors import attach_pgvector_sink

    attach_pgvector_sink(graph.chunks, store, vector_column="vector", model=graph.embedder.cache.model_name,
                         reconcile_after_s=settings.rag.pgvector_reconcile_s, name=name)


@app.command("eval")
def eval_cmd(
    url: str | None = typer.Option(None, "--url", help="A running Hélio API (default: YSH_RAG_URL or HOST:PORT); "
                                                       "without one, a service is started over --docs."),
    docs: Path | None = typer.Option(None, "--docs", help="Documents to index when starting a service "
                                                          "(default: the sample corpus data/sample/docs)."),
    eval_file: Path | None = typer.Option(None, "--questions", dir_okay=False,
                                          help="Questions JSONL (default: data/sample/rag_eval.jsonl)."),
    k: int = typer.Option(5, min=1, max=50, help="Results per query."),
    answers: bool = typer.Option(False, "--answers/--no-answers", help="Also check /v2/answer for the expected facts."),
    split: str | None = typer.Option(None, "--split", help="sample | dev | dev2 … dev8 | heldout | refusal: "
                                                          "a question split with its own documents (a service is "
                                                          "started over them)."),
) -> None:
    """Retrieval quality on the Portuguese eval set: hit@1/3/5 and MRR (dense, BM25, fusion, hybrid = the final list).

    Target: hybrid hit@5 ≥ 0.90; exit code 1 when missed."""
    from ..settings import get_settings

    settings = get_settings()
    if split is not None:
        from .evaluation import SPLITS, split_paths

        if split not in SPLITS:
            raise typer.BadParameter(f"--split must be one of {', '.join(SPLITS)}")
        docs, eval_file = split_paths(split)
    if docs is not None and not docs.is_dir():
        raise InputError(f"--docs {docs}: {'not a folder' if docs.exists() else 'no such folder'}")
    with _questions_file(eval_file) as questions:  # checked before a service starts
        _eval(settings, url, docs, questions, k, answers)


@contextmanager
def _questions_file(path: Path | None) -> Iterator[Path]:
    """The questions file, checked before any service starts (one line naming the
    problem: missing, a folder, not UTF-8, empty, a line that is no eval question); gives
    the path to read (a byte-order mark is accepted)."""
    from ..errors import read_text
    from .evaluation import default_eval_file, load_questions

    path = path or default_eval_file()
    read_text(path, "questions file")
    try:
        questions = load_questions(path)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not questions:
        raise InputError(f"{path}: no questions in the questions file")
    yield path


def _eval(settings, url: str | None, docs: Path | None, eval_file: Path, k: int, answers: bool) -> None:
    import httpx

    from .. import db
    from .evaluation import eval_from_settings, start_service

    if url is None and docs is None:
        try:
            httpx.get(f"{settings.rag.url}/_schema", timeout=2.0)
            url = settings.rag.url
        except httpx.HTTPError:
            docs = db.data_path("sample", "docs")
    if url is not None:
        report = eval_from_settings(settings, url=url, eval_file=eval_file, k=k, answers=answers, console=console)
    else:
        from contextlib import ExitStack

        env = {"YSH_RAG_LIVE_RECORDS": "false", "YSH_RAG_PGVECTOR": "false"}  # the corpus alone
        with ExitStack() as stack:
            with console.status(f"starting a Hélio service over {docs} (embedding the corpus)…"):
                running = stack.enter_context(start_service(docs, env=env))
            report = eval_from_settings(settings, url=running.url, eval_file=eval_file, k=k, answers=answers,
                                        console=console)
    if not report.meets_target:
        raise typer.Exit(1)


DEMO_QUESTIONS = (
    "Qual o prazo de validade dos créditos de energia na Lei 14.300?",
    "Quais documentos preciso para pedir a conexão de uma microgeração?",
    "Qual a tarifa B1 da CPFL Paulista hoje, com TE e TUSD?",  # a live record from the warehouse
)


def demo_questions(settings, warehouse, out: Console = console, *, as_of=None) -> None:
    """``ysh demo``'s RAG part: the sample corpus copied to the documents folder, a Hélio
    service over it and the warehouse's live catalog and tariff records (with the pgvector
    copy), three questions answered with their citations, and the service stopped.
    ``as_of``: the day the tariff records show (the demo's sample tariffs end at a fixed
    date; past it, "today" would find no tariff in force)."""
    import shutil
    from contextlib import ExitStack

    import httpx

    from .. import db
    from .evaluation import headers_for, start_service

    folder = settings.rag.docs_dir
    folder.mkdir(parents=True, exist_ok=True)
    sample = db.data_path("sample", "docs")
    for path in sorted(sample.iterdir()):
        if path.is_file():
            shutil.copy2(path, folder / path.name)
    env = {"YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema,
           "YSH_RAG_LIVE_RECORDS": "true", "YSH_RAG_PGVECTOR": "true"}
    if as_of is not None:
        env["YSH_RAG_RECORDS_AS_OF"] = as_of.isoformat()
        out.print(f"live tariff records as of {as_of} (the sample tariffs end there)")
    with ExitStack() as stack:
        with out.status(f"Hélio: indexing {folder} and the live catalog/tariff records (local MiniLM embeddings)…"):
            service = stack.enter_context(start_service(folder, env=env, log_path=settings.home_dir / "helio-demo.log"))
        client = stack.enter_context(httpx.Client(timeout=60.0, headers=headers_for(service.api_key)))
        stats = client.get(f"{service.url}/v1/statistics").json()
        out.print(f"[green]✓[/] Hélio indexed {stats.get('files')} documents and records into {stats.get('chunks')} "
                  f"chunks in {service.started_s:.0f} s (API {service.url}, log {service.log_path})")
        for question in DEMO_QUESTIONS:
            reply = client.post(f"{service.url}/v2/answer", json={"prompt": question}).json()
            out.print(f"\n[bold]? {question}[/]\n{reply.get('answer', '').strip()}")
            for c in reply.get("citations", [])[:3]:
                where = f"p. {c['page']}" if c.get("page") else (c.get("section") or "")
                out.print(f"   [dim]↳ {c['path']}{' — ' + where if where else ''}[/]")
