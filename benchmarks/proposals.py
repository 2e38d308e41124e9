"""Proposals benchmark: billing model v1 over many proposals (25 years × 12 months each).

    python benchmarks/proposals.py [--proposals 100000] [--loop-sample 2000]

* ``loop``       — the reference model (``ysh.proposals.billing.evaluate``), one proposal at a
                   time in Python: run on a sample, proposals/s extrapolated (the baseline).
* ``vectorized`` — ``ysh.proposals.billing_vec``: numpy over proposals × months, all at once
                   (time includes turning the proposals into arrays).

Both run on the same generated proposals; the sample's results are compared (NPV, IRR,
paybacks, ROI, yearly savings) and must be equal. Target: ≥ 20,000 proposals/s.
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description="proposals benchmark")
    parser.add_argument("--proposals", type=int, default=100_000)
    parser.add_argument("--loop-sample", type=int, default=2_000)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from ysh.proposals.billing import evaluate
    from ysh.proposals.billing_vec import Batch, evaluate_batch
    from ysh.samples.proposals import random_proposals

    console = Console(width=120)
    with console.status(f"generating {args.proposals:,} proposals…"):
        proposals = random_proposals(args.proposals, seed=2026)
    sample = proposals[:args.loop_sample]

    with console.status(f"loop: {len(sample):,} proposals one at a time…"):
        t0 = time.perf_counter()
        reference = [evaluate(p) for p in sample]
        loop_s = time.perf_counter() - t0
    with console.status(f"vectorized: {len(proposals):,} proposals…"):
        t0 = time.perf_counter()
        batch = Batch.of(proposals)
        prepared = time.perf_counter() - t0
        result = evaluate_batch(batch)
        vec_s = time.perf_counter() - t0

    mismatches = 0
    for i, ref in enumerate(reference):
        k = ref.kpis
        pairs = [(k.npv_brl, result.npv_brl[i]), (k.roi, result.roi[i]),
                 (k.irr_pct / 100 if k.irr_pct is not None else math.nan, result.irr[i]),
                 (k.payback_years if k.payback_years is not None else math.nan, result.payback_years[i]),
                 (k.discounted_payback_years if k.discounted_payback_years is not None else math.nan,
                  result.discounted_payback_years[i])]
        same = all((math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
                   for a, b in pairs)
        same &= np.allclose(result.savings_brl[i], [y.savings_brl for y in ref.years], rtol=1e-9, atol=1e-6)
        mismatches += not same

    loop_rate = len(sample) / loop_s
    vec_rate = len(proposals) / vec_s
    table = Table("variant", "proposals", "seconds", "proposals/s", "ratio vs loop",
                  title=f"billing model v1, 25 years × 12 months (peak RSS "
                        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    table.add_row("loop (reference)", f"{len(sample):,}", f"{loop_s:.2f}", f"{loop_rate:,.0f}", "1.0")
    table.add_row("vectorized (numpy)", f"{len(proposals):,}", f"{vec_s:.2f} ({prepared:.2f} to arrays)",
                  f"{vec_rate:,.0f}", f"{vec_rate / loop_rate:.1f}")
    console.print(table)
    console.print(f"results equal on the {len(sample):,}-proposal sample: "
                  + ("[green]yes[/]" if mismatches == 0 else f"[red]no, {mismatches} differ[/]"))
    console.print(f"median payback {np.nanmedian(result.payback_years):.1f} years, median IRR "
                  f"{np.nanmedian(result.irr) * 100:.1f} %, never paid back "
                  f"{np.isnan(result.payback_years).mean():.1%}")
    console.print(f"vectorized {vec_rate:,.0f} proposals/s (target ≥ 20,000): "
                  + ("[green]met[/]" if vec_rate >= 20_000 else "[red]not met[/]"))
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
