"""Proposals benchmark: the billing kernel, and the production path end to end.

    python benchmarks/proposals.py [--proposals 100000] [--loop-sample 10000]
                                   [--quotes 20000] [--no-e2e] [--profile]

**Kernel** (billing model v1, 25 years × 12 months per proposal, generated proposals):

* ``loop``       — the reference model (``ysh.proposals.billing.evaluate``), one proposal at a
                   time in Python, on a sample (default 10,000): the baseline.
* ``vectorized`` — ``ysh.proposals.billing_vec``: numpy over proposals × months, all at once
                   (time includes turning the proposals into arrays).

Every proposal of the sample is compared (NPV, IRR, paybacks, ROI, yearly savings) and must
be equal. Target: ≥ 20,000 proposals/s.

**End to end** (what ``ysh proposals run`` does): an embedded PostgreSQL with the sample
catalog and tariffs (through their own jobs) and ``--quotes`` Medusa-like quotes
(``ysh.samples.medusa``); then ``proposals.job.run_batch`` — quotes in PostgreSQL → the
Pathway graph → ``propostas_enriched``, ``propostas_analytics``, ``kpis_b1_b3`` in
PostgreSQL — timed in a fresh process per variant:

* ``reference``  — the graph evaluating each quote with the month-by-month loop (the path
                   production took before issue 17);
* ``vectorized`` — the production graph: quotes evaluated in batches with ``billing_vec``
                   (generation and billing in one batched UDF), outputs replaced by ``COPY``.

A first untimed run warms the irradiance/yield cache on disk (both timed runs then start
with the same cache, as a production batch does). ``propostas_analytics`` of the two runs
are compared quote by quote. Target: ≥ 5,000 proposals/s. ``--profile`` runs the
vectorized variant once more under py-spy (when on PATH) and prints where its time goes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KERNEL_TARGET = 20_000
E2E_TARGET = 5_000
#: what propostas_analytics holds per quote, compared between the two variants
ANALYTICS = ("error", "npv_brl", "irr_pct", "payback_years", "discounted_payback_years", "roi",
             "year1_bill_without_solar_brl", "year1_bill_with_solar_brl", "year1_savings_brl", "yearly")


def machine() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss would carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- kernel -----------------------------------------------------------------------------


def run_kernel(n: int, sample_size: int) -> dict:
    from ysh.proposals.billing import evaluate
    from ysh.proposals.billing_vec import Batch, evaluate_batch
    from ysh.samples.proposals import random_proposals

    proposals = random_proposals(n, seed=2026)
    sample = proposals[:sample_size]
    t0 = time.perf_counter()
    reference = [evaluate(p) for p in sample]
    loop_s = time.perf_counter() - t0
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
    return {"n": n, "sample": len(sample), "loop_s": loop_s, "vec_s": vec_s, "prepared_s": prepared,
            "mismatches": mismatches, "median_payback": float(np.nanmedian(result.payback_years)),
            "median_irr_pct": float(np.nanmedian(result.irr) * 100),
            "never_paid_back": float(np.isnan(result.payback_years).mean())}


# --- end to end -----------------------------------------------------------------------


def prepare_warehouse(dsn: str, schema: str, quotes: int, companies: int = 200) -> None:
    """Migrate, load the sample catalog and tariffs through their jobs, seed ``quotes``."""
    from ysh import db
    from ysh.catalog import job as catalog_job
    from ysh.samples.medusa import seed_medusa
    from ysh.tariffs import job as tariffs_job
    from ysh.tariffs import landing

    db.migrate(dsn, schema)
    warehouse = db.Warehouse(dsn, schema)
    catalog_job.run_static([REPO / "data" / "sample" / "catalog"], warehouse=warehouse)
    with db.connect(dsn, schema) as conn:
        for path in landing.feed_files([REPO / "data" / "sample" / "tariffs"]):
            landing.land_file(conn, path)
        conn.commit()
    tariffs_job.run_warehouse(warehouse)
    with db.connect(dsn, schema) as conn:
        seed_medusa(conn, companies=companies, quotes=quotes, seed=17, today=date.today())
        # array orientations on a 5° tilt × 30° azimuth grid (20 per site, ~460 sites ×
        # orientations): the yield model costs ~0.1 s per site × orientation on a cold
        # cache, and the seed's ~12,000 distinct ones would make the warm-up run last
        # ~25 minutes; a warm cache costs the same per quote either way
        conn.execute("UPDATE quote SET tilt_deg = round(tilt_deg / 5) * 5, azimuth_deg = CASE "
                     "WHEN azimuth_deg BETWEEN 60 AND 120 THEN 90 WHEN azimuth_deg BETWEEN 240 AND 300 THEN 270 "
                     "ELSE mod((round(azimuth_deg / 30) * 30)::numeric, 360) END")
        conn.commit()


def _settings(dsn: str, schema: str, home: Path):
    from ysh.settings import Settings

    return Settings(postgres_dsn=dsn, postgres_schema=schema, irradiance_offline=True, home=home,
                    irradiance_cache_dir=home / "irradiance")


def run_e2e(dsn: str, schema: str, home: Path, billing: str) -> dict:
    from ysh import db, pw_runtime
    from ysh.proposals import job

    pw_runtime.quiet_logging()
    warehouse, settings = db.Warehouse(dsn, schema), _settings(dsn, schema, home)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    counts = job.run_batch(warehouse, settings, billing=billing, timings=timings)
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)  # this process, all threads
    with db.connect(dsn, schema) as conn:
        quotes = conn.execute("SELECT count(*) FROM quote").fetchone()[0]
        evaluated = conn.execute("SELECT count(*) FROM propostas_analytics WHERE error IS NULL").fetchone()[0]
    return {"seconds": seconds, "cpu_s": cpu_s, "quotes": quotes, "evaluated": evaluated, "counts": counts,
            "peak_rss_mb": _peak_rss_mb(),
            # the fixed cost (snapshot, sources, graph and sinks declared) and the run itself
            # (Pathway's start, reading, evaluating, writing, pruning)
            "setup_s": timings["graph_built"] - t0, "run_s": timings["written"] - timings["graph_built"]}


def child(dsn: str, schema: str, home: Path, billing: str) -> dict:
    cmd = [sys.executable, __file__, "--child", billing, "--dsn", dsn, "--schema", schema, "--home", str(home)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def analytics_of(dsn: str, schema: str) -> dict[str, tuple]:
    from ysh import db

    with db.connect(dsn, schema) as conn:
        rows = conn.execute(f"SELECT quote_id, {', '.join(ANALYTICS)} FROM propostas_analytics").fetchall()
    return {r[0]: r[1:] for r in rows}


def differences(a: dict[str, tuple], b: dict[str, tuple]) -> list[str]:
    """Quotes whose analytics differ beyond float tolerance (yearly values are rounded to
    cents / Wh, so they may differ by one unit of the rounding)."""

    def same(x, y, tol=1e-9, unit=1e-6):
        if x is None or y is None:
            return x is None and y is None
        return math.isclose(x, y, rel_tol=tol, abs_tol=unit)

    bad = [q for q in a.keys() ^ b.keys()]
    for quote in a.keys() & b.keys():
        x, y = a[quote], b[quote]
        ok = x[0] == y[0] and all(same(u, v) for u, v in zip(x[1:-1], y[1:-1]))
        yx, yy = x[-1] or [], y[-1] or []
        ok &= len(yx) == len(yy) and all(
            r["year"] == s["year"] and r["calendar_year"] == s["calendar_year"]
            and all(same(r[k], s[k], unit=0.0101) for k in r if k not in ("year", "calendar_year"))
            for r, s in zip(yx, yy))
        if not ok:
            bad.append(quote)
    return bad


def profile_child(dsn: str, schema: str, home: Path, out: Path) -> dict:
    """The vectorized run under py-spy (it samples the Pathway engine's threads too, which
    cProfile does not see): the raw stacks go to ``out``."""
    cmd = [shutil.which("py-spy"), "record", "--rate", "100", "--format", "raw", "--output", str(out), "--",
           sys.executable, __file__, "--child", "vectorized", "--dsn", dsn, "--schema", schema, "--home", str(home)]
    run = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads([line for line in run.stdout.splitlines() if line.startswith("{")][-1])


def print_profile(path: Path, console, top: int = 22) -> None:
    """Share of the samples (all threads) in which each function is on the stack."""
    from collections import Counter

    inclusive, total = Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        frames = set()
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            module = where.split(":")[0].rsplit("/", 1)[-1]
            frames.add(f"{name} ({module})" if name else "(native: the Pathway engine, numpy, I/O)")
        for frame in frames:
            inclusive[frame] += int(count)
    console.print(f"where the time goes (py-spy, {total:,} samples over all threads; a function counts when it "
                  "is on the stack):")
    for frame, count in inclusive.most_common(top):
        console.print(f"  {count / total:6.1%}  {frame}", markup=False, highlight=False)


def main() -> int:
    parser = argparse.ArgumentParser(description="proposals benchmark")
    parser.add_argument("--proposals", type=int, default=100_000, help="kernel: proposals evaluated at once")
    parser.add_argument("--loop-sample", type=int, default=10_000, help="kernel: proposals the loop evaluates")
    parser.add_argument("--quotes", type=int, default=20_000, help="end to end: quotes in PostgreSQL")
    parser.add_argument("--e2e", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--profile", action="store_true", help="profile the end-to-end vectorized run (py-spy)")
    parser.add_argument("--child")
    parser.add_argument("--dsn")
    parser.add_argument("--schema", default="bench")
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_e2e(args.dsn, args.schema, args.home, args.child)))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    with console.status(f"kernel: {args.proposals:,} proposals, loop on {args.loop_sample:,}…"):
        k = run_kernel(args.proposals, min(args.loop_sample, args.proposals))
    loop_rate, vec_rate = k["sample"] / k["loop_s"], k["n"] / k["vec_s"]
    ok = k["mismatches"] == 0

    e2e = None
    if args.e2e:
        from ysh import pw_runtime
        from ysh.services.postgres import EmbeddedPostgres, free_port

        pw_runtime.quiet_logging()

        work = Path(tempfile.mkdtemp(prefix="ysh-proposals-bench-"))
        server = EmbeddedPostgres(work / "pg", free_port())
        try:
            with console.status(f"end to end: PostgreSQL, sample catalog and tariffs, {args.quotes:,} quotes…"):
                server.start()
                t0 = time.perf_counter()
                prepare_warehouse(server.dsn(), args.schema, args.quotes)
                setup_s = time.perf_counter() - t0
            runs = {}
            with console.status("end to end: warm-up run (irradiance and yield cache)…"):
                child(server.dsn(), args.schema, work / "home", "vectorized")
            for billing in ("reference", "vectorized"):
                with console.status(f"end to end: {billing}…"):
                    runs[billing] = child(server.dsn(), args.schema, work / "home", billing)
                    runs[billing]["analytics"] = analytics_of(server.dsn(), args.schema)
            profile = None
            if args.profile and shutil.which("py-spy"):
                with console.status("end to end: vectorized under py-spy…"):
                    profile = work / "vectorized.pyspy"
                    profile_child(server.dsn(), args.schema, work / "home", profile)
            elif args.profile:
                console.print("[yellow]--profile needs py-spy on PATH (pip install py-spy)[/]")
        finally:
            server.stop()
        e2e = {"setup_s": setup_s, "runs": runs, "profile": profile,
               "differ": differences(runs["reference"]["analytics"], runs["vectorized"]["analytics"])}
        ok &= not e2e["differ"]

    table = Table("what", "variant", "proposals", "seconds", "proposals/s", "ratio", "CPU s (proposals/CPU s)",
                  "peak RSS MB", title=f"proposals benchmark ({machine()})")
    table.add_row("kernel", "loop (reference)", f"{k['sample']:,}", f"{k['loop_s']:.2f}", f"{loop_rate:,.0f}", "1.0",
                  "", "")
    table.add_row("kernel", "vectorized (numpy)", f"{k['n']:,}", f"{k['vec_s']:.2f} ({k['prepared_s']:.2f} to arrays)",
                  f"{vec_rate:,.0f}", f"{vec_rate / loop_rate:.1f}", "", f"{_peak_rss_mb():.0f}")
    if e2e:
        base = None
        for billing, r in e2e["runs"].items():
            rate = r["quotes"] / r["seconds"]
            base = base or rate
            table.add_row("end to end", f"{billing} (Pathway → PostgreSQL)", f"{r['quotes']:,}",
                          f"{r['seconds']:.2f} (graph {r['setup_s']:.2f} + run {r['run_s']:.2f})", f"{rate:,.0f}",
                          f"{rate / base:.1f}",
                          f"{r['cpu_s']:.2f} ({r['quotes'] / max(r['cpu_s'], 1e-9):,.0f})", f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    console.print(f"kernel: results equal on every one of the {k['sample']:,} sampled proposals: "
                  + ("[green]yes[/]" if k["mismatches"] == 0 else f"[red]no, {k['mismatches']} differ[/]"))
    console.print(f"kernel: median payback {k['median_payback']:.1f} years, median IRR {k['median_irr_pct']:.1f} %, "
                  f"never paid back {k['never_paid_back']:.1%}")
    if e2e:
        runs = e2e["runs"]
        vec = runs["vectorized"]
        console.print(f"end to end: {vec['quotes']:,} quotes ({vec['evaluated']:,} evaluated, the rest carry their "
                      f"error), setup {e2e['setup_s']:.0f} s; propostas_analytics equal in both variants: "
                      + ("[green]yes[/]" if not e2e["differ"] else
                         f"[red]no, {len(e2e['differ'])} quotes differ (e.g. {e2e['differ'][:3]})[/]"))
        if e2e["profile"] is not None:
            print_profile(e2e["profile"], console)
    console.print(f"kernel: vectorized {vec_rate:,.0f} proposals/s (target ≥ {KERNEL_TARGET:,}): "
                  + ("[green]met[/]" if vec_rate >= KERNEL_TARGET else "[red]NOT met[/]"))
    if e2e:
        rate = vec["quotes"] / vec["seconds"]
        console.print(f"end to end: {rate:,.0f} proposals/s, {rate / (runs['reference']['quotes'] / runs['reference']['seconds']):.1f}× "
                      f"the per-row path (target ≥ {E2E_TARGET:,}): "
                      + ("[green]met[/]" if rate >= E2E_TARGET else "[red]NOT met[/]"))
    console.print(f"machine: {machine()} (wall-clock rates; the CPU column is this process's own time, "
                  "PostgreSQL's work not included)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
