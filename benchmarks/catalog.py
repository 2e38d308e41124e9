"""Catalog benchmark: the production path — the catalog graph run by ``ysh catalog run``
(:func:`ysh.catalog.job.run_static`: keep-last-good-feed judging, items, quarantine,
products, feed files and versions) writing into PostgreSQL — against a plain-Python loop
over the same domain functions, on the same generated feeds, measured in the same run.

    python benchmarks/catalog.py [--rows 200000] [--files 8] [--processes 2] [--postgres/--no-postgres]

Each variant runs in its own subprocess so that its peak memory (max RSS) is its own.
Variants:

* ``plain``                — ``normalize_feed`` per file, then de-duplication by
                             (distributor, sku) and product grouping in dicts: the baseline.
* ``pathway N proc``       — the catalog graph (``build_catalog_graph``, every item a row:
                             the follower's graph) run statically in N Pathway processes
                             (``pathway spawn``), every output to ``pw.io.null`` (engine +
                             UDFs only; with ``--engine-only``).
* ``pathway N proc → postgres`` — the production path: ``run_static`` with a warehouse
                             (a fresh schema per run, so every run is a first load) in
                             N processes — a distributor's only feed packed, its items
                             one ``COPY`` (docs/catalog.md, "Performance"); what the
                             target is judged on.
* ``… → postgres, normalizing precomputed`` (``--floor``) — the production path again,
                             every file's ``normalize_feed`` result computed before the
                             timer and looked up in the graph's UDF (normalizing itself made
                             to fail, the look-ups counted): what the path costs besides
                             normalizing, the most any faster ``normalize_feed`` with the
                             same results could give it. A bound for planning, never a
                             product figure.

Timing starts once the process runs (Python and Pathway imported) and ends when the run
returned (the leader has read its report back from the warehouse). Peak RSS is the largest
process's (and, for spawned runs, the sum over the processes); the PostgreSQL server's
memory is not counted.

CPU seconds are summed over the processes (the busiest one in brackets: the wall time a
run would take with a core to itself); the PostgreSQL server's CPU during the production
run (its processes, from /proc) is its own column ("server CPU s").

Prints rows/s, the ratio of each variant to the baseline, peak RSS, the machine (cores,
load average before and after) and the target line: ≥ 50,000 rows/s through Pathway
into PostgreSQL in 2 processes and ≥ 1.5× the plain loop of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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


def _cpu_s() -> float:
    """CPU seconds of this process so far (user + system, every thread): the work done,
    which the machine's other load does not inflate as it inflates wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_plain(folder: Path) -> dict:
    from ysh.catalog.normalize import normalize_feed
    from ysh.catalog.parsing import model_key

    cpu0 = _cpu_s()
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
            "seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "cpu_s": _cpu_s() - cpu0}


def precompute(folder: Path, target: Path) -> Path:
    """Every file's normalized result, as the graph's UDF would compute it, pickled to
    ``target`` (for the floor variant)."""
    import pickle

    from ysh.catalog.pipeline import _normalized

    results = {}
    for path in sorted(folder.glob("*.csv")):
        data, key = path.read_bytes(), str(path.resolve())  # run_static reads resolved paths
        results[key] = (len(data), _normalized(data, key, int(path.stat().st_mtime), path.stem))
    target.write_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    return target


#: how many times this process's graph took a precomputed result (the floor variant)
PRECOMPUTED_HITS = 0


def _normalizing_precomputed(results_file: Path) -> None:
    """Replace the one function the catalog's normalizing UDFs call with a look-up of the
    results read here, before the timer starts (the floor variant only). Normalizing
    itself is made to fail, and the look-ups are counted, so that a floor run that did
    not take the precomputed results cannot pass for one."""
    import pickle

    from ysh.catalog import pipeline

    results = pickle.loads(results_file.read_bytes())

    def precomputed(data: bytes, path: str, modified_at_s: int, distributor: str):
        global PRECOMPUTED_HITS
        size, result = results[path]
        if size != len(data):
            raise ValueError(f"the floor variant: {path} is not the file that was normalized ahead")
        PRECOMPUTED_HITS += 1
        return result

    def no_normalizing(*args, **kwargs):
        raise RuntimeError("the floor variant normalizes nothing: normalize_feed was called")

    pipeline._normalized = precomputed
    pipeline.normalize_feed = no_normalizing


