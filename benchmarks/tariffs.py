"""Tariffs benchmark: normalizing a tarifas-homologadas file of real size (~300k rows).

    python benchmarks/tariffs.py [--rows 300000] [--repeat 2]

Variants, each in its own subprocess (peak RSS is its own), on the same generated file:

* ``pandas``    — ``pandas.read_csv`` (``;``, latin-1, all columns as text) + the same
                  domain functions row by row (``tariff_from_record``) + the overlap check
                  (``split_overlaps``): the baseline, measured in the same run.
* ``pathway``   — the production path of ``ysh tariffs load``: :func:`ysh.tariffs.job.run_static`
                  (the file cut in chunks of whole lines, each chunk parsed by columns in one
                  UDF call, the rows packed per chunk and utility, one overlap check per
                  utility, the JSON lines formatted per utility in the graph, the five
                  tables written as JSONL), 1 process.
* ``pathway-2`` — the same under ``pathway spawn -n 2`` (``YSH_PATHWAY_PROCESSES=2``).

With ``--warehouse``, the path of ``ysh tariffs run`` (the Dagster step) instead: the
file is landed into ``tarifas_raw`` of an embedded PostgreSQL (not timed), and
:func:`ysh.tariffs.job.run_warehouse` recomputes the five tables into empty tables, each
run in its own subprocess, 1 process:

* ``pandas``         — the baseline above, in the same run;
* ``warehouse-rows`` — ``chunked=False``: one UDF call per raw row, Pathway's own writer
                       (the path before issue 17 part 2, the reference);
* ``warehouse-unpacked`` — the snapshot read in chunks, *tarifas homologadas* parsed by
                       columns, the rows unpacked into one engine row per tariff and
                       written by Pathway's writer, ``writer="pathway"`` (the default
                       before 2026-12-05);
* ``warehouse``      — the production default: the same chunks gathered by the server,
                       the rows kept packed per utility as the file graph keeps them, the
                       tariffs written by ``COPY`` at the end (``writer="packed"``);
* ``warehouse-rerun`` — ``warehouse`` again over the tables it wrote (the steady state of
                       ``ysh tariffs run``: every row replaced), where the other variants
                       are first loads into empty tables;
* ``warehouse-2``    — ``warehouse`` under ``pathway spawn -n 2`` (``ysh tariffs run``
                       itself runs in 1 process today; CPU s of process 0 only).

The warehouse variants' five tables must be equal (every column but ``updated_at``,
digested by the server); their kept tariffs are compared with pandas' too.

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


WAREHOUSE_TABLES = ("tarifas_normalized", "tarifas_fio_b", "tarifas_bandeiras", "tarifas_efetivas_mensais",
                    "tarifas_quarantine")


def _state_digest(dsn: str, schema: str) -> str:
    """Order-free digest of the five output tables, every column but ``updated_at``."""
    import psycopg
    from psycopg import sql

    digests = []
    with psycopg.connect(dsn) as conn:
        for table in WAREHOUSE_TABLES:
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "AND column_name <> 'updated_at' ORDER BY ordinal_position", (schema, table))]
            row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
            digest = conn.execute(sql.SQL("SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) "
                                          "FROM (SELECT {} AS r FROM {}.{}) t").format(
                row, sql.Identifier(schema), sql.Identifier(table))).fetchone()
            digests.append(f"{table}:{digest[0]}:{digest[1]}")
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def _empty_outputs(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(
            sql.Identifier(schema, t) for t in WAREHOUSE_TABLES)))


def run_warehouse(dsn: str, schema: str, chunked: bool, writer: str | None = None) -> dict:
    """One recompute of the five tables from ``tarifas_raw`` (emptied by the caller)."""
    import psycopg
    from psycopg import sql

    from ysh import pw_runtime
    from ysh.db import Warehouse
    from ysh.tariffs import job

    pw_runtime.quiet_logging()
    warehouse = Warehouse(dsn, schema)
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    counts = job.run_warehouse(warehouse, chunked=chunked, writer=writer)
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    if not pw_runtime.is_leader():
        return {}
    with psycopg.connect(dsn) as conn:
        kept = conn.execute(sql.SQL(
            "SELECT line, valid_from::text, valid_to::text, tusd_brl_per_kwh, te_brl_per_kwh, tusd_brl_per_kw, "
            "te_brl_per_kw FROM {}.tarifas_normalized").format(sql.Identifier(schema))).fetchall()
    return {"rows": counts["tarifas_raw"], "tariffs": counts["tarifas_normalized"],
            "quarantined": counts["tarifas_quarantine"], "seconds": seconds, "cpu_seconds": cpu,
            "peak_rss_mb": _peak_rss_mb(), "digest": _digest([list(r) for r in kept]),
            "tables_digest": _state_digest(dsn, schema)}


def _machine() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def main() -> int:
    parser = argparse.ArgumentParser(description="tariffs benchmark")
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--warehouse", action="store_true",
                        help="time `ysh tariffs run` (tarifas_raw in an embedded PostgreSQL → the five tables), "
                             "row by row and chunked, beside pandas")
    parser.add_argument("--child")
    parser.add_argument("--file", type=Path)
    parser.add_argument("--dsn")
    parser.add_argument("--schema")
    args = parser.parse_args()
    if args.child:
        if args.child.startswith("warehouse"):
            result = run_warehouse(args.dsn, args.schema, chunked=args.child != "warehouse-rows",
                                   writer="pathway" if args.child == "warehouse-unpacked" else None)
        else:
            result = run_pandas(args.file) if args.child == "pandas" else run_pathway(args.file)
        if result:
            print(json.dumps(result))
        return 0
    if args.warehouse:
        return main_warehouse(args)

    from rich.console import Console

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
    console.print(results_table(results, f"tariffs benchmark: {args.rows:,} rows "
                                         f"({path.stat().st_size / 1e6:.0f} MB), best of {args.repeat}"))
    console.print(f"machine at end: {_machine()}")

    same = all(r["digest"] == base["digest"] and r["tariffs"] == base["tariffs"]
               and r["quarantined"] == base["quarantined"] for r in results.values())
    console.print("correctness: kept tariffs (line, validity, values) equal to pandas' in every variant: "
                  + ("[green]yes[/]" if same else "[red]NO[/]"))
    best_name = min(("pathway", "pathway-2"), key=lambda n: results[n]["seconds"])
    best = results[best_name]
    ratio = best["seconds"] / base["seconds"]
    console.print(f"{best_name}: {args.rows:,} rows in {best['seconds']:.2f} s, ratio vs pandas {ratio:.2f}× "
                  f"(pandas {base['seconds']:.2f} s in this run)")
    print_targets(console, args.rows, best["seconds"], ratio, "through Pathway", "")
    return 0 if same else 1


def results_table(results: dict, title: str, versus: tuple[str, dict] | None = None):
    """One row per variant: rows, kept, quarantined, seconds, CPU, rate, ratio to pandas
    (and to ``versus``), peak RSS."""
    from rich.table import Table

    base = results["pandas"]
    extra = [f"time ÷ {versus[0]}"] if versus else []
    table = Table("variant", "rows", "tariffs kept", "quarantined", "seconds", "CPU s", "rows/s", "time ÷ pandas",
                  *extra, "peak RSS MB", title=title)
    for name, r in results.items():
        ratio = [("" if name == "pandas" else f"{r['seconds'] / versus[1]['seconds']:.2f}")] if versus else []
        table.add_row(name, f"{r['rows']:,}", f"{r['tariffs']:,}", f"{r['quarantined']:,}", f"{r['seconds']:.2f}",
                      f"{r['cpu_seconds']:.1f}", f"{r['rows'] / r['seconds']:,.0f}",
                      f"{r['seconds'] / base['seconds']:.2f}", *ratio, f"{r['peak_rss_mb']:.0f}")
    return table


def print_targets(console, rows: int, seconds: float, ratio: float, path: str, note: str) -> None:
    """The two target lines (met / NOT met), judged only at the target's file size."""
    if rows == TARGET_ROWS:
        console.print(f"target < {TARGET_SECONDS:.0f} s for the {TARGET_ROWS:,}-row file {path}: "
                      + ("[green]met[/]" if seconds < TARGET_SECONDS else "[red]NOT met[/]"))
        console.print(f"target ≤ {TARGET_RATIO:.1f}× pandas in the same run{note}: "
                      + ("[green]met[/]" if ratio <= TARGET_RATIO else "[red]NOT met[/]"))
    else:
        console.print(f"targets (< {TARGET_SECONDS:.0f} s, ≤ {TARGET_RATIO:.1f}× pandas) are for "
                      f"{TARGET_ROWS:,} rows: not judged at {rows:,}")


