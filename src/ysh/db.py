"""The warehouse: which PostgreSQL to use, and the platform's schema migrations.

``YSH_POSTGRES_DSN`` set → that server. Unset → the embedded server under
``YSH_HOME/postgres`` is started (or reused if already running).

Migrations are plain SQL files in ``ysh/migrations`` named ``NNNN_name.sql``, applied in
order inside the platform's own schema (``YSH_POSTGRES_SCHEMA``, default ``ysh``), each in
its own transaction, under an advisory lock so concurrent starts do not race. Applied
versions are recorded with a checksum; an edited, already-applied migration is an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from .kit.files import data_path  # noqa: F401 - kept as db.data_path for its callers

if TYPE_CHECKING:
    from .services.postgres import EmbeddedPostgres
    from .settings import Settings

_MIGRATION_LOCK_ID = 7_412_003_001


class MigrationError(RuntimeError):
    pass


def embedded_server(settings: Settings) -> EmbeddedPostgres:
    """The embedded server of ``settings`` (the launcher is imported only here: a
    configured ``YSH_POSTGRES_DSN`` never loads it)."""
    from .services.postgres import EmbeddedPostgres

    return EmbeddedPostgres(settings.home_dir / "postgres", settings.warehouse.embedded_port)


def resolve_dsn(settings: Settings, *, start: bool = True) -> str:
    """The DSN of the warehouse, starting the embedded server when it is the one in use."""
    if settings.warehouse.dsn is not None:
        return settings.warehouse.dsn.get_secret_value()
    server = embedded_server(settings)
    if start:
        server.start()
    return server.dsn()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("ysh.migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        version, _, rest = name.partition("_")
        if not version.isdigit():
            raise MigrationError(f"migration file {name!r} does not start with a number")
        found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


def migrate(dsn: str, schema: str) -> list[str]:
    """Apply pending migrations; returns the names applied now (idempotent)."""
    applied_now = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema)))
            done = {
                v: c for v, c in conn.execute(
                    sql.SQL("SELECT version, checksum FROM {}.schema_migrations").format(
                        sql.Identifier(schema))
                ).fetchall()
            }
            for migration in load_migrations():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version}_{migration.name} changed after it was "
                            "applied; add a new migration instead of editing an applied one"
                        )
                    continue
                with conn.transaction():
                    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
                    conn.execute(migration.sql)
                    conn.execute(
                        sql.SQL("INSERT INTO {}.schema_migrations (version, name, checksum) "
                                "VALUES (%s, %s, %s)").format(sql.Identifier(schema)),
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(f"{migration.version:04d}_{migration.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    return applied_now


@dataclass(frozen=True)
class Warehouse:
    """Where a job's tables live: a server (DSN) and the platform schema in it."""

    dsn: str
    schema: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Warehouse:
        """The warehouse of ``settings``, started (if embedded) and migrated."""
        return cls(prepare_warehouse(settings), settings.warehouse.schema_name)


def server_now(warehouse: Warehouse):
    """The server's clock (for "written since" comparisons with ``now()`` columns)."""
    with connect(warehouse.dsn, warehouse.schema) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def prune_not_written(warehouse: Warehouse, tables, since) -> None:
    """After a full run: delete the rows of ``tables`` whose ``updated_at`` is older than
    ``since`` (the run did not write them)."""
    with connect(warehouse.dsn, warehouse.schema) as conn:
        for name in tables:
            conn.execute(sql.SQL("DELETE FROM {} WHERE updated_at < %s").format(sql.Identifier(name)), (since,))
        conn.commit()


def row_counts(warehouse: Warehouse, tables) -> dict[str, int]:
    with connect(warehouse.dsn, warehouse.schema) as conn:
        return {name: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()[0]
                for name in tables}


def connect(dsn: str, schema: str, **kwargs) -> psycopg.Connection:
    """A connection whose search_path is the platform schema."""
    conn = psycopg.connect(dsn, **kwargs)
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    if not kwargs.get("autocommit"):
        conn.commit()
    return conn


def prepare_warehouse(settings: Settings) -> str:
    """Start (if embedded) and migrate the warehouse; returns its DSN."""
    dsn = resolve_dsn(settings)
    migrate(dsn, settings.warehouse.schema_name)
    return dsn