def run_pathway(folder: Path, dsn: str | None, schema: str | None) -> dict:
    """The graph with null sinks (``dsn`` None), or the production run into ``schema``."""
    import pathway as pw

    from ysh import pw_runtime
    from ysh.catalog import job
    from ysh.catalog.pipeline import build_catalog_graph, read_feed_files_fs

    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    if dsn is not None:
        report = job.run_static([folder], warehouse=job.Warehouse(dsn, schema))
        seconds = time.perf_counter() - t0
        return {"rows": int(report.rows), "items": report.items, "quarantined": report.quarantined,
                "products": report.products, "seconds": seconds, "peak_rss_mb": _peak_rss_mb(),
                "cpu_s": _cpu_s() - cpu0}
    pw_runtime.fresh_graph()
    tables = build_catalog_graph(read_feed_files_fs(str(folder)), landing_root=str(folder))
    counts = {name: pw_runtime.TableCollector(getattr(tables, name), name) for name in ("files",)}
    for name in ("items", "quarantine", "products", "files"):
        pw.io.null.write(getattr(tables, name))
    pw_runtime.run()
    seconds = time.perf_counter() - t0
    files = counts["files"].values()
    return {"rows": sum(f["rows"] for f in files), "items": sum(f["items"] for f in files),
            "quarantined": sum(f["quarantined"] for f in files), "seconds": seconds,
            "peak_rss_mb": _peak_rss_mb(), "cpu_s": _cpu_s() - cpu0}


def child(variant: str, folder: Path, dsn: str | None, processes: int = 1, schema: str | None = None,
          precomputed: Path | None = None) -> dict:
    from ysh import pw_runtime

    cmd = [sys.executable, __file__, "--child", variant, "--dir", str(folder)]
    if dsn:
        cmd += ["--dsn", dsn, "--schema", schema]
    if precomputed is not None:
        cmd += ["--precomputed", str(precomputed)]
    out = subprocess.run(pw_runtime.spawn_argv(cmd, processes), check=True, capture_output=True, text=True)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result = next(line for line in lines if "rows" in line)  # the leader's
    rss = [line["peak_rss_mb"] for line in lines]
    cpu = [line["cpu_s"] for line in lines]
    result["peak_rss_mb"], result["total_rss_mb"] = max(rss), sum(rss)
    result["cpu_s"], result["busiest_cpu_s"] = sum(cpu), max(cpu)
    result["precomputed_hits"] = sum(line.get("precomputed_hits", 0) for line in lines)
    return result