def _child(variant: str, argv_extra: list[str], processes: int = 1) -> dict | str:
    from ysh import pw_runtime

    argv = pw_runtime.spawn_argv([sys.executable, __file__, "--child", variant, *argv_extra], processes)
    done = subprocess.run(argv, capture_output=True, text=True,
                          env={**os.environ, "YSH_PATHWAY_PROCESSES": str(processes)})
    if done.returncode != 0:
        return f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def main_warehouse(args) -> int:
    """``--warehouse``: the batch of ``ysh tariffs run`` before (row by row) and after
    (chunked), and pandas, in one run."""
    import shutil

    from rich.console import Console

    from ysh import db
    from ysh.services.postgres import EmbeddedPostgres, free_port
    from ysh.tariffs import landing

    console = Console(width=160)
    with console.status(f"generating a {args.rows:,}-row tarifas file…"):
        path = make_file(args.rows, args.data)
    root = Path(tempfile.mkdtemp(prefix="ysh-bench-tariffs-pg-"))
    server = EmbeddedPostgres(root, free_port())
    server.start()
    results, failed = {}, None
    try:
        dsn, schema = server.dsn(), "bench_tariffs"
        db.migrate(dsn, schema)
        with console.status("landing the file into tarifas_raw (not timed)…"), db.connect(dsn, schema) as conn:
            landed = landing.land_file(conn, path)
        console.print(f"landed {landed.rows:,} rows into tarifas_raw ({path.stat().st_size / 1e6:.0f} MB file)")
        before = _machine()
        console.print(f"machine at start: {before}")
        for variant in ("pandas", "warehouse-rows", "warehouse-unpacked", "warehouse", "warehouse-rerun", "warehouse-2"):
            runs = []
            for i in range(args.repeat):
                extra = ["--file", str(path)] if variant == "pandas" else ["--dsn", dsn, "--schema", schema]
                if variant not in ("pandas", "warehouse-rerun"):
                    _empty_outputs(dsn, schema)  # a first load into empty tables (the re-run: over the last one's)
                with console.status(f"{variant}: run {i + 1}/{args.repeat}…"):
                    result = _child(variant.removesuffix("-2"), extra, 2 if variant.endswith("-2") else 1)
                if isinstance(result, str):
                    failed = f"{variant} failed\n{result}"
                    break
                runs.append(result)
            if failed:
                break
            results[variant] = min(runs, key=lambda r: r["seconds"])
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    if failed:
        console.print(failed, style="red", markup=False)
        return 1
    after = _machine()
    base, rows_path = results["pandas"], results["warehouse-rows"]
    console.print(results_table(results, f"tariffs warehouse batch (`ysh tariffs run`): {args.rows:,} rows in "
                                         f"tarifas_raw, best of {args.repeat}", versus=("row by row", rows_path)))
    console.print("CPU s: the Python/Pathway process only (the PostgreSQL server's own work is not counted)")
    console.print(f"machine: {before} (start), {after} (end)")
    chunked = results["warehouse"]
    same_tables = all(results[n]["tables_digest"] == rows_path["tables_digest"]
                      for n in ("warehouse-unpacked", "warehouse", "warehouse-rerun", "warehouse-2"))
    same_kept = all(results[n]["digest"] == base["digest"] and results[n]["tariffs"] == base["tariffs"]
                    for n in ("warehouse-rows", "warehouse-unpacked", "warehouse", "warehouse-rerun", "warehouse-2"))
    console.print("correctness: the five tables of the chunked batches equal the row-by-row batch's (every column): "
                  + ("[green]yes[/]" if same_tables else "[red]NO[/]"))
    console.print("correctness: kept tariffs (line, validity, values) equal to pandas' in every warehouse variant: "
                  + ("[green]yes[/]" if same_kept else "[red]NO[/]"))
    unpacked = results["warehouse-unpacked"]
    ratio_rows = chunked["seconds"] / rows_path["seconds"]
    ratio = chunked["seconds"] / base["seconds"]
    console.print(f"warehouse (chunked): {args.rows:,} rows in {chunked['seconds']:.2f} s "
                  f"({chunked['cpu_seconds']:.1f} CPU s), {ratio_rows:.2f}× the row-by-row batch "
                  f"({rows_path['seconds']:.2f} s, {rows_path['cpu_seconds']:.1f} CPU s) and {ratio:.2f}× pandas "
                  f"({base['seconds']:.2f} s) in this run; the rows unpacked in the graph and written by Pathway's "
                  f"writer (warehouse-unpacked): {unpacked['seconds']:.2f} s ({unpacked['cpu_seconds']:.1f} CPU s)")
    two = results["warehouse-2"]
    console.print(f"warehouse-2 (the chunked batch under 2 Pathway processes; `ysh tariffs run` uses 1): "
                  f"{two['seconds']:.2f} s, {two['seconds'] / base['seconds']:.2f}× pandas")
    rerun = results["warehouse-rerun"]
    console.print(f"warehouse-rerun (the same batch over the tables it wrote, every row replaced): "
                  f"{rerun['seconds']:.2f} s ({rerun['cpu_seconds']:.1f} CPU s), {rerun['seconds'] / base['seconds']:.2f}× pandas")
    worst = max(chunked["seconds"], rerun["seconds"])  # the target holds for a first load and a re-run alike
    print_targets(console, args.rows, worst, worst / base["seconds"],
                  "through the warehouse batch (the slower of first load and re-run)", " (warehouse batch)")
    return 0 if same_tables and same_kept else 1


if __name__ == "__main__":
    raise SystemExit(main())
