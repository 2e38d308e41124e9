"""Dagster assets of the RAG job (thin wrappers).

Lineage: ``rag_docs_raw`` (the documents folder the service reads) → ``helio_rag_index``
(the running ``ysh rag serve``, observed through ``/v1/statistics``) → ``rag_embeddings``
(the durable pgvector copy, ``rag_chunks``).

- ``helio_rag_index``: the running service is not something Dagster computes, so it is an
  *observable* asset: every hour (automation condition, evaluated by the sensor
  ``helio_rag_automation``; job ``helio_rag_observe`` by hand) an observation records what
  ``/v1/statistics`` says (files, chunks, errors, last indexed, last modified, index lag),
  or that the service does not answer. Its data version is the last indexing and the
  chunk count. The observation never judges; the check ``helio_rag_index_fresh`` rides
  along and fails when the service does not answer or when the index is older than the
  newest document by more than a minute (a stuck pipeline that still answers).
"""


from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import httpx

from ..console import markdown_table
from ..db import Warehouse
from ..resources import SettingsResource, WarehouseResource
from ..settings import Settings

GROUP = "rag"
#: how often the service is observed (São Paulo time)
OBSERVE_CRON = "0 * * * *"
TIMEZONE = "America/Sao_Paulo"
OBSERVE = (
    dg.AutomationCondition.cron_tick_passed(OBSERVE_CRON, TIMEZONE) & ~dg.AutomationCondition.in_progress()
).with_label(f"hourly ({OBSERVE_CRON}, {TIMEZONE})")
#: the index may trail its newest document by this much
MAX_INDEX_LAG = timedelta(minutes=1)
#: the service answers nothing while it embeds its initial batch; wait this long
STATISTICS_TIMEOUT_S = 30.0

FORMATS = {".pdf": "pdf", ".docx": "docx", ".md": "markdown", ".markdown": "markdown", ".html": "html",
           ".htm": "html", ".txt": "text"}


# --------------------------------------------------------------------------------------
# plain functions (the assets below and the CLI call them)
# --------------------------------------------------------------------------------------
def docs_inventory(folder: Path) -> dict:
    """What the documents folder holds: files, bytes and files by format, newest
    modification (UTC). Hidden files are skipped."""
    files = [p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                        p.relative_to(folder).parts)]
    by_format: dict[str, dict[str, int]] = {}
    newest = None
    total = 0
    for path in files:
        stat = path.stat()
        fmt = FORMATS.get(path.suffix.lower(), path.suffix.lower().lstrip(".") or "unknown")
        entry = by_format.setdefault(fmt, {"files": 0, "bytes": 0})
        entry["files"] += 1
        entry["bytes"] += stat.st_size
        total += stat.st_size
        modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
        newest = modified if newest is None or modified > newest else newest
    return {"folder": str(folder), "files": len(files), "bytes": total, "newest_modified": newest,
            "by_format": dict(sorted(by_format.items()))}


