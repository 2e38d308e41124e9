"""Chunking with the model's own tokenizer: sizes, sections, overlap, stable hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ysh.rag.chunking import TokenChunker, fold_text
from ysh.rag.parsing import parse_document

DOCS = Path(__file__).resolve().parents[2] / "data" / "sample" / "docs"


@pytest.fixture(scope="module")
def chunker():
    return TokenChunker(max_tokens=200, overlap_tokens=40)


def chunks_of(chunker, name):
    path = DOCS / name
    return chunker.chunk_document(parse_document(path.read_bytes(), filename=name), {"path": str(path)})


@pytest.mark.parametrize("name", sorted(p.name for p in DOCS.iterdir()))
def test_chunks_fit_the_token_budget_and_carry_metadata(chunker, name):
    chunks = chunks_of(chunker, name)
    assert chunks
    assert [m["chunk_index"] for _, m in chunks] == list(range(len(chunks)))
    for text, meta in chunks:
        assert chunker.n_tokens(text) <= 200
        assert meta["path"].endswith(name) and meta["title"] and meta["format"]
        assert meta["content_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_pdf_chunks_keep_their_page_and_number_across_pages(chunker):
    chunks = chunks_of(chunker, "guia_conexao_mmgd_prodist_modulo3.pdf")
    pages = [m["page"] for _, m in chunks]
    assert pages == sorted(pages) and set(pages) == {1, 2, 3}
    assert len({m["chunk_index"] for _, m in chunks}) == len(chunks)


def test_a_heading_starts_a_chunk_and_names_its_section(chunker):
    chunks = chunks_of(chunker, "lei_14300_marco_legal_gd.md")
    fio_b = [t for t, m in chunks if m.get("section") == "Transição do Fio B (GD II)"]
    assert fio_b and fio_b[0].startswith("## Transição do Fio B (GD II)")
    assert any("| 2026 | 60 % |" in t for t in fio_b)


def test_docx_sections_come_from_heading_styles(chunker):
    sections = {m.get("section") for _, m in chunks_of(chunker, "manual_instalacao_sistemas_fv.docx")}
    assert "1. Segurança do trabalho" in sections


def test_long_sections_overlap_by_a_paragraph(chunker):
    paragraphs = [f"Parágrafo {i}: o inversor deve ser instalado em local ventilado e protegido." for i in range(40)]
    chunks = chunker.chunk("# Manual\n\n" + "\n\n".join(paragraphs), {})
    assert len(chunks) > 2
    first, second = chunks[0][0].split("\n\n"), chunks[1][0].split("\n\n")
    assert second[0] == first[-1]  # the previous chunk's last paragraph is repeated


def test_a_giant_sentence_is_cut_into_token_windows(chunker):
    text = " ".join(["fotovoltaico"] * 1000)
    chunks = chunker.chunk(text, {})
    assert len(chunks) > 1 and all(chunker.n_tokens(t) <= 200 for t, _ in chunks)


def test_editing_one_section_changes_only_that_sections_chunks(chunker):
    sections = [f"## Seção {i}\n\n" + f"Texto da seção {i} sobre compensação de energia. " * 8 for i in range(6)]
    before = chunker.chunk("# Documento\n\n" + "\n\n".join(sections), {})
    sections[3] = "## Seção 3\n\nTexto novo e diferente."
    after = chunker.chunk("# Documento\n\n" + "\n\n".join(sections), {})
    changed = {m["content_sha256"] for _, m in after} - {m["content_sha256"] for _, m in before}
    assert len(changed) == 1


def test_fold_text_is_accent_insensitive_and_removes_query_syntax():
    assert fold_text("Transição do Fio B: 2026 (GD-II) AND \"créditos\"") == "transicao do fio b 2026 gd ii and creditos"


def test_a_list_stays_with_its_lead_in_and_chunks_carry_their_heading_path():
    chunker = TokenChunker(max_tokens=60, overlap_tokens=0)
    items = "\n".join(f"- {15 * i} % em {2022 + i}, parcela da transição;" for i in range(1, 7))
    text = ("# Lei 14.300\n\n## Regra de transição do Fio B\n\n" + "Texto de contexto sobre a regra. " * 6
            + "\n\nA parcela crescente da TUSD Fio B sobre a energia compensada é:\n\n" + items)
    chunks = chunker.chunk(text, {})
    with_items = [t for t, _ in chunks if "% em 20" in t]
    assert with_items and all(t.startswith("A parcela crescente da TUSD Fio B") for t in with_items)
    assert {m.get("heading_path") for _, m in chunks} == {"Lei 14.300", "Lei 14.300 › Regra de transição do Fio B"}


def test_the_portuguese_analyzer_stems_folds_and_keeps_codes_whole():
    from ysh.rag.chunking import analyze_pt

    assert set(analyze_pt("instalações").split()) == set(analyze_pt("instalacao").split()) == {"instal"}
    codes = analyze_pt("Módulo JA Solar JAM72S30-550/MR; inversor 5000TL-X de 550 V; Lei 14.300").split()
    assert {"jam72s30550mr", "5000tlx", "550v", "14300", "ja"} <= set(codes)
    assert "jam72s01" not in codes and "de" not in codes


# --------------------------------------------------------------------------------------
# long tables and lists (real shapes: a catalogue table, a plain-text export's wrapped list)
# --------------------------------------------------------------------------------------

def test_every_piece_of_a_long_table_opens_with_its_header(chunker):
    header = "| Código | Corrente nominal | Tensão nominal | Perda de potência | Preço unitário |\n|---|---|---|---|---|"
    rows = [f"| MDC-F10-{i:02d}G1 | {i} A | 1.000 V CC | {i / 10:.1f} W | R$ {10 + i},90 |" for i in range(1, 41)]
    chunks = chunker.chunk("## Fusíveis\n\n" + header + "\n" + "\n".join(rows))
    table = [text for text, _ in chunks if "MDC-F10" in text]
    assert len(table) > 1
    assert all(text.startswith(header) for text in table)
    assert all(chunker.n_tokens(text) <= 200 for text, _ in chunks)
    assert sum(text.count("MDC-F10-") for text in table) >= len(rows)  # no row lost


def test_a_pipe_table_without_a_rule_repeats_its_header_too(chunker):
    header = "Parâmetro | PRC-BX100A | PRC-BX215L"
    rows = [f"Grandeza número {i} do gabinete | {i},5 kg | {2 * i},5 kg" for i in range(1, 50)]
    pieces = [text for text, _ in chunker.chunk(header + "\n" + "\n".join(rows))]
    assert len(pieces) > 1 and all(text.startswith(header + "\n") for text in pieces)


def test_a_wrapped_list_item_is_never_cut_and_the_lead_in_opens_the_next_piece(chunker):
    # a plain-text manual: the lead-in after a first sentence, items wrapped at 70 columns
    items = [f"  {i}) Passo {i} da montagem: aperte os parafusos da viga {i} com o torque indicado na\n"
             f"     tabela de torques, ainda sem o aperto final da estrutura." for i in range(1, 15)]
    text = ("Antes de comecar, isole a area de trabalho e confirme a cura dos\ntubuloes. "
            "Depois, monte cada vao nesta ordem:\n" + "\n".join(items))
    pieces = [t for t, _ in chunker.chunk(text)]
    assert len(pieces) > 1
    for piece in pieces:
        assert not piece.rstrip().endswith("indicado na")  # an item's first line never ends a piece
    assert all(p.startswith("Depois, monte cada vao nesta ordem:") for p in pieces[1:])
    assert all(chunker.n_tokens(p) <= 200 for p in pieces)


def test_a_table_row_of_two_sentences_is_never_cut_between_pieces(chunker):
    # a fault-code table: the action cell holds two sentences, the second one the answer
    header = "| Código | Descrição | Ação recomendada |\n|---|---|---|"
    rows = [f"| F-2{i:02d} | Falha número {i} do lado CC | Não abrir o conector sob carga. Esperar o anoitecer "
            f"(corrente zero), desligar a chave CC e corrigir o item {i}. |" for i in range(1, 30)]
    pieces = [text for text, _ in chunker.chunk("## Falhas\n\n" + header + "\n" + "\n".join(rows))]
    assert len(pieces) > 1
    for piece in pieces:
        assert header + "\n" in piece  # the header, then a row on a line of its own
        body = piece.split(header + "\n", 1)[1].split("\n")
        assert all(line.startswith("| F-2") and line.endswith("|") for line in body), body
    assert sum(piece.count("Esperar o anoitecer") for piece in pieces) >= len(rows)
