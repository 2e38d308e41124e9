"""O&M rule evaluation: recall and precision per rule on labelled simulated days, and the
frozen-value rule on pvanalytics' labelled stale-data inverter series.

    python benchmarks/om_evaluation.py                   # the real Pathway graph (run_detect), ~2 min
    python benchmarks/om_evaluation.py --engine python   # same windows and rules in pure Python, faster
    python benchmarks/om_evaluation.py --stale-csv PATH  # the stale-data series from a file

**Simulated days.** Six days of the sample fleet, two per sky (clear, variable,
overcast), in different seasons and with different seeds. Each day gets two faults of
each inverter kind (trip, comm_loss, underperformance, frozen, clipping = a 55–80 %
export limit) and one plant outage, placed by the day's seed (:func:`varied_faults`) on
random inverters of the plants that have peers (a lone inverter's underperformance is
``not_observable`` by design, and a plant outage needs ≥ 2 inverters), at random times
of the daylight span (sun elevation > 20°), with random lengths and severities
(underperformance derate 0.40–0.70). Faults on one inverter never overlap (the
simulator's rule), but faults on peers of the same plant may.

Matching (unchanged from the first version): a fault is *found* when an alert of its
rule on its inverter (``*`` for an outage) overlaps it — opened before the fault's end
+ 20 min (the detection latency: 3 windows of 5 min, plus the late-data cutoff), and
not resolved before its start. An alert is *correct* when it matches some fault that
way. New: ``dup`` counts correct alerts that matched a fault already matched by an
earlier alert (a flapping alert: "one fault, one alert" is the design), and the
precision counts them as *wrong* — stricter than before. The clipping row is info:
natural clipping at the rating is real but unlabelled, so only the recall of the
injected export limits is measured (``kind = export_limit`` alerts).

**Stale data.** ``pvanalytics/data/ac_power_inv_2173_stale_data.csv`` (found through the
installed ``pvanalytics`` package, or ``--stale-csv``): see :func:`stale_data_evaluation`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLANTS = ROOT / "data" / "sample" / "om" / "plants.json"
RULE_OF = {"trip": "inverter_trip", "comm_loss": "comm_loss", "underperformance": "underperformance",
           "frozen": "frozen_values", "outage": "plant_outage"}
#: (seed, sky, day): two days per sky, across the seasons
DAYS = [(1, "clear", "2026-02-10"), (11, "clear", "2026-07-15"),
        (2, "variable", "2026-06-20"), (13, "variable", "2026-11-03"),
        (4, "overcast", "2026-09-05"), (15, "overcast", "2026-03-22")]
#: kind → (count per day, length range as a fraction of the daylight span, params drawn per fault)
FAULT_PLAN = {
    "trip": (2, (0.05, 0.15), lambda r: {}),
    "comm_loss": (2, (0.05, 0.15), lambda r: {}),
    "underperformance": (2, (0.15, 0.35), lambda r: {"derate": round(r.uniform(0.40, 0.70), 2)}),
    "frozen": (2, (0.04, 0.12), lambda r: {}),
    "clipping": (2, (0.20, 0.40), lambda r: {"limit_fraction": round(r.uniform(0.55, 0.80), 2)}),
    "outage": (1, (0.05, 0.12), lambda r: {"reporting": "zeros"}),
}
MATCH_GRACE = timedelta(minutes=20)


def _ts(text):
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None


# --------------------------------------------------------------------------- scenarios


def varied_faults(scenario, seed: int):
    """The fault plan (:data:`FAULT_PLAN`) placed at random by ``seed`` (see the module
    docstring); returns a list of :class:`ysh.samples.om_telemetry.Fault`."""
    import numpy as np
    import pvlib

    from ysh.samples.om_telemetry import Fault

    rng = random.Random(seed * 7919 + 17)
    times = scenario.times()
    multi = [p for p in scenario.plants if len(p.inverters) >= 2]
    spans = {}
    for plant in multi:
        elevation = pvlib.solarposition.get_solarposition(times, plant.latitude, plant.longitude)[
            "apparent_elevation"].to_numpy()
        day = np.flatnonzero(elevation > 20.0)
        breaks = np.flatnonzero(np.diff(day) > 1)
        spans[plant.plant_id] = (int(day[0]), int(day[breaks[0]] if breaks.size else day[-1]) + 1)
    busy: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    faults = []
    for kind, (count, (lo, hi), params) in FAULT_PLAN.items():
        placed = 0
        for _attempt in range(200):
            if placed == count:
                break
            plant = rng.choice(multi)
            a, b = spans[plant.plant_id]
            length = max(15, int(round(rng.uniform(lo, hi) * (b - a))))
            i0 = rng.randint(a + int(0.03 * (b - a)), b - length - int(0.03 * (b - a)))
            i1 = i0 + length
            targets = plant.inverter_ids if kind == "outage" else [rng.choice(plant.inverter_ids)]
            if any(i0 < e and s < i1 for inv in targets for s, e in busy[(plant.plant_id, inv)]):
                continue
            for inv in targets:
                busy[(plant.plant_id, inv)].append((i0, i1))
            faults.append(Fault(kind=kind, plant_id=plant.plant_id,
                                inverter_id=None if kind == "outage" else targets[0],
                                start=times[i0].to_pydatetime(), end=times[i1].to_pydatetime(),
                                params=params(rng)))
            placed += 1
    return faults


def scenario_for(seed: int, sky: str, day: str):
    from ysh.samples.om_telemetry import Scenario, default_scenario

    base = default_scenario(day, 24, seed=seed, sky=sky)  # the fleet, the grid, the bus defects
    return Scenario(plants=base.plants, start=base.start, duration=base.duration, step_s=base.step_s, seed=seed,
                    sky=sky, faults=varied_faults(base, seed), duplicate_rate=base.duplicate_rate,
                    invalid_rate=base.invalid_rate)


# --------------------------------------------------------------------------- detection


def alerts_pathway(scenario, folder: Path) -> list[dict]:
    from ysh.om.job import run_detect
    from ysh.samples.om_telemetry import simulate, write_jsonl

    write_jsonl(simulate(scenario), folder / "telemetry.jsonl")
    run_detect([folder / "telemetry.jsonl"], PLANTS, folder / "out", now=scenario.end)
    return [json.loads(line) for line in (folder / "out" / "alerts.jsonl").read_text().splitlines()]


def alerts_python(scenario) -> list[dict]:
    """The graph's stages in plain Python: validation, dedup by event id, 5-minute windows
    (:func:`window_from_samples`, :func:`expected_power_w`), then the per-plant fold."""
    from ysh.om.engine import replay_alerts
    from ysh.om.expected import expected_power_w
    from ysh.om.fleet import load_plants
    from ysh.om.rules import window_from_samples
    from ysh.samples.om_telemetry import simulate
    from ysh.om.validation import Rejected, validate_event

    plants = {p.plant_id: p for p in load_plants(PLANTS)}
    registry = {(p.plant_id, i.inverter_id): i.rated_power_w for p in plants.values() for i in p.inverters}
    groups: dict[tuple, dict] = defaultdict(dict)
    for raw in simulate(scenario):
        e = validate_event(raw, registry, scenario.end)
        if isinstance(e, Rejected):
            continue
        epoch = int(e.ts.timestamp())
        start = datetime.fromtimestamp(epoch - epoch % 300, tz=timezone.utc)
        groups[(e.plant_id, e.inverter_id, start)][e.event_id] = (e.ts, e.ac_power_w, e.energy_total_kwh,
                                                                   e.irradiance_wm2)
    windows = defaultdict(list)
    for (plant_id, inverter_id, start), events in groups.items():
        end = start + timedelta(minutes=5)
        poa = [s[3] for s in events.values() if s[3] is not None]
        expected = expected_power_w(plants[plant_id], inverter_id, start, end, sum(poa) / len(poa) if poa else None)
        w = window_from_samples(plant_id, inverter_id, start, end, [s[:3] for s in events.values()], expected,
                                registry[(plant_id, inverter_id)])
        windows[plant_id].append(w._replace(expected_from_sensor=bool(poa)))
    ticks = sorted({w.window_end for ws in windows.values() for w in ws})
    out = []
    for plant_id in plants:
        for a in replay_alerts(plant_id, windows.get(plant_id, []), ticks=ticks):
            out.append({"plant_id": a.plant_id, "inverter_id": a.inverter_id, "rule": a.rule,
                        "opened_at": a.opened_at.isoformat(),
                        "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
                        "details": {"kind": a.details.get("kind")}})
    return out


def _match(alert: dict, fault: dict, rule: str) -> bool:
    return (rule == alert["rule"] and fault["plant_id"] == alert["plant_id"]
            and (fault.get("inverter_id") or "*") == alert["inverter_id"]
            and _ts(alert["opened_at"]) < _ts(fault["end"]) + MATCH_GRACE
            and (alert["resolved_at"] is None or _ts(alert["resolved_at"]) > _ts(fault["start"])))


@dataclass
class Score:
    faults: int = 0
    found: int = 0
    alerts: int = 0
    correct: int = 0
    dup: int = 0


def score_day(alerts: list[dict], faults: list[dict], totals: dict[str, Score], misses: list[str]) -> None:
    for fault in faults:
        if fault["kind"] == "clipping":
            s = totals["clipping"]
            s.faults += 1
            s.found += any(_match(a, fault, "clipping") and (a.get("details") or {}).get("kind") == "export_limit"
                           for a in alerts)
            continue
        s = totals[RULE_OF[fault["kind"]]]
        s.faults += 1
        if any(_match(a, fault, RULE_OF[fault["kind"]]) for a in alerts):
            s.found += 1
        else:
            misses.append(f"missed {fault['kind']} {fault['plant_id']}/{fault['inverter_id']} "
                          f"{fault['start']}–{fault['end']} {fault['params']}")
    matched: set[int] = set()
    for alert in sorted(alerts, key=lambda a: a["opened_at"]):
        if alert["rule"] == "clipping":
            totals["clipping"].alerts += 1
            continue
        if alert["rule"] not in totals:
            continue
        s = totals[alert["rule"]]
        s.alerts += 1
        hits = [i for i, f in enumerate(faults) if f["kind"] in RULE_OF and _match(alert, f, RULE_OF[f["kind"]])]
        if not hits:
            misses.append(f"false {alert['rule']} {alert['plant_id']}/{alert['inverter_id']} "
                          f"{alert['opened_at']}–{alert['resolved_at']}")
        elif all(i in matched for i in hits):
            s.dup += 1
        else:
            s.correct += 1
            matched.update(hits)


def simulated_table(engine: str, console) -> None:
    from rich.table import Table

    from ysh.samples.om_telemetry import labels

    totals = {rule: Score() for rule in RULE_OF.values()}
    totals["clipping"] = Score()
    notes: list[str] = []
    for seed, sky, day in DAYS:
        scenario = scenario_for(seed, sky, day)
        with console.status(f"{day} ({sky}, seed {seed}, {engine})…"):
            if engine == "pathway":
                alerts = alerts_pathway(scenario, Path(tempfile.mkdtemp(prefix="ysh-om-eval-")))
            else:
                alerts = alerts_python(scenario)
        faults = [f for f in labels(scenario) if f["kind"] in RULE_OF or f["kind"] == "clipping"]
        score_day(alerts, faults, totals, notes)
    table = Table("rule", "faults", "found", "recall", "alerts", "correct", "dup", "precision",
                  title=f"O&M rules on {len(DAYS)} labelled simulated days ({engine})")
    fault_rules = [r for r in totals if r != "clipping"]
    for rule in fault_rules:
        s = totals[rule]
        table.add_row(rule, str(s.faults), str(s.found), f"{s.found / s.faults:.2f}" if s.faults else "—",
                      str(s.alerts), str(s.correct), str(s.dup), f"{s.correct / s.alerts:.2f}" if s.alerts else "—")
    all_faults = sum(totals[r].faults for r in fault_rules)
    all_found = sum(totals[r].found for r in fault_rules)
    all_alerts = sum(totals[r].alerts for r in fault_rules)
    all_correct = sum(totals[r].correct for r in fault_rules)
    all_dup = sum(totals[r].dup for r in fault_rules)
    table.add_row("[b]total[/b]", str(all_faults), str(all_found), f"{all_found / all_faults:.2f}", str(all_alerts),
                  str(all_correct), str(all_dup), f"{all_correct / all_alerts:.2f}" if all_alerts else "—")
    c = totals["clipping"]
    table.add_row("clipping (info)", str(c.faults), str(c.found), f"{c.found / c.faults:.2f}" if c.faults else "—",
                  str(c.alerts), "—", "—", "—")
    console.print(table)
    for note in notes:
        console.print(f"  {note}")


# --------------------------------------------------------------------------- stale data


def stale_csv_path() -> Path | None:
    """The stale-data series inside the installed pvanalytics package (found without
    importing it), or None."""
    spec = importlib.util.find_spec("pvanalytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "ac_power_inv_2173_stale_data.csv"
    return path if path.exists() else None


@dataclass
class StaleResult:
    step: timedelta
    samples: int
    daylight_samples: int
    runs: int  # labelled stale runs with a daylight sample
    runs_found: int
    alerts: int  # frozen alerts (runs of active verdicts)
    alerts_correct: int
    sample_tp: int  # daylight samples flagged and labelled stale
    sample_fp: int
    sample_fn: int

    @property
    def run_recall(self) -> float:
        return self.runs_found / self.runs if self.runs else float("nan")

    @property
    def run_precision(self) -> float:
        return self.alerts_correct / self.alerts if self.alerts else float("nan")

    @property
    def sample_recall(self) -> float:
        return self.sample_tp / (self.sample_tp + self.sample_fn) if self.sample_tp + self.sample_fn else float("nan")

    @property
    def sample_precision(self) -> float:
        return self.sample_tp / (self.sample_tp + self.sample_fp) if self.sample_tp + self.sample_fp else float("nan")


def stale_data_evaluation(path: Path, thresholds=None) -> StaleResult:
    """The frozen-value rule on pvanalytics' labelled series (``timestamp,
    value_normalized, stale_data_mask``; 15-minute samples, normalised AC power, NaN
    where missing; three labelled stale runs of 60–100 samples).

    - Windows: one per sample interval (15 min: a 5-minute window would hold a single
      sample and leave two empty windows between samples, so no run could chain), built
      with :func:`window_from_samples`; missing (NaN) samples are dropped, so a gap breaks
      a run. No energy counter ships with the series: the counter readings are NaN
      (unknown), so the counter cannot help either way.
    - Rated power: the series' maximum / 0.98 (so only its maximum would count as a
      clipping plateau).
    - Expected power, for the daylight test: the series has no coordinates, so an
      empirical clear-sky envelope — per time of day, the 90th percentile of the
      series over all its days (stale runs are three values among ~30 days, so they do
      not shape it; the labels are not used).
    - The rule (:func:`frozen_state`, default thresholds: ≥ 10 identical samples in
      daylight, i.e. 2.5 h here) runs at every window end over the history so far, as
      the streaming fold does.
    - Per run: a labelled run counts when it has a daylight sample; it is *found* when
      the rule is active at a window inside it; an *alert* is a run of consecutive
      active verdicts, *correct* when it overlaps a labelled run.
    - Per sample (daylight samples only: the rule is daylight-only by design): a sample
      is flagged when it lies in ``[details.since, window end]`` of an active verdict.
    """
    import math

    import pandas as pd

    from ysh.om.rules import DEFAULT_THRESHOLDS, frozen_state, window_from_samples

    t = thresholds or DEFAULT_THRESHOLDS
    frame = pd.read_csv(path, parse_dates=["timestamp"]).set_index("timestamp").sort_index()
    step = frame.index.to_series().diff().mode().iloc[0].to_pytimedelta()
    values = frame["value_normalized"]
    rated = float(values.max()) / 0.98
    minute_of_day = frame.index.hour * 60 + frame.index.minute
    envelope = values.groupby(minute_of_day).quantile(0.9)
    expected = pd.Series(envelope.reindex(minute_of_day).to_numpy(), index=frame.index).fillna(0.0)
    stale = frame["stale_data_mask"].astype(bool)

    windows = []
    for ts, value in values.items():
        if math.isnan(value):
            continue
        start = ts.to_pydatetime()
        windows.append(window_from_samples("pvanalytics", "inv-2173", start, start + step,
                                           [(start, float(value), float("nan"))], float(expected[ts]), rated, t))
    daylight = {w.window_start for w in windows if w.expected_power_w >= t.daylight_fraction * rated}
    active_at: dict[datetime, bool] = {}
    flagged: set[datetime] = set()
    for i, w in enumerate(windows):
        state = frozen_state(windows[: i + 1], t)
        active_at[w.window_start] = state.active
        if state.active:
            flagged.update(x.window_start for x in windows[: i + 1]
                           if state.details["since"] <= x.window_start <= w.window_start)
    # per run
    labelled_runs: list[set[datetime]] = []
    current: set[datetime] = set()
    for ts, is_stale in stale.items():
        if is_stale:
            current.add(ts.to_pydatetime())
        elif current:
            labelled_runs.append(current)
            current = set()
    if current:
        labelled_runs.append(current)
    labelled_runs = [r for r in labelled_runs if r & daylight]
    runs_found = sum(any(active_at.get(ts) for ts in r) for r in labelled_runs)
    alerts: list[set[datetime]] = []
    current = set()
    for w in windows:
        if active_at[w.window_start]:
            current.add(w.window_start)
        elif current:
            alerts.append(current)
            current = set()
    if current:
        alerts.append(current)
    all_stale = set().union(*labelled_runs) if labelled_runs else set()
    correct = sum(bool(a & all_stale) for a in alerts)
    # per sample, daylight
    truth = {ts.to_pydatetime() for ts, s in stale.items() if s}
    tp = len(flagged & truth & daylight)
    fp = len((flagged & daylight) - truth)
    fn = len((truth & daylight) - flagged)
    return StaleResult(step, len(windows), len(daylight), len(labelled_runs), runs_found, len(alerts), correct,
                       tp, fp, fn)


def stale_table(path: Path | None, console) -> None:
    from rich.table import Table

    if path is None:
        console.print("[yellow]stale-data evaluation skipped: pvanalytics is not installed "
                      "(pip install pvanalytics, or pass --stale-csv PATH)[/yellow]")
        return
    r = stale_data_evaluation(path)
    table = Table("level", "labelled", "found / flagged ok", "recall", "alerts / flagged", "precision",
                  title=f"frozen_values on pvanalytics ac_power_inv_2173_stale_data ({r.samples} samples every "
                        f"{int(r.step.total_seconds() // 60)} min, {r.daylight_samples} in daylight)")
    table.add_row("stale runs", str(r.runs), str(r.runs_found), f"{r.run_recall:.2f}", str(r.alerts),
                  f"{r.run_precision:.2f} ({r.alerts_correct}/{r.alerts})")
    table.add_row("daylight samples", str(r.sample_tp + r.sample_fn), str(r.sample_tp), f"{r.sample_recall:.2f}",
                  str(r.sample_tp + r.sample_fp), f"{r.sample_precision:.2f}")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from ysh import pw_runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("pathway", "python"), default="pathway")
    parser.add_argument("--stale-csv", type=Path, default=None)
    parser.add_argument("--skip-simulated", action="store_true")
    args = parser.parse_args(argv)
    pw_runtime.quiet_logging()
    console = Console(width=130)
    if not args.skip_simulated:
        simulated_table(args.engine, console)
    stale_table(args.stale_csv or stale_csv_path(), console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
