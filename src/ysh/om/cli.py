"""``ysh om …``: simulate a fleet's telemetry; run the O&M pipeline over telemetry files in
one batch pass (``run``), follow MQTT, Kafka or a folder streaming (``follow``), or turn
files into files (``detect``)."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import db
from ..errors import InputError, read_json, scan_jsonl

app = typer.Typer(help="O&M monitoring: inverter telemetry, 5-minute windows, anomaly alerts. `run` one batch "
                       "pass over telemetry files, `follow` MQTT, Kafka or a folder streaming.", no_args_is_help=True)
console = Console()


def _sample_plants() -> Path:
    return db.data_path("sample", "om", "plants.json")


_NOW_HELP = ("ISO datetime events may not be later than (+5 min); default: the wall clock. Set it when replaying "
             "old files.")


def _instant(now: str | None):
    """``--now`` as an aware datetime (naive: UTC), or None."""
    from datetime import datetime, timedelta, timezone

    if not now:
        return None
    try:
        when = datetime.fromisoformat(now)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO datetime: {now!r}", param_hint="--now") from exc
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    try:  # the pipeline reckons days around it (clock skew, windows): the year 1 or 9999 overflows
        utc = when.astimezone(timezone.utc)
        _ = (utc - timedelta(days=366), utc + timedelta(days=366))
    except OverflowError:
        raise typer.BadParameter(f"out of range: {now!r}", param_hint="--now") from None
    return when


def _start(start: str | None):
    """``--start`` of ``simulate``: an ISO date (local midnight, UTC-3), an ISO datetime
    (naive: UTC) or None (today)."""
    from datetime import datetime

    if not start:
        return None
    try:
        return date.fromisoformat(start) if len(start) == 10 else datetime.fromisoformat(start)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date or datetime: {start!r}", param_hint="--start") from None


def load_plants_checked(path: Path):
    """The plants of ``path``; :class:`~ysh.errors.InputError` naming the file and the
    problem (missing, a folder, not UTF-8, empty, not JSON, hostile JSON, an invalid
    plant). A UTF-8 byte-order mark is accepted."""
    from .fleet import PlantsFileError, parse_plants

    data = read_json(path, "plants file")
    try:
        return parse_plants(data, source=str(path))
    except PlantsFileError as exc:
        raise InputError(str(exc)) from None


def _plants_file(path: Path) -> Path:
    """``path``, checked by :func:`load_plants_checked` before any work starts."""
    load_plants_checked(path)
    return path


def _thresholds(settings):
    """The rules' thresholds with the operator's overrides (``YSH_OM_THRESHOLDS``), the
    same for a batch pass as for the follower."""
    from .stream import thresholds_from

    try:
        return thresholds_from(settings.om.thresholds)
    except ValueError as exc:
        raise InputError(f"YSH_OM_THRESHOLDS: {exc}") from None


def _telemetry_files(paths: list[Path]) -> list[Path]:
    """The files under ``paths``, with no line the pipeline cannot read at all (JSON
    nested too deeply, an integer of thousands of digits: its parser raises instead of
    quarantining the line); :class:`~ysh.errors.InputError` naming the first such line."""
    from ..kit.files import files_under

    try:
        files = files_under(paths)
    except FileNotFoundError as exc:
        raise InputError(f"no telemetry to run over: {exc}") from None
    for problem in scan_jsonl(files, "telemetry file"):
        raise InputError(f"{problem}; remove that line (it is no telemetry event)")
    return files


def _print_report(report, out: Path | None, target: db.Warehouse | None) -> None:
    from ..console import print_reasons

    console.print(f"{report.events} events → {report.windows} windows in {report.seconds:.1f}s")
    table = Table("rule", "alerts", title="alerts")
    for rule, count in report.alerts_by_rule.items():
        table.add_row(rule, str(count))
    console.print(table)
    print_reasons(report.quarantine_by_reason, title="quarantined events by reason")
    if out is not None:
        console.print(f"written to [cyan]{out}[/]: windows.jsonl, alerts.jsonl, quarantine.jsonl")
    if target is not None:
        console.print(f"upserted into schema [bold]{target.schema}[/]: om_inverter_5min, om_alerts, om_quarantine")


_PLANTS = typer.Option(None, "--plants", help="PLANTS.json (default: YSH_OM_PLANTS_FILE or the sample fleet).")


@app.command()
def simulate(
    out: Path | None = typer.Option(None, "--out", dir_okay=False, help="JSONL file to write (with --to jsonl)."),
    plants: Path | None = typer.Option(None, "--plants", help="PLANTS.json (default: the sample fleet)."),
    start: str | None = typer.Option(None, help="ISO date (local midnight, UTC-3) or datetime; default: today."),
    hours: float = typer.Option(24.0, min=0.1, max=24 * 366, help="Duration."),
    seed: int = typer.Option(0, help="Random seed (same seed, same events)."),
    labels: Path | None = typer.Option(None, "--labels", dir_okay=False,
                                       help="Also write the injected faults (ground truth) as JSON."),
    to: str = typer.Option("jsonl", "--to", help="jsonl (--out FILE), mqtt (YSH_OM_MQTT_URI) or kafka "
                                                 "(YSH_OM_KAFKA_BOOTSTRAP, YSH_OM_KAFKA_TOPIC)."),
    speedup: float | None = typer.Option(None, "--speedup", help="Pace the events: 1 = real time, 60 = one hour "
                                                                  "per minute; default: as fast as possible."),
    batch: int = typer.Option(1, "--batch", min=1, max=1000, help="Events per bus message (one inverter's)."),
) -> None:
    """Simulate the fleet's telemetry, one fault of each kind injected, to a file, MQTT or Kafka.

    A JSONL file, MQTT (ysh/telemetry/{plant}/{inverter}, QoS 1) or Kafka."""
    import json

    from ..samples.om_telemetry import default_scenario, simulate as run, write_jsonl
    from ..samples.om_telemetry import labels as truth

    if to not in ("jsonl", "mqtt", "kafka"):
        raise typer.BadParameter("--to must be jsonl, mqtt or kafka")
    if to == "jsonl" and out is None:
        raise typer.BadParameter("--to jsonl needs --out FILE")
    first = _start(start)
    fleet = load_plants_checked(plants) if plants else None
    try:
        scenario = default_scenario(first, hours, seed, plants=fleet)
    except KeyError as exc:  # the injected faults sit on the sample fleet's plants and inverters
        raise InputError(f"{plants}: the simulated faults need the sample fleet's plant and inverter ids; "
                         f"{exc.args[0] if exc.args else exc} is not in this plants file") from None
    if labels:
        labels.write_text(json.dumps(truth(scenario), default=str, indent=1))
    if to == "jsonl":
        from .publish import paced

        count = write_jsonl(paced(run(scenario), speedup), out)
        console.print(f"{count} events → [cyan]{out}[/]")
        return
    from ..settings import get_settings
    from .publish import mqtt_auth, publish_kafka, publish_mqtt
    from .stream import kafka_security

    settings = get_settings()
    with console.status(f"publishing to {to}…") as status:
        progress = lambda n: status.update(f"publishing to {to}… {n:,} events")  # noqa: E731
        try:
            if to == "mqtt":
                count = publish_mqtt(run(scenario), settings.om.mqtt_uri, batch=batch, speedup=speedup,
                                     on_progress=progress, **mqtt_auth(settings))
                where = settings.om.mqtt_uri
            else:
                count = publish_kafka(run(scenario), settings.om.kafka_bootstrap, settings.om.kafka_topic,
                                      batch=batch, speedup=speedup, on_progress=progress,
                                      security=kafka_security(settings))
                where = f"{settings.om.kafka_bootstrap}/{settings.om.kafka_topic}"
        except (OSError, ConnectionError, TimeoutError) as exc:
            console.print(f"[red]could not publish to {to}:[/] {exc}")
            raise typer.Exit(1) from None
    console.print(f"{count} events → [cyan]{where}[/]")


@app.command()
def detect(
    paths: list[Path] = typer.Argument(..., exists=True, help="Telemetry JSONL files or folders."),
    plants: Path | None = typer.Option(None, "--plants", help="PLANTS.json (default: the sample fleet)."),
    out: Path | None = typer.Option(None, "--out", file_okay=False,
                                    help="Folder for windows.jsonl, alerts.jsonl, quarantine.jsonl."),
    warehouse: bool = typer.Option(False, "--warehouse/--no-warehouse",
                                   help="Also upsert om_inverter_5min, om_alerts, om_quarantine (and the registry)."),
    now: str | None = typer.Option(None, "--now", help=_NOW_HELP),
) -> None:
    """Run the O&M pipeline over telemetry files into JSONL files and/or the warehouse, once.

    Pathway; no server needed without --warehouse."""
    from .job import run_detect

    when = _instant(now)
    if out is None and not warehouse:
        raise typer.BadParameter("give --out DIR and/or --warehouse")
    _telemetry_files(paths)  # bad input ends here, before any server starts
    from .. import pw_runtime
    from ..settings import get_settings

    settings = get_settings()
    plants_path = _plants_file(plants or _sample_plants())
    thresholds = _thresholds(settings)
    pw_runtime.respawn_with_processes(settings.pathway.processes)  # YSH_PATHWAY_PROCESSES > 1: pathway spawn
    leader = pw_runtime.is_leader()
    target = db.Warehouse.from_settings(settings) if warehouse else None
    with console.status("windowing telemetry and evaluating rules with Pathway…") if leader else nullcontext():
        report = run_detect(paths, plants_path, out, now=when, warehouse=target, thresholds=thresholds)
    if leader:
        _print_report(report, out, target)


@app.command("run")
def run_cmd(
    paths: list[Path] | None = typer.Argument(None, exists=True, show_default=False,
                                              help="Telemetry JSONL files or folders (default: the replay folder, "
                                                   "YSH_OM_REPLAY_DIR)."),
    plants: Path | None = _PLANTS,
    now: str | None = typer.Option(None, "--now", help=_NOW_HELP),
    source: str | None = typer.Option(None, "--source", hidden=True, help="Streaming only: `ysh om follow --source`."),
) -> None:
    """One batch pass: telemetry files into the warehouse, then stop.

    Writes om_inverter_5min, om_alerts, om_quarantine and the plant registry. Streaming
    from MQTT, Kafka or the replay folder is `ysh om follow`."""
    from ..kit.files import files_under
    from ..settings import get_settings
    from .job import run_detect

    settings = get_settings()
    if source is not None or (not paths and settings.om.source != "jsonl"):
        # `ysh om run` used to stream: a call written for that fails here, loudly, naming the new verb
        stream = source or settings.om.source
        typer.echo(f"`ysh om run` is one batch pass over JSONL files; to stream from {stream} use "
                   f"`ysh om follow{' --source ' + source if source else ''}`", err=True)
        raise typer.Exit(2)
    when = _instant(now)
    inputs = paths or [settings.om.replay_dir]
    if not paths:
        console.print(f"one batch pass over the replay folder {settings.om.replay_dir} (`ysh om follow` keeps "
                      "following it)")
    try:
        files_under(inputs)  # before the warehouse opens: no telemetry, nothing to start
    except FileNotFoundError as exc:
        console.print(f"[red]no telemetry to run over: {exc}[/]")
        raise typer.Exit(1) from None
    _telemetry_files(inputs)
    plants_path = _plants_file(plants or settings.om.plants_file)
    thresholds = _thresholds(settings)
    from .. import pw_runtime

    pw_runtime.respawn_with_processes(settings.pathway.processes)  # YSH_PATHWAY_PROCESSES > 1: pathway spawn
    leader = pw_runtime.is_leader()
    warehouse = db.Warehouse.from_settings(settings)
    status = f"windowing {', '.join(map(str, inputs))} and evaluating rules with Pathway…"
    with console.status(status) if leader else nullcontext():
        report = run_detect(inputs, plants_path, None, now=when, warehouse=warehouse, thresholds=thresholds)
    if leader:
        _print_report(report, None, warehouse)


@app.command("follow")
def follow_cmd(
    source: str | None = typer.Option(None, "--source", help="jsonl | mqtt | kafka (default: YSH_OM_SOURCE)."),
    plants: Path | None = _PLANTS,
) -> None:
    """Stream telemetry (MQTT, Kafka or the replay folder) into the warehouse until stopped.

    Windows, alerts and quarantine in the warehouse, Slack notices, InfluxDB when
    configured. Restart-safe."""
    from ..settings import get_settings
    from .stream import SOURCES

    settings = get_settings()
    source = source or settings.om.source
    if source not in SOURCES:
        raise typer.BadParameter(f"--source must be one of {', '.join(SOURCES)}")
    _follow(settings, source, _plants_file(plants or settings.om.plants_file))


def _follow(settings, source: str, plants: Path) -> None:
    from .stream import persistence_dir, run_stream

    warehouse = db.Warehouse.from_settings(settings)
    where = {"jsonl": str(settings.om.replay_dir), "mqtt": f"{settings.om.mqtt_uri} {settings.om.mqtt_topic}",
             "kafka": f"{settings.om.kafka_bootstrap} {settings.om.kafka_topic}"}[source]
    console.print(f"O&M pipeline streaming from [bold]{source}[/] ({where}); state in "
                  f"{persistence_dir(settings, source)}; Ctrl-C to stop")
    try:
        run_stream(settings, warehouse, source=source, plants_path=plants)
    except KeyboardInterrupt:
        console.print("stopped")


def demo_day(settings, warehouse, out: Console = console) -> None:
    """``ysh demo``'s O&M part: yesterday (Brasília) of the sample fleet, one fault of each
    kind injected, through the pipeline into the warehouse; the alerts opened and
    resolved and the day's summary (MTTR, availability) printed."""
    from datetime import datetime, timedelta, timezone

    from ..db import Warehouse
    from .daily import SAO_PAULO, write_day
    from .job import run_detect
    from ..samples.om_telemetry import default_scenario, simulate, write_jsonl

    assert isinstance(warehouse, Warehouse)
    day = datetime.now(SAO_PAULO).date() - timedelta(days=1)
    scenario = default_scenario(day, 24, seed=3)
    path = settings.om.replay_dir / f"demo-{day.isoformat()}.jsonl"
    count = write_jsonl(simulate(scenario), path)
    with out.status(f"O&M: {count:,} simulated telemetry events → Pathway (validate, 5-minute windows, rules)…"):
        report = run_detect([path], settings.om.plants_file, settings.home_dir / "om" / "demo", warehouse=warehouse,
                            now=datetime.now(timezone.utc))
    out.print(f"[green]✓[/] O&M: {report.events:,} events of the sample fleet on {day} → {report.windows:,} windows, "
              f"{sum(report.quarantine_by_reason.values())} events quarantined, in {report.seconds:.1f} s")
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        alerts = conn.execute(
            "SELECT rule, plant_id, inverter_id, opened_at, resolved_at FROM om_alerts WHERE opened_at >= %s "
            "AND opened_at < %s AND rule <> 'clipping' ORDER BY opened_at", (scenario.start, scenario.end)).fetchall()
    table = Table("rule", "plant / inverter", "opened (UTC)", "resolved (UTC)", "minutes",
                  title=f"O&M alerts on {day} (one fault of each kind was injected)")
    for rule, plant, inverter, opened, resolved in alerts:
        table.add_row(rule, f"{plant}/{inverter}", f"{opened:%H:%M}", f"{resolved:%H:%M}" if resolved else "open",
                      f"{(resolved - opened).total_seconds() / 60:.0f}" if resolved else "—")
    out.print(table)
    fleet = next(r for r in write_day(warehouse, day) if r.plant_id == "*")
    clipping = fleet.alerts_by_rule.get("clipping", 0)
    out.print(f"day summary (om_alerts_daily): {fleet.alerts} alerts ({clipping} clipping, info), "
              f"{fleet.resolved} resolved, MTTR {fleet.mttr_minutes} min, fleet availability "
              f"{fleet.availability:.1%}" if fleet.availability is not None else "no daylight data")
