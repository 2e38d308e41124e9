"""The embedder on ONNX Runtime against torch, in the same run, on the backend production uses.

    python benchmarks/embedder_runtime.py [--queries 200] [--chunks 512]

Both runtimes load all-MiniLM-L6-v2 through ``ysh.rag.embedding.minilm_backend`` (the
class Hélio, the catalog search and the ``catalog_embeddings`` asset call), with one thread
each as in the service. Times one question at a time (how Hélio and the catalog search embed
a query: p50/p95) and chunks in batches of 64 (how the index embeds documents: chunks/s),
alternating the runtimes round by round so that load from other work hits both alike.
Prints the ratio torch / onnx and the largest difference between their vectors.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ysh.rag.embedding import minilm_backend  # noqa: E402

QUESTIONS = [
    "inversor 5 kw monofasico growatt", "painel 550w jinko", "string box 2 entradas",
    "Qual o prazo de validade dos créditos de energia na Lei 14.300?",
    "Qual a tarifa B1 da CPFL Paulista hoje, com TE e TUSD?",
    "micro inversor hoymiles 2000", "bateria litio 5 kwh 48v", "qual a garantia do JAM72S30-550/MR",
]


def chunks_from_docs(n: int) -> list[str]:
    """Paragraphs of the sample documents (the index's real chunk shapes), repeated up to n."""
    texts = []
    for path in sorted((REPO / "data" / "sample" / "docs").rglob("*.md")):
        texts += [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 80]
    texts = texts or ["módulo fotovoltaico monocristalino 550 W com garantia de 12 anos"]
    return [texts[i % len(texts)] for i in range(n)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunks", type=int, default=128)
    ap.add_argument("--cache-dir", default=None, help="ONNX export folder (default: the setting's default)")
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    backends = {"torch": minilm_backend(runtime="torch"), "onnx": minilm_backend(runtime="onnx", cache_dir=args.cache_dir)}
    assert backends["onnx"].runtime == "onnx", "ONNX Runtime did not load (see the warning above)"
    import numpy as np

    chunks = chunks_from_docs(args.chunks)
    diff = float(np.abs(backends["onnx"].encode(chunks[:64] + QUESTIONS) - backends["torch"].encode(chunks[:64] + QUESTIONS)).max())
    query_ms: dict[str, list[float]] = {name: [] for name in backends}
    bulk_s: dict[str, float] = {name: 0.0 for name in backends}
    for backend in backends.values():
        backend.encode(["aquecimento"])
    rounds = 4
    for r in range(rounds):
        for name, backend in (backends.items() if r % 2 == 0 else reversed(backends.items())):
            for i in range(args.queries // rounds):
                q = QUESTIONS[i % len(QUESTIONS)] + f" {r}{i}"  # distinct texts: nothing cached
                t = time.perf_counter()
                backend.encode([q])
                query_ms[name].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            backend.encode(chunks[r * len(chunks) // rounds:(r + 1) * len(chunks) // rounds])
            bulk_s[name] += time.perf_counter() - t
    p = {name: (statistics.median(ms), statistics.quantiles(ms, n=20)[18]) for name, ms in query_ms.items()}
    for name in backends:
        print(f"  {name:5}  one question p50 {p[name][0]:6.1f} ms  p95 {p[name][1]:6.1f} ms   "
              f"chunks {len(chunks) / bulk_s[name]:7.1f}/s")
    print(f"ratio torch/onnx: question p50 {p['torch'][0] / p['onnx'][0]:.2f}x, p95 {p['torch'][1] / p['onnx'][1]:.2f}x, "
          f"chunks {bulk_s['torch'] / bulk_s['onnx']:.2f}x; largest vector difference {diff:.1e}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0 if diff < 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
