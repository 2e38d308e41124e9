"""The answer ranker: a fitted correction over the answerer's formula (ysh.rag.ranker)."""

from __future__ import annotations

import json

import pytest

from ysh.rag import ranker
from ysh.rag.answer import Passage, extractive_answer, rank_units

HITS = [
    {"text": "## Garantia\n\nA garantia do produto cobre defeitos de fabricação. O pedido de garantia deve ser "
             "feito pelo integrador no portal. O prazo para abrir o pedido é de 30 dias após a constatação "
             "do defeito.", "metadata": {"path": "docs/politica.md", "title": "Política de garantia"}, "score": 0.03},
    {"text": "## Frete\n\nO frete da garantia é pago pela distribuidora em todo o Brasil.",
     "metadata": {"path": "docs/frete.md", "title": "Frete"}, "score": 0.02},
]
QUESTION = "qual o prazo pra abrir pedido de garantia?"


def passages():
    return [Passage.from_hit(h) for h in HITS]


def test_the_shipped_weights_are_for_this_codes_features():
    weights = ranker.weights()
    assert weights is not None and len(weights) == len(ranker.FEATURES)
    doc = json.loads(ranker.WEIGHTS_FILE.read_text(encoding="utf-8"))
    assert doc["features"] == list(ranker.FEATURES) and doc["l2"] > 0
    # trained on the tuning splits only, never on a held-out one
    from ysh.rag.evaluation import HELD_OUT_SPLITS, TUNING_SPLITS

    assert set(doc["splits"]) <= set(TUNING_SPLITS) and not set(doc["splits"]) & set(HELD_OUT_SPLITS)


def test_weights_for_other_features_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"features": ["coverage"], "weights": [1.0]}), encoding="utf-8")
    with pytest.raises(ValueError, match="retrain"):
        ranker.load_weights(path)
    path.write_text(json.dumps({"features": list(ranker.FEATURES), "weights": [float("nan")] * len(ranker.FEATURES)}),
                    encoding="utf-8")
    with pytest.raises(ValueError, match="finite"):
        ranker.load_weights(path)


def test_the_correction_adds_the_weighted_features_to_the_formula():
    formula, learned = [], []
    rank_units(QUESTION, passages(), learned=None, features_out=formula)
    digit = [0.0] * len(ranker.FEATURES)
    digit[ranker.FEATURES.index("has_digit")] = 5.0
    scored, _, _ = rank_units(QUESTION, passages(), learned=digit, features_out=learned)
    by_text = {unit.text: score for unit, _, score in formula}
    for score, _, _, _, unit in scored:
        assert score == pytest.approx(by_text[unit.text] + (5.0 if any(c.isdigit() for c in unit.text) else 0.0))
    # with no weights the ranking is the formula's
    plain, _, _ = rank_units(QUESTION, passages(), learned=None)
    assert [u.text for *_, u in plain] == sorted(by_text, key=lambda t: -by_text[t])


def test_training_rows_carry_the_scores_the_answerer_ranks_by_also_for_a_count_question():
    kit = [Passage.from_hit({"text": "O kit residencial traz 8 módulos de 550 W. O kit vem com inversor de 5 kW "
                                     "e estrutura para telhado cerâmico.", "metadata": {"path": "docs/kit.md"},
                             "score": 0.03})]
    for question, passages_ in (("quantos módulos vem no kit residencial?", kit), (QUESTION, passages())):
        rows: list = []
        scored, _, _ = rank_units(question, passages_, learned=None, features_out=rows)
        assert {u.text: s for u, _, s in rows} == {u.text: s for s, *_, u in scored}


def test_a_question_group_marks_the_units_that_hold_the_answer():
    xs, base, right = ranker.question_group(QUESTION, ["30 dias"], HITS)
    assert len(xs) == len(base) == len(right) and all(len(x) == len(ranker.FEATURES) for x in xs)
    assert sum(right) == 1  # the one sentence with "30 dias"


