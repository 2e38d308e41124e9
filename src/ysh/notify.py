"""Notifications to Slack through an incoming webhook (httpx; retries; rate limit).

The webhook URL is a secret (``YSH_SLACK_WEBHOOK_URL``); it is never logged. Without it,
messages are only logged, and :meth:`SlackNotifier.send` says so by returning False.
"""

from __future__ import annotations

import logging
import threading
import time

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
        url = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
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
