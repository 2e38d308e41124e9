"""Legacy sources through the catalog normalizer, and the plan: which items and quarantine
rows differ from the warehouse (pure)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .. import parsing as p
from ..feeds import FeedRecord
from ..items import CatalogItem
from ..normalize import QuarantinedRow, normalize_record
from .mapping import MappedRecord, map_legacy_row
from .readers import LegacySource

#: the record dict handed to the normalizer: these headers map to themselves.
RECORD_FIELDS: tuple[str, ...] = ("sku", "description", "brand", "model", "category", "power_w",
                                  "price", "stock", "inmetro")
_CATALOG_MAPPING = p.map_headers(list(RECORD_FIELDS))
assert _CATALOG_MAPPING.power_unit == "W" and not _CATALOG_MAPPING.unknown

#: ``items_normalized`` columns written by the flow (besides ``ingested_at``), in order.
ITEM_COLUMNS: tuple[str, ...] = tuple(
    "source_line" if name == "line" else name for name in CatalogItem._fields)
QUARANTINE_COLUMNS = ("distributor", "reason", "detail", "raw")


# --------------------------------------------------------------------------------------
# normalization through the catalog normalizer (pure)
# --------------------------------------------------------------------------------------


@dataclass
class SourceCounts:
    source: str
    rows: int = 0
    items: int = 0  # rows that became an item (before de-duplication across rows)
    quarantined: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class NormalizedBatch:
    items: dict[tuple[str, str], CatalogItem]  # (distributor, sku) -> the winning row
    quarantine: dict[tuple[str, int], QuarantinedRow]  # (source_file, line)
    sources: dict[str, SourceCounts]
    duplicate_skus: int = 0


def _legacy_raw(record: FeedRecord) -> str:
    raw: dict[str, Any] = {k: v for k, v in record.fields.items()}
    if record.raw_text is not None and not record.fields:
        raw = {"_text": record.raw_text}
    if record.extra:
        raw["_extra"] = list(record.extra)
    safe = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in raw.items()}
    return json.dumps(safe, ensure_ascii=False, default=str)


def normalize_source(source: LegacySource, *, distributor: str | None = None
                     ) -> list[CatalogItem | QuarantinedRow]:
    """Every row of one source as a catalog item or a quarantined row (in row order).

    A quarantined row's ``raw`` is the legacy row as exported (legacy column names)."""
    results: list[CatalogItem | QuarantinedRow] = []
    for record in source.records:
        if record.error:  # a CSV line the reader could not split (malformed_row)
            mapped = MappedRecord({}, distributor or source.default_distributor,
                                  (record.error, record.detail or record.error))
        else:
            mapped = map_legacy_row(record.fields, source.columns,
                                    default_distributor=source.default_distributor,
                                    distributor=distributor)
        reason, detail = mapped.rejection or (None, None)
        feed_record = FeedRecord(line=record.line, fields=mapped.fields, error=reason, detail=detail)
        result = normalize_record(feed_record, _CATALOG_MAPPING, distributor=mapped.distributor,
                                  source_file=source.source_file, as_of=source.as_of)
        if isinstance(result, QuarantinedRow):
            result = result._replace(raw=_legacy_raw(record))
        results.append(result)
    return results


def normalize_sources(sources: Sequence[LegacySource], *, distributor: str | None = None) -> NormalizedBatch:
    """All sources, in order: the last row of a ``(distributor, sku)`` wins."""
    batch = NormalizedBatch({}, {}, {})
    for source in sources:
        counts = batch.sources.setdefault(source.source_file, SourceCounts(source.source_file))
        for result in normalize_source(source, distributor=distributor):
            counts.rows += 1
            if isinstance(result, QuarantinedRow):
                counts.quarantined += 1
                batch.quarantine[(result.source_file, result.line)] = result
                continue
            counts.items += 1
            key = (result.distributor, result.sku)
            if key in batch.items:
                batch.duplicate_skus += 1
                del batch.items[key]  # re-insert: the order follows the winning row
            batch.items[key] = result
    return batch


# --------------------------------------------------------------------------------------
# the plan: what differs from the warehouse (pure)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One item that would be (or was) written: ``fields`` maps a changed column to
    ``(old, new)`` (empty for an insert)."""

    action: str  # insert | update
    distributor: str
    sku: str
    source: str
    line: int
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.action == "insert":
            return "new item"
        return "; ".join(f"{name}: {_fmt(old)} → {_fmt(new)}" for name, (old, new) in self.fields.items())


@dataclass
class MigrationPlan:
    inserts: list[dict[str, Any]]
    updates: list[dict[str, Any]]
    unchanged: int
    quarantine_upserts: list[dict[str, Any]]
    quarantine_deletes: list[tuple[str, int]]
    changes: list[Change]


def item_row(item: CatalogItem) -> dict[str, Any]:
    """An item as the columns of ``items_normalized`` (without ``ingested_at``)."""
    values = item._asdict()
    values["source_line"] = values.pop("line")
    return {name: values[name] for name in ITEM_COLUMNS}


def quarantine_row(row: QuarantinedRow) -> dict[str, Any]:
    return {"source_file": row.source_file, "line": row.line, "distributor": row.distributor,
            "reason": row.reason, "detail": row.detail, "raw": json.loads(row.raw)}


def plan_changes(batch: NormalizedBatch, existing_items: Mapping[tuple[str, str], Mapping[str, Any]],
                 existing_quarantine: Mapping[tuple[str, int], Mapping[str, Any]]) -> MigrationPlan:
    """Compare the batch with the warehouse rows of the same keys (and, for quarantine,
    of the same sources) and update the per-source counts of ``batch.sources``."""
    plan = MigrationPlan([], [], 0, [], [], [])
    for key, item in batch.items.items():
        new = item_row(item)
        old = existing_items.get(key)
        counts = batch.sources[item.source_file]
        if old is None:
            plan.inserts.append(new)
            counts.inserted += 1
            plan.changes.append(Change("insert", item.distributor, item.sku, item.source_file, item.line))
            continue
        diff = {name: (old.get(name), new[name]) for name in ITEM_COLUMNS if old.get(name) != new[name]}
        if diff:
            plan.updates.append(new)
            counts.updated += 1
            plan.changes.append(Change("update", item.distributor, item.sku, item.source_file, item.line, diff))
        else:
            plan.unchanged += 1
            counts.unchanged += 1
    for key, row in batch.quarantine.items():
        new = quarantine_row(row)
        old = existing_quarantine.get(key)
        if old is None or any(old.get(c) != new[c] for c in QUARANTINE_COLUMNS):
            plan.quarantine_upserts.append(new)
    plan.quarantine_deletes = sorted(k for k in existing_quarantine
                                     if k[0] in batch.sources and k not in batch.quarantine)
    return plan


def _fmt(value: Any) -> str:
    return "∅" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
