"""The index Hélio's queries read: kept by the Pathway pipeline, searched in the API's thread.

Pathway maintains the chunk table (parse → chunk → embed → analyze, incrementally); a
subscription applies each committed batch of changes to a :class:`LiveIndex`, and the API
searches it directly. No query enters the dataflow, so nothing grows per request: the
earlier design sent every request through a ``rest_connector`` query table that keeps
every completed query (``delete_completed_queries=True`` panics Pathway 0.33), about
16 KB of RSS per query (docs/rag.md).

* **BM25** over the Portuguese analysis (:func:`ysh.rag.chunking.analyze_pt` tokens),
  the same formula as tantivy's (k1 = 1.2, b = 0.75, idf = ln(1 + (N − n + 0.5)/(n + 0.5)),
  a term repeated in the query counts again): an inverted index whose postings are
  numpy arrays rebuilt only for the terms a batch touched.
* **Dense**: unit vectors in one float32 matrix; a query is one matrix-vector product.
* **Hybrid**: weighted reciprocal-rank fusion of the two (:data:`DEFAULT_DENSE_WEIGHT`
  set in settings), then a **rerank** of the fused candidates by model-code agreement: a
  candidate that holds the question's model codes (with or without the maker's letters-only
  prefix: NEG9R.28 = TSM-NEG9R.28) moves ahead of one that holds only a sibling of them
  (numbers with units and ordinals do not count: "8 kW" is in many documents that are not
  about the question); then **BM25's first is kept** unless the fusion's first holds more
  codes than BM25's first *document* does, or (with :data:`BM25_LEAD_MARGIN` above 1)
  BM25's lead is narrow and the dense member prefers the other *document*
  (:meth:`LiveIndex._keep_bm25_lead`).
* **Filters**: ``metadata_filter`` (JMESPath, rewritten as Pathway's DocumentStore does:
  backticks become quotes) and ``filepath_globpattern`` (glob over ``path``), checked on
  candidates in rank order.

Batches are applied whole under a lock (a query never sees half of a file's update).
Searches are served a batch at a time by :class:`SearchBatcher`: the questions waiting are
embedded in one model call and scored against the vectors in one matrix product, under the
same lock.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .chunking import fold_text
from .passages import finishing_sentence

RETRIEVERS = ("hybrid", "dense", "bm25", "fusion")
#: BM25's first result stays first unless its BM25 score is below this multiple of the
#: score of the candidate the fusion put first *and* the dense member prefers that
#: candidate's document. 1.0 (from 2026-12-04): never — BM25's first is by definition the
#: highest BM25 score, so with the bundled English MiniLM the dense member no longer breaks
#: near-ties (on six tuning splits it won one and lost three once file names were
#: searchable, docs/rag.md). A multilingual embedder may earn a margin above 1 again.
BM25_LEAD_MARGIN = 1.0
#: the weight in the lexical query of a synonym the question does not use itself ("espaço
#: livre embaixo" also looks for "afastamento" and "abaixo"; :data:`ysh.rag.question._SYNONYM_GROUPS`)
SYNONYM_WEIGHT = 0.5
K1, B = 1.2, 0.75
#: a model code as analyze_pt keeps it (letters and digits together: jam72s30550mr, sun8k,
#: 5000tlx), but not a number with its unit (8kw, 550w, 60meses), which many documents share
_CODE_TOKEN = re.compile(r"^(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{3,}$")
_NUMBER_WITH_UNIT = re.compile(r"^\d+(?:v|a|w|wp|kw|kwp|kwh|mm|kg|dias|meses|anos)$")
#: nor an ordinal ("30º ano", "12ª parcela", "Art. 25º" fold to 30o, 12a, 25o)
_ORDINAL = re.compile(r"^\d+[oa]$")
_FIRST_CAPACITY = 1024


def _is_code(token: str) -> bool:
    return bool(_CODE_TOKEN.match(token)) and not _NUMBER_WITH_UNIT.match(token) and not _ORDINAL.match(token)


#: a question that weighs models against each other (folded)
_CONTRAST = re.compile(r"\b(ou|x|vs|versus|entre|diferenca|diferencas|comparar|compare|comparacao|qual dos|"
                       r"qual das|quais dos)\b")


def _without_maker_prefix(code: str, terms) -> list[str]:
    """``code`` without a leading letters-only segment that the analysis also kept as a word
    of its own (``tsmneg9r28`` → ``neg9r28`` when ``tsm`` is among ``terms``): the same
    model code written without its maker's prefix. The rest must still be a code (letters
    and digits, not a number with a unit): ``sun8k`` does not become ``8k``."""
    out = []
    for cut in range(1, len(code) - 2):
        head = code[:cut]
        if not head.isalpha():
            break
        rest = code[cut:]
        if head in terms and _is_code(rest):
            out.append(rest)
    return out


def fetch_size(k: int) -> int:
    """Candidates asked of each member index before fusion."""
    return max(20, 4 * k)


# --------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------


def _glob_to_regex(pattern: str) -> re.Pattern:
    return re.compile(fnmatch.translate(pattern.replace("**", "*")), re.DOTALL)


class _Functions:
    """JMESPath's built-ins plus Pathway's ``globmatch(pattern, value)``."""

    @functools.cached_property
    def options(self):
        import jmespath
        from jmespath import functions

        class Functions(functions.Functions):
            @functions.signature({"types": ["string"]}, {"types": ["string", "null"]})
            def _func_globmatch(self, pattern, value):
                return value is not None and _cached_glob(pattern).match(value) is not None

        return jmespath.Options(custom_functions=Functions())


_FUNCTIONS = _Functions()


@functools.lru_cache(maxsize=256)
def _cached_glob(pattern: str) -> re.Pattern:
    return _glob_to_regex(pattern)


def filter_expression(metadata_filter: str | None, filepath_globpattern: str | None) -> str | None:
    """The JMESPath expression Pathway's DocumentStore builds from the two request fields."""
    parts = []
    if metadata_filter:
        parts.append("(" + metadata_filter.replace("'", r"\'").replace("`", "'").replace('"', "") + ")")
    if filepath_globpattern:
        parts.append(f"globmatch('{filepath_globpattern}', path)")
    return " && ".join(parts) or None


