"""Documents → text parts (pure; no Pathway): PDF, DOCX, HTML, Markdown and TXT.

:func:`parse_document` sniffs the format from the bytes (magic numbers), helped by the file
name's extension when one is known, and returns the document as a list of parts
``(text, metadata)``: one part per page for a PDF, one part for every other format. The
text keeps the document's structure as Markdown-style ``#`` heading lines (DOCX heading
styles, HTML ``<h1>``…``<h6>``, numbered or upper-case heading lines of PDF/TXT), so the
chunker (:mod:`ysh.rag.chunking`) can cut at headings and name each chunk's section.

Metadata of every part: ``title`` (document title), ``format`` (``pdf`` | ``docx`` |
``html`` | ``markdown`` | ``text``) and, for PDF, ``page`` (1-based).

A file that is too large, corrupt, of an unsupported binary format, or without any
extractable text raises :class:`ParseError` whose message is the reason shown to users
(``/v1/inputs``).
"""

from __future__ import annotations

import html.parser
import io
import logging
import re
import unicodedata
import zipfile

from .chunking import _CODE  # a model code as the lexical index keeps it

DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024
FORMATS = ("pdf", "docx", "html", "markdown", "text")

_EXTENSIONS = {
    ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".md": "markdown",
    ".markdown": "markdown", ".txt": "text", ".text": "text",
}


class ParseError(ValueError):
    """The document cannot be indexed; the message says why (for people, in English)."""


# --------------------------------------------------------------------------------------
# format sniffing
# --------------------------------------------------------------------------------------


def _extension(filename: str | None) -> str | None:
    if not filename:
        return None
    name = filename.rsplit("/", 1)[-1].lower()
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    return None


def sniff_format(data: bytes, filename: str | None = None) -> str:
    """The document format of ``data``: one of :data:`FORMATS`.

    Magic bytes decide for binary formats (``%PDF``, a ZIP holding ``word/document.xml``);
    for text, an HTML doctype/``<html>`` tag means HTML, Markdown headings or the ``.md``
    extension mean Markdown. Raises :class:`ParseError` for other binary content and for
    a file whose extension promises a format its bytes do not have.
    """
    by_extension = _extension(filename)
    head = data[:2048].lstrip()
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "word/document.xml" in archive.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            raise ParseError("corrupt ZIP/DOCX container") from None
        raise ParseError("unsupported format: a ZIP archive that is not a DOCX document")
    if by_extension == "pdf":
        raise ParseError("not a PDF: the %PDF header is missing")
    if by_extension == "docx":
        raise ParseError("not a DOCX: the file is not a ZIP container")
    if b"\x00" in data[:4096] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ParseError("unsupported binary format")
    low = head[:512].lower()
    if low.startswith(b"<!doctype html") or b"<html" in low or by_extension == "html":
        return "html"
    if by_extension == "markdown":
        return "markdown"
    if by_extension is None and re.search(rb"(?m)^#{1,6} \S", data[:8192]):
        return "markdown"
    return "text"


