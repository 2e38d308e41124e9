"""A learned correction to the extractive answerer's unit score.

The answerer (:func:`ysh.rag.answer.rank_units`) scores each quotable unit with a formula
whose weights and rules were written by reading the tuning splits' misses. On each split
written blind, that formula left about one question in five unanswered (docs/rag.md).
This module adds to it a linear term over :data:`FEATURES` — the formula's own parts plus
a few shape facts of the unit — whose weights are fitted, not chosen: a listwise logistic
model (the probability that a unit is the answer is the softmax of the scores over the
question's units) trained on the tuning splits' questions, where a unit is right when it
holds an ``answer_contains`` string; L2-regularised towards zero (no correction).

It is a residual: with every weight 0 the answerer is the formula alone. The weights live
in ``answer_ranker.json`` beside this file, written by ``scripts/train_answer_ranker.py``
(which records the passages the service gives each tuning question, fits, and writes the
file with the splits and the regularisation it used).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from .passages import Unit, is_table_row
from .question import fold_text

#: the features, in the order of the weights file
FEATURES = (
    "coverage",  # share of the question's term weight the unit holds (with its context)
    "focus",  # share of the asked attribute's weight in the unit's own text
    "kind_bonus",  # the unit holds what the question kind asks for (a duration, a value…)
    "unit_agreement",  # a value in the unit the asked attribute is measured in
    "count_agreement",  # counts the thing a "quantos" question counts
    "heading_answers",  # under a heading that holds the question's words
    "label_cover",  # its label ("TIR: …") names what is asked
    "passage_rank",  # 1 / (rank of its passage + 1)
    "position",  # its place in the passage (0 … 1, capped at 60 units)
    "log_length",  # log(1 + characters) / 6
    "list_with_items",  # a lead-in with at least two items
    "table_row",
    "has_digit",
    "opens_section",
    "in_block",  # a line of a plain-text spec block
    "first_under_heading",
    "title_cover",  # share of the question's term weight its document's title holds
    "has_caption",  # a table row or list item with a lead-in
    "has_header",  # a table row with its header
    "coverage_x_kind",
    "coverage_squared",
    "is_question",  # the unit itself ends in "?"
    "value_kind_with_digit",
    "rule_words",  # a rule or yes/no question, and the unit says não / deve / pode / somente…
)

_DIGIT = re.compile(r"\d")
_RULE_WORDS = re.compile(r"\b(nao|deve|pode|obrigatori|proibid|somente|apenas)\b")
WEIGHTS_FILE = Path(__file__).with_name("answer_ranker.json")


def unit_features(unit: Unit, *, kind: str, coverage: float, focus: float, kind_bonus: float,
                  unit_agreement: float, counts: float, heading: float, label: float, rank: int,
                  position: int, first_under_heading: bool, weight: dict[str, float]) -> list[float]:
    """The feature vector of one unit (in :data:`FEATURES` order)."""
    text = unit.text
    total = sum(weight.values()) or 1.0
    title = unit.title_stems or set()
    title_cover = sum(w for t, w in weight.items() if t in title) / total
    digit = bool(_DIGIT.search(text))
    return [
        coverage, focus, kind_bonus, unit_agreement, counts, heading, label, 1.0 / (rank + 1),
        min(position, 60) / 60, math.log1p(len(text)) / 6, float(len(unit.parts) >= 3),
        float(is_table_row(unit.parts[0])), float(digit), float(unit.opens_section), float(unit.in_block),
        float(first_under_heading), title_cover, float(unit.caption is not None), float(unit.header is not None),
        coverage * kind_bonus, coverage * coverage, float(text.rstrip().endswith("?")),
        float(kind == "value" and digit),
        float(kind in ("rule", "other") and bool(_RULE_WORDS.search(fold_text(text)))),
    ]


def correction(features: Sequence[float], weights: Sequence[float]) -> float:
    """What the learned term adds to a unit's score."""
    return sum(f * w for f, w in zip(features, weights))