def server_cpu_s(pid: int | None) -> float | None:
    """CPU seconds of a PostgreSQL server so far: the postmaster, its live processes
    (backends, writers) and the backends already gone (reaped: counted in the
    postmaster's children times). None where /proc cannot tell."""
    if pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")

    def fields(p: str) -> list[str]:
        with open(f"/proc/{p}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    try:
        total = sum(int(v) for v in fields(str(pid))[11:15])  # utime, stime, cutime, cstime
    except (OSError, ValueError):
        return None
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = fields(entry)
                if int(stat[1]) == pid:
                    total += int(stat[11]) + int(stat[12])
            except (OSError, ValueError, IndexError):
                continue
    return total / tick


def fresh_schema(dsn: str, schema: str) -> None:
    """A migrated, empty schema, and a checkpoint: every run starts from the same server
    state (no earlier run's WAL left to flush, no earlier run's tables to vacuum)."""
    import psycopg

    from ysh import db

    db.migrate(dsn, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def machine() -> str:
    return f"{os.cpu_count()} cores, load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg())


TARGET_ROWS_S = 50_000
TARGET_RATIO = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description="catalog benchmark")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant (best is reported)")
    parser.add_argument("--postgres", action=argparse.BooleanOptionalAction, default=True,
                        help="the production path into PostgreSQL (the target's variant)")
    parser.add_argument("--engine-only", action=argparse.BooleanOptionalAction, default=True,
                        help="also the graph with null sinks (1 and N processes)")
    parser.add_argument("--processes", type=int, default=2, help="Pathway processes (2 cores here)")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=False,
                        help="also the production path with normalizing precomputed (its floor)")
    parser.add_argument("--data", type=Path, default=DATA, help="where generated feeds are kept")
    parser.add_argument("--child")
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--dsn")
    parser.add_argument("--schema")
    parser.add_argument("--precomputed", type=Path)
    args = parser.parse_args()

    if args.floor and not args.postgres:
        parser.error("--floor is a variant of the production path: it needs --postgres")
    if args.child:
        from ysh import pw_runtime

        if args.precomputed is not None:
            _normalizing_precomputed(args.precomputed)
        result = run_plain(args.dir) if args.child == "plain" else run_pathway(args.dir, args.dsn, args.schema)
        if not pw_runtime.is_leader():  # with `pathway spawn`, process 0 holds the outputs
            result = {"peak_rss_mb": result["peak_rss_mb"], "cpu_s": result["cpu_s"]}
        result["precomputed_hits"] = PRECOMPUTED_HITS
        # one write of one whole line (atomic on a pipe): the spawned processes share stdout,
        # and print's separate writes of text and newline let two results run together
        sys.stdout.flush()
        os.write(sys.stdout.fileno(), (json.dumps(result) + "\n").encode())
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console()
    before = machine()
    with console.status(f"generating {args.rows:,} feed rows in {args.files} files…"):
        folder = make_feeds(args.rows, args.files, args.data)
    variants: list[tuple[str, str, str | None, int, Path | None]] = [("plain", "plain", None, 1, None)]
    if args.engine_only:
        variants += [("pathway 1 proc", "pathway", None, 1, None),
                     (f"pathway {args.processes} proc", "pathway", None, args.processes, None)]
    server = None
    production = f"pathway {args.processes} proc → postgres"
    floor = f"{production}, normalizing precomputed"
    scratch = Path(tempfile.mkdtemp(prefix="ysh-bench-catalog-"))
    try:
        if args.postgres:
            from ysh.services.postgres import EmbeddedPostgres, free_port

            results_file = None
            if args.floor:
                with console.status("normalizing every file ahead of the floor variant…"):
                    results_file = precompute(folder, scratch / "results.pkl")
            server = EmbeddedPostgres(scratch / "pg", free_port())
            server.start()
            variants.append((production, "pathway", server.dsn(), args.processes, None))
            if results_file is not None:
                variants.append((floor, "pathway", server.dsn(), args.processes, results_file))
        runs: dict[str, list[dict]] = {label: [] for label, *_ in variants}
        for i in range(args.repeat):  # the variants in turn, each repeat: drift hits them alike
            for number, (label, kind, dsn, processes, precomputed) in enumerate(variants):
                schema = f"bench_{number}_{i}" if dsn is not None else None
                if dsn is not None:  # every run a first load, into its own schema
                    fresh_schema(dsn, schema)
                cpu0 = server_cpu_s(server.status().pid) if dsn is not None else None
                with console.status(f"{label}: run {i + 1}/{args.repeat}…"):
                    runs[label].append(child(kind, folder, dsn, processes, schema, precomputed))
                cpu1 = server_cpu_s(server.status().pid) if dsn is not None else None
                runs[label][-1]["server_cpu_s"] = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
                if dsn is not None:
                    drop_schema(dsn, schema)
        results = {label: min(done, key=lambda r: r["seconds"]) for label, done in runs.items()}
    finally:
        try:
            if server is not None:
                server.stop()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    after = machine()

    base = results["plain"]["rows"] / results["plain"]["seconds"]
    table = Table("variant", "rows", "items", "quarantined", "seconds", "rows/s", "ratio vs plain",
                  "peak RSS MB", "all processes MB", "CPU s (busiest)", "server CPU s", title=f"catalog benchmark: {args.rows:,} rows in {args.files} feeds")
    console.width = max(console.width, 170)
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        table.add_row(name, f"{r['rows']:,}", f"{r['items']:,}", f"{r['quarantined']:,}",
                      f"{r['seconds']:.2f}", f"{rate:,.0f}", f"{rate / base:.2f}", f"{r['peak_rss_mb']:.0f}",
                      f"{r['total_rss_mb']:.0f}", f"{r['cpu_s']:.1f} ({r['busiest_cpu_s']:.1f})",
                      f"{r['server_cpu_s']:.1f}" if r.get("server_cpu_s") is not None else "")
    console.print(table)
    console.print(f"machine: {before} (before), {after} (after)")
    # the plain loop and the graph must agree on what they read and keep
    agree = all(r["rows"] == results["plain"]["rows"] and r["items"] == results["plain"]["items"]
                and r["quarantined"] == results["plain"]["quarantined"] for r in results.values())
    console.print("results equal to the plain loop (rows, items, quarantined): " + ("yes" if agree else "NO"))
    judged = production if production in results else f"pathway {args.processes} proc"
    rate = results[judged]["rows"] / results[judged]["seconds"]
    met = rate >= TARGET_ROWS_S and rate / base >= TARGET_RATIO
    note = "" if judged == production else " (judged without PostgreSQL: --no-postgres)"
    console.print(f"target: {judged} ≥ {TARGET_ROWS_S:,} rows/s and ≥ {TARGET_RATIO}× plain{note}: "
                  f"{rate:,.0f} rows/s, {rate / base:.2f}× plain, peak RSS {results[judged]['peak_rss_mb']:.0f} MB"
                  f" → " + ("[green]met[/]" if met else "[red]NOT met[/]"))
    used = True
    if floor in results:
        r = results[floor]
        files = len(list(folder.glob("*.csv")))
        used = all(run["precomputed_hits"] >= files for run in runs[floor])
        console.print("the floor took every file's precomputed result, in every run: " + ("yes" if used else "NO"))
        console.print(f"floor: {floor}: {r['seconds']:.2f} s, {r['rows'] / r['seconds']:,.0f} rows/s, "
                      f"{r['rows'] / r['seconds'] / base:.2f}× plain — the most a faster normalize_feed "
                      "(the same results, the loop kept as the baseline) could give this path")
    return 0 if agree and used else 1


if __name__ == "__main__":
    raise SystemExit(main())
