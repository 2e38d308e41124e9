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
