"""MQTT over TLS against a real mosquitto: a throwaway CA and server certificate
(``cryptography``) and a TLS-only listener on loopback.

What was measured: the publisher (paho) speaks ``mqtts://`` with ``YSH_OM_MQTT_TLS_CA``
and is refused without it. Pathway 0.33's MQTT reader cannot open ``mqtts://`` at all:
its worker panics before the handshake ("Could not automatically determine the
process-level CryptoProvider from Rustls crate features"), with or without the CA, so
``ysh om follow --source mqtt`` refuses an ``mqtts://`` URI in one line. The working path
is a mosquitto bridge on loopback that holds the TLS connection (with the CA) to the
remote broker: the follower reads the bridge over plain loopback MQTT and receives the
telemetry; with a CA that did not sign the broker's certificate the bridge is refused
and nothing arrives. docs/operations.md, "Faults", has the table row."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ysh.services import local

from ..conftest import query, stop_process, wait_for
from ..om.test_stream import (BUS_CUTOFF, _db_windows, _env, _final, _start, _stop, _wait_windows,
                              fleet)  # noqa: F401 - fleet is a fixture
from .test_broker_restart import _thirds

pytestmark = pytest.mark.integration


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) as PEM files: a CA valid a day
    around now, and a server certificate it signed for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    valid = (now - dt.timedelta(hours=1), now + dt.timedelta(days=1))

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("ysh test CA")).issuer_name(name("ysh test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(valid[0]).not_valid_after(valid[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(valid[0]).not_valid_after(valid[1])
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                          x509.DNSName("localhost")]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def _mosquitto(folder: Path, lines: list[str]) -> subprocess.Popen:
    exe = local.mosquitto_binary()
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        lines = [*lines, "user root"]  # else it drops to the user mosquitto, who cannot read tmp_path
    conf = folder / "mosquitto.conf"
    conf.write_text("\n".join([*lines, "persistence false", "log_dest stderr", "log_type all"]) + "\n")
    with (folder / "mosquitto.log").open("wb") as log:
        return subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _listening(proc: subprocess.Popen, port: int, folder: Path) -> None:
    wait_for(lambda: proc.poll() is not None or not local.port_is_free(port), timeout=15, what="mosquitto listening")
    assert proc.poll() is None, (folder / "mosquitto.log").read_text()


def _end(proc: subprocess.Popen) -> None:
    """Stop a mosquitto: SIGTERM, then SIGKILL (a bridge retrying a refused TLS handshake
    was seen to outlive SIGTERM, spinning, after a test run)."""
    stop_process(proc, 10, signal.SIGTERM)


@pytest.fixture()
def tls_broker(tmp_path):
    """mosquitto with one TLS listener on loopback (no plain one): the remote broker.
    Yields (port, CA file, its log, a CA that did not sign its certificate)."""
    try:
        local.mosquitto_binary()
    except local.BinaryNotFound as exc:
        pytest.skip(str(exc))
    folder = tmp_path / "remote"
    folder.mkdir()
    ca, cert, key = _certificates(folder)
    (tmp_path / "other").mkdir()
    other_ca = _certificates(tmp_path / "other")[0]
    port = local.free_port()
    proc = _mosquitto(folder, [f"listener {port} {local.HOST}", f"cafile {ca}", f"certfile {cert}",
                               f"keyfile {key}", "allow_anonymous true"])
    try:
        _listening(proc, port, folder)
        yield port, ca, folder / "mosquitto.log", other_ca
    finally:
        _end(proc)


def _bridge(folder: Path, remote_port: int, ca: Path) -> tuple[subprocess.Popen, int]:
    """A loopback mosquitto bridging ``ysh/telemetry/#`` in from the TLS broker (QoS 1,
    persistent bridge session), trusting ``ca``; it queues as much for its subscribers as
    the broker of ``ysh services`` does."""
    port = local.free_port()
    proc = _mosquitto(folder, [f"listener {port} {local.HOST}", "allow_anonymous true",
                               # as `ysh services` sets them: Pathway acknowledges only at its
                               # checkpoints, and mosquitto's defaults (1000 queued, 20 in flight)
                               # would drop the rest ("Outgoing messages are being dropped")
                               "max_queued_messages 2000000", "max_inflight_messages 0",
                               "connection tls-upstream", f"address 127.0.0.1:{remote_port}",
                               "topic ysh/telemetry/# in 1", f"bridge_cafile {ca}", "bridge_insecure false",
                               "cleansession false", f"remote_clientid ysh-bridge-{folder.name}",
                               "restart_timeout 1 5"])
    _listening(proc, port, folder)
    return proc, port


def test_the_publisher_speaks_mqtts_with_the_ca_and_is_refused_without(tls_broker):
    import paho.mqtt.client as mqtt

    from ysh.om.publish import publish_mqtt

    port, ca, broker_log, other_ca = tls_broker
    uri = f"mqtts://127.0.0.1:{port}"
    for wrong in (None, other_ca):  # the system's roots, a CA that did not sign the certificate
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            publish_mqtt([{"plant_id": "p1", "inverter_id": "i1"}], uri, timeout_s=10, tls_ca=wrong)
    received: list[bytes] = []
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ysh-tls-subscriber", protocol=mqtt.MQTTv311)
    subscriber.tls_set(ca_certs=str(ca))
    subscriber.on_message = lambda _c, _u, message: received.append(message.payload)
    subscriber.connect("127.0.0.1", port)
    subscriber.subscribe("ysh/telemetry/#", qos=1)
    subscriber.loop_start()
    try:
        wait_for(lambda: "as ysh-tls-subscriber" in broker_log.read_text(), timeout=15, what="the subscriber")
        time.sleep(0.5)  # the SUBACK
        events = [{"plant_id": "p1", "inverter_id": f"i{n}", "ts": "2025-01-01T12:00:00Z"} for n in range(5)]
        assert publish_mqtt(events, uri, tls_ca=ca) == 5
        wait_for(lambda: len(received) >= 5, timeout=15, what="the messages over TLS")
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert len(received) == 5


def test_om_follow_refuses_mqtts_in_one_line_naming_the_bridge(tls_broker, warehouse, tmp_path):
    """Pathway 0.33's MQTT reader panics on ``mqtts://`` (rustls without a process-level
    crypto provider, with or without the CA); ``ysh om follow`` says so in one line and
    exits 2 before connecting, instead of that panic."""
    port, ca, broker_log, _ = tls_broker
    log = tmp_path / "run.log"
    proc = _start(_env(warehouse, tmp_path / "home", YSH_OM_MQTT_URI=f"mqtts://127.0.0.1:{port}",
                       YSH_OM_MQTT_TLS_CA=str(ca), YSH_OM_MQTT_CLIENT_ID="ysh-om-tls"), log, "mqtt")
    try:
        proc.wait(120)
    finally:
        _stop(proc)
    text = log.read_text()
    assert proc.returncode == 2, text
    assert "error: YSH_OM_MQTT_URI is mqtts://" in text and "bridge" in text
    assert "Traceback" not in text and "panicked" not in text
    assert "as ysh-om-tls" not in broker_log.read_text()  # never got to an MQTT CONNECT
    assert not _db_windows(warehouse)


def test_om_follow_gets_mqtts_telemetry_through_a_loopback_bridge_only_with_the_ca(tls_broker, warehouse, fleet,
                                                                                    tmp_path):
    from ysh.om.publish import publish_mqtt

    port, ca, broker_log, other_ca = tls_broker
    events, static_windows, _ = fleet
    before, _, _ = _thirds(events)
    uri = f"mqtts://127.0.0.1:{port}"
    untrusting, _ = _bridge(tmp_path / "bridge-wrong-ca", port, other_ca)
    bridge = proc = None
    try:
        bridge, bridge_port = _bridge(tmp_path / "bridge", port, ca)
        wait_for(lambda: "as ysh-bridge-bridge " in broker_log.read_text(), timeout=30, what="the bridge over TLS")
        log = tmp_path / "run.log"
        proc = _start(_env(warehouse, tmp_path / "home", YSH_OM_MQTT_URI=f"mqtt://127.0.0.1:{bridge_port}",
                           YSH_OM_LATE_CUTOFF_S=str(int(BUS_CUTOFF.total_seconds())),
                           YSH_OM_MQTT_CLIENT_ID="ysh-om-bridged"), log, "mqtt")
        wait_for(lambda: "Realtime data starts" in log.read_text() or proc.poll() is not None, timeout=90,
                 what="the MQTT subscription")
        assert publish_mqtt(before, uri, tls_ca=ca) == len(before)
        expected = _final(static_windows, before, BUS_CUTOFF)
        got = _wait_windows(warehouse, expected, proc, log)
        assert {k: got[k] for k in expected} == expected  # every event once, through TLS and the bridge
        # the bridge that trusts another CA never got in: refused at the handshake, retrying
        assert untrusting.poll() is None
        assert "ysh-bridge-bridge-wrong-ca" not in broker_log.read_text()
        assert "certificate verify failed" in (tmp_path / "bridge-wrong-ca" / "mosquitto.log").read_text()
        assert query(warehouse, "SELECT source FROM om_stream_status") == [("mqtt",)]
    finally:
        if proc is not None:
            _stop(proc)
        if bridge is not None:
            _end(bridge)
        _end(untrusting)
