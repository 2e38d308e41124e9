"""Tariffs benchmark: normalizing a tarifas-homologadas file of real size (~300k rows).

    python benchmarks/tariffs.py [--rows 300000] [--repeat 2]

Variants, each in its own subprocess (peak RSS is its own), on the same generated file:

* ``pandas``    — ``pandas.read_csv`` (``;``, latin-1, all columns as text) + the same
                  domain functions row by row (``tariff_from_record``) + the overlap check
                  (``split_overlaps``): the baseline, measured in the same run.
* ``pathway``   — the production path of ``ysh tariffs load``: :func:`ysh.tariffs.job.run_static`
                  (the file cut in chunks of whole lines, each chunk parsed by columns in one
                  UDF call, the tariffs graph, the five tables written as JSONL), 1 process.
* ``pathway-2`` — the same under ``pathway spawn -n 2`` (``YSH_PATHWAY_PROCESSES=2``).

Both sides' kept tariffs are compared (line, validity, the four values): the run fails
when they differ. Prints seconds, rows/s, the time ratio to pandas, peak RSS, the machine
(cores, load average) and the target lines: the 300,000-row file in < 10 s through
Pathway, and at most 1.0× the pandas time of the same run (judged only at 300,000 rows).
(CDC latency: ``benchmarks/tariffs_cdc.py``.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
TARGET_ROWS = 300_000
TARGET_SECONDS = 10.0
TARGET_RATIO = 1.0  # Pathway time ÷ pandas time


def make_file(rows: int, data: Path) -> Path:
    from ysh.samples.tariffs import write_benchmark_tariffs

    path = data / f"tarifas-{rows}.csv"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        write_benchmark_tariffs(path, rows)
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _digest(rows) -> str:
    """Order-free digest of kept tariffs: (line, from, to, TUSD, TE per kWh, per kW)."""
    lines = sorted(json.dumps(r) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def run_pandas(path: Path) -> dict:
    import pandas as pd

    from ysh.tariffs.aneel import QuarantinedRow, tariff_from_record
    from ysh.tariffs.book import split_overlaps

    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    frame = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding="latin-1")
    tariffs, quarantined = [], 0
    for line, record in enumerate(frame.to_dict("records"), start=2):
        result = tariff_from_record(record, str(path), line)
        if isinstance(result, QuarantinedRow):
            quarantined += 1
        else:
            tariffs.append(result)
    kept, overlapping, _ = split_overlaps(tariffs)
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    digest = _digest([t.line, t.valid_from.isoformat(), t.valid_to.isoformat() if t.valid_to else None,
                      t.tusd_brl_per_kwh, t.te_brl_per_kwh, t.tusd_brl_per_kw, t.te_brl_per_kw] for t in kept)
    return {"rows": len(frame), "tariffs": len(kept), "quarantined": quarantined + len(overlapping),
            "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": _peak_rss_mb(), "digest": digest}


def run_pathway(path: Path) -> dict:
    from ysh import pw_runtime
    from ysh.tariffs import job

    pw_runtime.quiet_logging()
    with tempfile.TemporaryDirectory(prefix="ysh-tariffs-bench-") as out:
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        report = job.run_static([path], Path(out))
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        if not pw_runtime.is_leader():
            return {}
        kept = [json.loads(line) for line in (Path(out) / job.JSONL_FILES["tariffs"][0]).read_text().splitlines()]
    digest = _digest([t["line"], t["valid_from"][:10], t["valid_to"][:10] if t["valid_to"] else None,
                      t["tusd_brl_per_kwh"], t["te_brl_per_kwh"], t["tusd_brl_per_kw"], t["te_brl_per_kw"]]
                     for t in kept)
    counts = report.counts
    return {"rows": counts["tariffs"] + counts["quarantine"], "tariffs": counts["tariffs"],
            "quarantined": counts["quarantine"], "seconds": seconds, "cpu_seconds": cpu,
            "peak_rss_mb": _peak_rss_mb(), "digest": digest}


def _machine() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def main() -> int:
    parser = argparse.ArgumentParser(description="tariffs benchmark")
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--child")
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.child:
        result = run_pandas(args.file) if args.child == "pandas" else run_pathway(args.file)
        if result:
            print(json.dumps(result))
        return 0

    from rich.console import Console
    from rich.table import Table

    from ysh import pw_runtime

    console = Console(width=140)
    with console.status(f"generating a {args.rows:,}-row tarifas file…"):
        path = make_file(args.rows, args.data)
    console.print(f"machine at start: {_machine()}")
    results = {}
    for variant in ("pandas", "pathway", "pathway-2"):
        runs = []
        for i in range(args.repeat):
            argv = [sys.executable, __file__, "--child", variant.split("-")[0], "--file", str(path)]
            env = dict(os.environ)
            if variant == "pathway-2":
                argv = pw_runtime.spawn_argv(argv, 2)
                env["YSH_PATHWAY_PROCESSES"] = "2"
            else:
                env["YSH_PATHWAY_PROCESSES"] = "1"
            with console.status(f"{variant}: run {i + 1}/{args.repeat}…"):
                done = subprocess.run(argv, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                console.print(f"[red]{variant} failed[/]\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                return 1
            runs.append(json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1]))
        results[variant] = min(runs, key=lambda r: r["seconds"])
    base = results["pandas"]
    table = Table("variant", "rows", "tariffs kept", "quarantined", "seconds", "CPU s", "rows/s",
                  "time ÷ pandas", "peak RSS MB",
                  title=f"tariffs benchmark: {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB), "
                        f"best of {args.repeat}")
    for name, r in results.items():
        table.add_row(name, f"{r['rows']:,}", f"{r['tariffs']:,}", f"{r['quarantined']:,}", f"{r['seconds']:.2f}",
                      f"{r['cpu_seconds']:.1f}", f"{r['rows'] / r['seconds']:,.0f}",
                      f"{r['seconds'] / base['seconds']:.2f}", f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    console.print(f"machine at end: {_machine()}")

    same = all(r["digest"] == base["digest"] and r["tariffs"] == base["tariffs"]
               and r["quarantined"] == base["quarantined"] for r in results.values())
    console.print("correctness: kept tariffs (line, validity, values) equal to pandas' in every variant: "
                  + ("[green]yes[/]" if same else "[red]NO[/]"))
    best_name = min(("pathway", "pathway-2"), key=lambda n: results[n]["seconds"])
    best = results[best_name]
    ratio = best["seconds"] / base["seconds"]
    judged = args.rows == TARGET_ROWS
    console.print(f"{best_name}: {args.rows:,} rows in {best['seconds']:.2f} s, ratio vs pandas {ratio:.2f}× "
                  f"(pandas {base['seconds']:.2f} s in this run)")
    if judged:
        console.print(f"target < {TARGET_SECONDS:.0f} s for the {TARGET_ROWS:,}-row file through Pathway: "
                      + ("[green]met[/]" if best["seconds"] < TARGET_SECONDS else "[red]NOT met[/]"))
        console.print(f"target ≤ {TARGET_RATIO:.1f}× pandas in the same run: "
                      + ("[green]met[/]" if ratio <= TARGET_RATIO else "[red]NOT met[/]"))
    else:
        console.print(f"targets (< {TARGET_SECONDS:.0f} s, ≤ {TARGET_RATIO:.1f}× pandas) are for "
                      f"{TARGET_ROWS:,} rows: not judged at {args.rows:,}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
