"""Dagster: the warehouse's replication slots, watched.

A CDC follower (``ysh tariffs follow``, ``ysh proposals follow``) reads through a logical
replication slot, and the server keeps every WAL segment from the slot's position on
until the follower confirms it. A follower stopped for good lets that WAL grow until the
disk is full; the embedded server bounds it (``max_slot_wal_keep_size``, then the slot
is invalidated and its follower must start over), a managed server may not. The
observable asset ``warehouse_replication_slots`` records each slot and the WAL it holds
back (``pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)``), and its check
``replication_slots_wal_retained`` warns when a slot holds more than
``YSH_REPLICATION_SLOT_MAX_WAL_MB`` — while there is still time to restart or reset the
follower.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from .resources import SettingsResource, WarehouseResource

GROUP = "ops"
MB = 1024 * 1024

OBSERVE = dg.AutomationCondition.on_cron("*/15 * * * *")

SLOTS_SQL = (
    "SELECT slot_name, slot_type, active, wal_status, "
    "COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint AS retained_bytes "
    "FROM pg_replication_slots ORDER BY slot_name"
)


@dataclass(frozen=True)
class Slot:
    """One replication slot: its name, whether a follower reads it now, the server's
    ``wal_status`` (``reserved``, ``extended``, ``unreserved``, ``lost``) and the WAL it
    holds back [bytes]."""

    name: str
    kind: str
    active: bool
    wal_status: str | None
    retained_bytes: int


def replication_slots(warehouse: WarehouseResource) -> list[Slot]:
    """The server's replication slots (every schema's: the WAL is the server's)."""
    return [Slot(name, kind, bool(active), status, int(retained))
            for name, kind, active, status, retained in warehouse.query(SLOTS_SQL)]


def slots_over(slots: list[Slot], max_bytes: int) -> list[Slot]:
    """The slots holding back more than ``max_bytes`` of WAL, or already ``lost``
    (invalidated by ``max_slot_wal_keep_size``: their follower must be reset)."""
    return [s for s in slots if s.retained_bytes > max_bytes or s.wal_status == "lost"]


def judge(slots: list[Slot], max_bytes: int) -> tuple[bool, str]:
    """(passed, reason) of the WAL check."""
    over = slots_over(slots, max_bytes)
    if not over:
        most = max((s.retained_bytes for s in slots), default=0)
        return True, f"{len(slots)} slot(s), the most WAL held back {most / MB:.1f} MB (limit {max_bytes / MB:.0f} MB)"
    parts = [f"{s.name} {'lost' if s.wal_status == 'lost' else f'{s.retained_bytes / MB:.0f} MB'}"
             f"{'' if s.active else ' (no follower reading)'}" for s in over]
    return False, (f"replication slot(s) holding back more than {max_bytes / MB:.0f} MB of WAL: {', '.join(parts)}; "
                   "start the follower, or drop the slot with `ysh <job> follow --reset`")


@dg.multi_observable_source_asset(
    specs=[dg.AssetSpec(
        "warehouse_replication_slots",
        group_name=GROUP,
        kinds={"postgres"},
        description="The warehouse's logical replication slots (one per CDC follower table) and the WAL each holds "
                    "back, observed every 15 minutes. Check: replication_slots_wal_retained warns past "
                    "YSH_REPLICATION_SLOT_MAX_WAL_MB.",
        automation_condition=OBSERVE,
        owners=["team:data-platform"],
    )],
    check_specs=[dg.AssetCheckSpec("replication_slots_wal_retained", asset="warehouse_replication_slots",
                                   description="No replication slot holds back more WAL than "
                                               "YSH_REPLICATION_SLOT_MAX_WAL_MB (a stopped follower fills the disk).")],
)
def warehouse_replication_slots(warehouse: WarehouseResource, settings: SettingsResource):
    slots = replication_slots(warehouse)
    max_bytes = settings.get().ops.replication_slot_max_wal_mb * MB
    passed, reason = judge(slots, max_bytes)
    yield dg.ObserveResult(
        asset_key="warehouse_replication_slots",
        metadata={
            "slots": len(slots),
            "active": sum(s.active for s in slots),
            "max_retained_mb": round(max((s.retained_bytes for s in slots), default=0) / MB, 1),
            "retained_mb_by_slot": dg.MetadataValue.json({s.name: round(s.retained_bytes / MB, 1) for s in slots}),
        },
        check_results=[dg.AssetCheckResult(
            check_name="replication_slots_wal_retained", asset_key="warehouse_replication_slots", passed=passed,
            severity=dg.AssetCheckSeverity.WARN, description=reason,
            metadata={"limit_mb": max_bytes // MB,
                      "over": dg.MetadataValue.json([s.name for s in slots_over(slots, max_bytes)])})],
    )


#: one observation with its check, by hand
ops_replication_job = dg.define_asset_job(
    "ops_replication_observe", selection=dg.AssetSelection.assets(warehouse_replication_slots),
    description="Observe the warehouse's replication slots and check the WAL they hold back.")
#: evaluates OBSERVE (running by default, as the O&M stream's)
ops_replication_automation = dg.AutomationConditionSensorDefinition(
    "ops_replication_automation", target=dg.AssetSelection.assets(warehouse_replication_slots),
    minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Observes the replication slots every 15 minutes (with their WAL check).")

#: the ops Dagster definitions (merged with the jobs' in ysh.definitions)
defs = dg.Definitions(assets=[warehouse_replication_slots], jobs=[ops_replication_job],
                      sensors=[ops_replication_automation])
