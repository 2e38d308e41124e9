"""CDC latency of the tariffs follower: a row committed in ``tarifas_raw`` → its
normalized row visible in ``tarifas_normalized`` (and its months in
``tarifas_efetivas_mensais``).

    python benchmarks/tariffs_cdc.py [--inserts 200]    # BENCH_TRACE=1 prints every insert's latency

Starts its own PostgreSQL (embedded, loopback, wal_level=logical), lands the sample
tariff files, starts ``ysh tariffs follow`` as a real process, then commits INSERTs of new
B1 rows one at a time and polls until each is visible. Prints p50/p95/max, and, as the
baseline measured in the same run, the time of a full batch recompute (``ysh tariffs
run``) — what a change would cost without CDC. Target: p95 < 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wait(predicate, timeout: float, what: str, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description="tariffs CDC latency benchmark")
    parser.add_argument("--inserts", type=int, default=200)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from ysh import db, pw_runtime
    from ysh.services.postgres import EmbeddedPostgres, free_port
    from ysh.tariffs import job, landing

    pw_runtime.quiet_logging()
    console = Console(width=120)
    work = Path(tempfile.mkdtemp(prefix="ysh-cdc-bench-"))
    server = EmbeddedPostgres(work / "pg", free_port())
    follower = None
    try:
        with console.status("starting PostgreSQL, landing the sample tariffs…"):
            server.start()
            warehouse = db.Warehouse(server.dsn(), "bench")
            db.migrate(warehouse.dsn, warehouse.schema)
            conn = db.connect(warehouse.dsn, warehouse.schema, autocommit=True)
            for path in landing.feed_files([REPO / "data" / "sample" / "tariffs"]):
                landing.land_file(conn, path)
            t0 = time.perf_counter()
            job.run_warehouse(warehouse)
            batch_s = time.perf_counter() - t0
        env = {**os.environ, "YSH_POSTGRES_DSN": warehouse.dsn, "YSH_POSTGRES_SCHEMA": warehouse.schema,
               "YSH_HOME": str(work / "home")}
        log = (work / "follow.log").open("w")
        follower = subprocess.Popen([sys.executable, "-m", "ysh.cli", "tariffs", "follow"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        template = conn.execute(
            "SELECT record FROM tarifas_raw WHERE record->>'SigAgente' = 'CEMIG-D' AND record->>'DscSubGrupo' = 'B1' "
            "AND record->>'DscSubClasse' = 'Residencial' AND record->>'DscBaseTarifaria' = 'Tarifa de Aplicação' "
            "AND record->>'DscModalidadeTarifaria' = 'Convencional' ORDER BY line LIMIT 1").fetchone()[0]
        # the follower's start-up: snapshot of tarifas_raw, then streaming
        probe = dict(template, SigAgente="BENCH-PROBE")
        conn.execute("INSERT INTO tarifas_raw (source, line, dataset, record, batch_id) "
                     "VALUES ('bench', 0, 'tariffs', %s, 'bench')", (json.dumps(probe),))
        with console.status("waiting for the follower to start…"):
            wait(lambda: conn.execute("SELECT 1 FROM tarifas_normalized WHERE utility = 'BENCH-PROBE'").fetchone(),
                 180, "the follower's first output")
        normalized, monthly = [], []
        with console.status(f"{args.inserts} inserts, one at a time…") as status:
            for i in range(1, args.inserts + 1):
                utility = f"BENCH-{i:04d}"
                record = dict(template, SigAgente=utility)
                started = time.perf_counter()
                conn.execute("INSERT INTO tarifas_raw (source, line, dataset, record, batch_id) "
                             "VALUES ('bench', %s, 'tariffs', %s, 'bench')", (i, json.dumps(record)))
                wait(lambda: conn.execute("SELECT 1 FROM tarifas_normalized WHERE utility = %s",
                                          (utility,)).fetchone(), 60, f"{utility} normalized")
                normalized.append(time.perf_counter() - started)
                if os.environ.get("BENCH_TRACE"):
                    print(f"{time.strftime('%H:%M:%S')} #{i} {normalized[-1]:.3f}", flush=True)
                wait(lambda: conn.execute("SELECT 1 FROM tarifas_efetivas_mensais WHERE utility = %s",
                                          (utility,)).fetchone(), 60, f"{utility} monthly")
                monthly.append(time.perf_counter() - started)
                status.update(f"{i}/{args.inserts} inserts (last {normalized[-1] * 1000:.0f} ms)")
    finally:
        if follower is not None:
            follower.terminate()
            follower.wait(30)
        server.stop()

    table = Table("commit → visible in", "p50 ms", "p95 ms", "max ms (insert #)", "vs batch recompute (p95)",
                  title=f"tariffs CDC latency: {args.inserts} single-row inserts into tarifas_raw "
                        f"(follower autocommit 200 ms)")
    for name, values in (("tarifas_normalized", normalized), ("tarifas_efetivas_mensais", monthly)):
        p95 = percentile(values, 0.95)
        table.add_row(name, f"{statistics.median(values) * 1000:.0f}", f"{p95 * 1000:.0f}",
                      f"{max(values) * 1000:.0f} (#{values.index(max(values)) + 1})", f"{batch_s / p95:.1f}x faster")
    console.print(table)
    console.print(f"baseline: full batch recompute of the sample (712 raw rows) {batch_s * 1000:.0f} ms")
    p95 = percentile(normalized, 0.95)
    console.print(f"p95 {p95:.2f} s (target < 3 s): " + ("[green]met[/]" if p95 < 3 else "[red]NOT met[/]"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
