"""Every benchmark in turn, its output shown as it runs, then one summary table: each
target line a benchmark printed, its verdict (met / NOT met), the benchmark's wall time and
exit code, and the machine (cores, load average) at the start and the end. ``make bench``.

    python benchmarks/run_all.py [--only catalog tariffs ...] [--list]

Each benchmark runs in its own process with its own defaults (the sizes its targets are
stated for). A target line is one that names a target and gives a verdict: ``met``,
``NOT met`` (``missed``, as benchmarks/rag.py says it, counts as NOT met). A benchmark that
fails prints no target line of its own: the summary shows it as failed with its exit code.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (name, script and arguments) in the order `make bench` runs them
BENCHMARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("catalog", ("catalog.py", "--floor")),
    ("catalog_search", ("catalog_search.py",)),
    ("tariffs", ("tariffs.py",)),
    ("tariffs_warehouse", ("tariffs.py", "--warehouse")),
    ("tariffs_cdc", ("tariffs_cdc.py",)),
    ("proposals", ("proposals.py",)),
    ("om", ("om.py",)),
    ("om_evaluation", ("om_evaluation.py",)),
    ("om_real_evaluation", ("om_real_evaluation.py",)),
    ("rag", ("rag.py",)),
    ("embedder_runtime", ("embedder_runtime.py",)),
)

_VERDICT = re.compile(r"\b(not met|missed|met)\b", re.IGNORECASE)
_MARKUP = re.compile(r"\x1b\[[0-9;]*m")


def target_lines(output: str) -> list[tuple[str, bool]]:
    """The target lines of a benchmark's output: ``(line, met)``. A line names a target
    ("target") and ends its verdict with met / NOT met / missed; the last verdict on the
    line counts ("… 0.8× (target ≥ 1.5×): NOT met")."""
    found = []
    for raw in output.splitlines():
        line = _MARKUP.sub("", raw).strip()
        if "target" not in line.lower():
            continue
        verdicts = _VERDICT.findall(line)
        if verdicts:
            found.append((line, verdicts[-1].lower() == "met"))
    return found


def machine() -> str:
    return f"{os.cpu_count()} cores, load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg())


def run(name: str, argv: tuple[str, ...]) -> dict:
    """Runs one benchmark, echoing its output line by line; returns its summary."""
    print(f"\n=== {name}: python benchmarks/{' '.join(argv)}  ({machine()})", flush=True)
    env = {**os.environ, "COLUMNS": "400"}  # rich wraps at the terminal's width: keep a target on one line
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / argv[0]), *argv[1:]], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    code = proc.wait()
    return {"name": name, "code": code, "seconds": time.perf_counter() - start,
            "targets": target_lines("".join(lines))}


def summary_table(results: list[dict], start_machine: str, end_machine: str):
    from rich.table import Table

    table = Table("benchmark", "target", "verdict", "wall s", "exit", title="make bench: targets",
                  caption=f"start: {start_machine}; end: {end_machine}", show_lines=False)
    for r in results:
        if not r["targets"]:
            verdict = "[red]failed[/]" if r["code"] else "no target line"
            table.add_row(r["name"], "", verdict, f"{r['seconds']:.0f}", str(r["code"]))
        for i, (line, met) in enumerate(r["targets"]):
            table.add_row(r["name"] if i == 0 else "", line, "[green]met[/]" if met else "[red]NOT met[/]",
                          f"{r['seconds']:.0f}" if i == 0 else "", str(r["code"]) if i == 0 else "")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    names = [name for name, _ in BENCHMARKS]
    if args.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(names)}")
    chosen = [(n, a) for n, a in BENCHMARKS if not args.only or n in args.only]
    start_machine = machine()
    results = [run(name, argv) for name, argv in chosen]
    from rich.console import Console

    Console(width=200).print(summary_table(results, start_machine, machine()))
    return 1 if any(r["code"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
