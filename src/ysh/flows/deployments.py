"""The platform's Prefect flows, their schedules, and how to serve or run them.

``ysh flows serve`` serves every scheduled flow from this process (``prefect.serve``:
a Prefect API is needed — ``PREFECT_API_URL``, or Prefect's ephemeral local server);
``ysh flows run NAME`` runs one now, in-process.
"""

from __future__ import annotations

from dataclasses import dataclass

TIMEZONE = "America/Sao_Paulo"


@dataclass(frozen=True)
class Scheduled:
    cron: str | None  # None: on demand only
    description: str


SCHEDULES: dict[str, Scheduled] = {
    "backup": Scheduled("0 3 * * *", "pg_dump of the platform schema + landing folders to S3, with retention"),
    "alerts": Scheduled("*/5 * * * *", "Slack alerts for Dagster failures, failed checks and O&M digests"),
    "migrate_legacy": Scheduled(None, "import a legacy ERP export through the catalog normalizer"),
    "restore": Scheduled(None, "restore a named backup into an empty database"),
}


def flows() -> dict:
    """name → Prefect flow (the backup flow carries the failed-twice alert hook)."""
    from .alerts import alerts, notify_backup_failed_twice
    from .backup import backup, restore
    from .migrate_legacy import migrate_legacy

    return {
        "backup": backup.with_options(on_failure=[notify_backup_failed_twice],
                                      on_crashed=[notify_backup_failed_twice]),
        "alerts": alerts,
        "migrate_legacy": migrate_legacy,
        "restore": restore,
    }


def deployments() -> list:
    """One deployment per scheduled flow, with its cron in America/Sao_Paulo."""
    from prefect.schedules import Cron

    out = []
    for name, flow in flows().items():
        scheduled = SCHEDULES[name]
        if scheduled.cron is None:
            continue
        out.append(flow.to_deployment(name=f"ysh-{name}", schedule=Cron(scheduled.cron, timezone=TIMEZONE),
                                      description=scheduled.description, tags=["ysh"]))
    return out


def serve() -> None:
    """Serve the scheduled flows until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments())
