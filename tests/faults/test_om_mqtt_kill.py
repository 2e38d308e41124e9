"""``kill -9`` of ``ysh om follow --source mqtt`` and a restart (the Kafka case is in
``tests/om/test_scale_out.py``, the JSONL one in ``tests/om/test_stream.py``).

What Pathway's MQTT reader guarantees (``pw.io.mqtt.read``, Pathway 0.33): with
persistence on and QoS 1, it acknowledges a message to the broker only once a
checkpoint covers it, and it keeps a persistent session under the stable client id
(``YSH_OM_MQTT_CLIENT_ID``): at-least-once. Messages published while the follower is
down wait in that session on the broker; those received but not checkpointed before
the kill are delivered again, and the pipeline's dedup by event id inside a window
removes the copies. So the outcome asserted: the final windows of the static run, the
same sample counts (0 lost, 0 doubled), the same alerts, each Slack notice once.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from ..conftest import Receiver, query, wait_for
from ..om.test_stream import (BUS_CUTOFF, _assert_as_static, _bus_service, _db_windows, _env, _final, _notified,
                              _start, _stop, _wait_windows, fleet)  # noqa: F401 - fleet is a fixture
from .test_broker_restart import _restore, _thirds

pytestmark = pytest.mark.integration


def _subscribed(log, proc, starts: int) -> None:
    wait_for(lambda: log.read_text().count("Realtime data starts") >= starts or proc.poll() is not None,
             timeout=90, what="the MQTT subscription")
    assert proc.poll() is None, log.read_text()[-3000:]


def test_kill_9_of_the_mqtt_follower_loses_and_doubles_nothing(warehouse, fleet, tmp_path, isolated_settings):
    from ysh.om.publish import publish_mqtt

    events, static_windows, static_alerts = fleet
    before, during, after = _thirds(events)
    home, log = tmp_path / "home", tmp_path / "run.log"
    slack = Receiver()
    service, status = _bus_service("mqtt", tmp_path / "services")
    proc = None
    try:
        env = _env(warehouse, home, YSH_OM_MQTT_URI=status.url, YSH_OM_MQTT_CLIENT_ID=f"ysh-om-{tmp_path.name}",
                   YSH_OM_LATE_CUTOFF_S=str(int(BUS_CUTOFF.total_seconds())), YSH_SLACK_WEBHOOK_URL=slack.url)

        def notices_settled():
            pending, sent = query(warehouse, "SELECT count(*) FILTER (WHERE status = 'pending'), "
                                             "count(*) FILTER (WHERE status = 'sent') FROM ops_alerts_sent")[0]
            return sent if pending == 0 and sent == len(slack.messages) == _notified(warehouse) else None

        proc = _start(env, log, "mqtt")
        _subscribed(log, proc, 1)
        assert publish_mqtt(before, status.url) == len(before)
        first = _wait_windows(warehouse, _final(static_windows, before, BUS_CUTOFF), proc, log)
        sent_before = wait_for(notices_settled, timeout=120, what="the first notices sent")
        # the kill comes as soon as the second part is being read (a window of it written):
        # some of it may be read but not yet covered by a checkpoint, hence not acknowledged
        assert publish_mqtt(during, status.url) == len(during)
        wait_for(lambda: set(_db_windows(warehouse)) - set(first), timeout=60, what="a window of the second part")
        _stop(proc, signal.SIGKILL)
        assert (home / "state" / "om-mqtt").is_dir()

        assert publish_mqtt(after, status.url) == len(after)  # queued by the broker for the session
        proc = _start(env, log, "mqtt")
        # nothing lost: every final window; nothing doubled: the samples of the static run
        _assert_as_static(warehouse, static_windows, static_alerts, events, proc, log)
        sent_after = wait_for(notices_settled, timeout=120, what="the later notices sent")
        assert log.read_text().count("Realtime data starts") == 2  # the second run went on, not over
        _stop(proc)
    finally:
        if proc is not None:
            _stop(proc, signal.SIGKILL)
        slack.stop()
        service.stop()
        _restore(isolated_settings)
    assert sent_after > sent_before > 0
    assert Counter(slack.messages).most_common(1)[0][1] == 1  # each notice once
