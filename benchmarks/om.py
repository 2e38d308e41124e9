"""O&M pipeline throughput and alert latency (issues 6 and 14).

    python benchmarks/om.py                       # 5M events; about 10–15 min on 2 cores
    python benchmarks/om.py --plants 200 --hours 6 --mqtt-events 200000   # a quick look
    python benchmarks/om.py --kafka-only --kafka-events 300000            # Kafka alone, about 5 min

1. File replay: a synthetic distributed-generation fleet (``ysh.om.fleet.synthetic_plants``:
   mostly one-inverter residential plants, as in Brazil) simulated at one reading per
   inverter per minute, with faults injected, written as JSONL. Two Pathway runs over the
   same file, in this process:
   - *baseline*: read the JSONL natively and reduce 5-minute tumbling windows per
     inverter (count, avg/min/max power) — what any windowing pipeline pays;
   - *pipeline*: ``ysh om detect --warehouse`` (``job.run_detect``): validation,
     deduplication, windows with the expected-power model, the rule fold, alerts, all
     upserted into PostgreSQL. A file is finite, so ``run_detect`` windows it with the
     static operator (``build_om_graph(static=True)``: a ``groupby`` on the window slot).
   - with ``--static-windows`` (or ``--compare-windows``), *pipeline, streaming window
     operator*: the same with ``run_detect(static_windows=False)`` (``windowby`` with
     ``exactly_once_behavior``, what ``ysh om follow`` runs), its outputs checked equal.
   Then both again in ``--processes`` Pathway processes (default 2: ``pathway spawn``, as
   ``ysh om detect`` runs with ``YSH_PATHWAY_PROCESSES=2``), timed over the same span
   (graph build → end of the run, in process 0; spawn → exit printed beside), the
   pipeline into a fresh schema (a first load, as the one-process run's first), its
   counts checked equal to the one-process run's. The targets are judged on this pair.
   Printed: events/s of each, the ratio pipeline / baseline, each run's CPU time. With
   ``--repeat N`` the baseline and the pipeline alternate N times (each pipeline run with
   the model's in-process caches emptied, as a fresh ``ysh om detect`` process starts them)
   and the medians of the ratios are printed: on a shared machine a pair measured back to
   back sees about the same load, single runs scatter.
2. MQTT end to end: mosquitto and ``ysh om follow --source mqtt`` (a subprocess, with
   persistence) on loopback, two publisher processes, QoS 1. First saturated: 50 events per
   message, as fast as they go (a late-data cutoff of one hour of event time, since six
   hours are replayed in seconds); events/s = events / (first publish → the last final
   window row in PostgreSQL): the sustained rate (the throughput target). Then saturated
   again with 1 event per message (a device publishing each reading), and paced at 50 %
   of that rate (1 event per message, the production cutoff of 120 s): the **true alert
   latency**, from the
   publish of the event that closes the alert's moment (the first event at or after the
   moment + the cutoff: before it the moment cannot be judged) to the alert row committed
   in PostgreSQL (``created_at``); and, for reference, from the publish of the moment's
   last sample (adds the cutoff, cutoff / speedup of wall time in a replay).

3. Kafka end to end (``--kafka-events N``, ``--kafka-only``): Tansu (the Kafka-protocol
   broker ``ysh services up --with kafka`` starts) and ``ysh om follow --source kafka`` (a
   subprocess, with persistence) on loopback; each run on a topic of 4 partitions keyed by
   plant_id. Saturated, once per ``--kafka-batches`` setting (events per message; default 1
   and 15, a 1-minute logger flushing every 15 minutes): the topic is filled first, then
   the pipeline starts and reads the backlog; events/s = events / (its Kafka reader starts
   → the last final window row committed), printed also without the consumer group join
   (measured apart with a plain consumer, as are the bus's own read rate and the
   process's start-up). Each saturated setting runs once per ``--kafka-instances`` count
   (default 1 and 2): N instances each own their partitions (``YSH_OM_KAFKA_PARTITIONS``,
   the scale-out of docs/operations.md) on one YSH_HOME and one warehouse, the clock from
   the first reader's start. Then paced at 50 % of the saturated rate of
   ``--kafka-paced-batch`` events per message (default 1), the pipeline running first:
   the true alert latency as for MQTT (from the produce of the closing event).

Targets (issue 14): ≥ 60k events/s file replay and ≥ 0.6 of the native read + window in
the same run, ≥ 40k events/s over MQTT or Kafka, true alert latency p95 < 2 s at 50 % of the
sustained rate. The figures and "met" / "NOT met" are printed, not asserted, each with the
machine's cores and load average; the MQTT rate also as a ratio to the native read + window
of the same events from a file.
"""

from __future__ import annotations

import argparse
import atexit
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


