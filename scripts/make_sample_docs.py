"""Write the PDF and DOCX documents of the RAG sample corpus from their Markdown sources.

Dev-only generator: the generated files are committed, so nothing at run time or in CI needs it.

Needs (in a scratch venv, not the project's):
    python3.11 -m venv /tmp/docgen && /tmp/docgen/bin/pip install fpdf2 python-docx pypdf
    (fpdf2 writes the PDFs, python-docx the DOCX files, pypdf is only used by --verify)
and a Unicode TrueType font for the PDFs: DejaVuSans.ttf / DejaVuSans-Bold.ttf from Debian's
``fonts-dejavu-core`` (/usr/share/fonts/truetype/dejavu), or the copy matplotlib ships in its wheel,
or any folder given with --font-dir.

Usage:
    /tmp/docgen/bin/python scripts/make_sample_docs.py [--src data/sample/docs_src]
        [--out data/sample/docs] [--broken data/sample/docs_broken] [--verify]

Each source in ``--src`` is Markdown with a small front matter block::

    ---
    output: guia_conexao_mmgd_prodist_modulo3.pdf    # .pdf or .docx, written to --out
    header: text repeated at the top of every PDF page  (optional)
    title: document title for the DOCX properties      (optional)
    ---

Supported Markdown: ``#``/``##``/``###`` headings, paragraphs, ``- `` bullets, ``1. `` numbered
items, pipe tables and ``**bold**``. Sources without front matter (INDEX.md) are skipped.

The output is deterministic: fixed creation dates, fixed ZIP timestamps in the DOCX files.
It also writes ``--broken/corrupt.pdf``: the first bytes of one generated PDF, cut in the middle
of a compressed page stream and without the cross-reference table and trailer, for tests of the
parser's error handling.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

FIXED_DATE = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
AUTHOR = "YSH Marketplace"
FONT_CANDIDATES = [
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
]
BROKEN_FROM = "guia_conexao_mmgd_prodist_modulo3.pdf"
BROKEN_FRACTION = 0.45


# --------------------------------------------------------------------------- parsing


@dataclass
class Block:
    kind: str  # h1 h2 h3 p bullet number table
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    number: int = 0


@dataclass
class Source:
    path: Path
    meta: dict[str, str]
    blocks: list[Block]


def parse_source(path: Path) -> Source | None:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return None
    end = text.index("\n---\n", 4)
    meta = {}
    for line in text[4:end].splitlines():
        key, _, value = line.partition(":")
        meta[key.strip()] = value.strip()
    return Source(path, meta, parse_markdown(text[end + 5:]))


def parse_markdown(body: str) -> list[Block]:
    blocks: list[Block] = []
    para: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if para:
            blocks.append(Block("p", " ".join(para)))
            para.clear()
        if table:
            rows = [r for r in table if not all(re.fullmatch(r":?-{3,}:?", c) for c in r)]
            blocks.append(Block("table", rows=rows))
            table.clear()

    for raw in body.splitlines():
        line = raw.rstrip()
        if not line.strip():
            flush()
            continue
        if line.startswith("|"):
            if para:
                flush()
            table.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if table:
            flush()
        heading = re.match(r"(#{1,3}) (.*)", line)
        bullet = re.match(r"\s*- (.*)", line)
        number = re.match(r"\s*(\d+)\. (.*)", line)
        if heading:
            flush()
            blocks.append(Block(f"h{len(heading.group(1))}", heading.group(2).strip()))
        elif bullet:
            flush()
            blocks.append(Block("bullet", bullet.group(1).strip()))
        elif number:
            flush()
            blocks.append(Block("number", number.group(2).strip(), number=int(number.group(1))))
        elif blocks and blocks[-1].kind in ("bullet", "number") and not para and raw.startswith("  "):
            blocks[-1].text += " " + line.strip()  # continuation of a list item
        else:
            para.append(line.strip())
    flush()
    return blocks


def plain(text: str) -> str:
    """Text without Markdown emphasis markers."""
    return text.replace("**", "").replace("`", "")


def runs(text: str) -> list[tuple[str, bool]]:
    """Split ``**bold**`` spans into (text, bold) runs."""
    parts = text.replace("`", "").split("**")
    return [(part, i % 2 == 1) for i, part in enumerate(parts) if part]


# --------------------------------------------------------------------------- PDF


def find_font_dir(explicit: Path | None) -> Path:
    candidates = [explicit] if explicit else list(FONT_CANDIDATES)
    if not explicit:
        try:  # matplotlib ships DejaVuSans.ttf in its wheel
            import matplotlib

            candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
        except ImportError:
            pass
    for folder in candidates:
        if folder and (folder / "DejaVuSans.ttf").is_file() and (folder / "DejaVuSans-Bold.ttf").is_file():
            return folder
    sys.exit("DejaVuSans.ttf not found: apt-get install fonts-dejavu-core, or pass --font-dir")


def write_pdf(src: Source, out: Path, font_dir: Path) -> None:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    header_text = src.meta.get("header", "")

    class Doc(FPDF):
        def header(self) -> None:
            if not header_text:
                return
            self.set_font("DejaVu", size=8)
            self.set_text_color(90, 90, 90)
            self.cell(0, 5, header_text, align="L", new_x="LMARGIN", new_y="NEXT")
            self.set_draw_color(180, 180, 180)
            self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
            self.ln(4)
            self.set_text_color(0, 0, 0)

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("DejaVu", size=8)
            self.set_text_color(90, 90, 90)
            self.cell(0, 5, f"Página {self.page_no()} de {{nb}}", align="C")
            self.set_text_color(0, 0, 0)

    pdf = Doc(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_author(AUTHOR)
    pdf.set_creator("scripts/make_sample_docs.py")
    title = next((b.text for b in src.blocks if b.kind == "h1"), out.stem)
    pdf.set_title(plain(title))
    pdf.set_lang("pt-BR")
    pdf.add_font("DejaVu", "", str(font_dir / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(font_dir / "DejaVuSans-Bold.ttf"))
    pdf.set_margins(18, 15, 18)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    for block in src.blocks:
        if block.kind in ("h1", "h2", "h3"):
            size = {"h1": 15, "h2": 12.5, "h3": 11}[block.kind]
            pdf.ln(2 if block.kind != "h1" else 0)
            pdf.set_font("DejaVu", "B", size)
            pdf.multi_cell(width, size * 0.55, plain(block.text), align="L",
                           new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
        elif block.kind == "p":
            pdf.set_font("DejaVu", "", 10)
            pdf.multi_cell(width, 5, block.text.replace("`", ""), markdown=True, align="L",
                           new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif block.kind in ("bullet", "number"):
            pdf.set_font("DejaVu", "", 10)
            mark = "•" if block.kind == "bullet" else f"{block.number}."
            pdf.cell(7, 5, mark)
            pdf.multi_cell(width - 7, 5, block.text.replace("`", ""), markdown=True, align="L",
                           new_x="LMARGIN", new_y="NEXT")
            pdf.ln(0.8)
        elif block.kind == "table":
            pdf.set_font("DejaVu", "", 9)
            with pdf.table(width=width, line_height=5, text_align="LEFT",
                           headings_style=FontFace(emphasis="BOLD")) as table:
                for row in block.rows:
                    cells = table.row()
                    for cell in row:
                        cells.cell(plain(cell))
            pdf.ln(3)
    pdf.output(str(out))


# --------------------------------------------------------------------------- DOCX


def write_docx(src: Source, out: Path) -> None:
    import docx

    document = docx.Document()
    props = document.core_properties
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.title = src.meta.get("title", out.stem)
    props.language = "pt-BR"
    naive = FIXED_DATE.replace(tzinfo=None)
    props.created = naive
    props.modified = naive
    props.revision = 1

    def add_runs(paragraph, text: str) -> None:
        for part, bold in runs(text):
            paragraph.add_run(part).bold = bold

    for block in src.blocks:
        if block.kind in ("h1", "h2", "h3"):
            document.add_heading(plain(block.text), level=int(block.kind[1]))
        elif block.kind == "p":
            add_runs(document.add_paragraph(), block.text)
        elif block.kind == "bullet":
            add_runs(document.add_paragraph(style="List Bullet"), block.text)
        elif block.kind == "number":
            add_runs(document.add_paragraph(style="List Number"), block.text)
        elif block.kind == "table":
            ncols = max(len(r) for r in block.rows)
            table = document.add_table(rows=0, cols=ncols)
            table.style = "Table Grid"
            for i, row in enumerate(block.rows):
                cells = table.add_row().cells
                for j, value in enumerate(row):
                    cells[j].text = plain(value)
                    if i == 0:
                        for run in cells[j].paragraphs[0].runs:
                            run.bold = True
    buffer = io.BytesIO()
    document.save(buffer)
    out.write_bytes(fixed_zip(buffer.getvalue()))


def fixed_zip(data: bytes) -> bytes:
    """Rewrite a ZIP with fixed member timestamps, so the same input gives the same bytes."""
    result = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(result, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            dst.writestr(member, src.read(info.filename))
    return result.getvalue()


# --------------------------------------------------------------------------- checks


def extract_text(path: Path) -> str:
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    import docx

    document = docx.Document(str(path))
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        lines += [" | ".join(c.text for c in row.cells) for row in table.rows]
    return "\n".join(lines)


def verify(sources: list[tuple[Source, Path]]) -> int:
    """Extract every generated file and check that each paragraph's words come back intact."""
    failures = 0
    for src, out in sources:
        text = re.sub(r"\s+", " ", extract_text(out))
        missing = []
        for block in src.blocks:
            if block.kind == "table":
                continue
            words = [w for w in re.findall(r"\w+", plain(block.text)) if not w.isdigit()]
            missing += [w for w in words if w not in text]
        accents = sum(text.count(c) for c in "ãçéêíóôõú")
        status = "ok" if not missing and accents else "FAIL"
        failures += status != "ok"
        print(f"{status:4} {out.name:48} {out.stat().st_size / 1024:6.1f} KiB  "
              f"{len(text):6} chars  accents={accents}  missing={sorted(set(missing))[:8]}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path("data/sample/docs_src"))
    parser.add_argument("--out", type=Path, default=Path("data/sample/docs"))
    parser.add_argument("--broken", type=Path, default=Path("data/sample/docs_broken"))
    parser.add_argument("--font-dir", type=Path, default=None)
    parser.add_argument("--verify", action="store_true",
                        help="extract the text back (pypdf / python-docx) and check it")
    args = parser.parse_args(argv)

    font_dir = find_font_dir(args.font_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Source, Path]] = []
    for path in sorted(args.src.glob("*.md")):
        src = parse_source(path)
        if src is None:
            continue
        out = args.out / src.meta["output"]
        if out.suffix == ".pdf":
            write_pdf(src, out, font_dir)
        elif out.suffix == ".docx":
            write_docx(src, out)
        else:
            sys.exit(f"{path}: unsupported output {out.name}")
        written.append((src, out))
        print(f"{path.name} -> {out}")

    args.broken.mkdir(parents=True, exist_ok=True)
    whole = (args.out / BROKEN_FROM).read_bytes()
    (args.broken / "corrupt.pdf").write_bytes(whole[: int(len(whole) * BROKEN_FRACTION)])
    print(f"{BROKEN_FROM} cut to {BROKEN_FRACTION:.0%} -> {args.broken / 'corrupt.pdf'}")

    print(f"font: {font_dir / 'DejaVuSans.ttf'}")
    if args.verify:
        return 1 if verify(written) else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
