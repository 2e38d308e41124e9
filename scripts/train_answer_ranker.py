"""Fit the answer ranker's weights (src/ysh/rag/answer_ranker.json) on the tuning splits.

    python scripts/train_answer_ranker.py [--splits sample,dev,...] [--l2 0.3] [--out PATH]

For each tuning split a Hélio service is started over its documents with
``YSH_RAG_ANSWER_LOG`` set (live records off, as ``ysh rag eval`` runs it), every question is
asked once at ``/v2/answer``, and the logged passages are turned into training rows
(:func:`ysh.rag.ranker.question_group`): each unit as the formula scores it, right when it
holds one of the question's ``answer_contains`` strings. :func:`ysh.rag.ranker.fit` then
fits the correction, and the weights are written with the splits and the regularisation.
Then each split's fact-in-answer is printed with and without the weights, from the same
logged passages (in-sample figures: the held-out splits are for reporting, not here).

The held-out split (``heldout``) is refused: it is never trained on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import httpx

from ysh.rag import ranker
from ysh.rag.answer import extractive_answer, passages_of
from ysh.rag.evaluation import (HELD_OUT_SPLITS, TUNING_SPLITS, answer_contains_all, load_questions, split_paths,
                                start_service)


def record(split: str, folder: Path) -> list[tuple]:
    """(question, hits) of every answerable question of ``split``, as the service answered."""
    docs, questions_file = split_paths(split)
    questions = [q for q in load_questions(questions_file) if q.answer_contains]
    log = folder / f"{split}.jsonl"
    # the extractive answerer is what is trained: no LLM endpoint, even if the environment names one
    env = {"YSH_RAG_LIVE_RECORDS": "false", "YSH_RAG_PGVECTOR": "false", "YSH_RAG_ANSWER_LOG": str(log),
           "YSH_RAG_OPENAI_BASE_URL": ""}
    with start_service(docs, env=env) as service, httpx.Client(timeout=120.0) as client:
        for q in questions:
            client.post(service.url + "/v2/answer", json={"prompt": q.question}).raise_for_status()
    logged = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        logged[row["question"]] = row["hits"]
    missing = [q.id for q in questions if q.question not in logged]
    if missing:
        raise SystemExit(f"{split}: no logged passages for {missing}")
    return [(q, logged[q.question]) for q in questions]


def facts(recorded: list[tuple], learned) -> int:
    """How many answers, from the recorded passages, hold every expected fact."""
    total = 0
    for q, hits in recorded:
        reply = extractive_answer(q.question, passages_of(hits), learned=learned)
        total += answer_contains_all(reply["answer"], q.answer_contains)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", default=",".join(TUNING_SPLITS))
    parser.add_argument("--l2", type=float, default=0.3, help="L2 regularisation towards no correction")
    parser.add_argument("--out", type=Path, default=ranker.WEIGHTS_FILE)
    args = parser.parse_args()
    splits = [s for s in args.splits.split(",") if s]
    refused = [s for s in splits if s in HELD_OUT_SPLITS or s not in TUNING_SPLITS]
    if refused:
        raise SystemExit(f"not tuning splits (never trained on): {', '.join(refused)}")
    with tempfile.TemporaryDirectory(prefix="ysh-ranker-") as folder:
        recorded = {}
        for split in splits:
            print(f"recording {split}…", file=sys.stderr, flush=True)
            recorded[split] = record(split, Path(folder))
    groups = [g for rows in recorded.values() for q, hits in rows
              if (g := ranker.question_group(q.question, q.answer_contains, hits)) is not None]
    weights = ranker.fit(groups, args.l2)
    doc = {"features": list(ranker.FEATURES), "weights": [round(w, 6) for w in weights], "l2": args.l2,
           "splits": {s: len(rows) for s, rows in recorded.items()},
           "trained_by": "scripts/train_answer_ranker.py"}
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    ranker.weights.cache_clear()
    print(f"wrote {args.out} ({len(groups)} questions with a scored unit)")
    for split, rows in recorded.items():
        print(f"{split}: fact-in-answer {facts(rows, None)}/{len(rows)} formula alone, "
              f"{facts(rows, tuple(weights))}/{len(rows)} with the fitted correction (in-sample)")


if __name__ == "__main__":
    main()
