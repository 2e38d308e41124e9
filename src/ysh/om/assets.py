"""Dagster assets of the O&M job (thin wrappers).

- ``om_inverters_stream``: the observed health of the running ``ysh om run``
  (``om_stream_status`` and the newest windows): heartbeat age, event-time lag, last
  window end, events per minute, recorded every 5 minutes (schedule ``om_stream_5min``).
  The observation fails when no window landed for 10 minutes, so its freshness policy
  (30 minutes) flags a stalled stream; the check ``om_stream_alive`` fails when the
  process stopped beating.
- ``om_alerts_daily``: daily partitions (America/Sao_Paulo) of ``om_alerts_daily``:
  alerts by rule, MTTR and availability per plant; scheduled at 06:00 for the day before.
"""


from datetime import date, timedelta

import dagster as dg

from .. import db
from ..console import markdown_table
from ..resources import WarehouseResource
from . import daily

GROUP = "om"
STREAM_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=10))
HEARTBEAT_MAX_AGE = timedelta(minutes=1)
#: no window row for this long: the stream is stalled (its observation fails)
STALL_AFTER = timedelta(minutes=10)


def stream_health(warehouse: WarehouseResource) -> dict:
    """The running pipeline's health from the warehouse (empty when it never ran)."""
    with db.connect(warehouse.get_dsn(), warehouse.schema) as conn:
        status = conn.execute("SELECT source, pid, started_at, heartbeat_at, last_batch_at, last_window_end, now() "
                              "FROM om_stream_status WHERE pipeline = 'om'").fetchone()
        if status is None:
            return {}
        source, pid, started, heartbeat, last_batch, last_end, now = status
        events = conn.execute(
            "SELECT coalesce(sum(samples), 0) FROM om_inverter_5min WHERE window_end > %s - interval '15 minutes'",
            (last_end,)).fetchone()[0] if last_end else 0
    return {"source": source, "pid": pid, "started_at": started, "heartbeat_at": heartbeat,
            "heartbeat_age_s": (now - heartbeat).total_seconds(), "last_batch_at": last_batch,
            "last_window_end": last_end, "lag_s": (now - last_end).total_seconds() if last_end else None,
            "events_per_min": round(float(events) / 15, 1), "now": now}


@dg.asset(
    group_name=GROUP,
    kinds={"pathway", "postgres"},
    description="The running `ysh om run` pipeline (MQTT, Kafka or a JSONL folder → om_inverter_5min, om_alerts), "
                "observed every 5 minutes: heartbeat, event-time lag, last window end and events per minute (last "
                "15 minutes of event time). The observation fails when no window has landed for "
                f"{int(STALL_AFTER.total_seconds() // 60)} minutes, so the freshness policy catches a stalled stream.",
    freshness_policy=STREAM_FRESHNESS,
    owners=["team:data-platform"],
)
def om_inverters_stream(warehouse: WarehouseResource) -> dg.MaterializeResult:
    health = stream_health(warehouse)
    if not health:
        raise dg.Failure("the O&M stream has never run (ysh om run)")
    last_end, last_batch = health["last_window_end"], health["last_batch_at"]
    metadata = {
        "source": health["source"],
        "pid": health["pid"],
        "heartbeat_age_s": round(health["heartbeat_age_s"], 1),
        "last_window_end": dg.MetadataValue.timestamp(last_end) if last_end else "none",
        "lag_s": round(health["lag_s"], 1) if health["lag_s"] is not None else "none",
        "events_per_min": health["events_per_min"],
    }
    if last_batch is None or health["now"] - last_batch > STALL_AFTER:
        raise dg.Failure(f"the O&M stream wrote no window since {last_batch or 'it started'}", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(last_end.isoformat()))


@dg.asset_check(asset=om_inverters_stream, blocking=False,
                description="The O&M stream process beats (heartbeat younger than a minute).")
def om_stream_alive(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    health = stream_health(warehouse)
    if not health:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"reason": "never ran"})
    age = health["heartbeat_age_s"]
    return dg.AssetCheckResult(passed=age <= HEARTBEAT_MAX_AGE.total_seconds(),
                               metadata={"heartbeat_age_s": round(age, 1), "pid": health["pid"],
                                         "source": health["source"]})


DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="America/Sao_Paulo", end_offset=0)


@dg.asset(
    group_name=GROUP,
    partitions_def=DAILY,
    deps=[om_inverters_stream],
    kinds={"postgres"},
    description="om_alerts_daily: per day (America/Sao_Paulo) and plant, the O&M alerts opened by rule, how many "
                "are resolved, MTTR (non-info alerts) and availability (daylight inverter-windows available); "
                "plant '*' is the fleet.",
    owners=["team:data-platform"],
)
def om_alerts_daily(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    wh = warehouse.warehouse()
    rows = daily.write_day(wh, day)
    fleet = next(r for r in rows if r.plant_id == "*")
    plants = [r for r in rows if r.plant_id != "*"]
    return dg.MaterializeResult(metadata={
        "day": day.isoformat(),
        "alerts": fleet.alerts,
        "resolved": fleet.resolved,
        "mttr_minutes": fleet.mttr_minutes if fleet.mttr_minutes is not None else "none resolved",
        "availability": fleet.availability if fleet.availability is not None else "no daylight data",
        "by_rule": dg.MetadataValue.json(fleet.alerts_by_rule),
        "plants": dg.MetadataValue.md(markdown_table(
            ["plant", "alerts", "resolved", "MTTR (min)", "availability"],
            [(r.plant_id, r.alerts, r.resolved, r.mttr_minutes if r.mttr_minutes is not None else "—",
              f"{r.availability:.1%}" if r.availability is not None else "—") for r in plants])),
    })


om_stream_job = dg.define_asset_job("om_stream_observe", selection=[om_inverters_stream])
om_stream_schedule = dg.ScheduleDefinition(name="om_stream_5min", job=om_stream_job, cron_schedule="*/5 * * * *",
                                           execution_timezone="America/Sao_Paulo")
om_daily_job = dg.define_asset_job("om_daily", selection=[om_alerts_daily], partitions_def=DAILY)
om_daily_schedule = dg.build_schedule_from_partitioned_job(om_daily_job, hour_of_day=6, minute_of_hour=0,
                                                           name="om_daily_0600")

#: the job's Dagster definitions (merged with the others in ysh.definitions)
defs = dg.Definitions(
    assets=[om_inverters_stream, om_alerts_daily], asset_checks=[om_stream_alive],
    jobs=[om_stream_job, om_daily_job], schedules=[om_stream_schedule, om_daily_schedule],
)