def machine() -> str:
    """Cores and load average, printed beside every figure (the machine is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} / {five:.2f} / {fifteen:.2f}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def scenario_for(plants, start: datetime, hours: float, seed: int):
    """The fleet with a trip on every 25th plant's first inverter and an outage on every
    97th plant, in daylight (13:00–15:00 UTC)."""
    from ysh.samples.om_telemetry import Fault, Scenario

    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    faults = []
    for k, plant in enumerate(plants):
        if k % 25 == 0:
            t0 = day + timedelta(hours=13, minutes=(k * 7) % 60)
            faults.append(Fault(kind="trip", plant_id=plant.plant_id, inverter_id=plant.inverters[0].inverter_id,
                                start=t0, end=t0 + timedelta(minutes=45)))
        elif k % 97 == 0:
            t0 = day + timedelta(hours=14)
            faults.append(Fault(kind="outage", plant_id=plant.plant_id, start=t0, end=t0 + timedelta(minutes=40)))
    faults = [f for f in faults if start <= f.start and f.end <= start + timedelta(hours=hours)]
    return Scenario(plants=plants, start=start, duration=timedelta(hours=hours), step_s=60, seed=seed,
                    sky="variable", faults=faults, duplicate_rate=0.002, invalid_rate=0.0005)


def baseline(path: Path) -> tuple[int, float]:
    """Pathway reads the JSONL natively and windows it: (windows, seconds)."""
    import pathway as pw

    from ysh import pw_runtime

    class Event(pw.Schema):
        event_id: str | None = pw.column_definition(default_value=None)
        plant_id: str | None = pw.column_definition(default_value=None)
        inverter_id: str | None = pw.column_definition(default_value=None)
        ts: str | None = pw.column_definition(default_value=None)
        ac_power_w: float | None = pw.column_definition(default_value=None)

    pw_runtime.fresh_graph()
    t0 = time.perf_counter()
    events = pw.io.jsonlines.read(str(path), schema=Event, mode="static")
    events = events.filter(pw.this.ts.is_not_none() & pw.this.ac_power_w.is_not_none()
                           & pw.this.plant_id.is_not_none() & pw.this.inverter_id.is_not_none())
    events = events.select(plant_id=pw.unwrap(pw.this.plant_id), inverter_id=pw.unwrap(pw.this.inverter_id),
                           ac=pw.unwrap(pw.this.ac_power_w), ts=pw.unwrap(pw.this.ts))
    events = events.filter(pw.this.ts.str.len() == 20)  # the malformed ones are the pipeline's business
    events = events.select(pw.this.plant_id, pw.this.inverter_id, pw.this.ac,
                           t=pw.this.ts.dt.strptime("%Y-%m-%dT%H:%M:%SZ").dt.to_utc("UTC"))
    windows = events.windowby(
        pw.this.t, window=pw.temporal.tumbling(duration=timedelta(minutes=5)),
        instance=pw.this.plant_id + "\x1f" + pw.this.inverter_id,
        behavior=pw.temporal.exactly_once_behavior(shift=timedelta(minutes=2)),
    ).reduce(n=pw.reducers.count(), avg=pw.reducers.avg(pw.this.ac), lo=pw.reducers.min(pw.this.ac),
             hi=pw.reducers.max(pw.this.ac))
    counted = windows.reduce(n=pw.reducers.count())
    result: list[int] = []
    pw.io.subscribe(counted, on_change=lambda key, row, time, is_addition: result.append(row["n"])
                    if is_addition else None)
    pw_runtime.run()
    return (result[-1] if result else 0), time.perf_counter() - t0


def spawned(kind: str, path: Path, processes: int, *, plants: Path | None = None, dsn: str | None = None,
            schema: str | None = None, now: datetime | None = None) -> dict:
    """The baseline or the pipeline over ``path`` in ``processes`` Pathway processes
    (``pathway spawn``, as ``ysh om detect`` runs with YSH_PATHWAY_PROCESSES): process 0's
    result (``seconds``: its graph build → the run's end, the same span as the in-process
    runs), with the CPU seconds of all the processes and of the busiest, and ``spawn_s``
    (spawn → exit, the processes' start and imports included)."""
    from ysh import pw_runtime

    cmd = [sys.executable, __file__, "--child", kind, "--file", str(path)]
    if kind == "pipeline":
        cmd += ["--plants-file", str(plants), "--dsn", dsn, "--schema", schema, "--now", now.isoformat()]
    t0 = time.perf_counter()
    out = subprocess.run(pw_runtime.spawn_argv(cmd, processes), check=True, capture_output=True, text=True)
    spawn_s = time.perf_counter() - t0
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    result = next(line for line in lines if line["leader"])
    result.update(cpu_s=sum(line["cpu_s"] for line in lines), busiest_cpu_s=max(line["cpu_s"] for line in lines),
                  spawn_s=spawn_s)
    return result


def child(args) -> int:
    """One process of a spawned run (``--child``): one JSON line on stdout."""
    from ysh import db, pw_runtime
    from ysh.om import job

    pw_runtime.quiet_logging()
    c0 = time.process_time()
    if args.child == "baseline":
        windows, seconds = baseline(args.file)
        result = {"windows": windows, "seconds": seconds}
    else:
        t0 = time.perf_counter()
        report = job.run_detect([args.file], args.plants_file, None, warehouse=db.Warehouse(args.dsn, args.schema),
                                now=datetime.fromisoformat(args.now))
        result = {"windows": report.windows, "events": report.events, "alerts_by_rule": report.alerts_by_rule,
                  "quarantine_by_reason": report.quarantine_by_reason, "seconds": time.perf_counter() - t0}
    result.update(leader=pw_runtime.is_leader(), cpu_s=time.process_time() - c0)
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), (json.dumps(result) + "\n").encode())  # one write: the processes share stdout
    return 0


def cold_caches() -> None:
    """Empty the pipeline's in-process caches (the clear-sky days, the parsed timestamps),
    so that a repeated run pays what a fresh ``ysh om detect`` process pays."""
    from ysh.om import expected, validation

    for cached in (expected._location, expected._sun_day, expected._extra_radiation_day, expected._clear_day,
                   expected._extra_radiation_values, expected._clear_ac_day, validation._epoch):
        cached.cache_clear()


REPLAY_CUTOFF_S = 3600
#: the MQTT runs stop waiting when no window row has arrived for this long
STALL_S = 60


def _table_rows(dsn: str, schema: str, table: str) -> list[tuple]:
    """Every row of ``schema.table`` but its ``created_at`` and ``updated_at``, sorted (to compare two runs)."""
    from ysh import db

    with db.connect(dsn, schema) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "AND column_name NOT IN ('created_at', 'updated_at') ORDER BY ordinal_position", (schema, table)).fetchall()]
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return sorted(rows, key=repr)


def wait_for_windows(conn, expected: int, proc, *, poll_s: float) -> int:
    """Poll ``om_inverter_5min`` until ``expected`` windows are in, the follower ended, 30
    minutes passed, or nothing new came for ``STALL_S``; the count then."""
    deadline = time.monotonic() + 1800
    last_count, last_change = -1, time.monotonic()
    while True:
        windows = conn.execute("SELECT count(*) FROM om_inverter_5min").fetchone()[0]
        if windows != last_count:
            last_count, last_change = windows, time.monotonic()
        if windows >= expected or proc.poll() is not None or time.monotonic() > deadline:
            return windows
        if time.monotonic() - last_change > STALL_S:  # nothing new: the rest will not come
            return windows
        time.sleep(poll_s)


def late_events(conn, windows: int, expected: int, allow_late: bool, log: Path) -> int:
    """Events quarantined as late; a run short of windows without them (or where they are
    not allowed) is an error."""
    late = conn.execute("SELECT count(*) FROM om_quarantine WHERE reason = 'late'").fetchone()[0]
    if windows < expected and not (allow_late and late):
        raise RuntimeError(f"only {windows} of {expected} windows arrived, none for {STALL_S} s "
                           f"({late} events quarantined as late):\n{log.read_text()[-2000:]}")
    return late


def last_window_at(conn) -> float:
    """When the last window row was committed (epoch seconds)."""
    return conn.execute("SELECT extract(epoch FROM max(created_at)) FROM om_inverter_5min").fetchone()[0]


def alert_results(conn) -> tuple[list[tuple[float, float]], list[tuple]]:
    """(detected at, committed at) of each alert (epoch seconds), and the alerts per rule."""
    rows = [(float(d), float(c)) for d, c in conn.execute(
        "SELECT extract(epoch FROM (details->>'detected_at')::timestamptz), extract(epoch FROM created_at) "
        "FROM om_alerts WHERE details ? 'detected_at'").fetchall()]
    return rows, conn.execute("SELECT rule, count(*) FROM om_alerts GROUP BY 1 ORDER BY 2 DESC").fetchall()


