"""`ysh rag eval`: the retrieval metrics on hand-made rankings, the eval set's shape, and
the client against a stand-in Hélio API on loopback (started like the real service)."""

import json
import sys
import textwrap

import pytest

from ysh.rag import evaluation as ev

from ..conftest import REPO

DOCS = REPO / "data" / "sample" / "docs"


def test_a_hit_is_a_path_ending_with_an_expected_file_name():
    assert ev.is_hit("/srv/docs/lei_14300_marco_legal_gd.md", ["lei_14300_marco_legal_gd.md"])
    assert ev.is_hit("lei.md", ["lei.md"])
    assert not ev.is_hit("/srv/docs/nova_lei.md", ["lei.md"])  # a suffix of the name is not the name
    assert not ev.is_hit(None, ["lei.md"])


def test_first_hit_rank_is_one_based():
    paths = ["/d/a.md", "/d/b.pdf", "/d/c.docx", "/d/b.pdf"]
    assert ev.first_hit_rank(paths, ["b.pdf"]) == 2
    assert ev.first_hit_rank(paths, ["c.docx", "a.md"]) == 1
    assert ev.first_hit_rank(paths, ["z.txt"]) is None


def test_hit_rates_and_mrr_on_a_hand_made_ranking():
    ranks = [1, 2, 4, None, 6]  # five questions
    assert ev.hit_rate(ranks, 1) == pytest.approx(1 / 5)
    assert ev.hit_rate(ranks, 3) == pytest.approx(2 / 5)
    assert ev.hit_rate(ranks, 5) == pytest.approx(3 / 5)
    assert ev.mean_reciprocal_rank(ranks, 5) == pytest.approx((1 + 1 / 2 + 1 / 4) / 5)
    assert ev.mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 6) / 5)
    assert ev.hit_rate([], 5) == 0.0 and ev.mean_reciprocal_rank([]) == 0.0


def test_a_perfect_and_a_useless_retriever():
    assert ev.hit_rate([1, 1, 1], 1) == 1.0 and ev.mean_reciprocal_rank([1, 1, 1]) == 1.0
    assert ev.hit_rate([None, None], 5) == 0.0 and ev.mean_reciprocal_rank([None, None]) == 0.0


def test_answers_are_checked_without_accents_or_case():
    assert ev.answer_contains_all("O prazo é de 15  dias; veja o Orçamento de Conexão.", ["15 dias", "orcamento de conexao"])
    assert not ev.answer_contains_all("O prazo é de 30 dias.", ["15 dias"])


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert (ev.percentile(values, 50), ev.percentile(values, 95), ev.percentile(values, 99)) == (50, 95, 99)
    assert ev.percentile([3.0], 99) == 3.0


def test_the_sample_eval_set_names_real_documents():
    questions = ev.load_questions()
    assert len(questions) >= 40 and len({q.id for q in questions}) == len(questions)
    names = {p.name for p in DOCS.iterdir()}
    assert all(q.expected and set(q.expected) <= names for q in questions)


def test_a_broken_eval_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text('{"id": "a", "question": "q", "expected": ["x.md"]}\n{"id": "b"}\n')
    with pytest.raises(ValueError, match="eval.jsonl:2"):
        ev.load_questions(path)


FAKE_SERVICE = textwrap.dedent('''
    """A stand-in Hélio API: bm25 finds the right file, dense the wrong one, hybrid at rank 2."""
    import argparse, json, os, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    ap = argparse.ArgumentParser()
    ap.add_argument("--docs"); ap.add_argument("--host"); ap.add_argument("--port", type=int)
    args = ap.parse_args()
    files = sorted(str(p) for p in Path(args.docs).iterdir())
    key = os.environ.get("YSH_RAG_API_KEY")

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def reply(self, status, body):
            raw = json.dumps(body).encode()
            self.send_response(status); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw))); self.end_headers(); self.wfile.write(raw)
        def authorized(self):
            if key and self.headers.get("X-API-Key") != key:
                self.reply(401, {"error": "key"}); return False
            return True
        def do_GET(self):
            if self.authorized():
                self.reply(200, {"files": len(files), "chunks": 3 * len(files), "last_indexed": 1})
        def do_POST(self):
            if not self.authorized():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/v2/answer":
                self.reply(200, {"answer": "O prazo é de 15 dias.", "citations": [], "mode": "extractive"}); return
            wanted = body["query"].split("|")[1]
            other = [f for f in files if not f.endswith(wanted)][0]
            right = [f for f in files if f.endswith(wanted)][0]
            order = {"bm25": [right, other], "dense": [other, other], "fusion": [other, right],
                     "hybrid": [right, other]}[body["retriever"]]
            self.reply(200, [{"text": "t", "score": 1.0 / (i + 1), "metadata": {"path": p}} for i, p in enumerate(order)])

    ThreadingHTTPServer((args.host, args.port), H).serve_forever()
''')


