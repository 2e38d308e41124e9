"""Parsing the sample corpus (PDF, DOCX, HTML, Markdown, TXT) and refusing bad files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from ysh.rag.parsing import ParseError, parse_document, sniff_format

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "data" / "sample" / "docs"
CORRUPT = REPO / "data" / "sample" / "docs_broken" / "corrupt.pdf"


def parse(name: str):
    path = DOCS / name
    return parse_document(path.read_bytes(), filename=str(path))


@pytest.mark.parametrize("path", sorted(DOCS.iterdir()), ids=lambda p: p.name)
def test_every_sample_document_parses_with_title_and_format(path):
    parts = parse_document(path.read_bytes(), filename=path.name)
    assert parts and all(text.strip() for text, _ in parts)
    meta = parts[0][1]
    assert meta["title"]
    assert meta["format"] == {".pdf": "pdf", ".docx": "docx", ".html": "html", ".md": "markdown",
                              ".txt": "text"}[path.suffix]


def test_pdf_gives_one_part_per_page_with_page_numbers():
    parts = parse("guia_conexao_mmgd_prodist_modulo3.pdf")
    assert [m["page"] for _, m in parts] == [1, 2, 3]
    assert parts[0][1]["title"] == "Guia de conexão de micro e minigeração distribuída à rede"
    assert "solicitação de acesso" in " ".join(t for t, _ in parts).lower()


def test_docx_headings_become_sections_and_tables_are_kept():
    (text, meta), = parse("manual_instalacao_sistemas_fv.docx")
    assert meta["title"].startswith("Manual de instalação")
    assert "\n## 1. Segurança do trabalho\n" in text
    (text, _), = parse("manual_om_usinas_fv.docx")
    assert " | " in text  # its table's rows, in document order


def test_html_keeps_title_headings_and_text_but_drops_script_and_style():
    html = ("<html><head><title>Bandeiras</title><style>body{color:red}</style></head><body>"
            "<script>alert('x')</script><h1>Bandeiras tarifárias</h1><p>A bandeira verde não tem acréscimo.</p>"
            "<h2>Valores</h2><table><tr><th>Bandeira</th><th>R$/100 kWh</th></tr><tr><td>Amarela</td>"
            "<td>1,885</td></tr></table></body></html>").encode()
    (text, meta), = parse_document(html)
    assert meta == {"title": "Bandeiras", "format": "html"}
    assert "# Bandeiras tarifárias" in text and "## Valores" in text
    assert "Amarela | 1,885" in text
    assert "alert" not in text and "color" not in text


def test_markdown_headings_are_kept_and_html_comments_dropped():
    (text, meta), = parse_document(b"# Lei 14.300\n\n<!-- hidden -->\n\n## Fio B\n\n60 % em 2026.\n", filename="x.md")
    assert meta == {"title": "Lei 14.300", "format": "markdown"}
    assert "## Fio B" in text and "hidden" not in text


def test_txt_falls_back_to_cp1252_and_marks_heading_lines():
    data = "FATURA DE ENERGIA\n\n1. TARIFAS\n\nA tarifa tem duas componentes: TE e TUSD.\n".encode("cp1252")
    (text, meta), = parse_document(data, filename="fatura.txt")
    assert meta == {"title": "FATURA DE ENERGIA", "format": "text"}
    assert "## 1. TARIFAS" in text and "componentes" in text


def test_sniffing_uses_magic_bytes_before_the_extension():
    assert sniff_format((DOCS / "datasheet_inversor_sungrow_sg60ku_m.pdf").read_bytes(), "x.txt") == "pdf"
    assert sniff_format(b"<!DOCTYPE html><html></html>") == "html"
    assert sniff_format(b"## Heading\n\ntext") == "markdown"
    assert sniff_format(b"plain text") == "text"


def test_corrupt_pdf_is_a_parse_error_with_a_reason():
    with pytest.raises(ParseError, match="corrupt PDF"):
        parse_document(CORRUPT.read_bytes(), filename="corrupt.pdf")


def test_file_over_the_size_limit_is_refused():
    with pytest.raises(ParseError, match="file too large"):
        parse_document(b"x" * 2048, max_bytes=1024)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"   \n\n", "empty file"),
    (b"<html><script>x()</script></html>", "no extractable text"),
    (b"\x00\x01\x02binary", "unsupported binary format"),
])
def test_files_without_text_are_errors(data, reason):
    with pytest.raises(ParseError, match=reason):
        parse_document(data)


def test_zip_that_is_not_docx_and_pdf_without_header_are_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "hello")
    with pytest.raises(ParseError, match="not a DOCX"):
        parse_document(buffer.getvalue())
    with pytest.raises(ParseError, match="not a PDF"):
        parse_document(b"hello", filename="datasheet.pdf")


DEV4 = REPO / "data" / "sample" / "docs_dev4"


def test_a_glossary_entry_is_one_paragraph_term_and_definition():
    html = (b"<html><body><h2>C</h2><dl>\n<dt>Clipping</dt>\n<dd>Perda no pico.</dd>\n"
            b"<dt>Curva I-V</dt><dd>Gr\xc3\xa1fico.</dd><dd>Segunda acep\xc3\xa7\xc3\xa3o.</dd></dl></body></html>")
    text = parse_document(html, filename="glossario.html")[0][0]
    assert "Clipping: Perda no pico." in text and "Curva I-V: Gráfico." in text
    assert "\n\nSegunda acepção." in text  # a second <dd> is its own paragraph


def test_a_plain_text_title_without_the_model_takes_the_model_line_below_it():
    path = DEV4 / "datasheet_inversor_voltera_vtr6k_m1.txt"
    title = parse_document(path.read_bytes(), filename=path.name)[0][1]["title"]
    assert title.startswith("VOLTERA - FOLHA DE DADOS") and "VTR-6K-M1" in title
    # a title that names its model stays as it is
    text = "FICHA TÉCNICA - MÓDULO JA SOLAR JAM72D40-580/LB\n\nOutro modelo XYZ-100 abaixo.\n".encode()
    assert parse_document(text, filename="a.txt")[0][1]["title"] == "FICHA TÉCNICA - MÓDULO JA SOLAR JAM72D40-580/LB"


def test_a_space_aligned_text_table_becomes_rows_read_with_their_column_names():
    text = ("Abaixo desses valores, o frete é cobrado sobre a nota fiscal:\n\n"
            "  Região de entrega          Frete (% da NF)   Frete mínimo   Prazo de entrega*\n"
            "  -------------------------  ----------------  -------------  -----------------\n"
            "  Centro-Oeste               3,5 %             R$ 180,00      2 a 4 dias úteis\n"
            "  Nordeste                   5,9 %             R$ 260,00      5 a 9 dias úteis\n"
            "  Tolerância                          0 a +5 W\n"
            "\n  * contados a partir do despacho.\n")
    parsed = parse_document(text.encode(), filename="frete.txt")[0][0]
    assert "Região de entrega | Frete (% da NF) | Frete mínimo | Prazo de entrega*" in parsed
    assert "Nordeste | 5,9 % | R$ 260,00 | 5 a 9 dias úteis" in parsed
    assert "-----" not in parsed
    # a row with fewer runs than columns is cut under the dash groups
    assert "Tolerância | 0 a +5 W | - | -" in parsed
    assert "* contados a partir do despacho." in parsed  # the table ends at the blank line


def test_a_prose_line_right_under_a_space_aligned_table_is_not_cut_into_cells():
    text = ("  Região            Frete\n"
            "  ----------------  -------\n"
            "  Sudeste           4,8 %\n"
            "Observação: o frete mínimo vale para todas as regiões.\n")
    parsed = parse_document(text.encode(), filename="frete.txt")[0][0]
    assert "Sudeste | 4,8 %" in parsed
    assert "Observação: o frete mínimo vale para todas as regiões." in parsed


def test_a_space_aligned_table_without_a_rule_becomes_rows_too():
    # a procedure exported to text: the columns line up, and no dash rule is under the header
    text = ("6. CLASSIFICAÇÃO DAS ANOMALIAS\n\nA diferença de temperatura é medida no mesmo módulo.\n\n"
            "Classe   ΔT                   Ação\n"
            "C1       abaixo de 10 K       registrar e acompanhar\n"
            "C2       de 10 K a 20 K       programar correção em até 30 dias\n\n"
            "Padrões típicos:\n- Conector quente: mau contato.\n\n"
            # label/value lines are no table: a figure, or a lower-case value, in the first line
            "Potência nominal     6000 W\nTensão máxima        600 V\nPeso                 16 kg\n\n"
            "Refrigeração         convecção natural\nGrau de proteção     IP65\nAltitude             3000 m\n")
    parsed = parse_document(text.encode(), filename="procedimento.txt")[0][0]
    assert "Classe | ΔT | Ação\nC1 | abaixo de 10 K | registrar e acompanhar\n" \
           "C2 | de 10 K a 20 K | programar correção em até 30 dias" in parsed
    assert "|" not in parsed.split("Padrões típicos:")[1]
