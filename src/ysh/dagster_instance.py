"""Dagster's own storage (runs, event log, schedules and sensors' state) in the warehouse.

``dagster.yaml`` in ``DAGSTER_HOME`` (``YSH_HOME/dagster``) is written by the platform each
time ``ysh ui`` or ``ysh demo`` starts: by default Dagster keeps its storage in the schema
``dagster`` of the warehouse's database (the server of ``YSH_POSTGRES_DSN``, or the embedded
one), through ``dagster-postgres``; SQLite files under ``DAGSTER_HOME`` only when asked
(``storage="sqlite"``, ``ysh ui --dagster-storage sqlite``).

The file never holds the password: it names the variable ``DAGSTER_PG_PASSWORD``
(``password: {env: DAGSTER_PG_PASSWORD}``, the name the official Dagster Helm chart uses),
which :func:`prepare` sets in this process and returns for the processes it starts
(``dagster dev``, its code server, daemon and run workers inherit it). A process that opens
the instance on its own (the Prefect alerts flow) calls :func:`prepare` first.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from .kit.files import atomic_write

if TYPE_CHECKING:
    from .settings import Settings

#: the schema of the warehouse database that holds Dagster's tables
SCHEMA = "dagster"
#: the variable ``dagster.yaml`` reads the password from
PASSWORD_VARIABLE = "DAGSTER_PG_PASSWORD"

Storage = Literal["postgres", "sqlite"]
STORAGES: tuple[str, ...] = ("postgres", "sqlite")

# libpq keywords that have their own place in dagster-postgres' ``postgres_db``
_OWN_PLACE = {"host", "port", "user", "dbname", "password"}


def postgres_storage(dsn: str, schema: str = SCHEMA) -> dict[str, Any]:
    """The ``storage: postgres:`` section of ``dagster.yaml`` for the server of ``dsn``.

    Parameters
    ----------
    dsn : str
        libpq DSN or URI of the warehouse (``host=… port=… user=… dbname=… password=…`` or
        ``postgresql://…``).
    schema : str
        where Dagster's tables go (the connection's ``search_path``).

    Returns
    -------
    dict
        ``{"postgres_db": {...}}`` with host, port, user and database from ``dsn``, the
        password as ``{"env": PASSWORD_VARIABLE}`` when ``dsn`` has one (never its value),
        and the other libpq parameters (``sslmode``, …) plus ``options=-csearch_path=<schema>``
        in ``params``.
    """
    parts = conninfo_to_dict(dsn)
    host = str(parts.get("host") or parts.get("hostaddr") or "")
    params: dict[str, Any] = {k: v for k, v in parts.items() if k not in _OWN_PLACE | {"hostaddr", "options"}}
    if host.startswith("/") or not host:  # a Unix socket folder (or libpq's default socket)
        if host:
            params["host"] = host
        host = ""
    options = f"-csearch_path={schema}"
    if parts.get("options"):
        options = f"{parts['options']} {options}"
    params["options"] = options
    db: dict[str, Any] = {
        "username": str(parts.get("user") or getpass.getuser()),
        "hostname": host,
        "db_name": str(parts.get("dbname") or parts.get("user") or getpass.getuser()),
        "port": int(parts.get("port") or 5432),
        "params": params,
        # dagster-postgres is written for psycopg2 (NOTIFY with bound parameters): name the
        # driver, since SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3
        "scheme": "postgresql+psycopg2",
    }
    if parts.get("password"):
        db["password"] = {"env": PASSWORD_VARIABLE}
    return {"postgres_db": db}


def instance_config(dsn: str | None, storage: Storage = "postgres", schema: str = SCHEMA) -> dict[str, Any]:
    """The whole ``dagster.yaml``: telemetry off, and the storage (``dsn`` is needed for
    ``postgres`` only; ``sqlite`` leaves Dagster's default: files under ``DAGSTER_HOME``)."""
    if storage not in STORAGES:
        raise ValueError(f"Dagster storage must be one of {', '.join(STORAGES)}, not {storage!r}")
    config: dict[str, Any] = {"telemetry": {"enabled": False}}
    if storage == "postgres":
        if not dsn:
            raise ValueError("the postgres storage needs the warehouse's DSN")
        config["storage"] = {"postgres": postgres_storage(dsn, schema)}
    return config


def ensure_schema(dsn: str, schema: str = SCHEMA) -> None:
    """Create Dagster's schema in the warehouse database if it is missing (Dagster creates
    its tables there on first use)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        except psycopg.errors.UniqueViolation:  # another process created it at the same moment
            pass


def write_config(home: Path, config: Mapping[str, Any]) -> Path:
    """Write ``dagster.yaml`` into ``home`` (all or nothing); returns its path."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    with atomic_write(path) as f:
        f.write("# written by ysh (ysh.dagster_instance) at each start: edits are replaced\n")
        yaml.safe_dump(dict(config), f, sort_keys=False)
    return path


def use(settings: Settings) -> None:
    """Point this process at the instance the platform wrote, as it is (a process that
    only reads it, such as the Prefect alerts flow): ``DAGSTER_HOME`` unless already set,
    and the password variable when ``dagster.yaml`` reads it and it is not set."""
    from . import db

    _quiet_alembic()
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if PASSWORD_VARIABLE in os.environ or not config.exists() or PASSWORD_VARIABLE not in config.read_text():
        return
    password = conninfo_to_dict(db.resolve_dsn(settings, start=False)).get("password")
    if password:
        os.environ[PASSWORD_VARIABLE] = str(password)


def prepare(settings: Settings, storage: Storage | None = None, schema: str = SCHEMA) -> dict[str, str]:
    """Make ``settings.dagster_home`` the Dagster instance of the platform and point this
    process at it. ``storage``: default ``YSH_DAGSTER_STORAGE`` (postgres).

    With ``storage="postgres"`` the warehouse is started when it is the embedded one,
    ``schema`` is created in its database, and ``dagster.yaml`` names the server (without
    the password). Sets ``DAGSTER_HOME`` (and ``DAGSTER_PG_PASSWORD`` when the DSN has a
    password) in ``os.environ``; returns those variables for child processes.
    """
    from . import db

    storage = storage or settings.dagster_storage
    env = {"DAGSTER_HOME": str(settings.dagster_home)}
    dsn = None
    if storage == "postgres":
        dsn = db.resolve_dsn(settings)
        ensure_schema(dsn, schema)
        password = conninfo_to_dict(dsn).get("password")
        if password:
            env[PASSWORD_VARIABLE] = str(password)
    write_config(settings.dagster_home, instance_config(dsn, storage, schema))
    os.environ.update(env)
    _quiet_alembic()
    return env


def _quiet_alembic() -> None:
    """dagster-postgres checks its tables' version through alembic each time an instance
    opens, and alembic says so at INFO: keep its warnings only."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
