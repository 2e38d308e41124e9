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
from dataclasses import dataclass, field
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


def resolve_dsn(settings: Settings, *, start: bool = True, replication: bool = False) -> str:
    """The DSN of the warehouse, starting the embedded server when it is the one in use.

    On the embedded server the pipelines connect as ``ysh_pipelines`` (owner of the
    platform schema, not superuser), or ``ysh_cdc`` with ``replication`` (a member of it
    with REPLICATION, for the CDC followers): :func:`provision_roles` creates them (on
    start) and makes the schema theirs. ``YSH_POSTGRES_DSN`` is used as it is: on a
    managed server the operator creates the roles (docs/operations.md)."""
    if settings.warehouse.dsn is not None:
        return settings.warehouse.dsn.get_secret_value()
    from .services.postgres import CDC_ROLE, PIPELINES_ROLE

    server = embedded_server(settings)
    role = CDC_ROLE if replication else PIPELINES_ROLE
    if start:
        server.start()
        provision_roles(server, settings.warehouse.schema_name)
    elif not server.role_password_file(role).exists():
        return server.dsn()  # a cluster from before the roles, not yet provisioned
    return server.role_dsn(role)


#: (cluster root, schema) provisioned by this process
_PROVISIONED: set[tuple[str, str]] = set()

#: extensions the migrations use; created by the superuser (the roles cannot)
EXTENSIONS = ("vector", "unaccent", "pg_trgm")


def provision_roles(server: EmbeddedPostgres, schema: str) -> None:
    """Give the embedded ``server`` its pipeline roles and their schema (idempotent, once
    per process): ``ysh_pipelines`` LOGIN without SUPERUSER, CREATEDB, CREATEROLE or
    REPLICATION, owning ``schema`` and Dagster's schema (with everything in them, also
    when an older version created them as the superuser); ``ysh_cdc`` the same plus
    REPLICATION. Passwords are generated into secret files beside the superuser's."""
    from .dagster_instance import SCHEMA as DAGSTER_SCHEMA
    from .services.postgres import CDC_ROLE, DATABASE, PIPELINES_ROLE

    key = (str(server.root), schema)
    if key in _PROVISIONED:
        return
    passwords = {role: server.role_password(role) for role in (PIPELINES_ROLE, CDC_ROLE)}
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            for role, (password, created_now) in passwords.items():
                replication = sql.SQL("REPLICATION" if role == CDC_ROLE else "NOREPLICATION")
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                verb = sql.SQL("ALTER" if exists else "CREATE")
                statement = sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS {}").format(
                    verb, sql.Identifier(role), replication)
                if not exists or created_now:  # a lost password file gets a new password
                    statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
                conn.execute(statement)
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(PIPELINES_ROLE), sql.Identifier(CDC_ROLE)))
            conn.execute(sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(DATABASE), sql.Identifier(PIPELINES_ROLE)))
            for extension in EXTENSIONS:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA public").format(
                    sql.Identifier(extension)))
            for name in dict.fromkeys((schema, DAGSTER_SCHEMA)):
                give_schema(conn, name, PIPELINES_ROLE, create=name == schema)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    _PROVISIONED.add(key)


def give_schema(conn: psycopg.Connection, schema: str, role: str, *, create: bool = True) -> None:
    """Make ``role`` the owner of ``schema`` and of every table, view, sequence and
    function in it (run as a superuser; ``create``: create the schema when missing)."""
    if create:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(role)))
    owner = conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if owner is None:
        return
    conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE"}
    rows = conn.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = ANY(%s) AND c.relowner <> %s::regrole "
        # a sequence owned by a column follows its table
        "AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid "
        "AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))",
        (schema, list(kinds), role)).fetchall()
    for name, kind in rows:
        conn.execute(sql.SQL("ALTER {} {}.{} OWNER TO {}").format(
            sql.SQL(kinds[kind]), sql.Identifier(schema), sql.Identifier(name), sql.Identifier(role)))
    for (signature,) in conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proowner <> %s::regrole", (schema, role)).fetchall():
        conn.execute(sql.SQL("ALTER ROUTINE {} OWNER TO {}").format(sql.SQL(signature), sql.Identifier(role)))


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
    """Where a job's tables live: a server (DSN) and the platform schema in it. The DSN
    holds a password: it stays out of the repr (and so out of logs and tracebacks)."""

    dsn: str = field(repr=False)
    schema: str

    @classmethod
    def from_settings(cls, settings: Settings, *, replication: bool = False) -> Warehouse:
        """The warehouse of ``settings``, started (if embedded) and migrated.
        ``replication``: the CDC followers' role on the embedded server (``ysh_cdc``)."""
        dsn = prepare_warehouse(settings)
        if replication:
            dsn = resolve_dsn(settings, replication=True)
        return cls(dsn, settings.warehouse.schema_name)


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


def with_reconnect(action, *, what: str, budget_s: float = 300.0, initial_s: float = 0.5,
                   cap_s: float = 10.0, stop=None):
    """``action()`` (which opens its own connection), again after a lost connection.

    A server restart, a failover or a network cut surfaces as
    :class:`psycopg.OperationalError`; ``action`` is called again after a backoff of
    ``initial_s`` doubling up to ``cap_s`` seconds, each failure logged as a warning,
    until ``budget_s`` seconds have passed since the first failure (then the last error
    is raised). ``action`` must be one transaction, so that a retry neither loses nor
    doubles what it writes. ``stop`` (a :class:`threading.Event`) ends the waiting early
    (the error is then raised)."""
    import logging
    import time

    log = logging.getLogger("ysh.db")
    first_failure = None
    attempt = 0
    while True:
        try:
            result = action()
        except psycopg.OperationalError as exc:
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            attempt += 1
            down = now - first_failure
            if down >= budget_s or (stop is not None and stop.is_set()):
                log.error("%s: giving up after %d attempts in %.0fs: %s", what, attempt, down, exc)
                raise
            delay = min(initial_s * 2.0 ** (attempt - 1), cap_s, max(0.0, budget_s - down))
            log.warning("%s failed (attempt %d, %.1fs since the first failure): %s; retrying in %.1fs",
                        what, attempt, down, str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
                        delay)
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
            continue
        if attempt:
            log.info("%s succeeded after %d failed attempt(s)", what, attempt)
        return result


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
