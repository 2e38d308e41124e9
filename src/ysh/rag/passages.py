"""A retrieved passage and what may be quoted from it (pure).

A passage is cut into paragraphs, sentences (a period inside a number is no end; a table
row is one sentence with its header row) and answer units (a sentence, or a lead-in with
the list it introduces). A sentence that addresses the assistant (prompt injection) is
flagged, and its whole paragraph is never quoted (:func:`split_safe`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .chunking import PIPE_ROW as _PIPE_ROW, TABLE_RULE as _TABLE_RULE, fold_text


# matched against fold_text(sentence): lower case, no accents, punctuation → spaces
_INJECTION_PATTERNS = [
    (r"\b(ignore|ignora|ignorem|desconsidere|desconsidera|esqueca|esquecam)\b.{0,40}\b(instrucoes|instrucao|regras|orientacoes|comandos|mensagens)\b",
     "pede para ignorar instruções"),
    (r"\binstrucoes anteriores\b", "menciona instruções anteriores"),
    (r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|all)\b.{0,20}\b(instructions|rules|prompts?|messages)\b",
     "asks to ignore instructions"),
    (r"\bprevious instructions\b", "mentions previous instructions"),
    (r"\bsystem prompt\b|\bprompt (do|de) sistema\b|\bsystem message\b", "fala do prompt de sistema"),
    (r"\b(responda|responder|respondam|diga|digam|afirme|informe)\s+(ao usuario\s+)?que\b", "dita a resposta"),
    (r"\bdiga ao (usuario|cliente)\b", "dita a resposta"),
    (r"\b(answer|respond|reply|tell the user|say)\s+(that|with)\b", "dictates the answer"),
    (r"\bvoce (agora )?e (um|uma) (assistente|ia|modelo|chatbot)\b|\bvoce agora e\b", "redefine o assistente"),
    (r"\byou are now\b|\bact as\b|\bpretend to be\b", "redefines the assistant"),
    (r"\bassistente sem regras\b|\bsem restricoes\b|\bjailbreak\b|\bmodo desenvolvedor\b", "redefine o assistente"),
    (r"\bnao (cite|mencione|revele)\b.{0,30}\b(fontes|fonte|aviso|instrucoes|regras)\b", "esconde fontes ou regras"),
    (r"\b(do not|don t) (cite|mention|reveal)\b", "hides sources or rules"),
]
_INJECTION = [(re.compile(p), reason) for p, reason in _INJECTION_PATTERNS]
#: a chat role marker, on the text as written: the English role words open an injection in
#: any dress ("SYSTEM:", "SYSTEM - …", "<system>", "[[system]]", "> SYSTEM: …", a quote or a
#: full-width colon). Their Portuguese words are ordinary ones ("Sistema | Total pago" heads a
#: table, "Sistema: on-grid" is a spec line): an injection written with them is caught by
#: what it asks ("ignore as instruções", "responda que…", "você agora é…")
_ROLE_MARKER = re.compile(r"(?im)(?:^|<!--)[\s>\-*•\"'“(\[<#]*(?:system|assistant)\b")

def injection_reason(text: str) -> str | None:
    """Why ``text`` reads as an instruction to the assistant (prompt injection), or None."""
    if _ROLE_MARKER.search(text):
        return "imita uma mensagem de sistema"
    folded = fold_text(text)
    for pattern, reason in _INJECTION:
        if pattern.search(folded):
            return reason
    return None


#: how a sentence ends; a chunk whose last line ends otherwise was cut mid-sentence
ENDS_SENTENCE = re.compile(r"[.!?:;…)\]\"'»”]\s*$")


@dataclass
class Passage:
    """A retrieved chunk (one ``/v1/retrieve`` hit)."""

    text: str
    path: str
    score: float = 0.0
    chunk_index: int | None = None
    page: int | None = None
    section: str | None = None
    title: str | None = None
    flagged: list[tuple[str, str]] = field(default_factory=list)  # (sentence, reason)
    headers: dict[str, str] = field(default_factory=dict)  # table row → its header row

    @classmethod
    def from_hit(cls, hit: dict) -> "Passage":
        md = hit.get("metadata") or {}
        return cls(text=hit.get("text") or "", path=str(md.get("path") or ""), score=float(hit.get("score") or 0.0),
                   chunk_index=md.get("chunk_index"), page=md.get("page"), section=md.get("section"),
                   title=md.get("title"))

    def where(self) -> str:
        bits = [self.path.rsplit("/", 1)[-1]]
        if self.page:
            bits.append(f"p. {self.page}")
        if self.section:
            bits.append(f"seção “{self.section}”")
        return ", ".join(bits)


# a sentence ends at . ! ? (or …) followed by a space and what can open a sentence; a
# period inside a number ("1.000", "nº 3.517/2007", "R$ 30.000,00") is no end
_SENTENCE_END = re.compile(r"(?<!\.\.)(?<=[.!?…])\s+(?=[\"“'(\[]?[A-ZÁÉÍÓÚÂÊÔÃÕÇÀ0-9•▪◦●-])")  # not dot leaders
_BULLET = re.compile(r"\s*[•▪◦●]\s*")
_ABBREVIATION = re.compile(r"(?i)(?:\b(?:art|arts|n|nº|inc|ex|p|pág|pag|fig|obs|sr|sra|dr|dra|aprox|máx|mín|min|max"
                           r"|cap|item|itens|al|res|ref|tab|vol|etc\.?\s+e))\.$")
_LIST_ITEM = re.compile(r"^\s*([-*•▪◦●]|\d{1,2}[.)]|[a-z][.)]|[IVX]{1,5}\s+[-–—])\s+")
#: a legal label that ends in a period and opens a provision ("Parágrafo único. A
#: distribuidora não pode…"): no sentence ends there
_LEGAL_LABEL = re.compile(r"(?i)(?:^|\s)par[áa]grafo [úu]nico\.$")


def is_table_row(line: str) -> bool:
    """A table row: Markdown ("| a | b |") or cells between pipes ("a | b | c")."""
    line = line.strip()
    return line.startswith("|") or bool(_PIPE_ROW.match(line))


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _line_sentences(line: str) -> list[str]:
    """Sentences of one line, verbatim; inline bullets (a PDF's "• item • item") start
    new pieces, and "art. 27", "nº 3.517" are not ends."""
    merged: list[str] = []
    for segment in _BULLET.split(line):
        if not segment.strip():
            continue
        for piece in _SENTENCE_END.split(segment):
            piece = piece.strip()
            if not piece:
                continue
            if merged and (_ABBREVIATION.search(merged[-1]) or _LEGAL_LABEL.search(merged[-1])) \
                    and merged[-1] in segment:
                merged[-1] = merged[-1] + " " + piece
            else:
                merged.append(piece)
    return merged


#: a line at least this long without an end mark is a hard-wrapped sentence
WRAPPED_LINE_MIN = 60
#: a line that ends in one of these words (or a comma) goes on in the next line
_CONNECTORS = frozenset(fold_text(
    "a à ao aos as o os e ou de da das do dos em na nas no nos com para por pela pelo que "
    "um uma se sem sobre entre cerca até após"
).split())


def _continues(previous: str, line: str) -> bool:
    """Whether ``line`` carries on ``previous`` (a hard-wrapped sentence of a PDF or a
    text file): ``previous`` has no end mark (a ";" may go on), and ``line`` opens in
    lower case or with "°", "%", "(", ")"; or ``previous`` ends in a comma or a word like
    "de", "e", "a" (in lower case: "13,98 A" ends a table row)."""
    prev, nxt = previous.strip(), line.strip()
    if not prev or not nxt or prev[-1] in ".:!?…" or nxt[0] in "|#" or prev.startswith(("|", "#")):
        return False
    if is_table_row(prev) or is_table_row(nxt):
        return False
    if _LIST_ITEM.match(nxt) or _BULLET.match(nxt) or _TABLE_RULE.fullmatch(nxt):
        return False
    if nxt[0].islower() or nxt[0] in "°%()":
        return True
    if prev.endswith(";"):
        return False
    last = prev.split()[-1]
    if prev.endswith(",") or (last.islower() and fold_text(last) in _CONNECTORS):
        return True
    # a long line with no end mark was wrapped by its writer (Markdown and text files wrap
    # at 70–100 columns: "…de no mínimo" / "12,5 kA por condutor."), unless it is a title
    # in capitals or the next line is a "label: value" line of a spec block (spec lines
    # are short: a long line that opens with a label is a sentence)
    return len(prev) >= WRAPPED_LINE_MIN and not prev.isupper() and not _is_label_value(nxt)


def _lines(paragraph: str) -> list[str]:
    """The paragraph's lines, a hard-wrapped line joined with the one it goes on in
    (the line break kept, so each line stays a substring of the paragraph)."""
    out: list[str] = []
    for line in paragraph.split("\n"):
        if out and _continues(out[-1].rpartition("\n")[2], line):
            out[-1] = out[-1] + "\n" + line
        else:
            out.append(line)
    return out


def sentences(paragraph: str) -> list[str]:
    """Verbatim sentences (substrings of ``paragraph``): split at . ! ? ; and line ends
    (list items and table rows are sentences; a hard-wrapped line goes on in the next),
    skipping headings and table rules."""
    out = []
    for line in _lines(paragraph):
        if re.match(r"^\s*#{1,6}\s", line) or _TABLE_RULE.fullmatch(line):
            continue
        if is_table_row(line):
            out.append(line.strip())
            continue
        for sentence in _line_sentences(line):
            if len(re.sub(r"[\W_]+", "", sentence)) >= 3:
                out.append(sentence)
    return out


#: a cell holding a measured value ("600 × 190 × 935 mm", "124 kg", "R$ 1.250,00"): the
#: first row of a two-column "label | value" run that holds one in its value cell is data,
#: not a header (an HTML table without <th>: "Dimensões | 600 × 190 × 935 mm"); a wider
#: table's header may hold units ("Prazo | 12 meses | 24 meses"), and a unit in parentheses
#: names a column ("Potência (kW)")
_MEASURED_CELL = re.compile(r"(?i)(?:\d\s*(?:mm²?|cm|m|km|kg|g|w|wp|kw|kwp|kwh|wh|mwh|v|kv|a|ma|ah|kva|hz|°c|%|"
                            r"dias?|meses|anos?|horas?|h|min)(?![\w²])|r\$\s*\d)")


def _table_headers(paragraph: str) -> dict[str, str]:
    """Data row → header row: Markdown tables (a header is followed by a rule line), and
    tables without a rule whose cells sit between pipes ("Parâmetro | HMS-1600-4T |
    HMS-1800-4T", then "Peso | 4,2 kg | 4,2 kg", as DOCX tables and text files give
    them): the first row of a run of two or more rows with as many cells is the header."""
    lines = [line.strip() for line in paragraph.split("\n")]
    headers: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|") and i + 1 < len(lines) and _TABLE_RULE.fullmatch(lines[i + 1]) and "-" in lines[i + 1]:
            header = line
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                headers[row] = header
            headers[header] = ""  # the header itself is no answer
        elif not line.startswith("|") and line not in headers and _PIPE_ROW.match(line):
            width = len(_cells(line))
            rows = []
            for row in lines[i + 1:]:
                if row.startswith("|") or not _PIPE_ROW.match(row) or len(_cells(row)) != width:
                    break
                rows.append(row)
            if width == 2 and _MEASURED_CELL.search(re.sub(r"\([^()]*\)", "", _cells(line)[1])):
                i += len(rows)  # a "label | value" run whose first row is data: no header
            elif rows:
                for row in rows:
                    headers[row] = line
                headers[line] = ""
                i += len(rows)
        i += 1
    return headers


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def display(sentence: str, header: str | None = None) -> str:
    """A quoted sentence as shown in the answer: one line, no Markdown marks; a table row
    as "header: value" pairs."""
    if is_table_row(sentence):
        cells = _cells(sentence)
        names = _cells(header) if header else []
        if len(names) == len(cells):
            text = "; ".join(f"{n}: {c}" for n, c in zip(names, cells))
        else:
            text = " — ".join(c for c in cells if c)
    else:
        text = re.sub(r"^[-*•]\s+", "", sentence)
    text = text.replace("**", "").replace("__", "")
    return re.sub(r"\s+", " ", text).strip()


def split_safe(passage: Passage) -> list[str]:
    """The passage's sentences that may be quoted: every sentence of a paragraph holding
    a flagged one is left out (and recorded in ``passage.flagged``)."""
    safe: list[str] = []
    passage.flagged = []
    passage.headers = {}
    for paragraph in paragraphs(passage.text):
        found = sentences(paragraph)
        passage.headers.update(_table_headers(paragraph))
        flagged = [(s, r) for s in found if (r := injection_reason(s))]
        # HTML comments or odd markup around an instruction count too
        if not flagged and (reason := injection_reason(paragraph)):
            flagged = [(paragraph.strip(), reason)]
        if flagged:
            passage.flagged.extend(flagged)
        else:
            safe.extend(found)
    return safe


@dataclass
class Unit:
    """A quotable piece of a passage: one sentence (or table row), or a lead-in sentence
    ending in ":" joined with the list items that follow it. ``heading``: the Markdown
    heading above it in the passage (its words count as the unit's context)."""

    parts: list[str]
    header: str | None = None
    heading: str | None = None
    quote_heading: bool = False
    opens_section: bool = False  # the first unit under a heading that stands in the passage
    title_stems: set[str] = field(default_factory=set)  # of its document's title
    expansion: set[str] = field(default_factory=set)  # stems of the abbreviations it uses
    caption: str | None = None  # a table row's lead-in ("Financiamento de R$ 30.000,00 …:")
    reply: bool = False  # a bare "Sim." / "Não." joined with the sentence that explains it
    in_block: bool = False  # its heading is a plain-text spec block's title ("Modelo TSM-430…")
    following: str | None = None  # the next sentence when it continues the same paragraph
    preceding: str | None = None  # the sentence before it in the same paragraph
    model: str | None = None  # the model it answers for, in "qual …, o A ou o B?" (shown before it)
    covered: set[str] = field(default_factory=set)  # the question terms it holds (rank_units)

    @property
    def text(self) -> str:
        return " ".join(self.parts)


def finishing_sentence(before: str, after: str) -> str | None:
    """The sentence with which ``after`` (the next chunk of a document) finishes the one
    ``before`` (a chunk) was cut in: ``before``'s last line ends mid-sentence (no final
    punctuation, not a list item) and ``after``'s first paragraph opens in lower case
    ("…a placa de advertência" / "exigida pelas distribuidoras, com os dizeres …"). The
    paragraph's lines, hard-wrapped by its writer (a PDF), are joined. None otherwise."""
    last = next((line for line in reversed((before or "").splitlines()) if line.strip()), "")
    if not last or ENDS_SENTENCE.search(last) or _LIST_ITEM.match(last):
        return None
    paragraph = next((b for b in re.split(r"\n\s*\n", after or "") if b.strip() and not b.lstrip().startswith("#")), "")
    first = " ".join(paragraph.split())
    if not first[:1].islower():
        return None
    return re.split(r"(?<=[.!?])\s+", first, maxsplit=1)[0]


def answer_units(passage: Passage) -> list[Unit]:
    """The passage's units in order, safe sentences only (see :func:`split_safe`). A
    lead-in ("…sobre a energia compensada:") keeps up to 10 following items with it, so
    a list is never quoted without the line that says what it lists."""
    safe = split_safe(passage)
    sections = _headings_before(passage.text, safe)
    headings = _block_titles(safe, sections)
    units: list[Unit] = []
    caption: str | None = None
    i = 0
    while i < len(safe):
        sentence = safe[i]
        header = passage.headers.get(sentence)
        if not is_table_row(sentence):
            caption = None
        if header == "":
            i += 1
            continue
        if _BARE_REPLY.match(fold_text(sentence)) and i + 1 < len(safe) and not is_table_row(safe[i + 1]) \
                and passage.headers.get(safe[i + 1]) is None:
            # a FAQ's "Não." says nothing without the sentence that gives the reason
            units.append(Unit([sentence, safe[i + 1]], heading=headings[i], reply=True))
            i += 2
            continue
        if sentence.rstrip().endswith(":") and i + 1 < len(safe) and is_table_row(safe[i + 1]):
            # a lead-in that introduces a table is its caption: its words are each row's too
            units.append(Unit([sentence], header, headings[i]))
            caption = sentence
            i += 1
            continue
        if sentence.rstrip().endswith(":") and i + 1 < len(safe) and not is_table_row(safe[i + 1]):
            # (a table after a lead-in stays rows with their header, not one long unit)
            items = []
            j = i + 1
            while j < len(safe) and len(items) < 10 and not safe[j].rstrip().endswith(":") \
                    and not is_table_row(safe[j]):
                items.append(safe[j])
                j += 1
                if sum(len(x) for x in items) > 700:
                    break
            units.append(Unit([sentence, *items], heading=headings[i]))
            # the items stay quotable on their own too
        else:
            units.append(Unit([sentence], header, headings[i], caption=caption if is_table_row(sentence) else None,
                              in_block=headings[i] != sections[i]))
        i += 1
    # a sentence and the next one of the same paragraph (one space apart in the passage, no
    # line break): a definition's second sentence often holds what the term does
    for unit, after in zip(units, units[1:]):
        if len(unit.parts) == 1 and len(after.parts) == 1 and f"{unit.parts[0]} {after.parts[0]}" in passage.text:
            unit.following = after.parts[0]
            after.preceding = unit.parts[0]
    return units


#: a "label: value" line of a spec block ("Voc: 51,6 V", "- Peso: 20,5 kg")
_LABEL_VALUE = re.compile(r"^\s*(?:[-*•]\s*)?[^:.;!?|]{1,40}:\s*\S")


def _is_label_value(sentence: str) -> bool:
    return len(sentence) <= 160 and not sentence.rstrip().endswith(":") and bool(_LABEL_VALUE.match(sentence))


def _block_titles(safe: list[str], headings: list[str | None]) -> list[str | None]:
    """Plain-text spec blocks: a short line without punctuation ("Modelo TSM-430NEG9RC.27",
    "DADOS MECÂNICOS") followed by "label: value" lines is their heading, as a Markdown
    heading would be — so "Voc: 51,6 V" says which model it belongs to. Other sentences
    keep the Markdown heading above them."""
    out = list(headings)
    title: str | None = None
    title_at = 0
    for i, sentence in enumerate(safe):
        if _is_label_value(sentence):
            if title is not None and headings[i] == headings[title_at]:
                out[i] = title
            continue
        title = None
        stripped = sentence.strip()
        if (i + 1 < len(safe) and _is_label_value(safe[i + 1]) and len(stripped) <= 80
                and not is_table_row(stripped) and stripped[-1:] not in ".:;!?,"):
            title, title_at = stripped, i
    return out


_HEADING = re.compile(r"^\s*#{1,6}\s+(.+?)\s*#*\s*$")
#: a reply that is only "Sim." or "Não." (folded)
_BARE_REPLY = re.compile(r"^(sim|nao)( senhor(a)?)?$")


def _headings_before(text: str, sentences_: list[str]) -> list[str | None]:
    """For each sentence (in order), the nearest Markdown heading above it in ``text``."""
    marks = [(m.start(), m.group(0)) for m in re.finditer(r"(?m)^\s*#{1,6}\s+.+$", text)]
    out: list[str | None] = []
    cursor = 0
    for sentence in sentences_:
        found = text.find(sentence, cursor)
        position = found if found >= 0 else cursor
        if found >= 0:
            cursor = found
        heading = None
        for start, line in marks:
            if start > position:
                break
            heading = _HEADING.match(line).group(1) if _HEADING.match(line) else line
        out.append(heading)
    return out
