"""O&M pipeline throughput and alert latency (issue 6).

    python benchmarks/om.py                       # 5M events; about 10–15 min on 2 cores
    python benchmarks/om.py --plants 200 --hours 6 --mqtt-events 200000   # a quick look

1. File replay: a synthetic distributed-generation fleet (``ysh.om.fleet.synthetic_plants``:
   mostly one-inverter residential plants, as in Brazil) simulated at one reading per
   inverter per minute, with faults injected, written as JSONL. Two Pathway runs over the
   same file, in this process:
   - *baseline*: read the JSONL natively and reduce 5-minute tumbling windows per
     inverter (count, avg/min/max power) — what any windowing pipeline pays;
   - *pipeline*: ``ysh om detect --warehouse``: validation, deduplication, windows with
     the expected-power model, the rule fold, alerts, all upserted into PostgreSQL.
   Printed: events/s of each and the ratio pipeline / baseline.
2. MQTT end to end: mosquitto and ``ysh om follow --source mqtt`` (a subprocess, with
   persistence) on loopback; the simulated events published with QoS 1, 50 per message
   (a datalogger's buffer), by two publisher processes, as fast as they go (a late-data
   cutoff of one hour of event time, since six hours are replayed in seconds). Events/s = events / (first
   publish → the last final window row in PostgreSQL). Alert latency = an alert row's
   ``created_at`` − the ``created_at`` of the window rows (same plant) whose end is the
   moment the rules detected it (``details.detected_at``): window closed → alert row.

Targets (issue 6): ≥ 100k events/s file replay, ≥ 60k events/s over MQTT, alert latency
p95 < 2 s. The figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


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


REPLAY_CUTOFF_S = 3600


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


def _publish(args: tuple) -> int:
    path, uri, part, parts, batch, speedup = args
    from ysh.om.publish import publish_mqtt

    def mine():
        with open(path, "rb") as fh:
            for k, line in enumerate(fh):
                event = json.loads(line)
                # one inverter always goes through the same publisher (its order is kept)
                if hash((event.get("plant_id"), event.get("inverter_id"))) % parts == part:
                    yield event

    return publish_mqtt(mine(), f"{uri}?client_id=bench-pub-{part}", batch=batch, speedup=speedup, timeout_s=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plants", type=int, default=1850, help="synthetic plants (1850 ≈ 3,500 inverters)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (one reading per minute)")
    parser.add_argument("--mqtt-events", type=int, default=500_000, help="events of the MQTT run (0: skip)")
    parser.add_argument("--mqtt-only", action="store_true", help="only the MQTT run")
    parser.add_argument("--mqtt-speedup", type=float, default=None,
                        help="pace the MQTT publishers (event time / wall time), e.g. 200 for a sustained load the "
                             "pipeline keeps up with; default: as fast as they go")
    args = parser.parse_args()

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
    if args.mqtt_only:
        server = EmbeddedPostgres(work / "pg", free_port())
        server.start()
        try:
            mqtt_run(console, work, server.dsn(), args, local)
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
        with console.status("baseline: read and window…"):
            windows_base, base_s = baseline(work / "telemetry.jsonl")
        with console.status("pipeline: ysh om detect --warehouse…"):
            t0 = time.perf_counter()
            report = job.run_detect([work / "telemetry.jsonl"], plants_file, None, warehouse=warehouse,
                                    now=start + timedelta(hours=args.hours, minutes=10))
            full_s = time.perf_counter() - t0
        table = Table("run", "events", "windows", "seconds", "events/s", "× baseline",
                      title=f"file replay, {events:,} events (Pathway, 1 process, 2 cores)")
        table.add_row("baseline: read + 5-min windows", f"{events:,}", f"{windows_base:,}", f"{base_s:.1f}",
                      f"{events / base_s:,.0f}", "1.00")
        table.add_row("pipeline → PostgreSQL", f"{events:,}", f"{report.windows:,}", f"{full_s:.1f}",
                      f"{events / full_s:,.0f}", f"{base_s / full_s:.2f}")
        console.print(table)
        console.print(f"alerts by rule: {report.alerts_by_rule}")

        if args.mqtt_events:
            mqtt_run(console, work, dsn, args, local)
    finally:
        server.stop()
    return 0


def mqtt_run(console, work: Path, dsn: str, args, local) -> None:
    from rich.table import Table

    from ysh import db
    from ysh.om.fleet import dump_plants, synthetic_plants
    from ysh.samples.om_telemetry import simulate, write_jsonl

    # a daylight stretch (10:00–16:00 UTC) of a fleet sized to give the events asked for,
    # no invalid events (validation is measured above), yesterday: nothing in the future
    hours = 6.0
    inverters_needed = args.mqtt_events / (hours * 60)
    plants = []
    count = max(1, int(inverters_needed / 1.9))
    while True:
        plants = synthetic_plants(count, seed=11)
        if sum(len(p.inverters) for p in plants) >= inverters_needed:
            break
        count = int(count * 1.05) + 1
    plants_file = dump_plants(plants, work / "mqtt-plants.json")
    start = (datetime.now(timezone.utc) - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    scenario = scenario_for(plants, start, hours, seed=11).model_copy(update={"invalid_rate": 0.0})
    path = work / "mqtt.jsonl"
    events = write_jsonl(simulate(scenario), path)

    home = work / "mqtt-home"
    os.environ["YSH_HOME"] = str(home)
    from ysh.settings import get_settings

    get_settings.cache_clear()
    service = local.get_service("mqtt", get_settings())
    broker = service.start(port=local.free_port())
    schema = "bench_mqtt"
    db.migrate(dsn, schema)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YSH_")}
    # the replay compresses 6 hours into seconds, and two publishers drift apart by minutes
    # of event time within a second of wall time: a cutoff of an hour of event time here is
    # what two minutes are for devices publishing in real time
    env.update(YSH_HOME=str(home), YSH_POSTGRES_DSN=dsn, YSH_POSTGRES_SCHEMA=schema, YSH_OM_MQTT_URI=broker.url,
               YSH_OM_PLANTS_FILE=str(plants_file), YSH_OM_NOTIFY="false", YSH_OM_LATE_CUTOFF_S=str(REPLAY_CUTOFF_S))
    log = work / "om-run.log"
    proc = subprocess.Popen([sys.executable, "-m", "ysh.cli", "om", "follow", "--source", "mqtt"], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Realtime data starts" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ysh om follow did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        with console.status(f"publishing {events:,} events over MQTT…"):
            t0 = time.time()
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                published = sum(pool.map(_publish, [(str(path), broker.url, k, 2, 50 if not args.mqtt_speedup else 1,
                                                     args.mqtt_speedup) for k in range(2)]))
            publish_s = time.time() - t0
            # done when every final window is in (end + late cutoff ≤ the newest event)
            expected = final_windows(path, REPLAY_CUTOFF_S)
            deadline = time.monotonic() + 1800
            with db.connect(dsn, schema) as conn:
                while True:
                    windows = conn.execute("SELECT count(*) FROM om_inverter_5min").fetchone()[0]
                    if windows >= expected or proc.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                if windows < expected:
                    raise RuntimeError(f"only {windows} of {expected} windows arrived:\n{log.read_text()[-2000:]}")
                t_last = conn.execute("SELECT extract(epoch FROM max(created_at)) FROM om_inverter_5min").fetchone()[0]
                latencies = [float(x) for (x,) in conn.execute(
                    "SELECT extract(epoch FROM a.created_at - w.written) FROM om_alerts a "
                    "JOIN LATERAL (SELECT max(created_at) AS written FROM om_inverter_5min w "
                    "  WHERE w.plant_id = a.plant_id "
                    "  AND w.window_end = (a.details->>'detected_at')::timestamptz) w ON w.written IS NOT NULL "
                    "WHERE a.details ? 'detected_at'").fetchall()]
                alerts = conn.execute("SELECT rule, count(*) FROM om_alerts GROUP BY 1 ORDER BY 2 DESC").fetchall()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        service.stop()
    total_s = float(t_last) - t0
    pace = f"paced at {args.mqtt_speedup:g}× real time, 1 event/message" if args.mqtt_speedup else \
        "as fast as possible, 50 events/message"
    table = Table("", "value", title=f"MQTT end to end: {published:,} events, {len(plants)} plants")
    table.add_row(f"publish (2 processes, QoS 1, {pace})", f"{publish_s:.1f} s, "
                  f"{published / publish_s:,.0f} events/s")
    table.add_row("first publish → last window row", f"{total_s:.1f} s, {published / total_s:,.0f} events/s")
    table.add_row("window rows (all final windows)", f"{windows:,}")
    if latencies:
        table.add_row(f"alert latency, window row → alert row ({len(latencies)} alerts)",
                      f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
                      f"p95 {percentile(latencies, 95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    table.add_row("alerts", ", ".join(f"{rule}: {n}" for rule, n in alerts))
    console.print(table)


if __name__ == "__main__":
    raise SystemExit(main())
