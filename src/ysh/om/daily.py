"""The daily O&M summary (``om_alerts_daily``): per local day (America/Sao_Paulo) and
plant, the alerts opened by rule, how many are resolved, the MTTR and the availability
(:func:`ysh.om.rules.mttr`, :func:`ysh.om.rules.availability`), plus a fleet row (``*``)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .. import db
from ..db import Warehouse
from .rules import PLANT_SCOPE, SEVERITY, Alert, WindowStat, availability, mttr

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
_WINDOW_COLUMNS = ", ".join(WindowStat._fields)


@dataclass(frozen=True)
class DaySummary:
    day: date
    plant_id: str  # "*" for the fleet
    alerts: int
    alerts_by_rule: dict[str, int]
    resolved: int
    mttr_minutes: float | None
    availability: float | None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=SAO_PAULO)
    return start, start + timedelta(days=1)


def summarize(day: date, windows: list[WindowStat], alerts: list[Alert]) -> list[DaySummary]:
    """The day's rows: ``windows`` of that day, ``alerts`` opened that day."""
    by_plant: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_plant[alert.plant_id].append(alert)
    plants = sorted({w.plant_id for w in windows} | set(by_plant))
    avail = availability(windows, alerts)
    not_info = [r for r in {a.rule for a in alerts} if SEVERITY.get(r) != "info"]  # clipping, power_limited

    def row(plant: str, mine: list[Alert], share: float | None) -> DaySummary:
        spent = mttr(mine, not_info)
        return DaySummary(day, plant, len(mine), dict(Counter(a.rule for a in mine).most_common()),
                          sum(1 for a in mine if a.resolved_at is not None),
                          round(spent.total_seconds() / 60, 1) if spent is not None else None, share)

    rows = [row(plant, by_plant.get(plant, []), avail.get(plant)) for plant in plants]
    shares = [r.availability for r in rows if r.availability is not None]
    rows.append(row(PLANT_SCOPE, alerts, round(sum(shares) / len(shares), 4) if shares else None))
    return rows


def load_day(warehouse: Warehouse, day: date) -> tuple[list[WindowStat], list[Alert]]:
    start, end = day_bounds(day)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        windows = [WindowStat(*r) for r in conn.execute(
            f"SELECT {_WINDOW_COLUMNS} FROM om_inverter_5min WHERE window_start >= %s AND window_start < %s",
            (start, end)).fetchall()]
        alerts = [Alert(p, i, r, o, res, d, k) for k, p, i, r, o, res, d in conn.execute(
            "SELECT alert_key, plant_id, inverter_id, rule, opened_at, resolved_at, details FROM om_alerts "
            "WHERE opened_at >= %s AND opened_at < %s", (start, end)).fetchall()]
    for a in alerts:  # JSON gives the gap bounds back as text; availability needs datetimes
        gap = ((a.details.get("resolution") or {}).get("last_gap") or {})
        for key in ("since", "until"):
            if isinstance(gap.get(key), str):
                gap[key] = datetime.fromisoformat(gap[key])
    return windows, alerts


def write_day(warehouse: Warehouse, day: date) -> list[DaySummary]:
    """Compute the day's summary from the warehouse and replace its rows in ``om_alerts_daily``."""
    rows = summarize(day, *load_day(warehouse, day))
    with db.connect(warehouse.dsn, warehouse.schema) as conn, conn.transaction():
        conn.execute("DELETE FROM om_alerts_daily WHERE day = %s", (day,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO om_alerts_daily (day, plant_id, alerts, alerts_by_rule, resolved, mttr_minutes, "
                "availability) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(r.day, r.plant_id, r.alerts, json.dumps(r.alerts_by_rule), r.resolved, r.mttr_minutes,
                  r.availability) for r in rows])
    return rows