@functools.lru_cache(maxsize=256)
def compile_filter(expression: str) -> Callable[[dict], bool]:
    """metadata → bool; an expression that fails on a row counts as not matching."""
    import jmespath

    compiled = jmespath.compile(expression)
    options = _FUNCTIONS.options

    def matches(metadata: dict) -> bool:
        try:
            return bool(compiled.search(metadata, options=options))
        except Exception:  # a type error on one row's metadata: that row does not match
            return False

    return matches


# --------------------------------------------------------------------------------------
# the index
# --------------------------------------------------------------------------------------


@dataclass
class Chunk:
    text: str
    metadata: dict
    terms: Counter
    length: int


@dataclass
class Change:
    """One row change from the pipeline: ``row`` None for a removal."""

    key: Hashable
    text: str = ""
    metadata: dict = field(default_factory=dict)
    vector: np.ndarray | None = None
    terms: str = ""
    removal: bool = False


def expand_query(terms: Counter) -> Counter:
    """The analyzed query terms plus their synonyms (the answerer's groups, stemmed as the
    index stems them: :func:`ysh.rag.question.index_synonyms`) at :data:`SYNONYM_WEIGHT`: a
    question in the asker's words finds the passage written in the document's ("avisar a
    YSH" / "comunicadas à YSH")."""
    from .question import index_synonyms

    table = index_synonyms()
    expanded = Counter(terms)
    for term, times in terms.items():
        for synonym in table.get(term, ()):
            if synonym not in terms:
                expanded[synonym] = max(expanded[synonym], SYNONYM_WEIGHT * times)
    return expanded


