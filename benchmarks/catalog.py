"""Catalog benchmark: the Pathway static pipeline vs a plain-Python loop over the same
domain functions, on the same generated feeds, measured in the same run.

    python benchmarks/catalog.py [--rows 200000] [--files 8] [--postgres/--no-postgres]

Each variant runs in its own subprocess so that its peak memory (max RSS) is its own.
Variants:

* ``plain``            — ``normalize_feed`` per file, then de-duplication by
                         (distributor, sku) and product grouping in dicts: the baseline.
* ``pathway N proc``   — the catalog graph (``build_catalog_graph``) run statically in N
                         Pathway processes (``pathway spawn``), every output to
                         ``pw.io.null`` (engine + UDFs only).
* ``… → postgres``     — the same graph with the real sinks: snapshot upserts into
                         PostgreSQL (embedded server started for the benchmark).

Peak RSS is that of the largest process (process 0 for spawned runs).

Prints rows/s, the ratio of each variant to the baseline, and peak RSS. Target on the
2-core reference machine: >= 50k rows/s for the pipeline.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"


def make_feeds(rows: int, files: int, data: Path = DATA) -> Path:
    """``files`` feeds (one distributor each) splitting ``rows`` generated rows."""
    from ysh.samples.catalog import write_benchmark_feed

    folder = data / f"feeds-{rows}-{files}"
    if folder.is_dir() and len(list(folder.glob("*.csv"))) == files:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    whole = data / f"all-{rows}.csv"
    write_benchmark_feed(whole, rows)
    lines = whole.read_bytes().split(b"\r\n")
    header, body = lines[0], [line for line in lines[1:] if line]
    size = -(-len(body) // files)
    for i in range(files):
        part = body[i * size:(i + 1) * size]
        (folder / f"distribuidor_{i:02d}.csv").write_bytes(b"\r\n".join([header, *part]) + b"\r\n")
    return folder


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_plain(folder: Path) -> dict:
    from ysh.catalog.normalize import normalize_feed
    from ysh.catalog.parsing import model_key

    t0 = time.perf_counter()
    rows = 0
    items: dict[tuple[str, str], object] = {}
    quarantined = 0
    for path in sorted(folder.glob("*.csv")):
        result = normalize_feed(path.read_bytes(), str(path), path.stem)
        rows += result.rows
        quarantined += len(result.quarantine)
        for item in result.items:
            items[(item.distributor, item.sku)] = item
    products: dict[str, list] = {}
    for item in items.values():
        if item.brand and item.model and item.category != "other":
            products.setdefault(f"{item.brand}|{model_key(item.model)}", []).append(item.price_brl)
    summary = {k: (len(v), min(p for p in v if p is not None), statistics.median(p for p in v if p is not None))
               for k, v in products.items() if any(p is not None for p in v)}
    seconds = time.perf_counter() - t0
    return {"rows": rows, "items": len(items), "quarantined": quarantined, "products": len(summary),
            "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def run_pathway(folder: Path, dsn: str | None) -> dict:
    import pathway as pw

    from ysh import pw_runtime
    from ysh.catalog import job
    from ysh.catalog.pipeline import build_catalog_graph, read_feed_files_fs

    t0 = time.perf_counter()
    pw_runtime.fresh_graph()
    tables = build_catalog_graph(read_feed_files_fs(str(folder)), landing_root=str(folder))
    counts = {name: pw_runtime.TableCollector(getattr(tables, name), name) for name in ("files",)}
    if dsn is None:
        for name in ("items", "quarantine", "products", "files"):
            pw.io.null.write(getattr(tables, name))
    else:
        job.attach_warehouse(tables, job.Warehouse(dsn, "bench"))
    pw_runtime.run()
    seconds = time.perf_counter() - t0
    files = counts["files"].values()
    return {"rows": sum(f["rows"] for f in files), "items": sum(f["items"] for f in files),
            "quarantined": sum(f["quarantined"] for f in files), "seconds": seconds,
            "peak_rss_mb": _peak_rss_mb()}


def child(variant: str, folder: Path, dsn: str | None, processes: int = 1) -> dict:
    from ysh import pw_runtime

    cmd = [sys.executable, __file__, "--child", variant, "--dir", str(folder)]
    if dsn:
        cmd += ["--dsn", dsn]
    out = subprocess.run(pw_runtime.spawn_argv(cmd, processes), check=True, capture_output=True, text=True)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def main() -> int:
    parser = argparse.ArgumentParser(description="catalog benchmark")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant (best is reported)")
    parser.add_argument("--postgres", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--processes", type=int, default=2, help="Pathway processes (2 cores here)")
    parser.add_argument("--data", type=Path, default=DATA, help="where generated feeds are kept")
    parser.add_argument("--child")
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--dsn")
    args = parser.parse_args()

    if args.child:
        from ysh import pw_runtime

        result = run_plain(args.dir) if args.child == "plain" else run_pathway(args.dir, args.dsn)
        if pw_runtime.is_leader():  # with `pathway spawn`, process 0 holds the outputs
            print(json.dumps(result))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console()
    with console.status(f"generating {args.rows:,} feed rows in {args.files} files…"):
        folder = make_feeds(args.rows, args.files, args.data)
    variants: list[tuple[str, str, str | None, int]] = [
        ("plain", "plain", None, 1),
        ("pathway 1 proc", "pathway", None, 1),
        (f"pathway {args.processes} proc", "pathway", None, args.processes),
    ]
    server = None
    if args.postgres:
        from ysh import db
        from ysh.services.postgres import EmbeddedPostgres, free_port

        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="ysh-bench-pg-")), free_port())
        server.start()
        db.migrate(server.dsn(), "bench")
        variants.append((f"pathway {args.processes} proc → postgres", "pathway", server.dsn(), args.processes))
    results = {}
    try:
        for label, kind, dsn, processes in variants:
            runs = []
            for i in range(args.repeat):
                with console.status(f"{label}: run {i + 1}/{args.repeat}…"):
                    runs.append(child(kind, folder, dsn, processes))
            results[label] = min(runs, key=lambda r: r["seconds"])
    finally:
        if server is not None:
            server.stop()

    base = results["plain"]["rows"] / results["plain"]["seconds"]
    best_label = f"pathway {args.processes} proc"
    table = Table("variant", "rows", "items", "quarantined", "seconds", "rows/s", "ratio vs plain",
                  "peak RSS MB", title=f"catalog benchmark: {args.rows:,} rows in {args.files} feeds")
    console.width = max(console.width, 120)
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        table.add_row(name, f"{r['rows']:,}", f"{r['items']:,}", f"{r['quarantined']:,}",
                      f"{r['seconds']:.2f}", f"{rate:,.0f}", f"{rate / base:.2f}", f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    rate = results[best_label]["rows"] / results[best_label]["seconds"]
    console.print(f"{best_label}: {rate:,.0f} rows/s (target ≥ 50,000): "
                  + ("[green]met[/]" if rate >= 50_000 else "[red]not met[/]"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
