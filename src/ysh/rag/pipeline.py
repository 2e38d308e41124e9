"""The Hélio RAG graph (Pathway): documents → parse + chunk → embeddings → hybrid index,
and the query transformers the server wires to routes.

``documents → DocumentStore(parser=SafeParser, doc_post_processors=[finalize], splitter=
DropSentinel, retriever_factory=SharedHybridFactory([UsearchKnnFactory(embedder, 384, COS),
FoldedBM25Factory()], k=rrf_k))``

* :class:`SafeParser` parses *and* chunks one file (so ``chunk_index`` runs across a PDF's
  pages) and never raises: a bad file becomes one sentinel row ``("", {"_parse_error":
  reason})`` that :class:`DropSentinel` removes and ``/v1/inputs`` reports. (A raising UDF
  would stop the whole pipeline, or silently lose the row with ``terminate_on_error=False``.)
* :class:`SharedHybridFactory` builds the dense (usearch) and BM25 (tantivy, accent-folded)
  indexes once and the RRF hybrid over them, so ``retriever`` = hybrid | dense | bm25 share
  one set of indexes and one embedding per chunk.
* Queries over-fetch ``max(20, 4k)`` candidates from each index before fusion, then keep k.

Never calls ``pw.run``: :mod:`ysh.rag.app` does. No ``from __future__ import annotations``
(Pathway reads UDF annotations at graph-building time).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pathway as pw
from pathway.stdlib.indexing import (
    HybridIndexFactory,
    TantivyBM25,
    TantivyBM25Factory,
    UsearchKnnFactory,
    USearchMetricKind,
)
from pathway.stdlib.indexing.data_index import _SCORE, DataIndex
from pathway.stdlib.indexing.hybrid_index import HybridIndex
from pathway.xpacks.llm.document_store import DocumentStore
from pathway.xpacks.llm.splitters import BaseSplitter

from .chunking import TokenChunker, analyze_pt
from .embedding import CachedEmbedder
from .parsing import DEFAULT_MAX_FILE_BYTES, ParseError, parse_document
from .security import keep_inside_docs_root

log = logging.getLogger("ysh.rag.pipeline")

RETRIEVERS = ("hybrid", "dense", "bm25")
_NO_MATCH = "zzqqnomatchqqzz"


# --------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------


def read_documents(settings, docs_dir: Path | None = None, *, mode: str = "streaming",
                   autocommit_duration_ms: int = 50) -> pw.Table:
    """The documents (``data: bytes``, ``_metadata: Json`` with path, modified_at, size…)
    of ``settings.rag_source``: a folder (default; ``docs_dir`` or ``rag_docs_folder``), an
    S3/MinIO prefix (``rag_s3_bucket``/``rag_s3_prefix`` with the ``s3_*`` settings), or a
    Google Drive folder (only with ``rag_gdrive_object_id`` and a credentials file).
    Streaming picks up additions, modifications and deletions."""
    source = settings.rag_source if docs_dir is None else "fs"
    if source == "fs":
        folder = Path(docs_dir or settings.rag_docs_folder)
        docs = pw.io.fs.read(str(folder), format="binary", mode=mode, with_metadata=True,
                             autocommit_duration_ms=autocommit_duration_ms, name="rag_docs")
        # the reader follows symlinks: one that points outside the folder is not indexed
        return keep_inside_docs_root(docs, folder)
    if source == "s3":
        if not settings.rag_s3_bucket:
            raise ValueError("YSH_RAG_SOURCE=s3 needs YSH_RAG_S3_BUCKET")
        s3 = pw.io.s3.AwsS3Settings(
            bucket_name=settings.rag_s3_bucket,
            access_key=settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None,
            secret_access_key=(settings.s3_secret_access_key.get_secret_value()
                               if settings.s3_secret_access_key else None),
            region=settings.s3_region, endpoint=settings.s3_endpoint_url,
            with_path_style=settings.s3_endpoint_url is not None)
        return pw.io.s3.read(settings.rag_s3_prefix, aws_s3_settings=s3, format="binary", mode=mode,
                             with_metadata=True, autocommit_duration_ms=autocommit_duration_ms, name="rag_docs_s3")
    if source == "gdrive":
        credentials = settings.rag_gdrive_credentials_file
        if not settings.rag_gdrive_object_id or not credentials or not Path(credentials).is_file():
            raise ValueError("YSH_RAG_SOURCE=gdrive needs YSH_RAG_GDRIVE_OBJECT_ID and an existing "
                             "YSH_RAG_GDRIVE_CREDENTIALS_FILE (service-account JSON)")
        return pw.io.gdrive.read(settings.rag_gdrive_object_id, mode=mode, format="binary", with_metadata=True,
                                 service_user_credentials_file=str(credentials), refresh_interval=30,
                                 object_size_limit=settings.rag_max_file_bytes, name="rag_docs_gdrive")
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


class DropSentinel(BaseSplitter):
    """The splitter stage: chunks come ready from :class:`SafeParser`; drop error rows."""

    def chunk(self, text: str, metadata: dict = {}, **kwargs) -> list[tuple[str, dict]]:  # noqa: B006
        return [(text, {})] if text.strip() else []


# --------------------------------------------------------------------------------------
# indexes
# --------------------------------------------------------------------------------------

_analyze = pw.udf(analyze_pt, deterministic=True)


@pw.udf(deterministic=True)
def _analyze_chunk(text: str, metadata: pw.Json | None) -> str:
    """The lexical view of a chunk: its document title and heading path are searchable
    with its text (a question naming the document or the section finds the chunk)."""
    md = metadata.as_dict() if isinstance(metadata, pw.Json) and isinstance(metadata.value, dict) else {}
    context = " ".join(str(md.get(key) or "") for key in ("title", "heading_path" if md.get("heading_path")
                                                           else "section"))
    return analyze_pt(f"{context}\n{text}")


def _rebind(expr, table):
    return table[expr.name] if isinstance(expr, pw.ColumnReference) else expr


class FoldedBM25(TantivyBM25):
    """Tantivy BM25 over the Portuguese analysis of the text (:func:`analyze_pt`: folded,
    stemmed, codes kept whole), queried through the same analysis (any query parses: no
    ``EngineError: Syntax Error`` for ``Fio B: 2026``)."""

    def query_as_of_now(self, query_column, number_of_matches=3, metadata_filter=None):
        q = query_column.table.with_columns(_ysh_bm25_query=_analyze(query_column))
        q = q.with_columns(_ysh_bm25_query=pw.if_else(pw.this._ysh_bm25_query == "", _NO_MATCH,
                                                      pw.this._ysh_bm25_query))
        return super().query_as_of_now(
            q._ysh_bm25_query, number_of_matches=_rebind(number_of_matches, q),
            metadata_filter=_rebind(metadata_filter, q) if metadata_filter is not None else None)


class FoldedBM25Factory(TantivyBM25Factory):
    def build_inner_index(self, data_column, metadata_column=None):
        t = data_column.table.with_columns(
            _ysh_bm25_text=_analyze_chunk(data_column, metadata_column) if metadata_column is not None
            else _analyze(data_column))
        return FoldedBM25(t._ysh_bm25_text, _rebind(metadata_column, t) if metadata_column is not None else None,
                          ram_budget=self.ram_budget, in_memory_index=self.in_memory_index)


class WeightedHybridIndex(HybridIndex):
    """Reciprocal-rank fusion with a weight per member index: a row at rank ``r`` of
    member ``i`` scores ``weights[i] / (k + r)``. Pathway's ``HybridIndex`` weighs every
    member alike, which let the English dense model pull Portuguese BM25's right answer
    down (docs/rag.md); this is its ``_combine_results`` with the weight applied."""

    def __init__(self, retrievers, k: float = 60, weights: Sequence[float] | None = None):
        super().__init__(retrievers, k)
        self.weights = list(weights) if weights is not None else [1.0] * len(retrievers)
        if len(self.weights) != len(retrievers):
            raise ValueError("one weight per member index")

    def _combine_results(self, query_retriever, query_table, number_of_matches, *, as_of_now: bool):
        from pathway.stdlib.indexing.colnames import _INDEX_REPLY, _MATCHED_ID, _QUERY_ID, _SCORE

        @pw.udf(deterministic=True)
        def enumerate_results(results: list[tuple[pw.Pointer, float]]) -> list[tuple[int, pw.Pointer]]:
            return [(i, x[0]) for i, x in enumerate(results, start=1)]

        def query_single_retriever(retriever, weight: float) -> pw.Table:
            results = (
                query_retriever(retriever)
                .select(**{_INDEX_REPLY: enumerate_results(pw.this[_INDEX_REPLY]), _QUERY_ID: pw.this.id})
                .flatten(pw.this[_INDEX_REPLY])
                .select(**{_MATCHED_ID: pw.this[_INDEX_REPLY].get(1),
                           _SCORE: weight / (self.k + pw.this[_INDEX_REPLY].get(0)),
                           _QUERY_ID: pw.this[_QUERY_ID]})
            )
            return results._forget_immediately() if as_of_now else results

        results = pw.Table.concat_reindex(*[query_single_retriever(r, w)
                                            for r, w in zip(self.retrievers, self.weights) if w > 0])
        removed_duplicates = results.groupby(results[_QUERY_ID], results[_MATCHED_ID]).reduce(
            pw.this[_QUERY_ID], pw.this[_MATCHED_ID],
            _pw_groupby_sort_key=-pw.reducers.sum(pw.this[_SCORE]),
            **{_SCORE: pw.reducers.sum(pw.this[_SCORE])})

        @pw.udf(deterministic=True)
        def limit_results(results: tuple, count: int) -> tuple:
            return results[:count]

        grouped_by_query = removed_duplicates.groupby(
            pw.this[_QUERY_ID], sort_by=pw.this._pw_groupby_sort_key, id=pw.this[_QUERY_ID],
        ).reduce(**{_INDEX_REPLY: pw.reducers.tuple(pw.make_tuple(pw.this[_MATCHED_ID], pw.this[_SCORE]))})
        if isinstance(number_of_matches, pw.ColumnExpression):
            number_of_matches_table = query_table.select(_pw_number_of_matches=number_of_matches)
            if as_of_now:
                number_of_matches_table = number_of_matches_table._forget_immediately()
            grouped_by_query.promise_universe_is_subset_of(number_of_matches_table)
            number_of_matches = number_of_matches_table.restrict(grouped_by_query)._pw_number_of_matches
        limited = grouped_by_query.select(**{_INDEX_REPLY: limit_results(pw.this[_INDEX_REPLY], number_of_matches)})
        if as_of_now:
            limited = limited.filter_out_results_of_forgetting(ensure_consistency=False)
        return limited


class SharedHybridFactory(HybridIndexFactory):
    """``HybridIndexFactory([dense, bm25])`` that keeps the inner indexes it builds, so the
    same dense and BM25 indexes also answer dense-only and BM25-only queries. Dense
    queries are embedded by ``query_embedder`` (same model, separate cache/counters)."""

    def __init__(self, retriever_factories, k: float = 60, query_embedder: CachedEmbedder | None = None,
                 dense_weight: float = 1.0):
        super().__init__(retriever_factories, k=k)
        self.query_embedder = query_embedder
        self.dense_weight = dense_weight
        self.inner: dict[str, object] = {}

    def build_inner_index(self, data_column, metadata_column=None):
        dense_factory, bm25_factory = self.retriever_factories
        dense = dense_factory.build_inner_index(data_column, metadata_column)
        if self.query_embedder is not None:  # documents were embedded at construction; queries use this one
            object.__setattr__(dense, "embedder", self.query_embedder)
        bm25 = bm25_factory.build_inner_index(data_column, metadata_column)
        hybrid = WeightedHybridIndex([dense, bm25], self.k, [self.dense_weight, 1.0])
        self.inner = {"dense": dense, "bm25": bm25, "hybrid": hybrid}
        return hybrid


# --------------------------------------------------------------------------------------
# the graph
# --------------------------------------------------------------------------------------


class RetrieveSchema(pw.Schema):
    query: str = pw.column_definition(description="Question or keywords (Portuguese)",
                                      example="Qual o percentual do Fio B em 2026?")
    k: int = pw.column_definition(default_value=5, description="Number of passages (1..50)", example=5)
    metadata_filter: str | None = pw.column_definition(
        default_value=None, description="JMESPath filter over the chunk metadata, e.g. contains(path, `lei`)")
    filepath_globpattern: str | None = pw.column_definition(
        default_value=None, description="Glob over the document path, e.g. **/*.pdf")
    retriever: str = pw.column_definition(default_value="hybrid", description="hybrid | dense | bm25",
                                          example="hybrid")


def _clean_metadata(md: dict) -> dict:
    return {k: v for k, v in md.items() if not k.startswith("_") and k not in ("seen_at", "owner")}


@pw.udf
def _format_hits(texts: tuple, metadatas: tuple, scores: tuple, k: int) -> pw.Json:
    hits = sorted(zip(texts, metadatas, scores), key=lambda h: -h[2])[: max(k, 0)]
    return pw.Json([{"text": text, "score": float(score),
                     "metadata": _clean_metadata(md.as_dict() if isinstance(md, pw.Json) else dict(md))}
                    for text, md, score in hits])


@dataclass
class RagGraph:
    """The built graph: the document store, its indexes, the embedder and status tables."""

    store: DocumentStore
    indexes: dict  # retriever name → DataIndex
    embedder: CachedEmbedder
    stats: pw.Table  # one row: files, chunks, last_modified, last_indexed, errors
    files: pw.Table  # one row: entries (tuple of per-file Json)

    def retrieve(self, queries: pw.Table) -> pw.Table:
        """Queries with ``RetrieveSchema`` columns → ``result``: JSON list of
        ``{text, score, metadata}``, best first (same row ids as ``queries``)."""
        queries = queries.with_columns(
            _fetch=pw.apply_with_type(lambda k: max(20, 4 * k), int, pw.this.k),
            retriever=pw.apply_with_type(lambda r: r if r in RETRIEVERS else "hybrid", str, pw.this.retriever),
        )
        queries = DocumentStore.merge_filters(queries)
        parts = []
        for name in RETRIEVERS:
            subset = queries.filter(pw.this.retriever == name)
            found = subset + self.indexes[name].query_as_of_now(
                subset.query, number_of_matches=subset._fetch, metadata_filter=subset.metadata_filter,
            ).select(
                _texts=pw.coalesce(pw.right.text, ()),
                _metas=pw.coalesce(pw.right.metadata, ()),
                _scores=pw.coalesce(pw.right[_SCORE], ()),
            )
            parts.append(found.select(result=_format_hits(pw.this._texts, pw.this._metas, pw.this._scores,
                                                          pw.this.k)))
        pw.universes.promise_are_pairwise_disjoint(*parts)
        return pw.Table.concat(*parts)

    def statistics(self, queries: pw.Table) -> pw.Table:
        """Any query → ``result``: {files, chunks, last_modified, last_indexed, errors,
        embedded, cache_hits, embedding: {…counters}} as of the query's arrival."""
        cache = self.embedder.cache

        @pw.udf
        def fmt(files: int | None, chunks: int | None, last_modified: int | None, last_indexed: int | None,
                errors: int | None) -> pw.Json:
            counters = cache.stats()
            return pw.Json({"files": files or 0, "chunks": chunks or 0, "last_modified": last_modified or None,
                            "last_indexed": last_indexed or None, "errors": errors or 0,
                            "embedded": counters["embedded"], "cache_hits": counters["cache_hits"],
                            "embedding": counters})

        joined = queries.with_columns(_one=0).asof_now_join_left(
            self.stats, pw.left._one == pw.right._one, id=pw.left.id)
        return joined.select(result=fmt(pw.right.files, pw.right.chunks, pw.right.last_modified,
                                        pw.right.last_indexed, pw.right.errors))

    def inputs(self, queries: pw.Table) -> pw.Table:
        """Any query → ``result``: JSON list of {path, status: indexed|error|empty, reason,
        chunks, modified_at, size}, sorted by path."""

        @pw.udf
        def fmt(entries: tuple | None) -> pw.Json:
            rows = [e.as_dict() if isinstance(e, pw.Json) else e for e in (entries or ())]
            return pw.Json(sorted(rows, key=lambda e: str(e.get("path") or "")))

        joined = queries.with_columns(_one=0).asof_now_join_left(
            self.files, pw.left._one == pw.right._one, id=pw.left.id)
        return joined.select(result=fmt(pw.right.entries))


