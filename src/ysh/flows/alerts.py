"""Prefect flow ``alerts``: Slack notifications for Dagster run failures, failed asset
checks and O&M alert digests, each sent once (``ops_alerts_sent``).

Dagster is read from its instance (``$YSH_HOME/dagster``, the one ``ysh ui`` and the
daemon use): failed runs and failed check evaluations since ``lookback_minutes``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from .. import db
from ..console import markdown_table
from ..notify import DeliveryReport, Notice, NotifyError, SlackNotifier, deliver_notices
from ..settings import Settings, get_settings


Alert = Notice  # the flow's name for an outbox entry
AlertsReport = DeliveryReport

#: the outbox rows this flow sends (the O&M service sends its own: ysh.om.sinks.OM_NOTICE_KINDS)
ALERT_KINDS = ("dagster_run_failure", "dagster_check_failure", "om_digest", "backup_failed_twice", "catalog_feed_held")


def _dagster_instance(settings: Settings):
    import dagster as dg

    from .. import dagster_instance

    dagster_instance.use(settings)  # DAGSTER_HOME, and the password its dagster.yaml reads
    return dg.DagsterInstance.get()


def _root_message(error) -> str:
    """The innermost cause of a Dagster serializable error, as one line."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = (error.message or "").strip().splitlines()
    return lines[-1] if lines else "unknown error"


@task(retries=2, retry_delay_seconds=5)
def dagster_failures(settings: Settings, since: datetime) -> list[Alert]:
    """Failed runs and failed check evaluations recorded since ``since``."""
    import dagster as dg

    instance = _dagster_instance(settings)
    alerts = []
    for record in instance.get_run_records(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], updated_after=since), limit=200):
        run = record.dagster_run
        steps = [e.dagster_event for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
        why = "; ".join(f"{e.step_key}: {_root_message(e.step_failure_data.error)}"
                        for e in steps if e.step_failure_data and e.step_failure_data.error)[:300]
        ended = datetime.fromtimestamp(record.end_time, timezone.utc) if record.end_time else None
        alerts.append(Alert(f"dagster-run:{run.run_id}", "dagster_run_failure",
                            f":red_circle: Dagster run failed: job `{run.job_name}` (run {run.run_id[:8]})"
                            + (f", ended {ended:%Y-%m-%d %H:%M UTC}" if ended else "") + (f" — {why}" if why else "")))
    for record in instance.get_event_records(
            dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_timestamp=since.timestamp()),
            limit=1000):
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        asset = evaluation.asset_key.to_user_string()
        alerts.append(Alert(f"dagster-check:{record.run_id}:{asset}:{evaluation.check_name}",
                            "dagster_check_failure",
                            f":warning: Dagster check failed ({evaluation.severity.value}): `{asset}` · "
                            f"`{evaluation.check_name}` (run {record.run_id[:8]})"))
    return alerts


@task
def om_digest(settings: Settings, since: datetime) -> list[Alert]:
    """O&M alerts opened since ``since`` and not reported yet, as one digest (when the O&M
    job's ``om_alerts`` table exists)."""
    with db.connect(db.resolve_dsn(settings), settings.warehouse.schema_name) as conn:
        if not conn.execute("SELECT to_regclass('om_alerts')").fetchone()[0]:
            return []
        rows = conn.execute(
            "SELECT alert_key, rule FROM om_alerts a WHERE opened_at >= %s AND NOT EXISTS "
            "(SELECT 1 FROM ops_alerts_sent s WHERE s.alert_key = 'om:' || a.alert_key) ORDER BY opened_at",
            (since,)).fetchall()
    if not rows:
        return []
    by_rule: dict[str, int] = {}
    for _, rule in rows:
        by_rule[rule] = by_rule.get(rule, 0) + 1
    keys = tuple(f"om:{key}" for key, _ in rows)
    import hashlib

    digest_id = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    lines = ", ".join(f"{rule}: {count}" for rule, count in sorted(by_rule.items(), key=lambda kv: -kv[1]))
    return [Alert(f"om-digest:{digest_id}", "om_digest", f":sunny: {len(rows)} new O&M alerts — {lines}", keys)]


@task
def deliver(settings: Settings, alerts_: list[Alert]) -> AlertsReport:
    return deliver_notices(settings, alerts_, kinds=ALERT_KINDS)


@flow(name="alerts")
def alerts(settings: Settings | None = None, lookback_minutes: int = 60) -> AlertsReport:
    """Notify Slack of new Dagster failures, failed checks and O&M alerts (each once)."""
    settings = settings or get_settings()
    db.migrate(db.resolve_dsn(settings), settings.warehouse.schema_name)
    since = datetime.now(timezone.utc) - timedelta(minutes=lookback_minutes)
    found = dagster_failures(settings, since) + om_digest(settings, since)
    report = deliver(settings, found)
    create_markdown_artifact(
        key="alerts-report",
        markdown=markdown_table(["found", "sent", "waiting for a webhook", "failed", "already sent"],
                                [(report.found, len(report.sent), report.waiting, len(report.failed),
                                  report.already_sent)]),
        description="Alerts delivered by this run",
    )
    return report


def notify_backup_failed_twice(flow, flow_run, state) -> None:
    """``on_failure``/``on_crashed`` hook of the backup flow: when the previous finished
    backup run also failed (or crashed), send one alert. When the warehouse itself is the
    trouble (the usual reason a backup fails twice), the alert goes straight to Slack."""
    import logging

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    log = logging.getLogger("ysh.flows.alerts")
    finished = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    with get_client(sync_client=True) as client:
        previous = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow.name])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(not_any_=[flow_run.id]),
                                          state=FlowRunFilterState(type=FlowRunFilterStateType(any_=finished))),
            sort=FlowRunSort.END_TIME_DESC, limit=1)
    if not previous or previous[0].state is None or previous[0].state.type not in (StateType.FAILED,
                                                                                    StateType.CRASHED):
        return
    settings = get_settings()
    alert = Alert(f"backup-failed-twice:{flow_run.id}", "backup_failed_twice",
                  f":rotating_light: Backup failed twice in a row (runs {previous[0].name} and {flow_run.name}): "
                  f"{state.message or 'see the Prefect logs'}")
    try:
        deliver_notices(settings, [alert], kinds=ALERT_KINDS)
    except NotifyError:
        raise
    except Exception as exc:  # noqa: BLE001 - the warehouse is down: tell Slack directly
        log.warning("could not record the alert (%s); sending it directly", exc)
        with SlackNotifier.from_settings(settings) as slack:
            slack.send(alert.text)
