"""Write the sample distributor feeds (and EXPECTED.md / expected.json) of the catalog.

Usage: ``python scripts/make_sample_catalog.py [--out data/sample/catalog] [--seed 7]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ysh.samples.catalog import write_sample_feeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample/catalog"),
                        help="output directory (default: data/sample/catalog)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default: 7)")
    args = parser.parse_args(argv)
    counts = write_sample_feeds(args.out, seed=args.seed)
    width = max(len(name) for name in counts)
    for name, rows in counts.items():
        print(f"{name:<{width}}  {rows:>4} rows")
    print(f"{'total':<{width}}  {sum(counts.values()):>4} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