def _as_datetime(value) -> datetime | None:
    """A statistics timestamp (unix seconds, or ISO 8601) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def service_statistics(url: str, api_key: str | None = None, timeout_s: float = STATISTICS_TIMEOUT_S) -> dict:
    """``GET /v1/statistics`` of the running service, with the timestamps parsed
    (``last_indexed``, ``last_modified``: aware datetimes) and ``errors`` as a count.
    Raises ``httpx.HTTPError`` when it does not answer."""
    headers = {"X-API-Key": api_key} if api_key else {}
    response = httpx.get(url.rstrip("/") + "/v1/statistics", headers=headers, timeout=timeout_s)
    response.raise_for_status()
    raw = response.json()
    errors = raw.get("errors", 0)
    return {**raw,
            "files": int(raw.get("files", raw.get("file_count")) or 0),
            "chunks": raw.get("chunks"),
            "errors": len(errors) if isinstance(errors, (list, dict)) else int(errors or 0),
            "last_indexed": _as_datetime(raw.get("last_indexed")),
            "last_modified": _as_datetime(raw.get("last_modified"))}


def index_lag(stats: dict, folder_newest: datetime | None) -> timedelta | None:
    """How far the index trails its newest document (``last_modified`` the service saw, or
    a newer file in the folder); None when nothing is known. Zero or negative: fresh."""
    newest = max((t for t in (stats.get("last_modified"), folder_newest) if t is not None), default=None)
    if newest is None:
        return None
    indexed = stats.get("last_indexed")
    if indexed is None:
        return timedelta.max
    return newest - indexed


def _api_key(settings: Settings) -> str | None:
    return settings.rag.api_key.get_secret_value() if settings.rag.api_key else None


def _folder_newest(settings: Settings) -> datetime | None:
    folder = settings.rag.docs_dir
    if settings.rag.source != "fs" or not folder.is_dir():
        return None
    return docs_inventory(folder)["newest_modified"]


def _bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------------------
# assets
# --------------------------------------------------------------------------------------
@dg.asset(
    group_name=GROUP,
    kinds={"file"},
    description="The documents Hélio indexes (YSH_RAG_DOCS_DIR, default HOME/docs: PDF, DOCX, Markdown, HTML, TXT): "
                "files, bytes and files by format, newest modification. Fails when the folder is missing or empty.",
    owners=["team:data-platform"],
)
def rag_docs_raw(settings: SettingsResource) -> dg.MaterializeResult:
    settings = settings.get()
    folder = settings.rag.docs_dir
    if settings.rag.source != "fs":
        raise dg.Failure(f"documents come from {settings.rag.source} (YSH_RAG_SOURCE); rag_docs_raw inventories "
                         "the local folder only — watch helio_rag_index instead")
    if not folder.is_dir():
        raise dg.Failure(f"the documents folder {folder} does not exist (set YSH_RAG_DOCS_DIR, or copy "
                         "data/sample/docs there)")
    inventory = docs_inventory(folder)
    if inventory["files"] == 0:
        raise dg.Failure(f"the documents folder {folder} is empty: Hélio would answer from nothing")
    newest = inventory["newest_modified"]
    return dg.MaterializeResult(
        metadata={
            "folder": dg.MetadataValue.path(str(folder)),
            "files": inventory["files"],
            "bytes": inventory["bytes"],
            "newest_modified": dg.MetadataValue.timestamp(newest),
            "formats": dg.MetadataValue.md(markdown_table(
                ["format", "files", "size"],
                [(fmt, v["files"], _bytes(v["bytes"])) for fmt, v in inventory["by_format"].items()])),
        },
        data_version=dg.DataVersion(f"{inventory['files']}:{inventory['bytes']}:{newest.isoformat()}"),
    )


@dg.multi_observable_source_asset(
    specs=[dg.AssetSpec(
        "helio_rag_index",
        group_name=GROUP,
        # what the service reads: the documents, the live records (ysh.rag.records: products +
        # items_normalized, tarifas_normalized (+ tarifas_fio_b) + tarifas_bandeiras) and, for
        # /v1/catalog/search, the catalog_embeddings vectors
        deps=[rag_docs_raw, "catalog_products", "catalog_normalized", "catalog_embeddings", "tarifas_normalized",
              "tarifas_bandeiras"],
        kinds={"pathway"},
        description="The live hybrid index of the running `ysh rag serve` (Hélio API), observed hourly through "
                    "/v1/statistics: files, chunks, errors, last indexed, last modified and index lag, or that the "
                    "service does not answer. Data version: last indexed and chunks. Check helio_rag_index_fresh: "
                    "the service answers and its index is no older than its newest document by more than a minute.",
        automation_condition=OBSERVE,
        owners=["team:data-platform"],
    )],
)
def helio_rag_index(settings: SettingsResource) -> dg.ObserveResult:
    settings = settings.get()
    url = settings.rag.url
    try:
        stats = service_statistics(url, _api_key(settings))
    except (httpx.HTTPError, ValueError) as exc:  # down: recorded, judged by the check
        return dg.ObserveResult(metadata={"status": "not answering", "url": dg.MetadataValue.url(url),
                                          "error": f"{type(exc).__name__}: {exc}"})
    lag = index_lag(stats, _folder_newest(settings))
    indexed = stats["last_indexed"]
    metadata = {
        "status": "answering",
        "url": dg.MetadataValue.url(url),
        "files": stats["files"],
        "chunks": stats["chunks"] if stats["chunks"] is not None else "unknown",
        "errors": stats["errors"],
        "last_indexed": dg.MetadataValue.timestamp(indexed) if indexed else "never",
        "last_modified": dg.MetadataValue.timestamp(stats["last_modified"]) if stats["last_modified"] else "unknown",
        "index_lag_s": round(lag.total_seconds(), 1) if lag not in (None, timedelta.max) else "unknown",
    }
    if indexed is None:  # answering, nothing indexed yet: nothing to version
        return dg.ObserveResult(metadata=metadata)
    # when the service last indexed (Dagster's "last updated"), and that index as the version
    metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(indexed)
    return dg.ObserveResult(metadata=metadata, data_version=dg.DataVersion(f"{indexed.isoformat()}:{stats['chunks']}"))


@dg.asset_check(asset=helio_rag_index, blocking=False,
                description="The Hélio API answers and its index is no older than its newest document by more "
                            "than a minute (newest of the service's last_modified and the folder's files).")
def helio_rag_index_fresh(settings: SettingsResource) -> dg.AssetCheckResult:
    settings = settings.get()
    url = settings.rag.url
    try:
        stats = service_statistics(url, _api_key(settings))
    except (httpx.HTTPError, ValueError) as exc:
        return dg.AssetCheckResult(passed=False, metadata={"url": url, "reason": f"no answer: {type(exc).__name__}"})
    lag = index_lag(stats, _folder_newest(settings))
    if lag is None:
        return dg.AssetCheckResult(passed=stats["files"] == 0, metadata={"url": url, "reason": "no timestamps"})
    if lag == timedelta.max:
        return dg.AssetCheckResult(passed=False, metadata={"url": url, "reason": "never indexed"})
    return dg.AssetCheckResult(passed=lag <= MAX_INDEX_LAG,
                               metadata={"url": url, "index_lag_s": round(lag.total_seconds(), 1),
                                         "files": stats["files"], "errors": stats["errors"]})


def embeddings_summary(warehouse: Warehouse) -> dict:
    from .vectors import VectorStore

    with VectorStore(warehouse) as store:
        return store.stats()


@dg.asset(
    group_name=GROUP,
    deps=[helio_rag_index],
    kinds={"postgres"},
    description="rag_chunks: the durable pgvector copy of the index written by `ysh rag serve` (one row per "
                "chunk: text, metadata, content hash, model, dimension, vector; HNSW cosine index): chunks, "
                "documents, models and dimensions, last update, chunks by format. Fails when it is empty.",
    owners=["team:data-platform"],
)
def rag_embeddings(warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    summary = embeddings_summary(wh)
    if not summary["chunks"]:
        raise dg.Failure("rag_chunks is empty: is `ysh rag serve` running with YSH_RAG_PGVECTOR=true?")
    main = summary["models"][0]
    return dg.MaterializeResult(
        metadata={
            "chunks": summary["chunks"],
            "documents": summary["documents"],
            "model": main["model"],
            "dimension": main["dim"],
            "last_update": dg.MetadataValue.timestamp(summary["last_update"]),
            "models": dg.MetadataValue.md(markdown_table(["model", "dimension", "chunks"],
                                                         [(m["model"], m["dim"], m["chunks"])
                                                          for m in summary["models"]])),
            "by_format": dg.MetadataValue.md(markdown_table(["format", "chunks"],
                                                            list(summary["by_format"].items()))),
        },
        data_version=dg.DataVersion(f"{summary['chunks']}:{summary['last_update'].isoformat()}"),
    )


#: an observation of the service with its check, by hand (the automation condition runs it hourly)
helio_rag_observe_job = dg.define_asset_job(
    "helio_rag_observe", selection=dg.AssetSelection.assets(helio_rag_index),
    description="Observe the running Hélio service and check its index.")
#: evaluates OBSERVE (the default automation sensor would start stopped in a new deployment)
helio_rag_automation = dg.AutomationConditionSensorDefinition(
    "helio_rag_automation", target=dg.AssetSelection.assets(helio_rag_index), minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Observes the running Hélio service hourly (with its freshness check).")

#: the job's Dagster definitions (merged with the others in ysh.definitions)
defs = dg.Definitions(
    assets=[rag_docs_raw, helio_rag_index, rag_embeddings], asset_checks=[helio_rag_index_fresh],
    jobs=[helio_rag_observe_job], sensors=[helio_rag_automation],
)

__all__ = ["defs", "docs_inventory", "service_statistics", "index_lag", "embeddings_summary"]
