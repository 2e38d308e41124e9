"""PostgreSQL restarted under ``ysh om follow`` (JSONL source): telemetry arriving as the
server goes down; the pipeline rides through and ends with exactly the final windows of
a static run over the same events — none lost, none doubled (same sample counts)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ..om.test_stream import _env, _event_ts, _final, _recent_events, _start, _static, _stop, _wait_windows
from .conftest import restart

pytestmark = pytest.mark.integration


def test_om_follow_rides_through_a_database_restart(restartable_pg, fault_warehouse, tmp_path):
    warehouse = fault_warehouse
    events = _recent_events()
    static_windows, _ = _static(events, tmp_path / "static")
    home, folder, log = tmp_path / "home", tmp_path / "telemetry", tmp_path / "run.log"
    folder.mkdir(parents=True)
    split = _event_ts(events[0]) + timedelta(hours=4, minutes=17)
    first, rest = [], []
    for e in events:  # malformed timestamps go with the first part
        (rest if (_event_ts(e) or split) >= split and _event_ts(e) is not None else first).append(e)
    env = _env(warehouse, home, YSH_OM_REPLAY_DIR=str(folder))
    from ysh.samples.om_telemetry import write_jsonl

    write_jsonl(first, folder / "part-1.jsonl")
    proc = _start(env, log, "jsonl")
    try:
        _wait_windows(warehouse, _final(static_windows, first), proc, log)
        write_jsonl(rest, folder / "part-2.jsonl")  # arrives as the server goes down
        restart(restartable_pg)
        assert proc.poll() is None, log.read_text()[-3000:]
        expected = _final(static_windows, events)
        got = _wait_windows(warehouse, expected, proc, log)
        # nothing lost: every final window; nothing doubled: the same samples as the static run
        assert {k: got[k] for k in expected} == expected
    finally:
        _stop(proc)
