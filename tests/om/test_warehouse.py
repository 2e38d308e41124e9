"""``ysh om detect --warehouse``: the registry, windows, alerts and quarantine land in
PostgreSQL, and a second run over the same files changes nothing."""

from datetime import timedelta

import pytest

from ysh.om import job
from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl

from ..conftest import REPO, query

pytestmark = pytest.mark.integration

PLANTS = REPO / "data" / "sample" / "om" / "plants.json"


def test_detect_into_the_warehouse_is_idempotent(warehouse, tmp_path):
    scenario = default_scenario("2026-01-15", 24, seed=3)
    write_jsonl(simulate(scenario), tmp_path / "telemetry.jsonl")
    now = scenario.start + timedelta(hours=24)
    first = job.run_detect([tmp_path / "telemetry.jsonl"], PLANTS, tmp_path / "out", now=now, warehouse=warehouse)
    assert query(warehouse, "SELECT count(*) FROM om_plants") == [(6,)]
    assert query(warehouse, "SELECT count(*) FROM om_inverters") == [(17,)]
    assert query(warehouse, "SELECT count(*) FROM om_inverter_5min") == [(first.windows,)]
    alerts = query(warehouse, "SELECT alert_key, rule, opened_at, resolved_at FROM om_alerts ORDER BY 1")
    assert len(alerts) == sum(first.alerts_by_rule.values()) and alerts
    assert {rule for _, rule, _, _ in alerts} >= {"inverter_trip", "comm_loss", "plant_outage"}
    assert query(warehouse, "SELECT count(*) FROM om_quarantine")[0][0] == sum(first.quarantine_by_reason.values())
    job.run_detect([tmp_path / "telemetry.jsonl"], PLANTS, None, now=now, warehouse=warehouse)
    assert query(warehouse, "SELECT alert_key, rule, opened_at, resolved_at FROM om_alerts ORDER BY 1") == alerts
    assert query(warehouse, "SELECT count(*) FROM om_inverter_5min") == [(first.windows,)]
