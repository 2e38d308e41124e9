"""The Hélio RAG graph (Pathway): documents → parse + chunk → embed + analyze → the live
index's feed, and the status tables.

``documents (files, live records) → input_docs (+ _file_id) → SafeParser (parse and chunk
one file; never raises) → finalize_metadata → chunks (text, metadata, vector, terms)``

* :class:`SafeParser` parses *and* chunks one file (so ``chunk_index`` runs across a PDF's
  pages) and never raises: a bad file becomes one sentinel row ``("", {"_parse_error":
  reason})`` that is kept out of the chunks and reported by ``/v1/inputs``. (A raising UDF
  would stop the whole pipeline, or silently lose the row with ``terminate_on_error=False``.)
* ``chunks`` carries each chunk's vector (the embedder's cache answers unchanged texts) and
  its Portuguese lexical analysis (:func:`analyze_pt` of title + heading path + text).
  :meth:`RagGraph.attach` subscribes a :class:`~ysh.rag.serving.LiveIndex` to it: queries
  are answered from that index, outside the dataflow (docs/rag.md, "Serving").

Never calls ``pw.run``: :mod:`ysh.rag.app` does. No ``from __future__ import annotations``
(Pathway reads UDF annotations at graph-building time).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pathway as pw
from pathway.xpacks.llm.utils import combine_metadata

from .chunking import TokenChunker, analyze_pt, file_words
from .embedding import CachedEmbedder
from .parsing import DEFAULT_MAX_FILE_BYTES, ParseError, parse_document
from .security import keep_inside_docs_root
from .serving import RETRIEVERS, IndexFeed, LatestRow, LiveIndex

log = logging.getLogger("ysh.rag.pipeline")

__all__ = ["RETRIEVERS", "RagGraph", "build_rag_graph", "build_from_settings", "read_documents"]


# --------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------


def read_documents(settings, docs_dir: Path | None = None, *, mode: str = "streaming",
                   autocommit_duration_ms: int = 50) -> pw.Table:
    """The documents (``data: bytes``, ``_metadata: Json`` with path, modified_at, size…)
    of ``settings.rag.source``: a folder (default; ``settings.rag.docs_dir``), an
    S3/MinIO prefix (``settings.rag.s3_bucket``/``s3_prefix`` with ``settings.s3``), or a
    Google Drive folder (only with ``settings.rag.gdrive_object_id`` and a credentials file).
    Streaming picks up additions, modifications and deletions."""
    source = settings.rag.source if docs_dir is None else "fs"
    if source == "fs":
        folder = Path(docs_dir or settings.rag.docs_dir)
        docs = pw.io.fs.read(str(folder), format="binary", mode=mode, with_metadata=True,
                             autocommit_duration_ms=autocommit_duration_ms, name="rag_docs")
        # the reader follows symlinks: one that points outside the folder is not indexed
        return keep_inside_docs_root(docs, folder)
    if source == "s3":
        if not settings.rag.s3_bucket:
            raise ValueError("YSH_RAG_SOURCE=s3 needs YSH_RAG_S3_BUCKET")
        s3 = pw.io.s3.AwsS3Settings(
            bucket_name=settings.rag.s3_bucket,
            access_key=settings.s3.access_key_id.get_secret_value() if settings.s3.access_key_id else None,
            secret_access_key=(settings.s3.secret_access_key.get_secret_value()
                               if settings.s3.secret_access_key else None),
            region=settings.s3.region, endpoint=settings.s3.endpoint_url,
            with_path_style=settings.s3.endpoint_url is not None)
        return pw.io.s3.read(settings.rag.s3_prefix, aws_s3_settings=s3, format="binary", mode=mode,
                             with_metadata=True, autocommit_duration_ms=autocommit_duration_ms, name="rag_docs_s3")
    if source == "gdrive":
        credentials = settings.rag.gdrive_credentials_file
        if not settings.rag.gdrive_object_id or not credentials or not Path(credentials).is_file():
            raise ValueError("YSH_RAG_SOURCE=gdrive needs YSH_RAG_GDRIVE_OBJECT_ID and an existing "
                             "YSH_RAG_GDRIVE_CREDENTIALS_FILE (service-account JSON)")
        return pw.io.gdrive.read(settings.rag.gdrive_object_id, mode=mode, format="binary", with_metadata=True,
                                 service_user_credentials_file=str(credentials), refresh_interval=30,
                                 object_size_limit=settings.rag.max_file_bytes, name="rag_docs_gdrive")
    raise ValueError(f"unknown YSH_RAG_SOURCE {source!r}: fs, s3 or gdrive")


# --------------------------------------------------------------------------------------
# parsing and chunking UDFs
# --------------------------------------------------------------------------------------


class SafeParser(pw.UDF):
    """bytes → chunks ``[(text, {title, format, page?, section?, chunk_index,
    content_sha256})]``; never raises (a failure is one ``_parse_error`` sentinel row)."""

    def __init__(self, chunker: TokenChunker, max_bytes: int = DEFAULT_MAX_FILE_BYTES):
        super().__init__()
        self.chunker = chunker
        self.max_bytes = max_bytes

    def __wrapped__(self, contents: bytes) -> list[tuple[str, dict]]:
        try:
            parts = parse_document(contents, max_bytes=self.max_bytes)
            chunks = self.chunker.chunk_document(parts)
        except ParseError as exc:
            return [("", {"_parse_error": str(exc)[:500]})]
        except Exception as exc:  # a parser bug must not stop the pipeline either
            return [("", {"_parse_error": f"{type(exc).__name__}: {exc}"[:500]})]
        if not chunks:
            return [("", {"_parse_error": "no extractable text"})]
        # the source's own title (live records) wins over the parsed one
        return [(text, {**{k: v for k, v in md.items() if k != "title"}, "doc_title": md.get("title", "")})
                for text, md in chunks]


def finalize_metadata(text: str, metadata: dict) -> tuple[str, dict]:
    """Document post-processor (sees file + chunk metadata): ``title`` from the source's
    metadata when it has one, else the parsed title."""
    md = dict(metadata.as_dict() if isinstance(metadata, pw.Json) else metadata)
    doc_title = md.pop("doc_title", "")
    if not md.get("title"):
        md["title"] = doc_title or Path(str(md.get("path") or "")).name
    return text, md


# --------------------------------------------------------------------------------------
# the graph
# --------------------------------------------------------------------------------------


@pw.udf(deterministic=True)
def _finalized(text: str, metadata: pw.Json) -> pw.Json:
    return pw.Json(finalize_metadata(text, metadata)[1])


@pw.udf(deterministic=True)
def _with_file_id(metadata: pw.Json, id) -> dict:
    md = metadata.as_dict() if isinstance(metadata, pw.Json) and isinstance(metadata.value, dict) else {}
    return {**md, "_file_id": str(id)}


@pw.udf(deterministic=True)
def _lexical_view(text: str, metadata: pw.Json) -> str:
    """The lexical view of a chunk: its document title and heading path are searchable
    with its text (a question naming the document or the section finds the chunk)."""
    md = metadata.as_dict() if isinstance(metadata, pw.Json) and isinstance(metadata.value, dict) else {}
    context = " ".join(str(md.get(key) or "") for key in ("title", "heading_path" if md.get("heading_path")
                                                           else "section"))
    return analyze_pt(f"{file_words(str(md.get('path') or ''))}\n{context}\n{text}")



@pw.udf
def _file_entry(metadata: pw.Json, error: str | None, chunks: int) -> pw.Json:
    md = metadata.as_dict()
    status = "error" if error else ("indexed" if chunks > 0 else "empty")
    return pw.Json({"path": md.get("path"), "status": status, "reason": error, "chunks": chunks,
                    "modified_at": md.get("modified_at"), "size": md.get("size")})


@dataclass
class RagGraph:
    """The built graph: the chunks the index is fed from, the embedder, the status tables."""

    chunks: pw.Table  # text, metadata, vector, terms: what the index holds
    embedder: CachedEmbedder
    stats: pw.Table  # one row: files, chunks, last_modified, last_indexed, errors
    files: pw.Table  # one row: entries (tuple of per-file Json)
    rrf_k: float = 60.0
    dense_weight: float = 1.0

    def live_index(self) -> LiveIndex:
        """A :class:`LiveIndex` for this graph's embedder and fusion settings (empty until
        :meth:`attach` feeds it)."""
        cache = self.embedder.cache
        return LiveIndex(self.embedder.get_embedding_dimension(), rrf_k=self.rrf_k, dense_weight=self.dense_weight,
                         embed_queries=lambda texts: cache.embed(texts, queries=True))

    def attach(self, index: LiveIndex) -> tuple[LatestRow, LatestRow]:
        """Subscribe ``index`` to the chunks (each committed batch applied whole) and return
        the live statistics and inputs rows."""
        feed = IndexFeed(index)
        pw.io.subscribe(self.chunks, on_change=feed.on_change, on_time_end=feed.on_time_end, name="rag_index")
        stats, files = LatestRow(), LatestRow()
        pw.io.subscribe(self.stats, on_change=stats.on_change, on_time_end=stats.on_time_end, name="rag_stats")
        pw.io.subscribe(self.files, on_change=files.on_change, on_time_end=files.on_time_end, name="rag_inputs")
        return stats, files


def build_rag_graph(documents: pw.Table | Sequence[pw.Table], embedder: CachedEmbedder, *,
                    chunk_tokens: int = 200, chunk_overlap: int = 40, rrf_k: float = 60.0,
                    dense_weight: float = 1.0,
                    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> RagGraph:
    """Build the graph over ``documents`` (one table or several: files and live records,
    each with ``data: bytes`` and ``_metadata: Json`` holding at least ``path``)."""
    tables = [documents] if isinstance(documents, pw.Table) else list(documents)
    if not tables:
        raise ValueError("at least one document table is needed")
    docs = pw.Table.concat_reindex(*[t.select(pw.this.data, pw.this._metadata) for t in tables])
    input_docs = docs.select(text=pw.this.data, metadata=_with_file_id(pw.this._metadata, pw.this.id))
    parser = SafeParser(TokenChunker(chunk_tokens, chunk_overlap), max_file_bytes)
    parsed = input_docs.select(text=parser(pw.this.text), metadata=pw.this.metadata).flatten(pw.this.text)
    parsed_docs = combine_metadata(parsed)  # text: str, metadata: file metadata | chunk metadata
    chunked = (parsed_docs.filter(pw.apply_with_type(lambda t: bool(t.strip()), bool, pw.this.text))
               .select(pw.this.text, metadata=_finalized(pw.this.text, pw.this.metadata)))
    chunks = chunked.with_columns(vector=embedder(pw.this.text),
                                  terms=_lexical_view(pw.this.text, pw.this.metadata))

    errors = (parsed_docs
              .select(file_id=pw.this.metadata["_file_id"].as_str(),
                      error=pw.this.metadata["_parse_error"].as_str())
              .groupby(pw.this.file_id)
              .reduce(pw.this.file_id, error=pw.reducers.max(pw.this.error)))
    chunk_counts = (chunked.with_columns(file_id=pw.this.metadata["_file_id"].as_str())
                    .groupby(pw.this.file_id)
                    .reduce(pw.this.file_id, chunks=pw.reducers.count(),
                            seen_at=pw.reducers.max(pw.coalesce(pw.this.metadata["seen_at"].as_int(), 0))))
    files = input_docs.select(file_id=pw.this.metadata["_file_id"].as_str(), metadata=pw.this.metadata,
                              modified_at=pw.coalesce(pw.this.metadata["modified_at"].as_int(), 0))
    files = files.join_left(errors, pw.left.file_id == pw.right.file_id).select(*pw.left, error=pw.right.error)
    files = files.join_left(chunk_counts, pw.left.file_id == pw.right.file_id).select(
        *pw.left, chunks=pw.coalesce(pw.right.chunks, 0), seen_at=pw.coalesce(pw.right.seen_at, 0))
    files = files.with_columns(is_error=pw.if_else(pw.this.error.is_not_none(), 1, 0))
    stats = files.reduce(files=pw.reducers.count(), chunks=pw.reducers.sum(pw.this.chunks),
                         last_modified=pw.reducers.max(pw.this.modified_at),
                         last_indexed=pw.reducers.max(pw.this.seen_at),
                         errors=pw.reducers.sum(pw.this.is_error))
    entries = files.select(entry=_file_entry(pw.this.metadata, pw.this.error, pw.this.chunks)).reduce(
        entries=pw.reducers.tuple(pw.this.entry))
    return RagGraph(chunks=chunks, embedder=embedder,
                    stats=stats, files=entries, rrf_k=rrf_k, dense_weight=dense_weight)


def build_from_settings(settings, embedder: CachedEmbedder, *, docs_dir: Path | None = None,
                        extra_tables: Sequence[pw.Table] = (), mode: str = "streaming") -> RagGraph:
    """:func:`build_rag_graph` over the configured document source plus ``extra_tables``."""
    documents = [read_documents(settings, docs_dir, mode=mode), *extra_tables]
    return build_rag_graph(documents, embedder, chunk_tokens=settings.rag.chunk_tokens,
                           chunk_overlap=settings.rag.chunk_overlap, rrf_k=settings.rag.rrf_k,
                           dense_weight=settings.rag.dense_weight, max_file_bytes=settings.rag.max_file_bytes)
