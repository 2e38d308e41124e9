"""Notifications to Slack through an incoming webhook (httpx; retries; rate limit).

The webhook URL is a secret (``YSH_SLACK_WEBHOOK_URL``); it is never logged. Without it,
messages are only logged, and :meth:`SlackNotifier.send` says so by returning False.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("ysh.notify")


class NotifyError(RuntimeError):
    pass


class SlackNotifier:
    """``send(text)`` posts ``{"text": text}`` to the webhook.

    Retries timeouts, network errors, 429 (honouring ``Retry-After``) and 5xx with
    exponential backoff; other answers fail at once. At most one message per
    ``min_interval_s`` (Slack allows about one per second per webhook)."""

    def __init__(self, webhook_url: str | None, *, timeout_s: float = 10.0, retries: int = 3,
                 backoff_s: float = 1.0, min_interval_s: float = 1.0, transport: httpx.BaseTransport | None = None):
        self._url = webhook_url
        self._retries, self._backoff, self._min_interval = retries, backoff_s, min_interval_s
        self._client = httpx.Client(timeout=timeout_s, transport=transport) if webhook_url else None
        self._lock = threading.Lock()
        self._last = 0.0

    @classmethod
    def from_settings(cls, settings, **kwargs) -> SlackNotifier:
        url = settings.ops.slack_webhook_url.get_secret_value() if settings.ops.slack_webhook_url else None
        return cls(url, **kwargs)

    @property
    def configured(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> SlackNotifier:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send(self, text: str) -> bool:
        """True when Slack accepted the message; False when no webhook is configured.

        Raises
        ------
        NotifyError
            Slack refused it, or it could not be delivered after the retries.
        """
        if self._client is None:
            log.info("no Slack webhook configured; alert: %s", text)
            return False
        with self._lock:
            wait = self._last + self._min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                return self._post(text)
            finally:
                self._last = time.monotonic()

    def _post(self, text: str) -> bool:
        last = ""
        for attempt in range(self._retries + 1):
            delay = self._backoff * 2 ** attempt
            try:
                response = self._client.post(self._url, json={"text": text})
            except httpx.TransportError as exc:
                last = type(exc).__name__
            else:
                if response.status_code < 300:
                    return True
                if response.status_code != 429 and response.status_code < 500:
                    raise NotifyError(f"Slack refused the message: HTTP {response.status_code} {response.text[:200]}")
                last = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    delay = float(retry_after)
            if attempt < self._retries:
                log.warning("Slack webhook: %s; retrying in %.1f s", last, delay)
                time.sleep(min(delay, 60.0))
        raise NotifyError(f"Slack webhook unreachable after {self._retries + 1} attempts: {last}")


# --------------------------------------------------------------------------- outbox


@dataclass(frozen=True)
class Notice:
    key: str  # stable: the same event always gets the same key
    kind: str  # dagster_run_failure | dagster_check_failure | om_digest | backup_failed_twice | om_opened | om_resolved
    text: str
    covers: tuple[str, ...] = ()  # further keys this alert reports (a digest's O&M alerts)


@dataclass
class DeliveryReport:
    found: int = 0
    sent: list[str] = field(default_factory=list)
    logged_only: list[str] = field(default_factory=list)
    already_sent: int = 0


def enqueue_notices(conn, notices: list[Notice], report: DeliveryReport | None = None) -> list[str]:
    """Record ``notices`` in the outbox (``ops_alerts_sent``) as pending, each key once;
    returns the keys that were new. ``conn``: an autocommit psycopg connection."""
    new = []
    for notice in notices:
        with conn.transaction():
            claimed = conn.execute(
                "INSERT INTO ops_alerts_sent (alert_key, kind, summary) VALUES (%s, %s, %s) "
                "ON CONFLICT (alert_key) DO NOTHING RETURNING alert_key",
                (notice.key, notice.kind, notice.text)).fetchone()
            if not claimed:
                if report is not None:
                    report.already_sent += 1
                continue
            new.append(notice.key)
            for covered in notice.covers:
                conn.execute("INSERT INTO ops_alerts_sent (alert_key, kind, summary, status) "
                             "VALUES (%s, 'covered', %s, 'covered') ON CONFLICT (alert_key) DO NOTHING",
                             (covered, f"in {notice.key}"))
    return new


def send_pending(conn, slack: SlackNotifier, report: DeliveryReport | None = None,
                 kinds: tuple[str, ...] | None = None) -> list[str]:
    """Send the outbox's pending notices (of ``kinds``, default all), oldest first,
    whatever their age; returns the failures (``key: error``). Each row is claimed with
    ``FOR UPDATE SKIP LOCKED`` for the time of its send, so two senders (the O&M service
    and the alerts flow) never send the same notice. A notice Slack does not take stays
    pending with its error, to be sent again by the next call; the others still go out.
    ``conn``: an autocommit psycopg connection."""
    report = report if report is not None else DeliveryReport()
    failures: list[str] = []
    tried: list[str] = []
    while True:
        with conn.transaction():
            row = conn.execute(
                "SELECT alert_key, summary FROM ops_alerts_sent WHERE status = 'pending' "
                "AND NOT (alert_key = ANY(%s)) AND (%s::text[] IS NULL OR kind = ANY(%s::text[])) "
                "ORDER BY created_at, alert_key LIMIT 1 FOR UPDATE SKIP LOCKED",
                (tried, list(kinds) if kinds else None, list(kinds) if kinds else None)).fetchone()
            if row is None:
                return failures
            key, text = row
            tried.append(key)
            try:
                delivered = slack.send(text)
            except NotifyError as exc:
                conn.execute("UPDATE ops_alerts_sent SET attempts = attempts + 1, last_error = %s "
                             "WHERE alert_key = %s", (str(exc)[:500], key))
                failures.append(f"{key}: {exc}")
                log.warning("alert %s not delivered: %s", key, exc)
                continue
            conn.execute("UPDATE ops_alerts_sent SET status = %s, attempts = attempts + 1, sent_at = now(), "
                         "last_error = NULL WHERE alert_key = %s", ("sent" if delivered else "logged", key))
        (report.sent if delivered else report.logged_only).append(key)
        log.info("%s %s", "sent" if delivered else "logged (no webhook)", key)


def deliver_notices(settings, notices: list[Notice]) -> DeliveryReport:
    """The outbox (``ops_alerts_sent``): record new notices as pending (committed first),
    then send every pending one, including those an earlier run could not deliver.
    Raises NotifyError at the end when some failed (they stay pending)."""
    from . import db

    report = DeliveryReport(found=len(notices))
    with db.connect(db.resolve_dsn(settings), settings.warehouse.schema_name, autocommit=True) as conn, \
            SlackNotifier.from_settings(settings) as slack:
        enqueue_notices(conn, notices, report)
        failures = send_pending(conn, slack, report)
    if failures:
        raise NotifyError(f"{len(failures)} alert(s) not delivered, kept pending for the next run: "
                          + "; ".join(failures)[:1000])
    return report
