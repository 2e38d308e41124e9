"""``ysh rag …``: the Hélio service (live document index + answer API)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Hélio RAG: live hybrid index over documents, answers with citations.",
                  no_args_is_help=True)
console = Console()


@app.command()
def serve(
    docs: Path | None = typer.Option(None, "--docs", help="Documents folder (default: YSH_RAG_DOCS_DIR or HOME/docs)."),
    host: str | None = typer.Option(None, "--host", help="Listen address (default: YSH_RAG_HOST)."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port (default: YSH_RAG_PORT)."),
) -> None:
    """Index the documents (PDF, DOCX, HTML, Markdown, TXT) live and serve the Hélio API:
    /v1/retrieve, /v1/statistics, /v1/inputs, /v2/answer and /_schema. Runs until stopped."""
    from ..settings import get_settings

    settings = get_settings()
    if settings.rag_source == "fs" or docs is not None:
        folder = (docs or settings.rag_docs_folder).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            console.print(f"[red]--docs {folder} is not a folder[/]")
            raise typer.Exit(2)
        if not folder.exists():
            folder.mkdir(parents=True)
            console.print(f"documents folder {folder} did not exist: created it (empty; add files to index them)")
        where = str(folder)
    else:
        folder = None
        where = {"s3": f"s3://{settings.rag_s3_bucket}/{settings.rag_s3_prefix}",
                 "gdrive": f"Google Drive folder {settings.rag_gdrive_object_id}"}[settings.rag_source]
    host = host or settings.rag_host
    port = port or settings.rag_port
    auth = "X-API-Key required" if settings.rag_api_key else "no API key (YSH_RAG_API_KEY unset)"
    answers = f"LLM {settings.rag_chat_model} at {settings.rag_openai_base_url}" if settings.rag_openai_base_url \
        else "extractive answers"
    console.print(f"Hélio: indexing [bold]{where}[/] with {settings.rag_embedder}; API on "
                  f"[cyan]http://{host}:{port}[/] ({auth}; {answers}); Ctrl-C to stop")
    from .app import serve as run_service

    try:
        run_service(settings, docs_dir=folder, host=host, port=port)
    except KeyboardInterrupt:
        console.print("stopped")
    except (ValueError, OSError) as exc:
        console.print(f"[red]cannot start the Hélio service:[/] {exc}")
        raise typer.Exit(1) from None
