"""Write the sample ANEEL tariff files (and EXPECTED.md / expected.json) of the tariffs job.

Usage: ``python scripts/make_sample_tariffs.py [--out data/sample/tariffs] [--seed 3]``
(expectations go to ``<out>_expected``, i.e. ``data/sample/tariffs_expected``), or
``python scripts/make_sample_tariffs.py --benchmark /tmp/tarifas-bench.csv --rows 300000``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ysh.samples.tariffs import write_benchmark_tariffs, write_sample_tariffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample/tariffs"),
                        help="output directory (default: data/sample/tariffs)")
    parser.add_argument("--expected", type=Path, default=None,
                        help="expectations directory (default: <out>_expected)")
    parser.add_argument("--seed", type=int, default=3, help="generator seed (default: 3)")
    parser.add_argument("--benchmark", type=Path, default=None,
                        help="instead, write a large valid tarifas-homologadas file at this path")
    parser.add_argument("--rows", type=int, default=300_000, help="benchmark rows (default: 300000)")
    args = parser.parse_args(argv)
    if args.benchmark is not None:
        started = time.perf_counter()
        rows = write_benchmark_tariffs(args.benchmark, args.rows, seed=args.seed)
        print(f"{rows} rows -> {args.benchmark} in {time.perf_counter() - started:.1f} s")
        return 0
    counts = write_sample_tariffs(args.out, args.expected, seed=args.seed)
    width = max(len(name) for name in counts)
    for name, rows in counts.items():
        print(f"{name:<{width}}  {rows:>4} rows")
    print(f"{'total':<{width}}  {sum(counts.values()):>4} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
