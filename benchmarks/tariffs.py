"""Tariffs benchmark: normalizing a tarifas-homologadas file of real size (~300k rows).

    python benchmarks/tariffs.py [--rows 300000] [--repeat 2]

Variants, each in its own subprocess (peak RSS is its own), on the same generated file:

* ``pandas``  — ``pandas.read_csv`` (``;``, latin-1, all columns as text) + the same
                domain functions row by row (``tariff_from_record``) + the overlap check
                (``split_overlaps``): the baseline.
* ``pathway``   — the tariffs graph (``ysh.tariffs.job.build``: the file cut in chunks of
                  whole lines, one parse UDF per chunk) run statically, outputs counted.
* ``pathway-2`` — the same under ``pathway spawn -n 2`` (chunks parsed in two processes).

Prints rows/s, the ratio to the baseline and peak RSS. Target: the whole file < 10 s.
(CDC latency: ``benchmarks/tariffs_cdc.py``.)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"


def make_file(rows: int, data: Path) -> Path:
    from ysh.samples.tariffs import write_benchmark_tariffs

    path = data / f"tarifas-{rows}.csv"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        write_benchmark_tariffs(path, rows)
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pandas(path: Path) -> dict:
    import pandas as pd

    from ysh.tariffs.aneel import QuarantinedRow, tariff_from_record
    from ysh.tariffs.book import split_overlaps

    t0 = time.perf_counter()
    frame = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding="latin-1")
    tariffs, quarantined = [], 0
    for line, record in enumerate(frame.to_dict("records"), start=2):
        result = tariff_from_record(record, str(path), line)
        if isinstance(result, QuarantinedRow):
            quarantined += 1
        else:
            tariffs.append(result)
    kept, overlapping, _ = split_overlaps(tariffs)
    seconds = time.perf_counter() - t0
    return {"rows": len(frame), "tariffs": len(kept), "quarantined": quarantined + len(overlapping),
            "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def run_pathway(path: Path) -> dict:
    import pathway as pw

    from ysh import pw_runtime
    from ysh.tariffs import job

    pw_runtime.quiet_logging()
    t0 = time.perf_counter()
    tables = job.build([path])
    counts = {"tariffs": 0, "quarantine": 0}

    def counter(name):
        def on_change(key, row, time, is_addition):
            counts[name] += 1 if is_addition else -1
        return on_change

    for name in counts:
        pw.io.subscribe(getattr(tables, name), on_change=counter(name))
    for name in ("fio_b", "flags", "monthly"):
        pw.io.null.write(getattr(tables, name))
    pw_runtime.run()
    seconds = time.perf_counter() - t0
    if not pw_runtime.is_leader():
        return {}
    return {"rows": counts["tariffs"] + counts["quarantine"], "tariffs": counts["tariffs"],
            "quarantined": counts["quarantine"], "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def main() -> int:
    parser = argparse.ArgumentParser(description="tariffs benchmark")
    parser.add_argument("--rows", type=int, default=300_000)
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

    console = Console(width=120)
    with console.status(f"generating a {args.rows:,}-row tarifas file…"):
        path = make_file(args.rows, args.data)
    results = {}
    from ysh import pw_runtime

    for variant in ("pandas", "pathway", "pathway-2"):
        runs = []
        for i in range(args.repeat):
            argv = [sys.executable, __file__, "--child", variant.split("-")[0], "--file", str(path)]
            if variant == "pathway-2":
                argv = pw_runtime.spawn_argv(argv, 2)
            with console.status(f"{variant}: run {i + 1}/{args.repeat}…"):
                done = subprocess.run(argv, check=True, capture_output=True, text=True)
                runs.append(json.loads([l for l in done.stdout.splitlines() if l.startswith("{")][-1]))
        results[variant] = min(runs, key=lambda r: r["seconds"])
    base = results["pandas"]["rows"] / results["pandas"]["seconds"]
    table = Table("variant", "rows", "tariffs kept", "quarantined", "seconds", "rows/s", "ratio vs pandas",
                  "peak RSS MB", title=f"tariffs benchmark: {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB)")
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        table.add_row(name, f"{r['rows']:,}", f"{r['tariffs']:,}", f"{r['quarantined']:,}", f"{r['seconds']:.2f}",
                      f"{rate:,.0f}", f"{rate / base:.2f}", f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    seconds = min(results["pathway"]["seconds"], results["pathway-2"]["seconds"])
    console.print(f"pathway: whole file in {seconds:.1f}s at best (target < 10 s): "
                  + ("[green]met[/]" if seconds < 10 else "[red]not met[/]"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
