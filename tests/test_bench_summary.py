"""`make bench`'s summary: the target lines it collects from the benchmarks' output."""

from __future__ import annotations

import importlib.util

from .conftest import REPO


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", REPO / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_target_lines_take_each_verdict_as_the_benchmarks_print_it():
    output = "\n".join([
        "machine: 2 cores, load average 0.10 / 0.20 / 0.30",
        "target: production 2 proc ≥ 50,000 rows/s and ≥ 1.5× plain: 1,130 rows/s, 0.32× plain → NOT met",
        "  lexical   n= 200  p50=   9.9 ms  p95=  26.0 ms  p95 = baseline / 19.2  met",  # not a target line
        "target p95 < 100 ms over >= 100k offers, lexical: met (p95 26.0 ms, baseline p95 / 19.2)",
        "  target p99 < 300 ms: missed (p99 382 ms)",  # benchmarks/rag.py's word
        "p95 0.01 s (target < 3 s): \x1b[32mmet\x1b[0m",  # colour codes of a terminal
        "file replay 1,290 events/s (target ≥ 60,000): not met; 2 cores",
        "targets (< 10 s, ≤ 1.0× pandas) are for the 300,000-row file",  # no verdict
    ])
    found = _run_all().target_lines(output)
    assert [met for _, met in found] == [False, True, False, True, False]
    assert found[3][0] == "p95 0.01 s (target < 3 s): met"


def test_every_benchmark_of_make_bench_exists():
    run_all = _run_all()
    for name, argv in run_all.BENCHMARKS:
        assert (REPO / "benchmarks" / argv[0]).is_file(), name
    scripts = {p.name for p in (REPO / "benchmarks").glob("*.py")} - {"run_all.py"}
    assert scripts == {argv[0] for _, argv in run_all.BENCHMARKS}
    assert "benchmarks/run_all.py" in (REPO / "Makefile").read_text()