def final_windows(path: Path, cutoff_s: int = 120) -> int:
    """How many (inverter, 5-minute window) a streaming run must emit for the events in
    ``path``: those whose end + the late cutoff is not after the newest event."""
    seen, newest = set(), 0.0
    with open(path, "rb") as fh:
        for line in fh:
            event = json.loads(line)
            t = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
            newest = max(newest, t)
            seen.add((event["plant_id"], event["inverter_id"], int(t // 300)))
    return sum(1 for (_, _, slot) in seen if (slot + 1) * 300 + cutoff_s <= newest)


def _publish(args: tuple) -> tuple[int, list[tuple[float, float]]]:
    """One publisher process: (events published, [(event time, wall clock when the first
    event of that time was handed to the client)])."""
    path, uri, part, parts, batch, speedup, start_at = args
    from ysh.om.publish import _ts, paced, publish_mqtt

    # both publishers start together: at 3,600× real time a second of skew between their
    # process starts is an hour of event time, and the lagging one's events come in late
    time.sleep(max(0.0, start_at - time.time()))

    marks: list[tuple[float, float]] = []

    def mine():
        with open(path, "rb") as fh:
            for k, line in enumerate(fh):
                event = json.loads(line)
                # one inverter always goes through the same publisher (its order is kept)
                if hash((event.get("plant_id"), event.get("inverter_id"))) % parts == part:
                    yield event

    def stamped(events):
        last = None
        for event in events:
            ts = _ts(event)
            if ts is not None and ts != last:
                marks.append((ts, time.time()))
                last = ts
            yield event

    count = publish_mqtt(stamped(paced(mine(), speedup)), f"{uri}?client_id=bench-pub-{part}", batch=batch,
                         timeout_s=900)
    return count, marks


def _instance_counts(value: str) -> list[int]:
    """``--kafka-instances``: counts between 1 and the topic's partitions, ascending (the
    1-instance run first: the others are compared with it)."""
    try:
        counts = sorted({int(x) for x in value.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {value!r}") from None
    if not counts or counts[0] < 1 or counts[-1] > KAFKA_PARTITIONS:
        raise argparse.ArgumentTypeError(f"instances must be between 1 and {KAFKA_PARTITIONS} (the partitions)")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plants", type=int, default=1850, help="synthetic plants (1850 ≈ 3,500 inverters)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (one reading per minute)")
    parser.add_argument("--mqtt-events", type=int, default=500_000, help="events of the MQTT run (0: skip)")
    parser.add_argument("--mqtt-only", action="store_true", help="only the MQTT run")
    parser.add_argument("--kafka-events", type=int, default=300_000, help="events of the Kafka runs (0: skip)")
    parser.add_argument("--kafka-only", action="store_true", help="only the Kafka runs")
    parser.add_argument("--kafka-batches", type=lambda v: [int(x) for x in v.split(",")], default=[1, 15],
                        help="events per Kafka message of the saturated runs, comma-separated (default 1,15: one "
                             "event, and a 1-minute logger flushing every 15 minutes)")
    parser.add_argument("--kafka-paced-batch", type=int, default=1,
                        help="events per message of the paced Kafka run (the alert latency), at 50 %% of the "
                             "saturated rate with that many events per message")
    parser.add_argument("--kafka-paced-rate", type=float, default=None,
                        help="events/s offered in the paced Kafka run (default: 50 %% of the saturated rate); a "
                             "fixed rate for A/B runs")
    parser.add_argument("--kafka-instances", type=_instance_counts, default=[1, 2],
                        help="saturated Kafka runs with each of these numbers of `ysh om follow` instances, each "
                             "owning its partitions (docs/operations.md's scale-out; default 1,2)")
    parser.add_argument("--kafka-no-paced", action="store_true",
                        help="only the saturated Kafka runs (no paced latency run): for A/B runs of the backlog read")
    parser.add_argument("--mqtt-speedup", type=float, default=None,
                        help="pace the first MQTT run (event time / wall time); default: as fast as they go")
    parser.add_argument("--static-windows", "--compare-windows", dest="compare_windows", action="store_true",
                        help="also run the file replay with the streaming window operator "
                             "(run_detect(static_windows=False)) and compare the outputs")
    parser.add_argument("--repeat", type=int, default=1,
                        help="file replay: alternate baseline and pipeline this many times, report the medians")
    parser.add_argument("--latency-cutoff-s", type=int, default=120,
                        help="late-data cutoff of the paced latency run (event time; the production default)")
    parser.add_argument("--processes", type=int, default=2,
                        help="file replay: also run the baseline and the pipeline in this many Pathway processes "
                             "(`pathway spawn`, as `ysh om detect` with YSH_PATHWAY_PROCESSES; 1: only in this "
                             "process); the targets are judged on this many")
    parser.add_argument("--child", choices=("baseline", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plants-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    os.environ["PYTHONHASHSEED"] = "0"
    from rich.console import Console
    from rich.table import Table

    from ysh import db, pw_runtime
    from ysh.om import job
    from ysh.om.fleet import dump_plants, synthetic_plants
    from ysh.samples.om_telemetry import simulate, write_jsonl
    from ysh.services import local
    from ysh.services.postgres import EmbeddedPostgres, free_port

    console = Console(width=120)
    pw_runtime.quiet_logging()
    work = Path(tempfile.mkdtemp(prefix="ysh-bench-om-"))
    # its servers are stopped when main returns; the telemetry, broker and server data
    # (GBs at the default sizes) go with the process, as every test run of it would pile them up
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    if args.mqtt_only or args.kafka_only:
        server = EmbeddedPostgres(work / "pg", free_port())
        server.start()
        try:
            console.print(f"machine: {machine()}")
            if args.mqtt_only:
                mqtt_benchmark(console, work, server.dsn(), args, local)
            if args.kafka_only:
                kafka_benchmark(console, work, server.dsn(), args, local)
        finally:
            server.stop()
        return 0
    plants = synthetic_plants(args.plants, seed=7)
    plants_file = dump_plants(plants, work / "plants.json")
    start = (datetime.now(timezone.utc) - timedelta(days=2)).replace(hour=3, minute=0, second=0, microsecond=0)
    scenario = scenario_for(plants, start, args.hours, seed=7)
    with console.status("simulating the fleet…"):
        t0 = time.perf_counter()
        events = write_jsonl(simulate(scenario), work / "telemetry.jsonl")
        sim_s = time.perf_counter() - t0
    size_mb = (work / "telemetry.jsonl").stat().st_size / 1e6
    inverters = sum(len(p.inverters) for p in plants)
    console.print(f"{len(plants)} plants, {inverters} inverters, {args.hours:g} h: {events:,} events "
                  f"({size_mb:.0f} MB) simulated in {sim_s:.0f} s")

    server = EmbeddedPostgres(work / "pg", free_port())
    server.start()
    try:
        dsn = server.dsn()
        db.migrate(dsn, "bench")
        warehouse = db.Warehouse(dsn, "bench")
        console.print(f"machine: {machine()}")
        now = start + timedelta(hours=args.hours, minutes=10)
        # baseline and pipeline alternate ``--repeat`` times (the machine is shared: a pair
        # measured back to back sees about the same load); the medians are reported
        pairs: list[tuple[float, float, float, float]] = []  # (base s, base CPU, pipeline s, pipeline CPU)
        for k in range(args.repeat):
            with console.status(f"baseline: read and window ({k + 1}/{args.repeat})…"):
                c0 = time.process_time()
                windows_base, base_s = baseline(work / "telemetry.jsonl")
                base_cpu = time.process_time() - c0
            cold_caches()  # each run as a fresh ``ysh om detect`` process would start it
            with console.status(f"pipeline: ysh om detect --warehouse ({k + 1}/{args.repeat})…"):
                t0, c0 = time.perf_counter(), time.process_time()
                report = job.run_detect([work / "telemetry.jsonl"], plants_file, None, warehouse=warehouse,
                                        now=now)
                full_s, full_cpu = time.perf_counter() - t0, time.process_time() - c0
            pairs.append((base_s, base_cpu, full_s, full_cpu))
            if args.repeat > 1:
                console.print(f"pair {k + 1}: baseline {base_s:.2f} s ({base_cpu:.2f} s CPU), pipeline {full_s:.2f} s "
                              f"({full_cpu:.2f} s CPU): × baseline {base_s / full_s:.2f} (CPU "
                              f"{base_cpu / full_cpu:.2f}); {machine()}")
        if args.repeat > 1:
            ratios = sorted(b / f for b, _, f, _ in pairs)
            cpu_ratios = sorted(bc / fc for _, bc, _, fc in pairs)
            console.print(f"over {args.repeat} pairs: × baseline median {ratios[len(ratios) // 2]:.2f} "
                          f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}); CPU ratio median "
                          f"{cpu_ratios[len(cpu_ratios) // 2]:.2f}; pipeline CPU median "
                          f"{sorted(p[3] for p in pairs)[len(pairs) // 2]:.2f} s")
            # the pair with the median wall-clock ratio is the one printed below
            base_s, base_cpu, full_s, full_cpu = sorted(pairs, key=lambda p: p[0] / p[2])[len(pairs) // 2]
        spawned_pairs: list[tuple[dict, dict]] = []
        for k in range(args.repeat if args.processes > 1 else 0):
            with console.status(f"baseline in {args.processes} processes ({k + 1}/{args.repeat})…"):
                base = spawned("baseline", work / "telemetry.jsonl", args.processes)
            schema = f"bench_p{args.processes}_{k}"  # a first load, as the one-process run's first
            db.migrate(dsn, schema)
            with console.status(f"pipeline in {args.processes} processes ({k + 1}/{args.repeat})…"):
                full = spawned("pipeline", work / "telemetry.jsonl", args.processes, plants=plants_file, dsn=dsn,
                               schema=schema, now=now)
            spawned_pairs.append((base, full))
            if args.repeat > 1:
                console.print(f"{args.processes} processes, pair {k + 1}: baseline {base['seconds']:.2f} s, pipeline "
                              f"{full['seconds']:.2f} s: × baseline {base['seconds'] / full['seconds']:.2f}; {machine()}")
        streaming_s = None
        if args.compare_windows:
            # the same run with the streaming window operator (windowby with the late-data
            # cutoff, as ``ysh om follow``): ``run_detect(static_windows=False)``
            db.migrate(dsn, "bench_streaming")
            with console.status("pipeline, streaming window operator…"):
                t0, c0 = time.perf_counter(), time.process_time()
                streaming_report = job.run_detect([work / "telemetry.jsonl"], plants_file, None,
                                                  warehouse=db.Warehouse(dsn, "bench_streaming"), now=now,
                                                  static_windows=False)
                streaming_s, streaming_cpu = time.perf_counter() - t0, time.process_time() - c0
            same = all(_table_rows(dsn, "bench", table) == _table_rows(dsn, "bench_streaming", table)
                       for table in ("om_inverter_5min", "om_alerts", "om_quarantine"))
            console.print("outputs of the static and the streaming window operators (om_inverter_5min, om_alerts, "
                          "om_quarantine, row for row): " + ("identical" if same else "[red]DIFFERENT[/red]"))
        table = Table("run", "processes", "events", "windows", "seconds", "events/s", "× baseline", "CPU s",
                      title=f"file replay, {events:,} events ({os.cpu_count()} cores)")
        table.add_row("baseline: read + 5-min windows", "1", f"{events:,}", f"{windows_base:,}", f"{base_s:.1f}",
                      f"{events / base_s:,.0f}", "1.00", f"{base_cpu:.1f}")
        table.add_row("pipeline → PostgreSQL (run_detect, static windows)", "1", f"{events:,}",
                      f"{report.windows:,}", f"{full_s:.1f}", f"{events / full_s:,.0f}", f"{base_s / full_s:.2f}",
                      f"{full_cpu:.1f}")
        if streaming_s is not None:
            table.add_row("pipeline, streaming window operator → PostgreSQL", "1", f"{events:,}",
                          f"{streaming_report.windows:,}", f"{streaming_s:.1f}", f"{events / streaming_s:,.0f}",
                          f"{base_s / streaming_s:.2f}", f"{streaming_cpu:.1f}")
        judged = (events / full_s, base_s / full_s, 1)
        if spawned_pairs:
            # the pair with the median ratio (every pair's figures are printed above with --repeat)
            base, full = sorted(spawned_pairs, key=lambda p: p[0]["seconds"] / p[1]["seconds"])[len(spawned_pairs) // 2]
            n = args.processes
            table.add_row("baseline: read + 5-min windows", str(n), f"{events:,}", f"{base['windows']:,}",
                          f"{base['seconds']:.1f}", f"{events / base['seconds']:,.0f}", "1.00",
                          f"{base['cpu_s']:.1f} ({base['busiest_cpu_s']:.1f})")
            table.add_row("pipeline → PostgreSQL (run_detect, static windows)", str(n), f"{events:,}",
                          f"{full['windows']:,}", f"{full['seconds']:.1f}", f"{events / full['seconds']:,.0f}",
                          f"{base['seconds'] / full['seconds']:.2f}",
                          f"{full['cpu_s']:.1f} ({full['busiest_cpu_s']:.1f})")
            judged = (events / full["seconds"], base["seconds"] / full["seconds"], n)
            same = (full["windows"], full["events"], full["alerts_by_rule"], full["quarantine_by_reason"]) == (
                report.windows, report.events, report.alerts_by_rule, report.quarantine_by_reason)
            console.print(f"{n} processes: the same windows, events, alerts and quarantine counts as one process: "
                          + ("yes" if same else "[red]NO[/red]"))
            console.print(f"{n} processes, from `pathway spawn` to the last process's exit (their start and imports "
                          f"included, not in the seconds above): baseline {base['spawn_s']:.1f} s, pipeline "
                          f"{full['spawn_s']:.1f} s")
        console.print(table)
        console.print(f"pipeline CPU time {full_cpu:.2f} s (this process, all threads) over {full_s:.2f} s of wall "
                      f"time; baseline CPU time {base_cpu:.2f} s over {base_s:.2f} s; {machine()}")
        if streaming_s is not None:
            console.print(f"streaming window operator: CPU time {streaming_cpu:.1f} s over {streaming_s:.1f} s")
        console.print(f"alerts by rule: {report.alerts_by_rule}")
        rate, ratio, n = judged
        console.print(f"file replay in {n} process{'es' if n > 1 else ''} {rate:,.0f} events/s (target ≥ 60,000): "
                      f"{'met' if rate >= 60_000 else 'NOT met'}; {machine()}")
        console.print(f"ratio to the native read + window in {n} process{'es' if n > 1 else ''}, same run "
                      f"{ratio:.2f} (target ≥ 0.6): {'met' if ratio >= 0.6 else 'NOT met'}")

        if args.mqtt_events:
            mqtt_benchmark(console, work, dsn, args, local)
        if args.kafka_events:
            kafka_benchmark(console, work, dsn, args, local)
    finally:
        server.stop()
    return 0


def mqtt_fleet(work: Path, events_wanted: int, name: str = "mqtt"):
    """A daylight stretch (10:00–16:00 UTC) of a fleet sized to give the events asked for,
    no invalid events (validation is measured above), yesterday: nothing in the future.
    (plants file, events file, events, inverters)."""
    from ysh.om.fleet import dump_plants, synthetic_plants
    from ysh.samples.om_telemetry import simulate, write_jsonl

    hours = 6.0
    inverters_needed = events_wanted / (hours * 60)
    count = max(1, int(inverters_needed / 1.9))
    while True:
        plants = synthetic_plants(count, seed=11)
        if sum(len(p.inverters) for p in plants) >= inverters_needed:
            break
        count = int(count * 1.05) + 1
    plants_file = dump_plants(plants, work / f"{name}-plants.json")
    start = (datetime.now(timezone.utc) - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    scenario = scenario_for(plants, start, hours, seed=11).model_copy(update={"invalid_rate": 0.0})
    path = work / f"{name}.jsonl"
    events = write_jsonl(simulate(scenario), path)
    return plants_file, path, events, sum(len(p.inverters) for p in plants)


def alert_latencies(marks: list[tuple[float, float]], alert_rows: list[tuple[float, float]],
                    cutoff_s: int) -> tuple[list[float], list[float]]:
    """(true, from_data) alert latencies in seconds. ``marks``: sorted (event time, wall
    clock when an event of that time was handed to the bus client); ``alert_rows``:
    (the alert's moment ``detected_at``, its row's ``created_at``), epoch seconds.
    true: from the first publish of an event at or after the moment + the cutoff (before
    it the moment cannot be judged); from_data: from the moment's last sample."""
    import bisect

    first_at: list[tuple[float, float]] = []  # event time → earliest wall at which that time or later was sent
    for ts, wall in reversed(marks):
        first_at.append((ts, min(wall, first_at[-1][1]) if first_at else wall))
    first_at.reverse()
    stamps = [ts for ts, _ in first_at]

    def sent(at_or_after: float) -> float | None:
        k = bisect.bisect_left(stamps, at_or_after)
        return first_at[k][1] if k < len(first_at) else None

    true, from_data = [], []
    for detected, created in alert_rows:
        closing = sent(detected + cutoff_s)
        if closing is not None:
            true.append(created - closing)
        last_sample = sent(detected - 60)
        if last_sample is not None:
            from_data.append(created - last_sample)
    return true, from_data


def mqtt_run(console, work: Path, dsn: str, local, fleet, *, speedup: float | None, cutoff_s: int, tag: str,
             allow_late: bool = False, batch: int | None = None) -> dict:
    """``ysh om follow --source mqtt`` fed by two publishers (as fast as they go; or paced
    at ``speedup`` × real time), ``batch`` events per message (default: 50 saturated, 1
    paced; a message holds one inverter's consecutive readings). Returns the
    sustained rate (first publish → last final window row) and the alert latencies:
    ``true``: the publish of the event that lets the alert's moment be evaluated (the
    first event at or after the moment + the late-data cutoff, which closes its windows)
    → the alert row committed in PostgreSQL (ingest, windows, fold, sink: everything but
    the deliberate cutoff wait); ``from_data``: the publish of the moment's last sample →
    the alert row (adds the cutoff, cutoff / speedup of wall time in a replay)."""
    from ysh import db

    batch = batch or (1 if speedup else 50)
    plants_file, path, events, inverters = fleet
    home = work / f"mqtt-home-{tag}"
    os.environ["YSH_HOME"] = str(home)
    from ysh.settings import get_settings

    get_settings.cache_clear()
    service = local.get_service("mqtt", get_settings())
    broker = service.start(port=local.free_port())
    schema = f"bench_mqtt_{tag}"
    db.migrate(dsn, schema)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YSH_")}
    env.update(YSH_HOME=str(home), YSH_POSTGRES_DSN=dsn, YSH_POSTGRES_SCHEMA=schema, YSH_OM_MQTT_URI=broker.url,
               YSH_OM_PLANTS_FILE=str(plants_file), YSH_OM_NOTIFY="false", YSH_OM_LATE_CUTOFF_S=str(cutoff_s))
    log = work / f"om-run-{tag}.log"
    proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "om", "follow", "--source", "mqtt"], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Realtime data starts" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ysh om follow did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        with console.status(f"publishing {events:,} events over MQTT ({tag})…"):
            t0 = time.time()
            start_at = t0 + 5.0  # after both publisher processes have imported
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                results = pool.map(_publish, [(str(path), broker.url, k, 2, batch, speedup, start_at)
                                              for k in range(2)])
            t0 = start_at
            publish_s = time.time() - t0
            published = sum(n for n, _ in results)
            # done when every final window is in (end + late cutoff ≤ the newest event)
            expected = final_windows(path, cutoff_s)
            with db.connect(dsn, schema) as conn:
                windows = wait_for_windows(conn, expected, proc, poll_s=0.5)
                late = late_events(conn, windows, expected, allow_late, log)
                t_last = last_window_at(conn)
                alert_rows, alerts = alert_results(conn)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        service.stop()
    true, from_data = alert_latencies(sorted(m for _, ms in results for m in ms), alert_rows, cutoff_s)
    return {"published": published, "publish_s": publish_s, "total_s": float(t_last) - t0, "windows": windows,
            "expected_windows": expected, "late": late,
            "true": true, "from_data": from_data, "alerts": alerts, "speedup": speedup, "cutoff_s": cutoff_s,
            "inverters": inverters, "batch": batch}


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:,.0f} ms" if values else "—"


def print_mqtt(console, run: dict, title: str) -> None:
    from rich.table import Table

    table = Table("", "value", title=title)
    per = f"{run['batch']} event{'s' if run['batch'] > 1 else ''}/message"
    pace = f"paced at {run['speedup']:g}× real time, {per}" if run["speedup"] else f"as fast as possible, {per}"
    table.add_row(f"publish (2 processes, QoS 1, {pace})",
                  f"{run['publish_s']:.1f} s, {run['published'] / run['publish_s']:,.0f} events/s")
    table.add_row("first publish → last final window row",
                  f"{run['total_s']:.1f} s, {run['published'] / run['total_s']:,.0f} events/s")
    table.add_row("window rows (final windows expected)", f"{run['windows']:,} ({run['expected_windows']:,})")
    table.add_row("events quarantined as late (publishers out of step by more than the cutoff)", f"{run['late']:,}")
    latency_rows(table, run, "published")
    console.print(table)


def latency_rows(table, run: dict, sent: str | None) -> None:
    """The true alert latency rows (closing event ``sent`` → alert row committed; none when
    ``sent`` is None) and the alerts row of a bus run's table."""
    if sent is not None:
        for name, key in ((f"true alert latency: closing event {sent} → alert row committed", "true"),
                          (f"data → alert (+ the {run['cutoff_s']} s event-time cutoff)", "from_data")):
            values = run[key]
            table.add_row(f"{name} ({len(values)} alerts)",
                          f"p50 {_ms(values, 50)}, p95 {_ms(values, 95)}, p99 {_ms(values, 99)}")
    table.add_row("alerts", ", ".join(f"{rule}: {n}" for rule, n in run["alerts"]))


def mqtt_benchmark(console, work: Path, dsn: str, args, local) -> None:
    """Saturated with 50 events per message (the sustained rate, the throughput target),
    saturated with 1 event per message, then paced at 50 % of that (1 event per message:
    the true alert latency)."""
    fleet = mqtt_fleet(work, args.mqtt_events)
    with console.status("baseline on the MQTT run's events: read and window…"):
        _, base_s = baseline(fleet[1])
    # as fast as they go, two publishers drift apart by more than the largest cutoff (an hour
    # of event time is a fraction of a second here): their late events are quarantined and
    # counted, and the run ends when no window has come for STALL_S
    saturated = mqtt_run(console, work, dsn, local, fleet, speedup=args.mqtt_speedup, cutoff_s=REPLAY_CUTOFF_S,
                         tag="saturated", allow_late=True)
    print_mqtt(console, saturated, f"MQTT end to end, saturated: {saturated['published']:,} events")
    rate = saturated["published"] / saturated["total_s"]
    console.print(f"baseline (Pathway's native read + 5-min windows of the same events from a file): "
                  f"{fleet[2] / base_s:,.0f} events/s; MQTT end to end / baseline: {rate / (fleet[2] / base_s):.2f}")
    console.print(f"MQTT sustained {rate:,.0f} events/s (target ≥ 40,000): {'met' if rate >= 40_000 else 'NOT met'}"
                  f"; {machine()}")
    # the latency run publishes each reading on its own (1 event per message, as a device
    # in real time): its pace is 50 % of what the pipeline sustains with that message
    # shape, measured saturated first (a 50-event message costs less per event)
    single = mqtt_run(console, work, dsn, local, fleet, speedup=args.mqtt_speedup, cutoff_s=REPLAY_CUTOFF_S,
                      tag="single", allow_late=True, batch=1)
    print_mqtt(console, single, f"MQTT end to end, saturated, 1 event per message: {single['published']:,} events")
    single_rate = single["published"] / single["total_s"]
    console.print(f"MQTT sustained at 1 event per message: {single_rate:,.0f} events/s")
    # one reading per inverter per minute: inverters / 60 events per second of event time
    speedup = 0.5 * single_rate / (fleet[3] / 60.0)
    paced_run = mqtt_run(console, work, dsn, local, fleet, speedup=speedup, cutoff_s=args.latency_cutoff_s,
                         tag="paced", batch=1)
    print_mqtt(console, paced_run, f"MQTT at 50 % of the sustained rate of 1-event messages "
                                   f"({0.5 * single_rate:,.0f} events/s offered)")
    p95 = percentile(paced_run["true"], 95) if paced_run["true"] else float("inf")
    console.print(f"true alert latency p95 {p95 * 1000:,.0f} ms (target < 2,000 ms): "
                  f"{'met' if p95 < 2.0 else 'NOT met'}; {machine()}")


#: partitions of the Kafka benchmark's topics (issue 14: ≥ 4, keyed by plant_id)
KAFKA_PARTITIONS = 4


def _file_events(path: Path):
    with open(path, "rb") as fh:
        for line in fh:
            yield json.loads(line)


def kafka_bus_read(bootstrap: str, topic: str, messages: int) -> dict:
    """The bus alone: a plain confluent-kafka consumer with the pipeline reader's settings
    (a consumer group of its own, subscribed: the coordinator assigns the partitions, as to
    Pathway's reader) reads the ``messages`` of ``topic`` from the start and does nothing
    with them. {join_s: subscribe → first message (the group join), read_s: first → last
    message, cpu_s, bytes}."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-bus-read-{time.time_ns()}",
                         "enable.auto.commit": "false", "auto.offset.reset": "earliest",
                         "session.timeout.ms": "6000"})
    got = size = 0
    first = None
    t0, c0 = time.perf_counter(), time.process_time()
    consumer.subscribe([topic])
    deadline = time.monotonic() + 300
    while got < messages and time.monotonic() < deadline:
        for msg in consumer.consume(10_000, timeout=1.0):
            if msg.error() is None:
                if first is None:
                    first = time.perf_counter()
                got += 1
                size += len(msg.value())
    end, cpu = time.perf_counter(), time.process_time() - c0
    consumer.close()
    if got < messages:
        raise RuntimeError(f"the bus read gave {got} of {messages} messages")
    return {"join_s": first - t0, "read_s": end - first, "cpu_s": cpu, "bytes": size}


def _produce_marked(path: Path, bootstrap: str, topic: str, batch: int, speedup: float | None
                    ) -> tuple[int, int, list[tuple[float, float]]]:
    """Produce the events of ``path`` as ``publish_kafka`` does (same producer settings,
    keyed by plant, ``batch`` events of one inverter per message), paced at ``speedup``;
    (events, messages, [(event time, wall clock when a message holding it was produced)])."""
    from confluent_kafka import Producer

    from ysh.om.publish import _messages, _ts, kafka_key, paced

    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                         "enable.idempotence": False, "queue.buffering.max.messages": 500_000})
    marks: list[tuple[float, float]] = []
    events = messages = 0
    for plant, _inverter, payload in _messages(paced(_file_events(path), speedup), batch):
        while True:
            try:
                producer.produce(topic, payload, key=kafka_key(plant),
                                 on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
                break
            except BufferError:
                producer.poll(0.05)
        now = time.time()
        for line in payload.split(b"\n"):
            ts = _ts(json.loads(line))
            if ts is not None:
                marks.append((ts, now))
        producer.poll(0)
        events += payload.count(b"\n") + 1
        messages += 1
    left = producer.flush(120)
    if errors or left:
        raise RuntimeError(f"Kafka: {len(errors)} delivery errors ({errors[:1]}), {left} not delivered")
    return events, messages, sorted(marks)


class _Instances:
    """The ``ysh om follow`` processes of one run, seen as one (``poll``: one has ended)."""

    def __init__(self, procs: list[subprocess.Popen]):
        self.procs = procs

    def poll(self):
        ended = [p.returncode for p in self.procs if p.poll() is not None]
        return ended[0] if ended else None


def partition_sets(instances: int, partitions: int = KAFKA_PARTITIONS) -> list[str | None]:
    """``YSH_OM_KAFKA_PARTITIONS`` of each of ``instances`` (disjoint, covering every
    partition; None: one instance, the whole topic)."""
    if instances == 1:
        return [None]
    if not 1 < instances <= partitions:
        raise ValueError(f"--kafka-instances must be between 1 and {partitions}")
    owned = [[p for p in range(partitions) if p % instances == i] for i in range(instances)]
    return [",".join(map(str, parts)) for parts in owned]


def kafka_run(console, work: Path, dsn: str, bootstrap: str, fleet, *, batch: int, speedup: float | None,
              cutoff_s: int, tag: str, allow_late: bool = False, instances: int = 1) -> dict:
    """``ysh om follow --source kafka`` (a subprocess, with persistence, as in production)
    on a topic of :data:`KAFKA_PARTITIONS` partitions keyed by plant, ``batch`` events per
    message. ``instances`` > 1: that many instances, each owning its partitions
    (``YSH_OM_KAFKA_PARTITIONS``, the scale-out of docs/operations.md), sharing one
    ``YSH_HOME`` and one warehouse; the clock starts when the first one's reader starts,
    CPU is their sum.

    Saturated (``speedup`` None): the topic is filled first (a backlog, as after a stop of
    the pipeline), then the pipeline starts; the clock starts when its Kafka reader starts
    reading (Pathway's "Realtime data starts" log line, after the process's imports, the
    registry load and the graph build, which are printed apart) and stops at the commit of
    the last final window row. Paced: the pipeline is started first, the events are
    produced at ``speedup`` × real time, and the alert latencies are measured as in
    :func:`mqtt_run`."""
    from ysh import db
    from ysh.services.local import ensure_topic

    plants_file, path, events, inverters = fleet
    home = work / f"kafka-home-{tag}"
    topic = f"bench-{tag}"
    ensure_topic(bootstrap, topic, KAFKA_PARTITIONS)
    schema = f"bench_kafka_{tag}"
    db.migrate(dsn, schema)
    produced = {"events": 0, "messages": 0, "seconds": None, "marks": []}

    def produce(pace):
        t0 = time.time()
        n, m, marks = _produce_marked(path, bootstrap, topic, batch, pace)
        produced.update(events=n, messages=m, seconds=time.time() - t0, marks=marks, started=t0)

    if speedup is None:
        with console.status(f"filling the topic: {events:,} events, {batch} per message ({tag})…"):
            produce(None)
        bus = kafka_bus_read(bootstrap, topic, produced["messages"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("YSH_")}
    env.update(YSH_HOME=str(home), YSH_POSTGRES_DSN=dsn, YSH_POSTGRES_SCHEMA=schema, YSH_OM_KAFKA_BOOTSTRAP=bootstrap,
               YSH_OM_KAFKA_TOPIC=topic, YSH_OM_KAFKA_GROUP=f"bench-{tag}", YSH_OM_PLANTS_FILE=str(plants_file),
               YSH_OM_NOTIFY="false", YSH_OM_LATE_CUTOFF_S=str(cutoff_s))
    logs, procs = [], []
    group = _Instances(procs)
    spawned = time.time()
    c_start = None
    try:
        for owned in partition_sets(instances):
            log = work / f"om-run-kafka-{tag}{'' if owned is None else '-p' + owned.replace(',', '-')}.log"
            own_env = env if owned is None else {**env, "YSH_OM_KAFKA_PARTITIONS": owned}
            logs.append(log)
            procs.append(subprocess.Popen([sys.executable, "-m", "ysh.cli", "om", "follow", "--source", "kafka"],
                                          env=own_env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                          start_new_session=True))
        log = logs[0]
        deadline = time.monotonic() + 180
        started: dict[int, float] = {}
        while len(started) < len(procs):
            for i, (proc, one_log) in enumerate(zip(procs, logs)):
                if i not in started and "Realtime data starts" in one_log.read_text(errors="replace"):
                    started[i] = time.time()
                    if len(started) == 1:  # the clock starts at the first reader
                        c_start = sum(_proc_cpu(p.pid) for p in procs)
                        threads_start = {p.pid: _thread_cpu(p.pid) for p in procs}
            if group.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ysh om follow did not start:\n"
                                   + "\n".join(one.read_text()[-2000:] for one in logs))
            time.sleep(0.02)
        reading = min(started.values())
        if speedup is not None:
            with console.status(f"producing {events:,} events paced at {speedup:,.0f}× real time ({tag})…"):
                produce(speedup)
        t0 = reading if speedup is None else produced["started"]
        expected = final_windows(path, cutoff_s)
        with db.connect(dsn, schema) as conn:
            windows = wait_for_windows(conn, expected, group, poll_s=0.1)
            cpu = sum(_proc_cpu(p.pid) for p in procs) - c_start
            threads = {p.pid: _thread_cpu(p.pid) for p in procs}
            late = late_events(conn, windows, expected, allow_late, log)
            t_last = last_window_at(conn)
            # polled from the last window on (a wait before the first look was a 2 s floor)
            settled = alerts_settled(conn, group) if speedup is None else None
            time.sleep(2.0)  # the alerts of the last batches
            alert_rows, alerts = alert_results(conn)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:  # never leave an instance behind
                proc.kill()
                proc.wait(30)
    true, from_data = alert_latencies(produced["marks"], alert_rows, cutoff_s)
    run = {"schema": schema, "published": produced["events"], "messages": produced["messages"], "batch": batch,
           "publish_s": produced["seconds"], "total_s": float(t_last) - t0, "startup_s": reading - spawned,
           "instances": instances, "started_apart_s": max(started.values()) - reading,
           "cpu_s": cpu, "windows": windows, "expected_windows": expected, "late": late, "true": true,
           "from_data": from_data, "alerts": alerts, "speedup": speedup, "cutoff_s": cutoff_s,
           "alerts_settled_s": None if settled is None else settled - float(t_last),
           "inverters": inverters,
           # the busiest thread over the same span: Pathway's engine worker, the graph's one
           # worker thread (PATHWAY_THREADS unset: 1); its CPU / (wall − group join) says
           # whether the read is bound by that one thread
           # (with several instances, the busiest thread of each)
           "busiest": [max(((name, ticks - threads_start[pid].get(tid, (name, 0))[1]) for tid, (name, ticks)
                            in threads[pid].items()), key=lambda item: item[1]) for pid in threads]}
    if speedup is None:
        run["bus"] = bus
    return run


def alerts_settled(conn, proc, quiet_s: float = 10.0, timeout_s: float = 180.0) -> float:
    """When ``om_alerts`` last changed (epoch seconds), once it has not changed for
    ``quiet_s`` (a backlog's fold may still be evaluating when the last window lands)."""
    last, changed = None, time.time()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        now = conn.execute("SELECT count(*), count(resolved_at), max(created_at) FROM om_alerts").fetchone()
        if now != last:
            last, changed = now, time.time()
        elif time.time() - changed >= quiet_s:
            break
        time.sleep(0.5)
    return changed


def _thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of process ``pid`` so far: {tid: (name, s)}."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[tid] = (stat[stat.index("(") + 1:stat.rindex(")")], (int(fields[11]) + int(fields[12])) / tick)
    return out


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its threads so far (``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_kafka(console, run: dict, title: str) -> None:
    from rich.table import Table

    table = Table("", "value", title=title)
    per = f"{run['batch']} event{'s' if run['batch'] > 1 else ''}/message"
    if run["speedup"]:
        table.add_row(f"produce (1 producer, acks=all, keyed by plant, {KAFKA_PARTITIONS} partitions, {per}, "
                      f"paced at {run['speedup']:,.0f}× real time)",
                      f"{run['publish_s']:.1f} s, {run['published'] / run['publish_s']:,.0f} events/s")
        table.add_row("first produce → last final window row",
                      f"{run['total_s']:.1f} s, {run['published'] / run['total_s']:,.0f} events/s")
    else:
        table.add_row(f"fill the topic first (1 producer, acks=all, keyed by plant, {KAFKA_PARTITIONS} partitions, "
                      f"{per}; {run['messages']:,} messages)",
                      f"{run['publish_s']:.1f} s, {run['published'] / run['publish_s']:,.0f} events/s")
        bus = run["bus"]
        table.add_row("the bus alone: a plain consumer in a new group, subscribed (as the reader): "
                      "group join, then the backlog",
                      f"join {bus['join_s']:.2f} s; read " + (
                          f"{bus['read_s']:.2f} s, {run['published'] / bus['read_s']:,.0f} events/s, "
                          f"{bus['bytes'] / bus['read_s'] / 1e6:.0f} MB/s" if bus["read_s"] >= 0.05 else
                          "all in the first fetches (< 0.05 s)") + f" ({bus['cpu_s']:.2f} s CPU)")
        table.add_row("ysh om follow: process start → its Kafka reader starts (imports, registry, graph)",
                      f"{run['startup_s']:.1f} s (not counted)" + (
                          "" if run["instances"] == 1 else
                          f"; {run['instances']} instances (partitions {', '.join(partition_sets(run['instances']))}), "
                          f"the last reader {run['started_apart_s']:.2f} s after the first"))
        table.add_row("reader starts → last final window row committed (events/s)",
                      f"{run['total_s']:.2f} s, [bold]{run['published'] / run['total_s']:,.0f}[/bold] events/s")
        steady = run["total_s"] - bus["join_s"]
        table.add_row("the same without the group join (the bus's join time above taken off)",
                      f"{steady:.2f} s, {run['published'] / steady:,.0f} events/s")
    table.add_row("ysh om follow's CPU over that time (all threads" + (
        ")" if run["instances"] == 1 else f", {run['instances']} instances)"),
                  f"{run['cpu_s']:.1f} s ({run['published'] / max(run['cpu_s'], 1e-9):,.0f} events per CPU s)")
    span = run["total_s"] - (run["bus"]["join_s"] if not run["speedup"] else 0.0)
    table.add_row(("its busiest thread" if run["instances"] == 1 else "each instance's busiest thread")
                  + " over that time" + ("" if run["speedup"] else " (the group join taken off)"),
                  "; ".join(f"{name}: {busy:.1f} s CPU, {busy / max(span, 1e-9):.2f} of a core"
                            for name, busy in run["busiest"]))
    table.add_row("window rows (final windows expected)", f"{run['windows']:,} ({run['expected_windows']:,})")
    table.add_row("events quarantined as late", f"{run['late']:,}")
    if run.get("alerts_settled_s") is not None:
        table.add_row("last final window row → om_alerts settled (no change for 10 s)",
                      f"{run['alerts_settled_s']:.1f} s")
    # a backlog's alerts are late by construction: no latency there
    latency_rows(table, run, "produced" if run["speedup"] else None)
    console.print(table)


def kafka_benchmark(console, work: Path, dsn: str, args, local) -> None:
    """Saturated per events-per-message setting (a backlog read), then paced at 50 % of
    the saturated rate of ``--kafka-paced-batch`` (the true alert latency)."""
    fleet = mqtt_fleet(work, args.kafka_events, name="kafka")
    with console.status("baseline on the Kafka run's events: read and window…"):
        _, base_s = baseline(fleet[1])
    base_rate = fleet[2] / base_s
    home = work / "kafka-broker"
    os.environ["YSH_HOME"] = str(home)
    from ysh.settings import get_settings

    get_settings.cache_clear()
    service = local.get_service("kafka", get_settings())
    broker = service.start(port=local.free_port())
    try:
        rates: dict[int, float] = {}
        for batch in args.kafka_batches:
            single = None
            for instances in args.kafka_instances:
                tag = f"saturated_{batch}" + ("" if instances == 1 else f"_x{instances}")
                run = kafka_run(console, work, dsn, broker.url, fleet, batch=batch, speedup=None,
                                cutoff_s=REPLAY_CUTOFF_S, tag=tag, allow_late=True, instances=instances)
                who = "1 instance" if instances == 1 else f"{instances} instances"
                print_kafka(console, run, f"Kafka end to end, saturated (a backlog read): {run['published']:,} "
                                          f"events, {batch} per message, {who}")
                rate = run["published"] / run["total_s"]
                if instances == 1:
                    rates[batch] = rate
                    single = run
                elif single is not None:
                    # row for row (but the commit times), not only the counts
                    differ = [table for table in ("om_inverter_5min", "om_alerts", "om_quarantine")
                              if _table_rows(dsn, run["schema"], table) != _table_rows(dsn, single["schema"], table)]
                    console.print(f"{who}: the same windows, alerts and quarantine rows as 1 instance (row for row): "
                                  f"{'yes' if not differ else 'NO: ' + ', '.join(differ)}")
                    if differ:
                        raise SystemExit(f"{who} disagree with 1 instance in {', '.join(differ)}: {run['windows']} "
                                         f"windows, {run['late']} late, {run['alerts']} against "
                                         f"{single['windows']}, {single['late']}, {single['alerts']}")
                else:
                    console.print(f"{who}: not compared (no 1-instance run before it)")
                console.print(f"baseline (Pathway's native read + 5-min windows of the same events from a file, "
                              f"1 process): {base_rate:,.0f} events/s; Kafka end to end / baseline: "
                              f"{rate / base_rate:.2f}")
                console.print(f"Kafka sustained, {batch} event{'s' if batch > 1 else ''}/message, {who}, "
                              f"{rate:,.0f} events/s (target ≥ 40,000): {'met' if rate >= 40_000 else 'NOT met'}; "
                              f"{machine()}")
        if args.kafka_no_paced:
            return
        batch = args.kafka_paced_batch
        rate = rates.get(batch) or max(rates.values(), default=0.0)
        if not rate:
            raise SystemExit("the paced run needs a 1-instance saturated run (--kafka-instances with 1)")
        offered = args.kafka_paced_rate or 0.5 * rate
        speedup = offered / (fleet[3] / 60.0)
        # a message of ``batch`` one-minute readings leaves when its last reading is taken:
        # its first is (batch - 1) minutes old by then, so the late-data cutoff must cover
        # the logger's flush interval (with the production 120 s, a 15-event batch is late)
        cutoff_s = args.latency_cutoff_s + 60 * (batch - 1)
        paced_run = kafka_run(console, work, dsn, broker.url, fleet, batch=batch, speedup=speedup,
                              cutoff_s=cutoff_s, tag=f"paced_{batch}")
        print_kafka(console, paced_run, f"Kafka paced ({offered:,.0f} events/s offered, "
                                        f"{batch} per message)")
        p95 = percentile(paced_run["true"], 95) if paced_run["true"] else float("inf")
        console.print(f"Kafka true alert latency p95 {p95 * 1000:,.0f} ms at {offered:,.0f} events/s offered "
                      f"(target p95 < 2 s): {'met' if p95 < 2.0 else 'NOT met'}; {machine()}")
    finally:
        service.stop()


if __name__ == "__main__":
    raise SystemExit(main())
