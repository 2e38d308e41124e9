"""One logging setup for the CLI, pipelines and flows, and Prometheus metrics for the
long-running services (followers, watchers).

* ``YSH_LOG_JSON=true`` → one JSON object per line on stderr (python-json-logger:
  timestamp, level, logger, message and any ``extra=`` fields); else plain text.
* ``YSH_METRICS_PORT=N`` → the long-running services expose ``/metrics`` on
  127.0.0.1:N (prometheus_client): rows written per pipeline and table, the time of the
  last change, CDC transactions and replication lag (commit → handed to Pathway).
* ``YSH_PATHWAY_MONITORING=true`` → Pathway's own monitoring HTTP server as well
  (``pw.run(with_http_server=True)``: port 20000 + process id).
"""

from __future__ import annotations

import logging
import time as clock
from datetime import datetime, timezone

from prometheus_client import Counter, Gauge, start_http_server

ROWS = Counter("ysh_pipeline_rows", "Rows a pipeline wrote to an output (additions and retractions).",
               ["pipeline", "table", "change"])
LAST_CHANGE = Gauge("ysh_pipeline_last_change_timestamp_seconds", "When an output last changed (Unix time).",
                    ["pipeline", "table"])
CDC_TRANSACTIONS = Counter("ysh_cdc_transactions", "PostgreSQL transactions handed to Pathway.", ["table"])
CDC_LAG = Gauge("ysh_cdc_lag_seconds", "Commit time → handed to Pathway, for the last transaction.", ["table"])

_configured = False


def setup_logging(level: str = "INFO", json_logs: bool = False) -> None:
    """Configure the root logger once (idempotent); Pathway then keeps this setup."""
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler()
    if json_logs:
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                                           rename_fields={"asctime": "timestamp", "levelname": "level",
                                                          "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("[%(asctime)s]:%(levelname)s:%(name)s:%(message)s",
                                               "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for chatty in ("httpx", "httpcore"):  # one INFO line per HTTP request
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    _configured = True


def setup_from_settings(settings) -> None:
    setup_logging(settings.observability.log_level, settings.observability.log_json)
    if settings.observability.metrics_port:
        start_metrics(settings.observability.metrics_port)


_metrics_port: int | None = None


def start_metrics(port: int) -> int:
    """Serve ``/metrics`` from a daemon thread, once per process. In a multi-process
    Pathway run (``pathway spawn``) process N serves on ``port + N``."""
    global _metrics_port
    if _metrics_port is None:
        import os

        _metrics_port = port + int(os.environ.get("PATHWAY_PROCESS_ID", "0"))
        start_http_server(_metrics_port, addr="127.0.0.1")
        logging.getLogger("ysh.metrics").info("Prometheus metrics on http://127.0.0.1:%d/metrics", _metrics_port)
    return _metrics_port


def observe_table(table, pipeline: str, name: str) -> None:
    """Count a Pathway table's changes into the metrics (a subscriber; cheap per row)."""
    import pathway as pw

    added = ROWS.labels(pipeline, name, "insert")
    removed = ROWS.labels(pipeline, name, "delete")
    last = LAST_CHANGE.labels(pipeline, name)

    def on_change(key, row, time, is_addition):  # noqa: A002 - Pathway passes it by this name
        (added if is_addition else removed).inc()
        last.set(clock.time())

    pw.io.subscribe(table, on_change=on_change, name=f"metrics_{pipeline}_{name}")


def cdc_committed(table: str, commit_ts: datetime) -> None:
    CDC_TRANSACTIONS.labels(table).inc()
    CDC_LAG.labels(table).set(max(0.0, (datetime.now(timezone.utc) - commit_ts).total_seconds()))
