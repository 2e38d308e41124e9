"""``ysh om …``: simulate a fleet's telemetry, detect anomalies in it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import db

app = typer.Typer(help="O&M monitoring: inverter telemetry, 5-minute windows, anomaly alerts.",
                  no_args_is_help=True)
console = Console()


def _sample_plants() -> Path:
    return db.data_path("sample", "om", "plants.json")


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="JSONL file to write."),
    plants: Path | None = typer.Option(None, "--plants", help="PLANTS.json (default: the sample fleet)."),
    start: str | None = typer.Option(None, help="ISO date (local midnight, UTC-3) or datetime; default: today."),
    hours: float = typer.Option(24.0, min=0.1, help="Duration."),
    seed: int = typer.Option(0, help="Random seed (same seed, same events)."),
    labels: Path | None = typer.Option(None, "--labels", help="Also write the injected faults (ground truth) as JSON."),
) -> None:
    """Simulate the fleet's telemetry with one fault of each kind injected (JSONL out)."""
    import json

    from .fleet import load_plants
    from .simulator import default_scenario, simulate as run, write_jsonl
    from .simulator import labels as truth

    fleet = load_plants(plants) if plants else None
    scenario = default_scenario(date.fromisoformat(start) if start and len(start) == 10 else start, hours, seed,
                                plants=fleet)
    count = write_jsonl(run(scenario), out)
    if labels:
        labels.write_text(json.dumps(truth(scenario), default=str, indent=1))
    console.print(f"{count} events → [cyan]{out}[/]")


@app.command()
def detect(
    paths: list[Path] = typer.Argument(..., exists=True, help="Telemetry JSONL files or folders."),
    plants: Path | None = typer.Option(None, "--plants", help="PLANTS.json (default: the sample fleet)."),
    out: Path | None = typer.Option(None, "--out", help="Folder for windows.jsonl, alerts.jsonl, quarantine.jsonl."),
    warehouse: bool = typer.Option(False, "--warehouse/--no-warehouse",
                                   help="Also upsert om_inverter_5min, om_alerts, om_quarantine (and the registry)."),
    now: str | None = typer.Option(None, "--now", help="ISO datetime events may not be later than (+5 min); "
                                                       "default: the wall clock. Set it when replaying old files."),
) -> None:
    """Run the O&M pipeline statically over telemetry files (Pathway; no server needed)."""
    from datetime import datetime, timezone

    from ..console import print_reasons
    from .job import run_detect

    when = None
    if now:
        when = datetime.fromisoformat(now)
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    if out is None and not warehouse:
        raise typer.BadParameter("give --out DIR and/or --warehouse")
    target = None
    if warehouse:
        from ..settings import get_settings

        settings = get_settings()
        target = db.Warehouse(db.prepare_warehouse(settings), settings.postgres_schema)
    with console.status("windowing telemetry and evaluating rules with Pathway…"):
        report = run_detect(paths, plants or _sample_plants(), out, now=when, warehouse=target)
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