def test_fit_learns_what_tells_the_right_unit_and_shrinks_to_nothing_under_heavy_l2():
    # the formula scores every unit alike; the right one is the one with feature 0 set
    groups = [([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
              ([[0.0, 1.0], [1.0, 1.0]], [0.5, 0.0], [0.0, 1.0])]
    weights = ranker.fit(groups, l2=0.01)
    assert weights[0] > 1.0
    assert all(abs(w) < 0.05 for w in ranker.fit(groups, l2=1000.0))
    with pytest.raises(ValueError, match="learn"):
        ranker.fit([([[1.0, 0.0]], [0.0], [1.0])], l2=0.1)  # one unit: nothing to learn


def test_the_losss_gradient_is_its_derivative_also_far_from_the_optimum():
    import numpy as np

    rng = np.random.default_rng(7)
    groups = [(rng.normal(size=(6, 3)).tolist(), rng.normal(size=6).tolist(), [1.0, 0, 0, 1.0, 0, 0])
              for _ in range(5)]
    data = ranker.training_arrays(groups)
    for w in (np.zeros(3), np.array([30.0, -30.0, 10.0])):  # the second: right units nearly impossible
        value, grad = ranker.loss(w, data, 0.3)
        numeric = [(ranker.loss(w + e, data, 0.3)[0] - ranker.loss(w - e, data, 0.3)[0]) / 2e-6
                   for e in np.eye(3) * 1e-6]
        assert np.isfinite(value) and np.allclose(grad, numeric, rtol=1e-4, atol=1e-4)


def test_the_extractive_answer_uses_the_weights_it_is_given():
    answer = extractive_answer(QUESTION, passages(), learned=None)
    assert answer["answer"].splitlines()[1].startswith("- O prazo para abrir o pedido é de 30 dias")
    # a correction against numbers quotes another sentence first (the duration then joins it
    # as the next sentence holding the asked value)
    against = [0.0] * len(ranker.FEATURES)
    against[ranker.FEATURES.index("has_digit")] = -50.0
    first = extractive_answer(QUESTION, passages(), learned=against)["answer"].splitlines()[1]
    assert first.startswith("- O pedido de garantia deve ser feito")


def test_every_split_is_either_tuning_held_out_or_the_refusal_split():
    from ysh.rag.evaluation import HELD_OUT_SPLITS, SPLITS, TUNING_SPLITS

    assert set(SPLITS) == set(TUNING_SPLITS) | set(HELD_OUT_SPLITS) | {"refusal"}
    assert not set(TUNING_SPLITS) & set(HELD_OUT_SPLITS)


def test_a_broken_weights_file_is_a_value_error_naming_it(tmp_path):
    for text in ("{not json", json.dumps({"features": list(ranker.FEATURES)}), json.dumps([1, 2])):
        path = tmp_path / "w.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match="w.json"):
            ranker.load_weights(path)


def test_the_answer_log_is_private_and_never_costs_an_answer(tmp_path, caplog):
    import os
    import stat
    import threading
    from types import SimpleNamespace

    from ysh.errors import InputError
    from ysh.rag.app import _check_answer_log
    from ysh.rag.server import HelioApi

    path = tmp_path / "answers.jsonl"
    path.write_text("", encoding="utf-8")
    os.chmod(path, 0o644)
    api = SimpleNamespace(answer_log=path, _log_lock=threading.Lock())
    HelioApi._log_answer_input(api, "q?", [{"text": "t"}])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and json.loads(path.read_text())["question"] == "q?"
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    missing = tmp_path / "no-such-folder" / "answers.jsonl"
    for bad in (link, missing):
        api.answer_log = bad
        HelioApi._log_answer_input(api, "q?", [])  # a warning, not an exception
        assert "could not append to the answer log" in caplog.text
        with pytest.raises(InputError, match="YSH_RAG_ANSWER_LOG"):
            _check_answer_log(bad)  # and at start, the reason
    assert not (tmp_path / "elsewhere.jsonl").exists()


def test_an_empty_answer_log_setting_is_off(monkeypatch):
    from ysh.settings import Settings

    monkeypatch.setenv("YSH_RAG_ANSWER_LOG", "")
    assert Settings().rag.answer_log is None
    monkeypatch.setenv("YSH_RAG_ANSWER_LOG", "~/answers.jsonl")
    assert Settings().rag.answer_log.is_absolute()


def test_by_default_the_answerer_reads_the_shipped_weights(monkeypatch):
    against = [0.0] * len(ranker.FEATURES)
    against[ranker.FEATURES.index("has_digit")] = -50.0
    monkeypatch.setattr(ranker, "weights", lambda: tuple(against))
    first = extractive_answer(QUESTION, passages())["answer"].splitlines()[1]
    assert first.startswith("- O pedido de garantia deve ser feito")
