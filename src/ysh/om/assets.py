"""Dagster assets of the O&M job (thin wrappers).

- ``om_inverters_stream``: the running ``ysh om follow`` is a long-running service, not
  something Dagster computes, so it is an *observable* asset: every 5 minutes (automation
  condition, evaluated by the sensor ``om_stream_automation``; job ``om_stream_observe``
  by hand) an observation records what the service wrote to the warehouse
  (``om_stream_status``, the newest windows and alerts): source, pid, heartbeat age,
  newest window end, event-time lag, events per minute, open alerts. Its data version is
  the time of the newest batch of windows. The observation itself never judges; two
  checks ride along: ``om_stream_alive`` (the process beats) and ``om_stream_fresh``
  (windows keep landing, by the warehouse's clock: a warning after 10 minutes without
  one, an error after 30).
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
HEARTBEAT_MAX_AGE = timedelta(minutes=1)
#: no batch of windows for this long: the stream is stalled (``om_stream_fresh`` warns) …
STALL_AFTER = timedelta(minutes=10)
#: … and for this long, it is down (``om_stream_fresh`` fails with an error)
DOWN_AFTER = timedelta(minutes=30)
#: how often the stream is observed (São Paulo time)
OBSERVE_CRON = "*/5 * * * *"
TIMEZONE = "America/Sao_Paulo"
OBSERVE = (
    dg.AutomationCondition.cron_tick_passed(OBSERVE_CRON, TIMEZONE) & ~dg.AutomationCondition.in_progress()
).with_label(f"every 5 minutes ({OBSERVE_CRON}, {TIMEZONE})")


def stream_health(warehouse: WarehouseResource) -> dict:
    """The running pipeline's health from the warehouse (empty when it never ran). With
    several instances (Kafka partitions split between them: ``om-p0-1``, ``om-p2-3``…)
    the stream is as healthy as its worst instance: the oldest heartbeat, the oldest
    newest batch and the furthest-behind window end; ``instances`` counts them."""
    with db.connect(warehouse.get_dsn(), warehouse.schema) as conn:
        status = conn.execute(
            "SELECT string_agg(DISTINCT source, ','), string_agg(pid::text, ',' ORDER BY pipeline), min(started_at), "
            "min(heartbeat_at), CASE WHEN bool_and(last_batch_at IS NOT NULL) THEN min(last_batch_at) END, "
            "max(last_batch_at), CASE WHEN bool_and(last_window_end IS NOT NULL) THEN min(last_window_end) END, "
            "now(), count(*) FROM om_stream_status WHERE pipeline = 'om' OR pipeline LIKE 'om-%'").fetchone()
        if not status[-1]:
            return {}
        source, pid, started, heartbeat, last_batch, newest_batch, last_end, now, instances = status
        windows, events = conn.execute(
            "SELECT count(*), coalesce(sum(samples), 0) FROM om_inverter_5min "
            "WHERE window_end > %s - interval '15 minutes'", (last_end,)).fetchone() if last_end else (0, 0)
        newest_alert, open_alerts = conn.execute(
            "SELECT max(opened_at), count(*) FILTER (WHERE resolved_at IS NULL) FROM om_alerts").fetchone()
    return {"source": source, "pid": int(pid) if instances == 1 else pid, "instances": int(instances), "newest_batch_at": newest_batch,
            "started_at": started, "heartbeat_at": heartbeat,
            "heartbeat_age_s": (now - heartbeat).total_seconds(), "last_batch_at": last_batch,
            "batch_age_s": (now - last_batch).total_seconds() if last_batch else None,
            "last_window_end": last_end, "lag_s": (now - last_end).total_seconds() if last_end else None,
            "windows_15min": int(windows), "events_per_min": round(float(events) / 15, 1),
            "newest_alert_opened_at": newest_alert, "open_alerts": int(open_alerts), "now": now}


def stream_freshness(health: dict, stall_after: timedelta = STALL_AFTER,
                     down_after: timedelta = DOWN_AFTER) -> tuple[bool, dg.AssetCheckSeverity, str]:
    """Judge :func:`stream_health`: (passed, severity, reason). Fresh while the newest batch
    of windows is at most ``stall_after`` old by the warehouse's clock (the clock the
    service writes with); a warning up to ``down_after``, an error beyond, or when the
    stream never ran or never wrote a window."""
    if not health:
        return False, dg.AssetCheckSeverity.WARN, "never ran (ysh om follow)"
    age = health["batch_age_s"]
    if age is None:
        return False, dg.AssetCheckSeverity.ERROR, "no window written since it started"
    if age <= stall_after.total_seconds():
        return True, dg.AssetCheckSeverity.ERROR, f"a batch of windows {age:.0f} s ago"
    severity = dg.AssetCheckSeverity.WARN if age <= down_after.total_seconds() else dg.AssetCheckSeverity.ERROR
    return False, severity, f"no window for {age / 60:.0f} minutes"


def _when(value) -> dg.MetadataValue | str:
    return dg.MetadataValue.timestamp(value) if value is not None else "none"


@dg.multi_observable_source_asset(
    specs=[dg.AssetSpec(
        "om_inverters_stream",
        group_name=GROUP,
        kinds={"pathway", "postgres"},
        description="The running `ysh om follow` pipeline (MQTT, Kafka or a JSONL folder → om_inverter_5min, "
                    "om_alerts), observed every 5 minutes from what it wrote to the warehouse: source, pid, "
                    "heartbeat age, newest window end, event-time lag, windows and events per minute (last 15 "
                    "minutes of event time), open alerts. Data version: the newest batch of windows. Checks: "
                    "om_stream_alive (the process beats), om_stream_fresh (windows keep landing: warning after "
                    f"{int(STALL_AFTER.total_seconds() // 60)} minutes without one, error after "
                    f"{int(DOWN_AFTER.total_seconds() // 60)}).",
        automation_condition=OBSERVE,
        owners=["team:data-platform"],
    )],
)
def om_inverters_stream(warehouse: WarehouseResource) -> dg.ObserveResult:
    health = stream_health(warehouse)
    if not health:
        return dg.ObserveResult(metadata={"status": "never ran"})
    last_batch = health["last_batch_at"]
    metadata = {
        "status": "beating" if health["heartbeat_age_s"] <= HEARTBEAT_MAX_AGE.total_seconds() else "silent",
        "source": health["source"],
        "instances": health["instances"],
        "pid": health["pid"],
        "started_at": _when(health["started_at"]),
        "heartbeat_age_s": round(health["heartbeat_age_s"], 1),
        "last_batch_at": _when(last_batch),
        "last_window_end": _when(health["last_window_end"]),
        "lag_s": round(health["lag_s"], 1) if health["lag_s"] is not None else "none",
        "windows_15min": health["windows_15min"],
        "events_per_min": health["events_per_min"],
        "open_alerts": health["open_alerts"],
        "newest_alert_opened_at": _when(health["newest_alert_opened_at"]),
    }
    newest = health["newest_batch_at"]
    if newest is None:  # started, nothing written yet: nothing new to version
        return dg.ObserveResult(metadata=metadata)
    # when the service last wrote data (Dagster's "last updated"), and that batch as the version
    metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(newest)
    return dg.ObserveResult(metadata=metadata, data_version=dg.DataVersion(newest.isoformat()))


@dg.asset_check(asset=om_inverters_stream, blocking=False,
                description="The O&M stream process beats (heartbeat younger than a minute, by the warehouse's "
                            "clock).")
def om_stream_alive(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    health = stream_health(warehouse)
    if not health:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"reason": "never ran"})
    age = health["heartbeat_age_s"]
    return dg.AssetCheckResult(passed=age <= HEARTBEAT_MAX_AGE.total_seconds(),
                               metadata={"heartbeat_age_s": round(age, 1), "pid": health["pid"],
                                         "source": health["source"]})


@dg.asset_check(asset=om_inverters_stream, blocking=False,
                description=f"Windows keep landing: the newest batch of windows is at most "
                            f"{int(STALL_AFTER.total_seconds() // 60)} minutes old by the warehouse's clock "
                            f"(warning beyond, error after {int(DOWN_AFTER.total_seconds() // 60)} minutes or "
                            "when no window was ever written).")
def om_stream_fresh(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    health = stream_health(warehouse)
    passed, severity, reason = stream_freshness(health)
    metadata = {"reason": reason}
    if health:
        metadata.update({"last_batch_at": _when(health["last_batch_at"]),
                         "last_window_end": _when(health["last_window_end"]),
                         "batch_age_s": round(health["batch_age_s"], 1) if health["batch_age_s"] is not None
                         else "none"})
    return dg.AssetCheckResult(passed=passed, severity=severity, metadata=metadata)


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


#: an observation of the stream with its checks, by hand (the automation condition runs it every 5 minutes)
om_stream_job = dg.define_asset_job("om_stream_observe", selection=dg.AssetSelection.assets(om_inverters_stream),
                                    description="Observe the running O&M stream and check it.")
#: evaluates OBSERVE (the default automation sensor would start stopped in a new deployment)
om_stream_automation = dg.AutomationConditionSensorDefinition(
    "om_stream_automation", target=dg.AssetSelection.assets(om_inverters_stream), minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Observes the running O&M stream every 5 minutes (with its checks).")
om_daily_job = dg.define_asset_job("om_daily", selection=[om_alerts_daily], partitions_def=DAILY)
om_daily_schedule = dg.build_schedule_from_partitioned_job(om_daily_job, hour_of_day=6, minute_of_hour=0,
                                                           name="om_daily_0600")

#: the job's Dagster definitions (merged with the others in ysh.definitions)
defs = dg.Definitions(
    assets=[om_inverters_stream, om_alerts_daily], asset_checks=[om_stream_alive, om_stream_fresh],
    jobs=[om_stream_job, om_daily_job], schedules=[om_daily_schedule], sensors=[om_stream_automation],
)