@pw.udf
def _file_entry(metadata: pw.Json, error: str | None, chunks: int) -> pw.Json:
    md = metadata.as_dict()
    status = "error" if error else ("indexed" if chunks > 0 else "empty")
    return pw.Json({"path": md.get("path"), "status": status, "reason": error, "chunks": chunks,
                    "modified_at": md.get("modified_at"), "size": md.get("size")})


def build_rag_graph(documents: pw.Table | Sequence[pw.Table], embedder: CachedEmbedder, *,
                    chunk_tokens: int = 200, chunk_overlap: int = 40, rrf_k: float = 60.0,
                    dense_weight: float = 1.0,
                    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> RagGraph:
    """Build the graph over ``documents`` (one table or several: files and live records,
    each with ``data: bytes`` and ``_metadata: Json`` holding at least ``path``)."""
    tables = [documents] if isinstance(documents, pw.Table) else list(documents)
    chunker = TokenChunker(chunk_tokens, chunk_overlap)
    dense = UsearchKnnFactory(dimensions=embedder.get_embedding_dimension(), reserved_space=1000,
                              metric=USearchMetricKind.COS, embedder=embedder)
    bm25 = FoldedBM25Factory(ram_budget=50 * 1024 * 1024, in_memory_index=True)
    factory = SharedHybridFactory([dense, bm25], k=rrf_k, query_embedder=embedder.for_queries(),
                                  dense_weight=dense_weight)
    store = DocumentStore(tables, retriever_factory=factory, parser=SafeParser(chunker, max_file_bytes),
                          splitter=DropSentinel(), doc_post_processors=[finalize_metadata])
    chunked = store.chunked_docs
    indexes = {name: (store.index if name == "hybrid" else DataIndex(chunked, factory.inner[name]))
               for name in RETRIEVERS}

    errors = (store.parsed_docs
              .select(file_id=pw.this.metadata["_file_id"].as_str(),
                      error=pw.this.metadata["_parse_error"].as_str())
              .groupby(pw.this.file_id)
              .reduce(pw.this.file_id, error=pw.reducers.max(pw.this.error)))
    chunk_counts = (chunked.with_columns(file_id=pw.this.metadata["_file_id"].as_str())
                    .groupby(pw.this.file_id)
                    .reduce(pw.this.file_id, chunks=pw.reducers.count(),
                            seen_at=pw.reducers.max(pw.coalesce(pw.this.metadata["seen_at"].as_int(), 0))))
    files = store.input_docs.select(file_id=pw.this.metadata["_file_id"].as_str(), metadata=pw.this.metadata,
                                    modified_at=pw.coalesce(pw.this.metadata["modified_at"].as_int(), 0))
    files = files.join_left(errors, pw.left.file_id == pw.right.file_id).select(*pw.left, error=pw.right.error)
    files = files.join_left(chunk_counts, pw.left.file_id == pw.right.file_id).select(
        *pw.left, chunks=pw.coalesce(pw.right.chunks, 0), seen_at=pw.coalesce(pw.right.seen_at, 0))
    files = files.with_columns(is_error=pw.if_else(pw.this.error.is_not_none(), 1, 0))
    stats = files.reduce(files=pw.reducers.count(), chunks=pw.reducers.sum(pw.this.chunks),
                         last_modified=pw.reducers.max(pw.this.modified_at),
                         last_indexed=pw.reducers.max(pw.this.seen_at),
                         errors=pw.reducers.sum(pw.this.is_error)).with_columns(_one=0)
    entries = files.select(entry=_file_entry(pw.this.metadata, pw.this.error, pw.this.chunks)).reduce(
        entries=pw.reducers.tuple(pw.this.entry)).with_columns(_one=0)
    return RagGraph(store=store, indexes=indexes, embedder=embedder, stats=stats, files=entries)


def build_from_settings(settings, embedder: CachedEmbedder, *, docs_dir: Path | None = None,
                        extra_tables: Sequence[pw.Table] = (), mode: str = "streaming") -> RagGraph:
    """:func:`build_rag_graph` over the configured document source plus ``extra_tables``."""
    documents = [read_documents(settings, docs_dir, mode=mode), *extra_tables]
    return build_rag_graph(documents, embedder, chunk_tokens=settings.rag_chunk_tokens,
                           chunk_overlap=settings.rag_chunk_overlap, rrf_k=settings.rag_rrf_k,
                           dense_weight=settings.rag_dense_weight, max_file_bytes=settings.rag_max_file_bytes)
