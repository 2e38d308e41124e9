"""Hélio's quality on the tuning splits (sample, dev, dev2–dev8), against a real service: floors
that keep the measured figures (docs/rag.md, "Evaluation") from regressing. The held-out
split is reported in docs/rag.md and never used to choose weights or rules, so it has no
floor here (a floor on it would make it a tuning target)."""

import pytest

from ysh.rag.evaluation import run_eval, split_paths, start_service, load_questions

pytestmark = pytest.mark.integration

#: measured on 2026-12-03 (docs/rag.md). sample: hybrid hit@1 0.951, hit@5 0.988 (BM25
#: 0.939 / 0.988); answers with the fact 0.927, citing the right document 0.976. dev:
#: hybrid hit@1 0.983, hit@5 1.000 (BM25 0.948 / 1.000); answers 1.000, cited 1.000 (the
#: dev figures are tuning figures: its failures were read while writing the rules)
FLOORS = {"sample": {"hit@1": 0.93, "hit@5": 0.97, "answers_ok": 0.90, "answers_cited": 0.95},
          "dev": {"hit@1": 0.96, "hit@5": 0.98, "answers_ok": 0.95, "answers_cited": 0.95},
          # dev2 (2026-12-03): hybrid hit@1 0.954, hit@5 1.000 (= BM25); answers 0.969, cited 1.000
          "dev2": {"hit@1": 0.94, "hit@5": 0.98, "answers_ok": 0.95, "answers_cited": 0.95},
          # dev3 (2026-12-03): hybrid hit@1 1.000, hit@5 1.000; answers 0.984, cited 1.000
          "dev3": {"hit@1": 0.98, "hit@5": 0.98, "answers_ok": 0.95, "answers_cited": 0.95},
          # dev4, the retired first held-out split (2026-12-04): hybrid hit@1 0.952, hit@5 1.000
          # (= BM25); answers 0.935, cited 1.000
          "dev4": {"hit@1": 0.93, "hit@5": 0.98, "answers_ok": 0.90, "answers_cited": 0.95},
          # dev5 (2026-12-04): hybrid hit@1 0.986, hit@5 1.000 (= BM25); answers 0.971, cited 1.000;
          # answers 0.929 with the answer ranker (2026-12-05): fitted on every split at once, it
          # gives up three of the answers rules written for dev5 had won, for the blind splits'
          # (docs/rag.md)
          "dev5": {"hit@1": 0.95, "hit@5": 0.98, "answers_ok": 0.92, "answers_cited": 0.95},
          # dev6, the retired second held-out split (2026-12-04): hybrid hit@1 0.938, hit@5 1.000
          # (= BM25); answers 0.923, cited 0.985
          "dev6": {"hit@1": 0.92, "hit@5": 0.98, "answers_ok": 0.88, "answers_cited": 0.95},
          # dev7, the retired third held-out split (2026-12-05): hybrid hit@1 0.938, hit@5 1.000
          # (= BM25); answers 0.906, cited 0.984
          "dev7": {"hit@1": 0.92, "hit@5": 0.98, "answers_ok": 0.87, "answers_cited": 0.95},
          # dev8, the retired fourth held-out split (2026-12-05): hybrid hit@1 0.956, hit@5 1.000
          # (= BM25); answers 0.853 with the answer ranker trained on it, cited 1.000
          "dev8": {"hit@1": 0.94, "hit@5": 0.98, "answers_ok": 0.83, "answers_cited": 0.95}}


@pytest.fixture(scope="module", params=sorted(FLOORS))
def report(request):
    docs, questions = split_paths(request.param)
    asked = load_questions(questions)
    if request.param == "sample":  # the refusal split is over the same documents
        asked += load_questions(split_paths("refusal")[1])
    with start_service(docs, env={"YSH_RAG_LIVE_RECORDS": "false", "YSH_RAG_PGVECTOR": "false"}) as service:
        yield request.param, run_eval(service.url, api_key=service.api_key, questions=asked, answers=True)


def test_the_final_list_keeps_its_figures_and_never_ranks_below_bm25_or_the_fusion(report):
    split, report = report
    hybrid, bm25, fusion = report.scores["hybrid"], report.scores["bm25"], report.scores["fusion"]
    assert hybrid.hit_at[1] >= FLOORS[split]["hit@1"] and hybrid.hit_at[5] >= FLOORS[split]["hit@5"]
    for member in (bm25, fusion):  # "never below BM25 alone on any metric"
        assert all(hybrid.hit_at[c] >= member.hit_at[c] for c in hybrid.hit_at)
        assert hybrid.mrr >= member.mrr - 1e-9


def test_answers_keep_their_figures(report):
    split, report = report
    assert report.answers_ok >= FLOORS[split]["answers_ok"]
    assert report.answers_cited >= FLOORS[split]["answers_cited"]
    # "não encontrei" only where the documents do not answer (docs/rag.md, "Não encontrei")
    assert report.false_refusals == []
    if split == "sample":  # 8 of the 14 refusal questions refused when measured
        assert report.refusals_ok >= 0.5, report.refusal_misses


@pytest.mark.parametrize("split, kinds", [
    ("dev", {"value", "duration", "date", "rule", "procedure", "list"}),
    # dev2 was written without the answerer's rules (rag_eval_dev2_SOURCES.md): half its
    # questions are of no kind the answerer names ("other"), as real questions are
    ("dev2", {"value", "duration", "rule", "procedure", "other"}),
    ("dev3", {"value", "duration", "date", "rule", "procedure", "other"}),
    ("dev4", {"value", "duration", "date", "rule", "procedure", "definition", "other"}),
    # dev5 (2026-12-04), written by a session kept away from the answerer
    ("dev5", {"value", "duration", "date", "rule", "procedure", "definition", "other"}),
    # dev6: the second held-out split, spent after five reports (2026-12-04)
    ("dev6", {"value", "duration", "rule", "procedure", "other"}),
    # dev7: the third held-out split, spent after four reports (2026-12-05); its kinds are
    # the answerer's reading of questions it was never tuned on
    ("dev7", {"value", "rule", "procedure", "other"}),
    # dev8: the fourth held-out split, spent after four reports (2026-12-05)
    ("dev8", {"value", "duration", "list", "procedure", "definition", "other"}),
    # the held-out split (the fifth, 2026-12-05): its shape only (every fact in its
    # documents); its kinds are not looked at, as nothing of it is
    ("heldout", set()),
])
def test_the_dev_splits_name_real_documents_hold_their_facts_and_ask_every_kind(split, kinds):
    from ysh.rag.evaluation import _fold
    from ysh.rag.parsing import parse_document
    from ysh.rag.question import question_kind

    docs, questions = split_paths(split)
    questions = load_questions(questions)
    names = {p.name for p in docs.iterdir()}
    assert len(questions) >= 40 and len(names) >= 12 and len({q.id for q in questions}) == len(questions)
    assert all(q.expected and set(q.expected) <= names and q.answer_contains for q in questions)
    assert kinds <= {question_kind(q.question) for q in questions}
    # every expected fact is in the text the parser extracts from an expected document:
    # a miss is the answerer's, never the split's
    texts = {p.name: _fold("\n".join(t for t, _ in parse_document(p.read_bytes(), filename=p.name)))
             for p in docs.iterdir()}
    missing = [(q.id, fact) for q in questions for fact in q.answer_contains
               if not any(_fold(fact) in texts[e] for e in q.expected)]
    assert missing == []
    assert {e for q in questions for e in q.expected} == names  # every document is asked about