def decode_text(data: bytes) -> str:
    """Bytes → str: UTF-8 (BOM stripped), else UTF-16 with a BOM, else cp1252, else latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --------------------------------------------------------------------------------------
# structure helpers
# --------------------------------------------------------------------------------------

_NUMBERED_HEADING = re.compile(r"^(\d{1,2}(?:\.\d{1,2})*)\.?\s+\S")


def _looks_like_heading(line: str) -> bool:
    """A plain-text line that reads as a heading: short, no closing punctuation, and
    numbered (``3. Dimensionamento``, ``2.1 Cabos``) or written in capitals."""
    line = line.strip()
    if not 3 <= len(line) <= 90 or line[-1] in ".;:,!?)" or line.startswith(("-", "*", "•", "|")):
        return False
    if _NUMBERED_HEADING.match(line):
        words = line.split()
        return len(words) <= 12 and not re.search(r"\d\s*%|R\$", line)
    letters = [c for c in line if c.isalpha()]
    if len(line.split()) < 2 and re.search(r"\d", line):  # a model code (LR5-72HPH-550M), not a heading
        return False
    return len(letters) >= 4 and sum(c.isupper() for c in letters) / len(letters) > 0.85


def _mark_headings(text: str) -> str:
    """Plain text (TXT, PDF pages) → the same text with heading lines made ``## …``
    paragraphs (blank lines around them)."""
    out: list[str] = []
    for line in text.split("\n"):
        if _looks_like_heading(line):
            numbered = _NUMBERED_HEADING.match(line.strip())
            level = "#" * min(2 + (numbered.group(1).count(".") if numbered else 0), 4)
            out.extend(["", f"{level} {line.strip()}", ""])
        else:
            out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def _first_line(text: str, limit: int = 120) -> str:
    for line in text.split("\n"):
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:limit]
    return ""


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\f", "\n\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --------------------------------------------------------------------------------------
# the formats
# --------------------------------------------------------------------------------------


def _parse_pdf(data: bytes) -> list[tuple[str, dict]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # "EOF marker not found" etc.: we report
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("encrypted PDF (password protected)")
        pages = [(page.extract_text() or "") for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
            RecursionError, zipfile.BadZipFile) as exc:
        raise ParseError(f"corrupt PDF ({type(exc).__name__}: {exc})") from None
    pages = [_clean(p) for p in pages]
    if not any(pages):
        raise ParseError("no extractable text (a scanned PDF? OCR is not enabled)")
    title = str(meta_title).strip() or _first_line(next(p for p in pages if p))
    return [(_mark_headings(text), {"title": title, "format": "pdf", "page": number})
            for number, text in enumerate(pages, start=1) if text]


def _parse_docx(data: bytes) -> list[tuple[str, dict]]:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises several kinds (KeyError, BadZipFile, XML errors)
        raise ParseError(f"corrupt DOCX ({type(exc).__name__}: {exc})") from None
    blocks: list[str] = []
    first_heading = ""
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
            if any(r.strip(" |") for r in rows):
                blocks.append("\n".join(rows))
            continue
        text = item.text.strip()
        if not text:
            continue
        style = (item.style.name or "") if item.style is not None else ""
        match = re.match(r"Heading (\d)", style)
        if match or style == "Title":
            level = int(match.group(1)) if match else 1
            blocks.append("#" * min(level, 6) + " " + text)
            first_heading = first_heading or text
        elif style.startswith("List"):
            blocks.append("- " + text)
        else:
            blocks.append(text)
    text = _clean("\n\n".join(blocks))
    # list items of one list: one paragraph, not one chunk-block each
    text = re.sub(r"(?m)^(- .*)\n\n(?=- )", r"\1\n", text)
    if not text:
        raise ParseError("no extractable text")
    title = (document.core_properties.title or "").strip() or first_heading or _first_line(text)
    return [(text, {"title": title, "format": "docx"})]


class _HtmlText(html.parser.HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "svg", "nav", "head"}
    _BLOCK = {"p", "div", "li", "br", "tr", "table", "section", "article", "main", "header", "footer",
              "ul", "ol", "dl", "dt", "dd", "blockquote", "pre", "figure", "figcaption", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._in_cell = False
        self._term_ended = False  # a <dt> just closed: its <dd> continues its line
        self._level = 1  # the last heading's level: a <summary> is a heading below it

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
            return
        if tag in self._SKIP:
            self._skip += 1
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._level = int(tag[1])
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "summary":
            # a <details>' summary is the title of what it folds (a FAQ's question over its
            # answer): a heading one level below the last one, as a Markdown FAQ writes it
            self.parts.append("\n\n" + "#" * min(6, self._level + 1) + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "tr":
            self.parts.append("\n")
            self._in_cell = False
        elif tag in ("td", "th"):
            if self._in_cell:
                self.parts.append(" | ")
            self._in_cell = True
        elif tag == "dd" and self._term_ended:
            # a glossary entry is one paragraph, "Termo: definição" (the term alone on a line
            # would be a unit with no answer, its definition a unit without its subject)
            self.parts.append(": ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        self._term_ended = tag == "dt"
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in ("p", "table", "ul", "ol", "div", "summary", "details"):
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self._term_ended:
            if not data.strip():
                return  # the blank between </dt> and <dd>
            self._term_ended = False
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def _parse_html(data: bytes) -> list[tuple[str, dict]]:
    parser = _HtmlText()
    try:
        parser.feed(decode_text(data))
        parser.close()
    except Exception as exc:  # html.parser is lenient; this is a last resort
        raise ParseError(f"corrupt HTML ({type(exc).__name__}: {exc})") from None
    text = "".join(parser.parts)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _clean(re.sub(r"(?m)^- \n", "", text))
    text = re.sub(r"(?m)^(- .*)\n\n(?=- )", r"\1\n", text)
    if not text:
        raise ParseError("no extractable text")
    title = re.sub(r"\s+", " ", parser.title).strip() or _first_line(text)
    return [(text, {"title": title, "format": "html"})]


def _parse_markdown(data: bytes) -> list[tuple[str, dict]]:
    text = decode_text(data)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)  # not rendered, so not indexed
    text = _clean(text)
    if not text:
        raise ParseError("no extractable text")
    match = re.search(r"(?m)^#\s+(.+)$", text)
    title = match.group(1).strip() if match else _first_line(text)
    return [(text, {"title": title, "format": "markdown"})]


def _title_with_subject(text: str, title: str) -> str:
    """A plain-text title that names no model (``VOLTERA - FOLHA DE DADOS``) is completed
    by the next short line when that one does (``VTR-6K-M1 - inversor string monofásico de
    6 kW``): the title is what every chunk of the document carries into the lexical index,
    so the datasheet's ``Peso 16,0 kg`` block is found for "quanto pesa o VTR-6K-M1"."""
    if _CODE.search(title):
        return title
    lines = [line.strip().lstrip("#").strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    for line in lines[1:3]:
        if len(line) <= 120 and _CODE.search(line) and not line.endswith(":"):
            return f"{title} — {line}"[:200]
    return title


_DASH_RULE = re.compile(r"^\s*-{3,}(?:\s+-{3,})+\s*$")


def _space_tables(text: str) -> str:
    """Tables a text export aligns with spaces, a rule of dashes under their header::

          Região de entrega    Frete (% da NF)   Frete mínimo
          -------------------  ----------------  ------------
          Nordeste             5,9 %             R$ 260,00

    become rows of cells between pipes ("Região de entrega | Frete (% da NF) | Frete
    mínimo", "Nordeste | 5,9 % | R$ 260,00"), the shape DOCX and HTML tables already
    have: each row is then read with its column names. A row's cells are its runs
    separated by two or more spaces when there are as many as columns, else the text under
    each dash group. The table ends at a blank line, or at a line that starts left of it or
    runs a word across a column's start ("Observação: o frete mínimo vale…" right under the
    rows)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and _DASH_RULE.match(lines[i + 1]):
            rule = lines[i + 1]
            starts = [m.start() for m in re.finditer(r"-{3,}", rule)]

            def cells(row: str) -> list[str]:
                runs = [c for c in re.split(r"\s{2,}", row.strip()) if c]
                if len(runs) == len(starts):
                    return runs
                bounds = [*starts[1:], None]
                return [row[a:b].strip() for a, b in zip(starts, bounds)]

            def straddles(row: str) -> bool:
                """Prose, no row: it starts left of the table, or runs a word across a column's start."""
                if len(row) - len(row.lstrip()) < starts[0]:
                    return True
                return len([c for c in re.split(r"\s{2,}", row.strip()) if c]) != len(starts) and any(
                    0 < a < len(row) and not row[a - 1].isspace() and not row[a].isspace() for a in starts[1:])

            rows = [line]
            j = i + 2
            while j < len(lines) and lines[j].strip() and not _DASH_RULE.match(lines[j]) and not straddles(lines[j]):
                rows.append(lines[j])
                j += 1
            if len(rows) > 1:
                out.extend(" | ".join(c or "-" for c in cells(row)) for row in rows)
                i = j
                continue
        block = _aligned_rows(lines, i)
        if block:
            out.extend(" | ".join(cells) for cells in block)
            i += len(block)
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


#: a run of text in a space-aligned line: words with single spaces between them
_ALIGNED_RUN = re.compile(r"\S+(?: \S+)*")


def _aligned_rows(lines: list[str], i: int) -> list[list[str]] | None:
    """A table aligned with spaces and no rule under its header, from line ``i`` on::

        Classe   ΔT                   Ação
        C1       abaixo de 10 K       registrar e acompanhar
        C2       de 10 K a 20 K       programar correção em até 30 dias

    at least a header (capitalised column names, no figures) and two rows, each of two or more runs separated
    by two or more spaces that start at the very columns of the header's runs (prose never
    lines up so); the cells of each line, or None."""
    def runs(line: str) -> list[tuple[int, str]]:
        return [(m.start(), m.group()) for m in _ALIGNED_RUN.finditer(line)]

    head = runs(lines[i])
    # a header names columns: no figure in it ("Potência nominal  6000 W" opens a block of
    # label/value lines, which are read as they are)
    # ("Refrigeração  convecção natural": a label and its value, no column names)
    if len(head) < 2 or lines[i].rstrip().endswith((".", ":")) or any(c.isdigit() for c in lines[i]) \
            or not all(c[0].isupper() or not c[0].isalpha() for _, c in head):
        return None
    starts = [a for a, _ in head]
    block = [[c for _, c in head]]
    for line in lines[i + 1:]:
        row = runs(line)
        if [a for a, _ in row] != starts:
            break
        block.append([c for _, c in row])
    return block if len(block) >= 3 else None


def _parse_text(data: bytes) -> list[tuple[str, dict]]:
    text = _clean(decode_text(data))
    if not text:
        raise ParseError("no extractable text")
    title = _title_with_subject(text, _first_line(text))
    return [(_mark_headings(_space_tables(text)), {"title": title, "format": "text"})]


_PARSERS = {"pdf": _parse_pdf, "docx": _parse_docx, "html": _parse_html, "markdown": _parse_markdown,
            "text": _parse_text}


def parse_document(data: bytes, *, filename: str | None = None,
                   max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> list[tuple[str, dict]]:
    """Parse one document's bytes into ``[(text, {title, format, page?}), …]``.

    Parameters
    ----------
    data : bytes — the file's content
    filename : str, optional — its name or path; the extension helps tell Markdown from
        TXT and flags a ``.pdf`` without a PDF header
    max_bytes : int — larger files are refused [bytes] (``YSH_RAG_MAX_FILE_BYTES``)

    Raises
    ------
    ParseError — too large, corrupt, unsupported, or no extractable text.
    """
    if len(data) > max_bytes:
        raise ParseError(f"file too large: {len(data):,} bytes > limit {max_bytes:,}")
    if not data.strip():
        raise ParseError("empty file")
    fmt = sniff_format(data, filename)
    parts = _PARSERS[fmt](data)
    if not any(text.strip() for text, _ in parts):
        raise ParseError("no extractable text")
    return parts
