"""The live index Hélio's queries read (ysh.rag.serving) and the API's LLM slots."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from ysh.rag.chunking import analyze_pt
from ysh.rag.serving import Change, IndexFeed, LatestRow, LiveIndex, compile_filter, filter_expression

from .fakes import FakeOpenAI


def chunk(key, text, path="docs/a.md", vector=None, title="", **metadata) -> Change:
    return Change(key, text, {"path": path, "title": title, **metadata}, vector,
                  analyze_pt(f"{title}\n{text}"))


def bm25_index(**kwargs) -> LiveIndex:
    return LiveIndex(3, dense_weight=0.0, **kwargs)


# --------------------------------------------------------------------------------------
# BM25
# --------------------------------------------------------------------------------------


def test_bm25_scores_follow_the_formula_tantivy_uses():
    index = bm25_index(analyze=str.lower)
    index.apply([Change("a", "fio b fio", {"path": "a"}, None, "fio b fio"),
                 Change("b", "tusd te", {"path": "b"}, None, "tusd te"),
                 Change("c", "fio tusd te energia", {"path": "c"}, None, "fio tusd te energia")])
    hits = index.search("fio", 3, "bm25")
    assert [h["metadata"]["path"] for h in hits] == ["a", "c"]  # b holds no "fio": not a hit

    n, df, avgdl = 3, 2, (3 + 2 + 4) / 3
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))

    def score(tf, dl):
        return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl))

    assert hits[0]["score"] == pytest.approx(score(2, 3), rel=1e-5)
    assert hits[1]["score"] == pytest.approx(score(1, 4), rel=1e-5)
    # a term repeated in the question counts again, as a second clause does in tantivy
    assert index.search("fio fio", 1, "bm25")[0]["score"] == pytest.approx(2 * score(2, 3), rel=1e-5)


def test_portuguese_questions_match_folded_and_stemmed_chunks():
    index = bm25_index()
    index.apply([chunk(1, "As instalações elétricas devem ser inspecionadas todo ano.", "docs/om.md"),
                 chunk(2, "O frete é grátis acima de R$ 30.000,00.", "docs/frete.md")])
    assert index.search("instalacao eletrica", 1, "bm25")[0]["metadata"]["path"] == "docs/om.md"
    assert index.search("Qual o valor do frete?", 1, "bm25")[0]["metadata"]["path"] == "docs/frete.md"
    assert index.search("zzz inexistente", 5, "bm25") == []


def test_a_question_in_the_askers_words_finds_the_passage_in_the_documents_words():
    from ysh.rag.serving import SYNONYM_WEIGHT

    index = bm25_index()
    index.apply([chunk(1, "Afastamentos mínimos: 300 mm acima do inversor e 500 mm abaixo.", "docs/manual.md"),
                 chunk(2, "O inversor tem grau de proteção IP65.", "docs/datasheet.md")])
    hits = index.search("espaço livre embaixo do inversor", 2, "bm25")
    assert hits[0]["metadata"]["path"] == "docs/manual.md"
    # a synonym weighs less than the word itself
    direct = index.search("afastamento abaixo do inversor", 1, "bm25")[0]["score"]
    assert hits[0]["score"] == pytest.approx(direct * SYNONYM_WEIGHT, rel=0.35) and hits[0]["score"] < direct
    # stemmed as the index stems: "comunique" (index stem "comuniqu") is found for "avisar"
    index.apply([chunk(3, "Comunique a YSH em até 48 horas.", "docs/politica.md")])
    assert index.search("avisar a YSH", 1, "bm25")[0]["metadata"]["path"] == "docs/politica.md"


def test_updates_and_deletions_replace_what_a_search_finds():
    index = bm25_index()
    index.apply([chunk("k", "A garantia do inversor é de 5 anos.")])
    assert index.search("garantia inversor", 1, "bm25")
    # Pathway sends an update as a removal of the old row and an addition of the new one
    index.apply([Change("k", removal=True), chunk("k", "O prazo de entrega é de 10 dias úteis.")])
    assert len(index) == 1
    assert index.search("garantia inversor", 1, "bm25") == []
    assert "entrega" in index.search("prazo entrega", 1, "bm25")[0]["text"]
    index.apply([Change("k", removal=True)])
    assert len(index) == 0 and index.search("prazo entrega", 1, "bm25") == []
    index.apply([Change("nunca-visto", removal=True)])  # a removal of an unknown key is harmless


def test_the_index_grows_past_its_first_capacity_and_reuses_freed_slots():
    rng = np.random.default_rng(1)
    index = LiveIndex(8, dense_weight=1.0, embed_queries=lambda texts: [np.ones(8, dtype=np.float32) for _ in texts])
    index.apply([chunk(i, f"seção {i} do manual código zq{i}x", f"docs/{i}.md", rng.normal(size=8))
                 for i in range(2500)])
    assert len(index) == 2500
    index.apply([Change(i, removal=True) for i in range(0, 2500, 2)])
    index.apply([chunk(f"novo{i}", f"anexo {i} código zq{i}y", f"docs/novo{i}.md", rng.normal(size=8))
                 for i in range(1000)])
    assert len(index) == 2250
    assert len(index._chunks) == 2500  # the freed slots were used again
    assert index.search("zq7x", 1, "bm25")[0]["metadata"]["path"] == "docs/7.md"
    assert index.search("zq8x", 1, "bm25") == []
    assert index.search("zq999y", 1, "bm25")[0]["metadata"]["path"] == "docs/novo999.md"
    assert len(index.search("anexo", 5, "dense")) == 5


# --------------------------------------------------------------------------------------
# dense, hybrid, rerank
# --------------------------------------------------------------------------------------


def test_dense_ranks_by_cosine_similarity():
    index = LiveIndex(2, embed_queries=lambda texts: [np.array([1.0, 0.0]) for _ in texts])
    index.apply([Change("x", "leste", {"path": "x"}, np.array([3.0, 0.1]), "lest"),
                 Change("y", "norte", {"path": "y"}, np.array([0.0, 2.0]), "nort"),
                 Change("z", "sem vetor", {"path": "z"}, None, "vetor")])
    hits = index.search("qualquer", 3, "dense")
    assert [h["metadata"]["path"] for h in hits] == ["x", "y"]  # a chunk without a vector is not a dense hit
    assert hits[0]["score"] == pytest.approx(3 / math.hypot(3, 0.1), rel=1e-5)


def _two_sided_index(weight, **kwargs) -> LiveIndex:
    index = LiveIndex(2, dense_weight=weight, embed_queries=lambda texts: [np.array([0.0, 1.0]) for _ in texts],
                      **kwargs)
    index.apply([Change("lexical", "tarifa branca horário", {"path": "lexical"}, np.array([1.0, 0.0]),
                        analyze_pt("tarifa branca horário")),
                 Change("dense", "modalidade tarifária por horário", {"path": "dense"}, np.array([0.0, 1.0]),
                        analyze_pt("modalidade tarifária por horário"))])
    return index


def test_hybrid_weights_its_members():
    def build(weight, retriever="hybrid", **kwargs):
        index = _two_sided_index(weight, **kwargs)
        return [h["metadata"]["path"] for h in index.search("tarifa branca horário", 2, retriever)]

    assert build(0.025) == ["lexical", "dense"]  # the default: dense only breaks near-ties
    assert build(4.0, "fusion") == ["dense", "lexical"]  # the rank fusion alone follows the weights
    assert build(4.0, bm25_lead_margin=0) == ["dense", "lexical"]  # so does hybrid without the BM25 lead


def test_a_clear_bm25_lead_stays_first_whatever_the_fusion_says():
    index = _two_sided_index(4.0)
    bm25 = index.search("tarifa branca horário", 2, "bm25")
    assert bm25[0]["score"] >= 1.25 * bm25[1]["score"]  # "lexical" leads BM25 by a quarter or more
    hybrid = index.search("tarifa branca horário", 2)
    assert [h["metadata"]["path"] for h in hybrid] == ["lexical", "dense"]
    assert hybrid[0]["score"] >= hybrid[1]["score"]  # the scores keep the list's order


def near_tie(**options) -> LiveIndex:
    """Two documents BM25 nearly ties on "prazo da vistoria" (a.md first), which the dense
    member (weighted far above the default) ranks the other way."""
    index = LiveIndex(2, dense_weight=4.0, embed_queries=lambda texts: [np.array([0.0, 1.0]) for _ in texts],
                      **options)
    index.apply([Change("a", "prazo da vistoria", {"path": "a.md"}, np.array([1.0, 0.0]), analyze_pt("prazo da vistoria")),
                 Change("b", "prazo da vistoria técnica", {"path": "b.md"}, np.array([0.0, 1.0]),
                        analyze_pt("prazo da vistoria técnica"))])
    bm25 = index.search("prazo da vistoria", 2, "bm25")
    assert bm25[0]["metadata"]["path"] == "a.md" and bm25[0]["score"] < 1.25 * bm25[1]["score"]
    assert index.search("prazo da vistoria", 1, "fusion")[0]["metadata"]["path"] == "b.md"
    return index


def test_bm25s_first_stays_first_by_default_even_in_a_near_tie():
    # the bundled English embedder lost more near-ties than it won (docs/rag.md): the
    # default margin of 1.0 never hands BM25's first place to the dense member
    assert near_tie().search("prazo da vistoria", 1)[0]["metadata"]["path"] == "a.md"


def test_with_a_margin_a_near_tie_in_bm25_is_left_to_the_fusion():
    assert near_tie(bm25_lead_margin=1.25).search("prazo da vistoria", 1)[0]["metadata"]["path"] == "b.md"


def test_a_model_code_beats_its_sibling_series():
    # the dense side prefers the sibling; the exact code in the question decides
    index = LiveIndex(2, dense_weight=2.0, embed_queries=lambda texts: [np.array([1.0, 0.0]) for _ in texts])
    index.apply([Change("sibling", "Módulo JAM72S01-550/MR: peso 28,6 kg.", {"path": "jam72s01.pdf"},
                        np.array([1.0, 0.0]), analyze_pt("Módulo JAM72S01-550/MR: peso 28,6 kg.")),
                 Change("exact", "Módulo JAM72S30-550/MR: peso 28,9 kg.", {"path": "jam72s30.pdf"},
                        np.array([0.0, 1.0]), analyze_pt("Módulo JAM72S30-550/MR: peso 28,9 kg."))])
    hits = index.search("Quanto pesa o JAM72S30-550/MR?", 2)
    assert hits[0]["metadata"]["path"] == "jam72s30.pdf"
    assert hits[0]["score"] > hits[1]["score"]  # the scores keep the list's order


# --------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------


def test_filters_use_pathways_rewriting_and_globmatch():
    assert filter_expression("contains(path, `lei`)", "**/*.pdf") == \
        "(contains(path, 'lei')) && globmatch('**/*.pdf', path)"
    assert filter_expression(None, None) is None
    assert compile_filter("globmatch('/srv/docs/**/*.pdf', path)")({"path": "/srv/docs/sub/a.pdf"})
    assert not compile_filter("globmatch('/srv/docs/**/*.pdf', path)")({"path": "/srv/docs/a.md"})
    assert not compile_filter("globmatch('*.pdf', path)")({})  # no path: no match, no error
    assert not compile_filter("contains(page, 'x')")({"page": 5})  # a type error on one row: no match


def test_filtered_searches_only_return_matching_chunks():
    index = bm25_index()
    index.apply([chunk(i, f"O inversor {i} tem garantia de 10 anos.", f"/srv/docs/{'pdf' if i % 3 else 'md'}/{i}."
                       f"{'pdf' if i % 3 else 'md'}", page=i) for i in range(60)])
    hits = index.search("garantia inversor", 5, "bm25", filepath_globpattern="/srv/docs/**/*.md")
    assert len(hits) == 5 and all(h["metadata"]["path"].endswith(".md") for h in hits)
    # as in Pathway, a backtick literal becomes a string ('7'), never the number 7
    hits = index.search("garantia inversor", 50, "hybrid", metadata_filter="ends_with(path, `/7.pdf`)")
    assert [h["metadata"]["page"] for h in hits] == [7]
    assert index.search("garantia inversor", 50, "hybrid", metadata_filter="page == `7`") == []
    assert index.search("garantia", 5, "bm25", metadata_filter="contains(path, `nada`)") == []


def test_clients_never_see_internal_metadata():
    index = bm25_index()
    index.apply([chunk(1, "Texto do manual.", _file_id="123", seen_at=5, owner="root")])
    assert set(index.search("manual", 1, "bm25")[0]["metadata"]) == {"path", "title"}


# --------------------------------------------------------------------------------------
# the pipeline's feed
# --------------------------------------------------------------------------------------


def test_a_batch_is_applied_at_its_times_end_only():
    index = bm25_index()
    feed = IndexFeed(index)
    feed.on_change("a", {"text": "bateria de lítio", "metadata": {"path": "a"}, "vector": None,
                         "terms": analyze_pt("bateria de lítio")}, 2, True)
    assert len(index) == 0
    feed.on_time_end(2)
    assert len(index) == 1 and index.batches == 1
    feed.on_change("a", {"text": "bateria de lítio", "metadata": {"path": "a"}}, 4, False)
    feed.on_change("a", {"text": "bateria de chumbo", "metadata": {"path": "a"}, "vector": None,
                         "terms": analyze_pt("bateria de chumbo")}, 4, True)
    feed.on_time_end(4)
    assert index.search("chumbo", 1, "bm25") and not index.search("litio", 1, "bm25")


@pytest.mark.parametrize("order", ["removal first", "addition first"])
def test_latest_row_follows_an_update_in_either_order(order):
    latest = LatestRow()
    latest.on_change(0, {"files": 1}, 2, True)
    latest.on_time_end(2)
    changes = [({"files": 1}, False), ({"files": 2}, True)]
    for row, is_addition in (changes if order == "removal first" else changes[::-1]):
        latest.on_change(0, row, 4, is_addition)
    assert latest.get() == {"files": 1}  # not before the time ends
    latest.on_time_end(4)
    assert latest.get() == {"files": 2}
    latest.on_change(0, {"files": 2}, 6, False)
    latest.on_time_end(6)
    assert latest.get() is None


# --------------------------------------------------------------------------------------
# the API's LLM slots (an OpenAI-compatible fake on loopback)
# --------------------------------------------------------------------------------------


def helio_api(chat: FakeOpenAI, **kwargs):
    from ysh.rag.server import HelioApi

    index = bm25_index()
    index.apply([chunk(1, "Os créditos de energia valem por 60 meses.", "lei_14300.md", title="Lei 14.300")])
    return HelioApi(index, LatestRow(), LatestRow(), lambda: {"embedded": 0, "cache_hits": 0},
                    llm_base_url=chat.base_url, llm_model="teste", **kwargs)


async def _post(client, question):
    response = await client.post("/v2/answer", json={"prompt": question})
    return response.status, response.headers.get("Retry-After"), await response.json()


def test_llm_answers_beyond_the_cap_get_503_with_retry_after():
    from aiohttp.test_utils import TestClient, TestServer

    chat = FakeOpenAI("São 60 meses [1].", hold_s=30)
    api = helio_api(chat, llm_max_concurrent=1, llm_timeout_s=20)

    async def run():
        app = api.application(api_key=None, max_request_bytes=65536, local_only=True)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            first = asyncio.create_task(_post(client, "Por quanto tempo valem os créditos?"))
            await asyncio.get_running_loop().run_in_executor(None, chat.arrived.acquire)  # the slot is taken
            second = await _post(client, "E os créditos?")
            chat.release.set()
            return await first, second

    try:
        (status1, _, body1), (status2, retry_after, body2) = asyncio.run(run())
    finally:
        chat.stop()
    assert status1 == 200 and body1["mode"] == "llm" and "60 meses" in body1["answer"]
    assert status2 == 503 and int(retry_after) >= 1 and "busy" in body2["error"]


def test_a_slow_llm_falls_back_to_the_extractive_answer():
    from aiohttp.test_utils import TestClient, TestServer

    chat = FakeOpenAI("São 60 meses [1].", hold_s=5)
    api = helio_api(chat, llm_timeout_s=0.5)

    async def run():
        app = api.application(api_key=None, max_request_bytes=65536, local_only=True)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await _post(client, "Por quanto tempo valem os créditos de energia?")

    try:
        status, _, body = asyncio.run(run())
    finally:
        chat.stop()
    assert status == 200 and body["mode"] == "extractive"
    assert "60 meses" in body["answer"] and "LLM endpoint failed" in body["warning"]


# --------------------------------------------------------------------------------------
# questions embedded in batches
# --------------------------------------------------------------------------------------


class SlowBackend:
    """A model that takes 0.2 s a call, whatever the batch, and counts its calls."""

    name, dimensions = "lento", 2

    def __init__(self):
        self.calls: list[int] = []

    def encode(self, texts):
        import time

        self.calls.append(len(texts))
        time.sleep(0.2)
        return np.array([[1.0, len(t) % 3] for t in texts], dtype=np.float32)


def test_concurrent_searches_share_a_model_call_and_a_pass_over_the_vectors():
    from concurrent.futures import ThreadPoolExecutor

    from ysh.rag.embedding import EmbeddingCache
    from ysh.rag.serving import Query, SearchBatcher

    backend = SlowBackend()
    cache = EmbeddingCache(backend)
    index = LiveIndex(2, dense_weight=0.5, embed_queries=lambda texts: cache.embed(texts, queries=True))
    index.apply([chunk(i, f"O inversor modelo zq{i} tem garantia de {i} anos.", f"docs/{i}.md", np.array([1.0, i]))
                 for i in range(50)])
    batcher = SearchBatcher(index)
    queries = [Query(f"garantia do inversor zq{i}", 3) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(batcher.search, queries))
    # each caller gets the results of its own question, the same as a search alone
    assert [r[0]["metadata"]["path"] for r in results] == [f"docs/{i}.md" for i in range(16)]
    assert results[5] == index.search("garantia do inversor zq5", 3)
    assert sum(backend.calls) == 16 and len(backend.calls) <= 3  # not 16 model calls in a row
    assert batcher.batches <= 3 and batcher.requests == 16
    assert cache.stats()["queries_embedded"] == 16 and cache.stats()["embedded"] == 0
    bm25 = batcher.search(Query("garantia zq3", 1, "bm25"))
    assert bm25[0]["metadata"]["path"] == "docs/3.md" and sum(backend.calls) == 16  # BM25 needs no vector


def test_a_failing_request_fails_alone():
    from concurrent.futures import ThreadPoolExecutor

    from ysh.rag.serving import Query, SearchBatcher

    index = bm25_index()
    index.apply([chunk(1, "A bateria de lítio dura 6.000 ciclos.")])
    batcher = SearchBatcher(index)
    good, bad = Query("bateria ciclos", 1, "bm25"), Query("bateria", 1, "inexistente")
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(batcher.search, q) for q in (good, bad, good, bad)]
    assert futures[0].result()[0]["text"].startswith("A bateria") and futures[2].result()
    for future in (futures[1], futures[3]):
        with pytest.raises(ValueError, match="retriever must be one of"):
            future.result()
    assert batcher.search(good)  # the worker goes on


# --------------------------------------------------------------------------------------
# issue 12, dev2: the final list never demotes BM25's right first document
# --------------------------------------------------------------------------------------


def _indexed_files(index: LiveIndex, *paths) -> None:
    """Parse, chunk and analyze real files as the pipeline does (title + heading path +
    text: ``pipeline._lexical_view``); no vectors."""
    from ysh.rag.chunking import TokenChunker
    from ysh.rag.parsing import parse_document

    changes = []
    for path in paths:
        for i, (text, md) in enumerate(TokenChunker(200, 40).chunk_document(parse_document(path.read_bytes()))):
            md = {**md, "path": str(path)}
            context = f"{md.get('title', '')} {md.get('heading_path') or md.get('section') or ''}"
            changes.append(Change(f"{path.name}#{i}", text, md, None, analyze_pt(f"{context}\n{text}")))
    index.apply(changes)


def test_a_model_code_without_its_makers_prefix_agrees_with_the_datasheet_that_has_it():
    from ysh.db import data_path

    # the datasheet writes TSM-NEG9R.28; its sibling (NEG9RC.27) names "NEG9R.28" once, to
    # contrast itself with it. A question that says "NEG9R.28" means the first datasheet:
    # the code with the maker's prefix is the same code, not a weaker match than the mention
    folder = data_path("sample", "docs_dev2")
    right = folder / "datasheet_modulo_trina_vertex_s_plus_neg9r28.md"
    sibling = folder / "datasheet_modulo_trina_vertex_s_plus_neg9rc27.txt"
    index = bm25_index()
    _indexed_files(index, right, sibling)
    question = "quanto de potência fica garantida no ano 30 do NEG9R.28?"
    assert index.search(question, 1, "bm25")[0]["metadata"]["path"] == str(right)
    hybrid = index.search(question, 3)
    assert hybrid[0]["metadata"]["path"] == str(right) and "87,4 %" in hybrid[0]["text"]
    # the sibling asked with its own full code is still found by its code
    assert index.search("quanto pesa o TSM-NEG9RC.27?", 1)[0]["metadata"]["path"] == str(sibling)
    # codes agree only through a letters-only leading segment kept as a word of its own
    def agree(question, passage):
        return index._agreeing_codes(index._codes(question), set(analyze_pt(passage).split()))

    assert agree("garantia do NEG9R.28", "Módulo TSM-NEG9R.28") == agree("garantia do NEG9R.28", "NEG9R.28") == 2
    assert agree("garantia do TSM-NEG9R.28", "Módulo NEG9R.28") == 2  # neg9r, and tsmneg9r28 as neg9r28
    assert agree("garantia do NEG9RC.27", "Módulo TSM-NEG9R.28") == 0
    assert agree("garantia do 6000TL-X", "Inversor MOD 16000TL-X") == 0  # "1" is no maker's prefix
    assert agree("peso do HMS-1600-4T", "Microinversor HMS-1800-4T") == 0
    assert agree("potência do SUN-8K", "Inversor 8K") == 0  # "8k" alone is not a model code
    # ordinals and numbers with units are not model codes
    codes = index._codes("potência no fim do 30º ano (12ª parcela) do NEG9R.28 de 440 W")
    assert set(codes) == {"neg9r", "neg9r28"}


def _faturamento_index() -> LiveIndex:
    """BM25 puts the regulation's article first and the FAQ close behind; the dense member
    (weight 2: the fusion follows it) ranks the FAQ above that article, but ranks another
    chunk of the regulation (no question word in it) above everything."""
    # (the near-tie is built on the question's own words: synonyms, which would add "valor"
    # for "custo", are off)
    # (the mechanism with a margin above 1: the default of 1.0 never lets the dense member
    # take BM25's first place)
    index = LiveIndex(2, dense_weight=2.0, embed_queries=lambda texts: [np.array([0.0, 1.0]) for _ in texts],
                      synonyms=False, bm25_lead_margin=1.25)
    regulation, faq = "docs/scee_faturamento.md", "docs/faq_clientes.html"
    index.apply([
        Change("art2", "## Capítulo II — Faturamento do grupo B\n\nArt. 2º O valor mínimo faturável da unidade "
               "consumidora do grupo B é o custo de disponibilidade do sistema elétrico, equivalente a:\nI - 30 kWh, "
               "se monofásica ou bifásica a dois condutores;\nII - 50 kWh, se bifásica a três condutores;\n"
               "III - 100 kWh, se trifásica.", {"path": regulation}, np.array([1.0, 0.3]),
               analyze_pt("Art. 2º O valor mínimo faturável da unidade consumidora do grupo B é o custo de "
                          "disponibilidade do sistema elétrico: III - 100 kWh, se trifásica.")),
        Change("faq", "### Minha conta de luz vai zerar?\n\nNão. Mesmo gerando tudo o que consome, você continua "
               "pagando o custo de disponibilidade (o mínimo da sua ligação), a contribuição de iluminação pública "
               "e a parcela do Fio B.", {"path": faq}, np.array([0.5, 1.0]),
               analyze_pt("Minha conta de luz vai zerar? Não. Mesmo gerando tudo o que consome, você continua "
                          "pagando o custo de disponibilidade (o mínimo da sua ligação), a contribuição de "
                          "iluminação pública e a parcela do Fio B.")),
        Change("art4", "§ 2º A nova distribuição vale a partir do ciclo de faturamento seguinte ao processamento "
               "do pedido.", {"path": regulation}, np.array([0.1, 1.0]),
               analyze_pt("§ 2º A nova distribuição vale a partir do ciclo seguinte ao processamento do pedido.")),
    ])
    return index


def test_a_near_tie_goes_to_the_fusion_only_when_the_dense_member_prefers_the_other_document():
    index = _faturamento_index()
    question = "qual o custo de disponibilidade de uma ligação trifásica"
    bm25 = index.search(question, 3, "bm25")
    assert [h["metadata"]["path"] for h in bm25] == ["docs/scee_faturamento.md", "docs/faq_clientes.html"]
    assert bm25[0]["score"] < 1.25 * bm25[1]["score"]  # a near-tie: the lead margin does not decide
    fusion = index.search(question, 3, "fusion")
    assert fusion[0]["metadata"]["path"] == "docs/faq_clientes.html"  # the dense vote swapped the first two
    # ...but the dense member's best chunk of the regulation beats its best chunk of the FAQ:
    # the two members agree on the regulation, and BM25's first goes back to the top
    hybrid = index.search(question, 3)
    assert hybrid[0]["text"].startswith("## Capítulo II") and hybrid[0]["score"] >= hybrid[1]["score"]
    # when the dense member prefers the FAQ's document too, the near-tie stays the fusion's
    index.apply([Change("art4", removal=True)])
    assert index.search(question, 3)[0]["metadata"]["path"] == "docs/faq_clientes.html"
    # a filter that leaves the regulation's closer chunk out leaves the fusion's order too
    index.apply([Change("art4", "§ 2º A nova distribuição", {"path": "docs/scee_faturamento.md", "page": "9"},
                        np.array([0.1, 1.0]), analyze_pt("§ 2º A nova distribuição"))])
    assert index.search(question, 3)[0]["metadata"]["path"] == "docs/scee_faturamento.md"
    assert index.search(question, 3, metadata_filter="page != `9`")[0]["metadata"]["path"] == \
        "docs/faq_clientes.html"


def test_a_hit_cut_mid_sentence_brings_the_chunk_that_finishes_it():
    index = bm25_index()
    guide = "docs/guia.pdf"
    index.apply([
        chunk("c14", "Faça o comissionamento. Instale no padrão de entrada a placa de advertência", guide, chunk_index=14,
              page="1"),
        chunk("c15", 'exigida pelas distribuidoras, com os dizeres\n"CUIDADO — GERAÇÃO PRÓPRIA".\nPágina 2 de 3',
              guide, chunk_index=15, page="2"),
        chunk("c16", "Solicite a vistoria.", guide, chunk_index=16),
        chunk("o1", "Outro documento que termina sem ponto", "docs/outro.md", chunk_index=0),
        chunk("o2", "Começa com maiúscula: não continua a frase.", "docs/outro.md", chunk_index=1),
    ])
    hits = index.search("placa de advertência no padrão de entrada", 1, "bm25")
    assert [h["metadata"]["chunk_index"] for h in hits] == [14]
    extra = index.continuations(hits)
    assert [(h["metadata"]["chunk_index"], h["score"]) for h in extra] == [(15, 0.0)]
    assert index.continuations(hits + extra) == []  # already among the hits
    # a chunk that ends a sentence, or whose next chunk opens a new one, brings nothing
    assert index.continuations(index.search("vistoria", 1, "bm25")) == []
    assert index.continuations(index.search("outro documento", 1, "bm25")) == []
    # the request's filters hold for the chunk brought in too
    assert index.continuations(hits, metadata_filter="page != `2`") == []
    assert index.continuations(hits, filepath_globpattern="**/*.pdf") == extra
    # malformed hits bring nothing and do not fail
    assert index.continuations([{"text": None, "metadata": None}, {"text": "x", "metadata": {"chunk_index": True}}]) == []


def test_the_answerer_reads_a_short_first_document_whole():
    index = bm25_index()
    memo = "docs/memorial.md"
    index.apply([
        chunk("m0", "Exemplo residencial: premissas do retorno do investimento.", memo, chunk_index=0),
        chunk("m1", "Resultados:\n- TIR: cerca de 34,8 % ao ano.", memo, chunk_index=1, page="2"),
        chunk("m2", "Cuidados ao apresentar ao cliente.", memo, chunk_index=2),
        chunk("o1", "Outro documento sobre retorno.", "docs/outro.md", chunk_index=0),
    ])
    hits = index.search("retorno do investimento do exemplo residencial", 1, "bm25")
    assert [h["metadata"]["chunk_index"] for h in hits] == [0]
    rest = index.rest_of_document(hits)
    # the other chunks of the first hit's document, in order, after the hits (score 0)
    assert [(h["metadata"]["path"], h["metadata"]["chunk_index"], h["score"]) for h in rest] == \
        [(memo, 1, 0.0), (memo, 2, 0.0)]
    assert index.rest_of_document(hits + rest) == []  # already among the hits
    assert [h["metadata"]["chunk_index"] for h in index.rest_of_document(hits, metadata_filter="page != `2`")] == [2]
    assert index.rest_of_document(hits, limit=2) == []  # a long document is not read whole
    assert index.rest_of_document([]) == []


def test_a_chunk_naming_both_compared_models_does_not_outrank_their_datasheets():
    # "qual tem a maior eficiência, 1800Q ou 2250Q": each datasheet holds one of the two
    # codes; a manual that names both in passing is about neither one's efficiency
    index = bm25_index()
    index.apply([
        chunk("d1", "## Eficiência\n\nEficiência de pico | 96,7 %", "docs/sbm1800q.html", title="Sabiá SBM-1800Q"),
        chunk("d2", "## Eficiência\n\n| Eficiência de pico | 96,5 % |", "docs/sbm2250q.md", title="Sabiá SBM-2250Q"),
        chunk("m1", "A carcaça dos microinversores SBM-1800Q e SBM-2250Q é aterrada no trilho.", "docs/manual.docx",
              title="Manual Sabiá"),
    ])
    question = "qual dos micros sabia tem a maior eficiencia de pico, 1800Q ou 2250Q"
    assert index.search(question, 1, "bm25")[0]["metadata"]["path"] == "docs/sbm1800q.html"
    assert [h["metadata"]["path"] for h in index.search(question, 3)][:2] == ["docs/sbm1800q.html", "docs/sbm2250q.md"]
    # written together, the two codes are still two models weighed
    assert index._code_groups("eficiencia de pico, 1800Q/2250Q?") == [{"1800q"}, {"2250q"}]
    # a model and a fault code are no alternatives: the row holding both holds more
    question = "o que fazer com F-201 de isolamento no inversor CNB15KTL-G2"
    codes, groups = index._codes(question), index._code_groups(question)
    assert groups is None
    assert index._agreeing_codes(codes, set(analyze_pt("F-201 no CNB15KTL-G2").split()), groups) > \
        index._agreeing_codes(codes, set(analyze_pt("Datasheet CNB15KTL-G2").split()), groups)
    # one written code still counts all of its forms: the exact code beats its series
    codes = index._codes("qual o melhor, NEG9R.28 ou NEG9RC.27?")
    groups = index._code_groups("qual o melhor, NEG9R.28 ou NEG9RC.27?")
    assert index._agreeing_codes(codes, set(analyze_pt("Módulo TSM-NEG9R.28").split()), groups) == 2
    assert index._agreeing_codes(codes, set(analyze_pt("Série NEG9R").split()), groups) == 1