@pytest.fixture()
def fake_service(tmp_path):
    script = tmp_path / "fake_helio.py"
    script.write_text(FAKE_SERVICE)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.md", "b.pdf", "c.docx"):
        (docs / name).write_text(name)
    with ev.start_service(docs, env={"YSH_RAG_API_KEY": "k3y"}, command=[sys.executable, str(script)],
                          timeout_s=60) as service:
        yield service


def test_eval_against_a_running_service(fake_service):
    questions = [ev.Question("q1", "prazo|a.md", ("a.md",), ("15 dias",)),
                 ev.Question("q2", "garantia|c.docx", ("c.docx",), ("12 anos",))]
    seen = []
    report = ev.run_eval(fake_service.url, api_key="k3y", questions=questions, answers=True,
                         progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (10, 10)  # 2 questions × (4 retrievers + the answer)
    bm25, dense, fusion, hybrid = (report.scores[r] for r in ("bm25", "dense", "fusion", "hybrid"))
    assert (bm25.hit_at[1], bm25.mrr) == (1.0, 1.0)
    assert (dense.hit_at[5], dense.mrr) == (0.0, 0.0)
    assert (fusion.hit_at[1], fusion.hit_at[3], fusion.mrr) == (0.0, 1.0, 0.5)
    assert (hybrid.hit_at[1], hybrid.mrr) == (1.0, 1.0)
    assert report.meets_target and report.answers_ok == 0.5 and report.answer_misses == ["q2"]
    assert json.loads(json.dumps(report.as_dict()))["scores"]["fusion"]["hit@3"] == 1.0
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    ev.print_report(report, Console(file=out, width=120))
    assert "hybrid" in out.getvalue() and "meets" in out.getvalue()


def test_a_wrong_key_counts_as_errors_not_a_crash(fake_service):
    report = ev.run_eval(fake_service.url, api_key="wrong", questions=[ev.Question("q", "x|a.md", ("a.md",))],
                         retrievers=["hybrid"])
    assert report.scores["hybrid"].errors == 1 and report.scores["hybrid"].hit5 == 0.0


def test_a_service_that_dies_is_reported_with_its_log(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text("import sys; print('boom: no model'); sys.exit(3)")
    with pytest.raises(RuntimeError, match="exited with 3(.|\n)*boom: no model"):
        with ev.start_service(tmp_path, command=[sys.executable, str(script)], timeout_s=30):
            pass


def test_the_command_reads_the_settings_and_prints_the_table(fake_service, tmp_path):
    from io import StringIO

    from rich.console import Console

    from ysh.settings import Settings

    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(json.dumps({"id": "q1", "question": "prazo|a.md", "expected": ["a.md"]}) + "\n")
    out = StringIO()
    report = ev.eval_from_settings(Settings(rag_url=fake_service.url, rag_api_key="k3y"), eval_file=eval_file,
                                   console=Console(file=out, width=120))
    assert report.scores["bm25"].hit_at[1] == 1.0 and report.meets_target
    assert "bm25" in out.getvalue()


def test_the_refusal_split_asks_only_what_the_sample_documents_do_not_answer():
    from ysh.rag.evaluation import is_refusal, load_questions, split_paths

    docs, questions = split_paths("refusal")
    assert docs == split_paths("sample")[0]
    questions = load_questions(questions)
    assert len(questions) >= 12 and not any(q.answerable for q in questions)
    assert is_refusal("Não encontrei essa informação nos documentos indexados.\nFontes mais próximas: a.md")
    assert not is_refusal("Segundo os documentos indexados:\n- Não encontrei defeitos [1]")
