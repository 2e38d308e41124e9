"""Notifications to Slack through an incoming webhook (httpx; retries; rate limit).

The webhook URL is a secret (``YSH_SLACK_WEBHOOK_URL``); it is never logged.

The outbox (``ops_alerts_sent``) keeps every notice until Slack took it: without a webhook
the notices stay pending (and each sender says so), so a worker that lacks the webhook
never swallows them; each sender takes only its own kinds; a notice Slack refuses for good
(a 4xx other than 429: a revoked webhook, a bad payload) is tried at most
``YSH_SLACK_MAX_ATTEMPTS`` times and then kept as ``failed`` with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("ysh.notify")


class NotifyError(RuntimeError):
    """``permanent``: Slack refused the message (4xx other than 429); sending it again as it
    is will not help."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


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
                    raise NotifyError(f"Slack refused the message: HTTP {response.status_code} {response.text[:200]}",
                                      permanent=True)
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
    waiting: int = 0  # pending notices of this sender's kinds left for want of a webhook
    failed: list[str] = field(default_factory=list)  # refused for good: kept as 'failed' with the reason
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


def send_pending(conn, slack: SlackNotifier, report: DeliveryReport | None = None, *,
                 kinds: tuple[str, ...], max_attempts: int = 5) -> list[str]:
    """Send the outbox's pending notices of ``kinds`` (each sender names its own: the O&M
    service sends the O&M notices, the alerts flow the rest), oldest first, whatever their
    age; returns the failures (``key: error``). Each row is claimed with ``FOR UPDATE SKIP
    LOCKED`` for the time of its send, so two senders never send the same notice.

    A notice Slack does not take stays pending with its error, to be sent again by the next
    call (the others still go out); one refused for good (:attr:`NotifyError.permanent`)
    becomes ``failed`` on its ``max_attempts``-th refusal. Without a webhook nothing is
    claimed: the notices stay pending, counted in ``report.waiting``, and a warning says
    so. ``conn``: an autocommit psycopg connection."""
    report = report if report is not None else DeliveryReport()
    if not kinds:
        raise ValueError("send_pending needs the kinds of notices this sender delivers")
    if not slack.configured:
        report.waiting = conn.execute("SELECT count(*) FROM ops_alerts_sent WHERE status = 'pending' "
                                      "AND kind = ANY(%s)", (list(kinds),)).fetchone()[0]
        if report.waiting:
            log.warning("%d notice(s) of %s pending: no Slack webhook configured (YSH_SLACK_WEBHOOK_URL); "
                        "they stay in the outbox until a sender with one delivers them",
                        report.waiting, ", ".join(kinds))
        return []
    failures: list[str] = []
    tried: list[str] = []
    while True:
        with conn.transaction():
            row = conn.execute(
                "SELECT alert_key, summary, attempts FROM ops_alerts_sent WHERE status = 'pending' "
                "AND NOT (alert_key = ANY(%s)) AND kind = ANY(%s) "
                "ORDER BY created_at, alert_key LIMIT 1 FOR UPDATE SKIP LOCKED",
                (tried, list(kinds))).fetchone()
            if row is None:
                return failures
            key, text, attempts = row
            tried.append(key)
            try:
                slack.send(text)
            except NotifyError as exc:
                give_up = exc.permanent and attempts + 1 >= max_attempts
                conn.execute("UPDATE ops_alerts_sent SET attempts = attempts + 1, last_error = %s, status = %s "
                             "WHERE alert_key = %s", (str(exc)[:500], "failed" if give_up else "pending", key))
                failures.append(f"{key}: {exc}")
                if give_up:
                    report.failed.append(key)
                    log.error("alert %s refused %d times, kept as failed: %s", key, attempts + 1, exc)
                else:
                    log.warning("alert %s not delivered: %s", key, exc)
                continue
            conn.execute("UPDATE ops_alerts_sent SET status = 'sent', attempts = attempts + 1, sent_at = now(), "
                         "last_error = NULL WHERE alert_key = %s", (key,))
        report.sent.append(key)
        log.info("sent %s", key)


def deliver_notices(settings, notices: list[Notice], kinds: tuple[str, ...]) -> DeliveryReport:
    """The outbox (``ops_alerts_sent``): record new notices as pending (committed first),
    then send every pending one of ``kinds``, including those an earlier run could not
    deliver. Raises NotifyError at the end when some were refused (they stay pending, or
    are kept as failed after ``YSH_SLACK_MAX_ATTEMPTS`` refusals)."""
    from . import db

    report = DeliveryReport(found=len(notices))
    with db.connect(db.resolve_dsn(settings), settings.warehouse.schema_name, autocommit=True) as conn, \
            SlackNotifier.from_settings(settings) as slack:
        enqueue_notices(conn, notices, report)
        failures = send_pending(conn, slack, report, kinds=kinds, max_attempts=settings.ops.slack_max_attempts)
    if failures:
        raise NotifyError(f"{len(failures)} alert(s) not delivered: {len(failures) - len(report.failed)} kept pending "
                          f"for the next run, {len(report.failed)} kept as failed: " + "; ".join(failures)[:1000])
    return report
