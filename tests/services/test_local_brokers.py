"""The local brokers behave: a taken port is an error naming the setting, mosquitto keeps
QoS 1 messages across a restart, and with credentials it refuses anyone without them
while the O&M follower's reader and the publisher get in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import paho.mqtt.client as mqtt
import pytest

from ysh.om.publish import mqtt_auth, publish_mqtt
from ysh.services import local
from ysh.settings import Settings

pytestmark = pytest.mark.integration

PASSWORD = "pw-of-the-broker.1"


@pytest.fixture()
def settings(tmp_path):
    return Settings(home=tmp_path / "home", om_mqtt_uri=f"mqtt://127.0.0.1:{local.free_port()}")


def test_a_taken_port_fails_with_the_setting_to_change(settings):
    port = local.configured_port("mqtt", settings)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        with pytest.raises(local.LocalServiceError, match=f"port {port} .* taken.*YSH_OM_MQTT_URI"):
            local.start_services("mqtt", settings)
    assert not local.get_service("mqtt", settings).status().running


def _session(client_id: str, port: int, received: list[bytes]) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311)
    client.on_message = lambda _c, _u, message: received.append(message.payload)
    client.connect("127.0.0.1", port)
    client.subscribe("ysh/telemetry/#", qos=1)
    client.loop_start()
    return client


def test_qos1_messages_queued_for_a_session_survive_a_broker_restart(settings):
    service = local.get_service("mqtt", settings)
    port = service.start().port
    try:
        received: list[bytes] = []
        subscriber = _session("ysh-restart-test", port, received)
        time.sleep(0.5)  # the SUBACK
        subscriber.loop_stop()
        subscriber.disconnect()
        events = [{"plant_id": "p1", "inverter_id": f"i{n}", "ts": "2025-01-01T12:00:00Z"} for n in range(5)]
        assert publish_mqtt(events, f"mqtt://127.0.0.1:{port}") == 5  # queued for the offline session
        service.stop()
        service.start()
        again = _session("ysh-restart-test", port, received)
        deadline = time.monotonic() + 20
        while len(received) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        again.loop_stop()
        again.disconnect()
        assert sorted(received) == sorted(__import__("orjson").dumps(e) for e in events)
    finally:
        service.stop()


READER = textwrap.dedent("""
    import sys
    import pathway as pw
    from ysh.om.stream import read_telemetry
    from ysh.settings import Settings
    lines = read_telemetry(Settings(), "mqtt", autocommit_duration_ms=100)
    pw.io.subscribe(lines, lambda key, row, time, is_addition: print("LINE", row["data"], flush=True))
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)
""")


def _reader(tmp_path, env: dict[str, str], name: str) -> tuple[subprocess.Popen, object]:
    log = (tmp_path / f"{name}.log").open("w")
    script = tmp_path / "reader.py"
    script.write_text(READER)
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp_path)
    return proc, log


def test_the_follower_connects_with_the_credentials_and_is_refused_without(tmp_path):
    uri = f"mqtt://127.0.0.1:{local.free_port()}"
    secured = Settings(home=tmp_path / "home", om_mqtt_uri=uri, om_mqtt_username="ysh-om",
                       om_mqtt_password=PASSWORD)
    service = local.get_service("mqtt", secured)
    service.start()
    base = {k: v for k, v in os.environ.items() if not k.startswith("YSH_")}
    base.update({"YSH_HOME": str(tmp_path / "home"), "YSH_OM_MQTT_URI": uri})
    with_credentials = {**base, "YSH_OM_MQTT_USERNAME": "ysh-om", "YSH_OM_MQTT_PASSWORD": PASSWORD,
                        "YSH_OM_MQTT_CLIENT_ID": "ysh-om-auth-test"}
    refused, refused_log = _reader(tmp_path, {**base, "YSH_OM_MQTT_CLIENT_ID": "ysh-om-anon-test"}, "anonymous")
    follower, follower_log = _reader(tmp_path, with_credentials, "follower")
    try:
        assert refused.wait(60) != 0
        assert "NotAuthorized" in (tmp_path / "anonymous.log").read_text()
        with pytest.raises(ConnectionError, match="[Nn]ot authori"):
            publish_mqtt([{"plant_id": "p"}], uri, timeout_s=10)
        event = {"plant_id": "p1", "inverter_id": "i1", "ts": "2025-01-01T12:00:00Z", "power_w": 1.0}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "LINE" not in (tmp_path / "follower.log").read_text():
            assert follower.poll() is None, (tmp_path / "follower.log").read_text()[-2000:]
            publish_mqtt([event], uri, **mqtt_auth(secured))  # until the reader's subscription is in
            time.sleep(1)
        text = (tmp_path / "follower.log").read_text()
        assert '"plant_id":"p1"' in text
        assert PASSWORD not in text + (tmp_path / "anonymous.log").read_text()
        assert PASSWORD not in (service.dir / "passwd").read_text()  # hashed
    finally:
        for proc in (refused, follower):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        refused_log.close()
        follower_log.close()
        service.stop()