@lru_cache(maxsize=1)
def weights() -> tuple[float, ...] | None:
    """The shipped weights (None when the file is missing: the formula alone). A file whose
    feature names are not :data:`FEATURES` is an error: the code and the weights disagree."""
    if not WEIGHTS_FILE.is_file():
        return None
    return load_weights(WEIGHTS_FILE)


def load_weights(path: Path) -> tuple[float, ...]:
    """The weights of a ranker file; ValueError naming the problem when it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(doc.get("features") or ())
        values = tuple(float(w) for w in doc["weights"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not an answer ranker file ({type(exc).__name__}: {exc})") from None
    if names != FEATURES:
        raise ValueError(f"{path}: its features {list(names)} are not this code's {list(FEATURES)}; "
                         "retrain with scripts/train_answer_ranker.py")
    if len(values) != len(FEATURES) or not all(math.isfinite(w) for w in values):
        raise ValueError(f"{path}: expected {len(FEATURES)} finite weights")
    return values


# ------------------------------------------------------------------------------------
# training (scripts/train_answer_ranker.py)
# ------------------------------------------------------------------------------------

#: one question's candidates: (feature vectors, formula scores, 1.0 where the unit holds the answer)
Group = tuple[list[list[float]], list[float], list[float]]


def fit(groups: Sequence[Group], l2: float) -> list[float]:
    """Weights minimising the listwise loss −log Σ_{right units} softmax(formula + w·x) over
    the questions, plus ``l2``·|w|². Questions whose units are all right or all wrong
    teach nothing and are skipped."""
    import numpy as np
    from scipy.optimize import minimize

    data = training_arrays(groups)
    if not data:
        raise ValueError("no question has both right and wrong units to learn from")
    result = minimize(loss, np.zeros(data[0][0].shape[1]), args=(data, l2), jac=True, method="L-BFGS-B")
    if not result.success:
        raise RuntimeError(f"the ranker's fit did not converge: {result.message}")
    return [float(w) for w in result.x]


def training_arrays(groups: Sequence[Group]) -> list[tuple]:
    """(features, formula scores, right) as arrays, for the questions that teach something."""
    import numpy as np

    data = []
    for xs, base, right in groups:
        y = np.asarray(right, dtype=bool)
        if 0 < y.sum() < len(y):
            data.append((np.asarray(xs, dtype=float), np.asarray(base, dtype=float), y))
    return data


def loss(w, data: list[tuple], l2: float):
    """(loss, gradient) of :func:`fit` at ``w``: per question logsumexp(all scores) −
    logsumexp(right units' scores), whose gradient is the units' softmax minus the right
    units' own softmax, weighted by the features (exact also where the right units have
    almost no probability)."""
    import numpy as np

    total, grad = 0.0, np.zeros(len(w))
    for x, base, right in data:
        s = base + x @ w
        top, top_right = s.max(), s[right].max()
        p = np.exp(s - top)
        q = np.where(right, np.exp(s - top_right), 0.0)
        total += top + math.log(p.sum()) - top_right - math.log(q.sum())
        grad += (p / p.sum() - q / q.sum()) @ x
    return total + l2 * float(w @ w), grad + 2 * l2 * w


def question_group(question: str, answer_contains: Sequence[str], hits: Sequence[dict]) -> Group | None:
    """The training rows of one tuning question: its units as the answerer scores them from
    ``hits`` (what the service answered from), by the formula alone, each marked right
    when it holds one of ``answer_contains``; None when no unit scored or the answerer
    answers before ranking units (a live record, a subject no passage names)."""
    from .answer import _record_answer, missing_subject, passages_of, rank_units
    from .evaluation import answer_contains_all
    from .question import chat_expanded

    passages = passages_of(hits)
    question = chat_expanded(question)
    if _record_answer(question, passages) is not None or missing_subject(question, passages):
        return None  # answered before any unit is ranked (a live record, "não encontrei")
    rows: list = []
    rank_units(question, passages, learned=None, features_out=rows)
    if not rows:
        return None
    right = [float(any(answer_contains_all(unit.text, [needle]) for needle in answer_contains))
             for unit, _, _ in rows]
    return [features for _, features, _ in rows], [score for _, _, score in rows], right