class LiveIndex:
    """Dense + BM25 + hybrid search over the chunks the pipeline delivers (thread-safe)."""

    def __init__(self, dimensions: int, *, rrf_k: float = 60.0, dense_weight: float = 1.0,
                 embed_queries: Callable[[list[str]], list[np.ndarray]] | None = None,
                 analyze: Callable[[str], str] | None = None, bm25_lead_margin: float = BM25_LEAD_MARGIN,
                 synonyms: bool = True):
        self.dimensions = dimensions
        self.synonyms = synonyms  # the lexical query also looks for the question words' synonyms
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight
        self.bm25_lead_margin = bm25_lead_margin
        self.embed_queries = embed_queries
        if analyze is None:
            from .chunking import analyze_pt as analyze
        self.analyze = analyze
        self._lock = threading.Lock()
        self._slot_of: dict[Hashable, int] = {}
        self._chunks: list[Chunk | None] = []
        self._free: list[int] = []
        self._vectors = np.zeros((_FIRST_CAPACITY, dimensions), dtype=np.float32)
        self._has_vector = np.zeros(_FIRST_CAPACITY, dtype=bool)
        self._lengths = np.zeros(_FIRST_CAPACITY, dtype=np.float32)
        self._total_length = 0
        self._postings: dict[str, dict[int, int]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._slots_of_document: dict[str, set[int]] = {}  # path → its chunks' slots
        self.batches = 0

    # ---- updates ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def apply(self, changes: Iterable[Change]) -> None:
        """Apply one committed batch: removals first, then additions (an update is both)."""
        changes = list(changes)
        prepared = [(c, Counter(c.terms.split())) for c in changes if not c.removal]
        with self._lock:
            for change in changes:
                if change.removal:
                    self._remove(change.key)
            for change, terms in prepared:
                self._remove(change.key)
                self._add(change, terms)
            self.batches += 1

    def _grow(self, needed: int) -> None:
        capacity = len(self._vectors)
        if needed <= capacity:
            return
        new = max(needed, capacity * 2)
        self._vectors = np.concatenate([self._vectors, np.zeros((new - capacity, self.dimensions), np.float32)])
        self._has_vector = np.concatenate([self._has_vector, np.zeros(new - capacity, bool)])
        self._lengths = np.concatenate([self._lengths, np.zeros(new - capacity, np.float32)])

    def _add(self, change: Change, terms: Counter) -> None:
        if self._free:
            slot = self._free.pop()
        else:
            slot = len(self._chunks)
            self._chunks.append(None)
            self._grow(slot + 1)
        length = sum(terms.values())
        self._chunks[slot] = Chunk(change.text, change.metadata, terms, length)
        self._slot_of[change.key] = slot
        vector = change.vector
        if vector is not None and np.asarray(vector).shape == (self.dimensions,):
            vector = np.asarray(vector, dtype=np.float32)
            norm = float(np.linalg.norm(vector))
            self._vectors[slot] = vector / norm if norm > 0 else vector
            self._has_vector[slot] = norm > 0
        self._lengths[slot] = length
        self._total_length += length
        self._slots_of_document.setdefault(str(change.metadata.get("path")), set()).add(slot)
        for term, count in terms.items():
            self._postings.setdefault(term, {})[slot] = count
            self._arrays.pop(term, None)

    def _remove(self, key: Hashable) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is None:
            return
        chunk = self._chunks[slot]
        self._chunks[slot] = None
        self._has_vector[slot] = False
        self._vectors[slot] = 0.0
        self._lengths[slot] = 0.0
        self._total_length -= chunk.length
        document = str(chunk.metadata.get("path"))
        slots = self._slots_of_document.get(document)
        if slots is not None:
            slots.discard(slot)
            if not slots:
                del self._slots_of_document[document]
        for term in chunk.terms:
            postings = self._postings.get(term)
            if postings is not None:
                postings.pop(slot, None)
                if not postings:
                    del self._postings[term]
            self._arrays.pop(term, None)
        self._free.append(slot)

    # ---- search ----------------------------------------------------------------------

    def _postings_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        arrays = self._arrays.get(term)
        if arrays is None:
            postings = self._postings.get(term)
            if not postings:
                return None
            arrays = (np.fromiter(postings.keys(), dtype=np.int64, count=len(postings)),
                      np.fromiter(postings.values(), dtype=np.float32, count=len(postings)))
            self._arrays[term] = arrays
        return arrays

    def _bm25_scores(self, query_terms: Counter) -> np.ndarray | None:
        n_docs = len(self._slot_of)
        if not n_docs or not query_terms:
            return None
        avgdl = self._total_length / n_docs or 1.0
        scores = np.zeros(len(self._chunks), dtype=np.float32)
        norm = K1 * (1 - B + B * self._lengths[: len(self._chunks)] / avgdl)
        found = False
        for term, times in query_terms.items():
            arrays = self._postings_arrays(term)
            if arrays is None:
                continue
            found = True
            slots, tf = arrays
            idf = math.log(1 + (n_docs - len(slots) + 0.5) / (len(slots) + 0.5))
            scores[slots] += times * idf * tf * (K1 + 1) / (tf + norm[slots])
        return scores if found else None

    def _ranked(self, scores: np.ndarray, eligible: np.ndarray, fetch: int,
                matches: Callable[[dict], bool] | None) -> list[tuple[int, float]]:
        """The best ``fetch`` eligible slots by score (passing the filter), best first."""
        candidates = np.flatnonzero(eligible)
        if not len(candidates):
            return []
        values = scores[candidates]
        if matches is None and len(candidates) > fetch:
            top = np.argpartition(-values, fetch - 1)[:fetch]
            candidates, values = candidates[top], values[top]
        order = np.argsort(-values, kind="stable")
        out: list[tuple[int, float]] = []
        for i in order:
            slot = int(candidates[i])
            if matches is not None and not matches(self._chunks[slot].metadata):
                continue
            out.append((slot, float(values[i])))
            if len(out) >= fetch:
                break
        return out

    def _bm25(self, query: str, fetch: int, matches) -> list[tuple[int, float]]:
        terms = Counter(self.analyze(query).split())
        scores = self._bm25_scores(expand_query(terms) if self.synonyms else terms)
        if scores is None:
            return []
        return self._ranked(scores, scores > 0, fetch, matches)

    def _dense_scores(self, vectors: list[np.ndarray | None]) -> list[np.ndarray | None]:
        """Cosine scores of every slot for each query vector: one matrix product for the
        batch (the matrix is read once, whatever the number of questions)."""
        n = len(self._chunks)
        out: list[np.ndarray | None] = [None] * len(vectors)
        columns, where = [], []
        for i, vector in enumerate(vectors):
            if vector is None:
                continue
            vector = np.asarray(vector, dtype=np.float32)
            norm = float(np.linalg.norm(vector))
            if norm > 0 and vector.shape == (self.dimensions,):
                columns.append(vector / norm)
                where.append(i)
        if columns and n:
            scores = self._vectors[:n] @ np.stack(columns, axis=1)
            for j, i in enumerate(where):
                out[i] = scores[:, j]
        return out

    def _dense(self, scores: np.ndarray | None, fetch: int, matches) -> list[tuple[int, float]]:
        if scores is None:
            return []
        return self._ranked(scores, self._has_vector[: len(scores)], fetch, matches)

    def _codes(self, query: str) -> dict[str, set[str]]:
        """The question's model codes, each with the forms it is found under: itself and,
        when it starts with a maker's letters-only segment, the code without it."""
        terms = self.analyze(query).split()
        return {t: {t, *_without_maker_prefix(t, terms)} for t in terms if _is_code(t)}

    def _code_groups(self, query: str) -> list[set[str]] | None:
        """When the question weighs models against each other ("qual tem a maior eficiência,
        1800Q ou 2250Q", "diferença entre X e Y", "X vs Y"), its codes (:meth:`_codes`)
        grouped by the written code they come from (``NEG9R.28`` gives ``{neg9r, neg9r28}``;
        "1800Q/2250Q" gives two groups); None otherwise: a question that names a model and
        a fault code ("F-201 no CNB15KTL-G2") needs both."""
        codes = self._codes(query)
        if len(codes) < 2:
            return None
        groups, slashed = [], False
        for word in re.split(r"[\s,;()]+", query):
            parts = word.split("/")
            held = [{t for t in self.analyze(part).split() if t in codes} for part in parts]
            if len(parts) > 1 and all(held):  # "1800Q/2250Q": two codes, weighed
                groups.extend(held)
                slashed = True
            else:  # "JAM72S30-550/MR": one code with a suffix
                groups.append({t for t in self.analyze(word).split() if t in codes})
        groups = [g for g in groups if g]
        if len(groups) < 2 or not (slashed or _CONTRAST.search(fold_text(query))):
            return None
        return groups

    def _agreeing_codes(self, codes: dict[str, set[str]], terms, groups: list[set[str]] | None = None) -> int:
        """How many of the question's ``codes`` (:meth:`_codes`) a chunk with ``terms``
        holds, a code written with or without its maker's letters-only leading segment
        counting as the same code (``NEG9R.28`` in the question, ``TSM-NEG9R.28`` in the
        datasheet; or the reverse). With ``groups`` (:meth:`_code_groups`), those of the
        best-held written code only: a question that names two models ("qual tem a maior
        eficiência, 1800Q ou 2250Q") is answered by each one's datasheet, and a manual that
        names both in passing holds no more of the answer than either."""
        held = set()
        for code, forms in codes.items():
            if any(form in terms for form in forms) or any(
                    code in _without_maker_prefix(term, terms) for term in terms
                    if len(term) > len(code) and term.endswith(code)):
                held.add(code)
        if groups:
            return max(len(held & group) for group in groups)
        return len(held)

    def _rerank(self, query: str, fused: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Code agreement: among the fused candidates, those that hold more of a model code
        the question names go first (ties keep the fusion's order). Each code held adds the
        largest score a fusion can give, so the scores stay in the order of the list."""
        codes = self._codes(query)
        if not codes:
            return fused
        groups = self._code_groups(query)
        step = (1.0 + self.dense_weight) / (self.rrf_k + 1)
        rescored = [(slot, score + step * self._agreeing_codes(codes, self._chunks[slot].terms, groups))
                    for slot, score in fused]
        return sorted(rescored, key=lambda item: -item[1])

    def _document_terms(self, document: str) -> set[str]:
        """The terms of every chunk of ``document`` (a model code in its table counts for
        the chunk of it that BM25 put first)."""
        terms: set[str] = set()
        for slot in self._slots_of_document.get(document, ()):
            terms.update(self._chunks[slot].terms)
        return terms

    def _best_dense(self, document: str, dense_scores: np.ndarray, matches) -> float:
        """The dense member's best similarity among the chunks of ``document`` that pass
        the filter (-inf when none has a vector)."""
        best = -math.inf
        for slot in self._slots_of_document.get(document, ()):
            if slot < len(dense_scores) and self._has_vector[slot] and (
                    matches is None or matches(self._chunks[slot].metadata)):
                best = max(best, float(dense_scores[slot]))
        return best

    def _keep_bm25_lead(self, query: str, ranked: list[tuple[int, float]], bm25: list[tuple[int, float]],
                        dense_scores: np.ndarray | None = None, matches=None) -> list[tuple[int, float]]:
        """BM25's first result goes back to the top when the fusion put first a chunk of
        another document, unless

        * that chunk holds more of the question's model codes than any chunk of BM25's
          first document (a code match is the rerank's reason to move a candidate up, and
          stays; but a document that holds the code in its table is about that model even
          where BM25's first chunk of it, a procedure, does not name it), or
        * BM25's lead over it is narrow (its score is not :data:`BM25_LEAD_MARGIN` times
          the other's) **and** the dense member prefers the other *document*: its best
          chunk of that document is more similar to the question than its best chunk of
          BM25's first document.

        Rank fusion sees one chunk's rank per member, cut at :func:`fetch_size`: a chunk in
        the dense top 20 gains a vote (at least ``weight / (k + 20)``) that one ranked 21st
        does not, and that step is larger than the gap between two adjacent BM25 ranks. So
        the fusion can swap BM25's first two on the dense member's weak word (16th against
        28th, similarities 0.365 against 0.344) while the dense member itself ranks a chunk
        of BM25's first document above every chunk of the other one. A near-tie is left to
        the dense member only when it takes the same side at the level the answer is judged
        at, the document."""
        if not ranked or not bm25 or self.bm25_lead_margin <= 0:
            return ranked
        lead_slot, lead_score = bm25[0]
        first_slot = ranked[0][0]
        if first_slot == lead_slot:
            return ranked
        first_md, lead_md = self._chunks[first_slot].metadata, self._chunks[lead_slot].metadata
        if first_md.get("path") == lead_md.get("path"):
            return ranked
        codes = self._codes(query)
        groups = self._code_groups(query)
        if codes and self._agreeing_codes(codes, self._chunks[first_slot].terms, groups) > \
                self._agreeing_codes(codes, self._document_terms(str(lead_md.get("path"))), groups):
            return ranked
        first_bm25 = dict(bm25).get(first_slot, 0.0)
        if lead_score < self.bm25_lead_margin * first_bm25 and dense_scores is not None and (
                self._best_dense(str(first_md.get("path")), dense_scores, matches)
                > self._best_dense(str(lead_md.get("path")), dense_scores, matches)):
            return ranked
        rest = [(slot, score) for slot, score in ranked if slot != lead_slot]
        return [(lead_slot, ranked[0][1]), *rest]

    def wants_vector(self, query: "Query") -> bool:
        return query.retriever == "dense" or (query.retriever in ("hybrid", "fusion") and self.dense_weight > 0)

    def search(self, query: str, k: int = 5, retriever: str = "hybrid", *, metadata_filter: str | None = None,
               filepath_globpattern: str | None = None) -> list[dict]:
        """``[{text, score, metadata}]``, best first: BM25 score, cosine similarity, or the
        weighted RRF sum for hybrid."""
        return self.search_many([Query(query, k, retriever, metadata_filter, filepath_globpattern)])[0]

    def search_many(self, queries: list["Query"], vectors: list[np.ndarray | None] | None = None) -> list[list[dict]]:
        """:meth:`search` for a batch of questions at once (one dense matrix product);
        ``vectors``: the questions' embeddings when already computed (None where not needed)."""
        for query in queries:
            if query.retriever not in RETRIEVERS:
                raise ValueError(f"retriever must be one of {', '.join(RETRIEVERS)}")
        if vectors is None:
            needed = [i for i, q in enumerate(queries) if self.wants_vector(q)]
            vectors = [None] * len(queries)
            if needed and self.embed_queries is not None:
                for i, vector in zip(needed, self.embed_queries([queries[i].text for i in needed])):
                    vectors[i] = vector
        filters = [filter_expression(q.metadata_filter, q.filepath_globpattern) for q in queries]
        with self._lock:
            dense = self._dense_scores([v if self.wants_vector(q) else None for q, v in zip(queries, vectors)])
            return [self._search_one(query, scores, compile_filter(expression) if expression else None)
                    for query, scores, expression in zip(queries, dense, filters)]

    def continuations(self, hits: list[dict], *, metadata_filter: str | None = None,
                      filepath_globpattern: str | None = None) -> list[dict]:
        """The chunk after each hit whose text stops mid-sentence (the chunking cut a
        sentence that runs on: a PDF's "…a placa de advertência" / "exigida pelas
        distribuidoras, com os dizeres …"; :func:`ysh.rag.passages.finishing_sentence`),
        when it is not among the hits already and passes the request's filters: score 0,
        after the hits, for the answerer to finish the sentence."""
        expression = filter_expression(metadata_filter, filepath_globpattern)
        matches = compile_filter(expression) if expression else None
        metadata_of = [(hit, hit.get("metadata") or {}) for hit in hits]
        have = {(str(md.get("path")), md.get("chunk_index")) for _, md in metadata_of}
        extra: list[dict] = []
        with self._lock:
            for hit, md in metadata_of:
                path, index = str(md.get("path")), md.get("chunk_index")
                if type(index) is not int or (path, index + 1) in have:
                    continue
                for slot in self._slots_of_document.get(path, ()):
                    chunk = self._chunks[slot]
                    if chunk is None or chunk.metadata.get("chunk_index") != index + 1:
                        continue
                    if finishing_sentence(hit.get("text") or "", chunk.text) and (
                            matches is None or matches(chunk.metadata)):
                        extra.append({"text": chunk.text, "score": 0.0, "metadata": clean_metadata(chunk.metadata)})
                        have.add((path, index + 1))
                    break
        return extra

    def rest_of_document(self, hits: list[dict], *, limit: int = 12, metadata_filter: str | None = None,
                         filepath_globpattern: str | None = None) -> list[dict]:
        """The other chunks of the first hit's document, in their order, up to ``limit``
        (those that pass the request's filters, score 0, after the hits): the answerer reads
        the best document whole when it is short, so a fact in a chunk that shares few words
        with the question ("TIR: cerca de 34,8 % ao ano." under "Resultados:") is there to
        be quoted."""
        if not hits:
            return []
        first = hits[0].get("metadata") or {}
        path = str(first.get("path"))
        expression = filter_expression(metadata_filter, filepath_globpattern)
        matches = compile_filter(expression) if expression else None
        have = {(str((h.get("metadata") or {}).get("path")), (h.get("metadata") or {}).get("chunk_index"))
                for h in hits}
        with self._lock:
            slots = self._slots_of_document.get(path, ())
            if len(slots) > limit:
                return []
            chunks = [self._chunks[slot] for slot in slots]
            chunks = sorted((c for c in chunks if c is not None), key=lambda c: c.metadata.get("chunk_index") or 0)
            return [{"text": c.text, "score": 0.0, "metadata": clean_metadata(c.metadata)} for c in chunks
                    if (path, c.metadata.get("chunk_index")) not in have and (matches is None or matches(c.metadata))]

    def _search_one(self, query: "Query", dense_scores: np.ndarray | None, matches) -> list[dict]:
        fetch = fetch_size(query.k)
        if query.retriever == "bm25":
            ranked = self._bm25(query.text, fetch, matches)
        elif query.retriever == "dense":
            ranked = self._dense(dense_scores, fetch, matches)
        else:  # hybrid (the final list) or fusion (the weighted rank fusion alone)
            fused: dict[int, float] = {}
            members = [(self._bm25(query.text, fetch, matches), 1.0)]
            if self.dense_weight > 0:
                members.append((self._dense(dense_scores, fetch, matches), self.dense_weight))
            for ranking, weight in members:
                for rank, (slot, _) in enumerate(ranking, start=1):
                    fused[slot] = fused.get(slot, 0.0) + weight / (self.rrf_k + rank)
            ranked = sorted(fused.items(), key=lambda item: -item[1])
            if query.retriever == "hybrid":
                ranked = self._keep_bm25_lead(query.text, self._rerank(query.text, ranked), members[0][0],
                                              dense_scores if self.dense_weight > 0 else None, matches)
        return [{"text": self._chunks[slot].text, "score": score,
                 "metadata": clean_metadata(self._chunks[slot].metadata)}
                for slot, score in ranked[: query.k]]


@dataclass
class Query:
    """One retrieval request."""

    text: str
    k: int = 5
    retriever: str = "hybrid"
    metadata_filter: str | None = None
    filepath_globpattern: str | None = None


class SearchBatcher:
    """Serves searches from many threads, a batch at a time.

    Callers get a future; one worker thread takes every request waiting (up to
    ``max_batch``), embeds the questions that need a vector in one model call, and runs
    them through :meth:`LiveIndex.search_many` (one dense matrix product). Under 16
    concurrent clients this turns 16 model calls and 16 passes over the vectors into one
    of each. A request whose search fails gets its own error; the others their results.
    """

    def __init__(self, index: LiveIndex, *, max_batch: int = 64):
        import queue

        self.index = index
        self.max_batch = max_batch
        self.batches = 0
        self.requests = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="helio-search", daemon=True)
        self._thread.start()

    def submit(self, query: Query):
        """A ``concurrent.futures.Future`` of the hits (``await asyncio.wrap_future(...)``)."""
        from concurrent.futures import Future

        future: Future = Future()
        self._queue.put((query, future))
        return future

    def search(self, query: Query, timeout_s: float = 60.0) -> list[dict]:
        return self.submit(query).result(timeout_s)

    def _work(self) -> None:
        import queue

        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            queries = [query for query, _ in batch]
            try:
                results = self.index.search_many(queries)
            except Exception:  # find the request that fails: each gets its own outcome
                results = []
                for query in queries:
                    try:
                        results.append(self.index.search_many([query])[0])
                    except Exception as exc:
                        results.append(exc)
            self.batches += 1
            self.requests += len(batch)
            for (_, future), result in zip(batch, results):
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def clean_metadata(md: dict) -> dict:
    """What a client sees of a chunk's metadata (no internal ``_`` keys, no owner)."""
    return {k: v for k, v in md.items() if not k.startswith("_") and k not in ("seen_at", "owner")}


# --------------------------------------------------------------------------------------
# status (statistics and inputs) kept from the pipeline's one-row tables
# --------------------------------------------------------------------------------------


class LatestRow:
    """The current row of a one-row Pathway table (None while it is empty)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._row: dict | None = None
        self._pending: list[tuple[dict, bool]] = []

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        self._pending.append((row, is_addition))

    def on_time_end(self, time: int) -> None:
        pending, self._pending = self._pending, []
        current = self.get()
        for row, is_addition in pending:
            if is_addition:
                current = row
            elif current == row:
                current = None
        with self._lock:
            self._row = current

    def get(self) -> dict | None:
        with self._lock:
            return self._row


class IndexFeed:
    """``pw.io.subscribe`` callbacks that buffer a batch and apply it at its time's end."""

    def __init__(self, index: LiveIndex):
        self.index = index
        self._pending: list[Change] = []

    def on_change(self, key, row: dict, time: int, is_addition: bool) -> None:
        if not is_addition:
            self._pending.append(Change(key, removal=True))
            return
        metadata = row.get("metadata")
        metadata = metadata.as_dict() if hasattr(metadata, "as_dict") else dict(metadata or {})
        self._pending.append(Change(key, row.get("text") or "", metadata, row.get("vector"), row.get("terms") or ""))

    def on_time_end(self, time: int) -> None:
        pending, self._pending = self._pending, []
        if pending:
            self.index.apply(pending)
