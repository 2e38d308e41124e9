"""Backup and restore flows: a real PostgreSQL, moto_server's S3 API and a temporary
Prefect server (``prefect_test_harness``), plus hand cases of the retention rule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from ysh.flows import backup as backup_mod
from ysh.flows.backup import (
    BackupConfigError,
    BackupIntegrityError,
    BackupNotFoundError,
    RestoreTargetNotEmptyError,
    backup,
    list_backups,
    restore,
    select_retained,
)
from ysh.settings import Settings

from ..conftest import wait_for

# moto accepts any credentials; these are test-only placeholders, not secrets.
ACCESS_KEY, SECRET_KEY = "testing", "testing"


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- retention: the pure rule -----------------------------------------------------------
def test_retention_keeps_newest_of_each_newest_day():
    ts = [dt("2026-03-10T08:00"), dt("2026-03-10T20:00"), dt("2026-03-09T12:00"),
          dt("2026-03-07T01:00"), dt("2026-03-07T23:59"), dt("2026-03-01T00:00")]
    # days without backups (3/8) do not count; of each day, the newest one
    assert select_retained(ts, keep_daily=3, keep_weekly=0) == {
        dt("2026-03-10T20:00"), dt("2026-03-09T12:00"), dt("2026-03-07T23:59")}
    assert select_retained(ts, keep_daily=1, keep_weekly=0) == {dt("2026-03-10T20:00")}
    assert select_retained(ts, keep_daily=10, keep_weekly=0) == {
        dt("2026-03-10T20:00"), dt("2026-03-09T12:00"), dt("2026-03-07T23:59"), dt("2026-03-01T00:00")}


def test_retention_weekly_follows_iso_weeks_and_unites_with_daily():
    ts = [
        dt("2026-03-16T09:00"),  # Mon, week 12
        dt("2026-03-15T22:00"),  # Sun, week 11 (ISO weeks start on Monday)
        dt("2026-03-09T10:00"),  # Mon, week 11
        dt("2026-03-08T10:00"),  # Sun, week 10
        dt("2026-03-02T10:00"),  # Mon, week 10
        dt("2026-02-01T10:00"),  # week 5 (weeks without backups do not count)
        dt("2026-01-20T10:00"),  # week 4
    ]
    assert select_retained(ts, keep_daily=0, keep_weekly=3) == {
        dt("2026-03-16T09:00"), dt("2026-03-15T22:00"), dt("2026-03-08T10:00")}
    assert select_retained(ts, keep_daily=2, keep_weekly=4) == {
        dt("2026-03-16T09:00"), dt("2026-03-15T22:00"),  # daily (both also weekly)
        dt("2026-03-08T10:00"), dt("2026-02-01T10:00")}  # weekly
    # the ISO week straddles the new year: 2021-01-03 is in week 53 of 2020
    new_year = [dt("2020-12-31T10:00"), dt("2021-01-03T10:00"), dt("2021-01-04T10:00")]
    assert select_retained(new_year, keep_daily=0, keep_weekly=2) == {
        dt("2021-01-04T10:00"), dt("2021-01-03T10:00")}


def test_retention_edge_cases():
    assert select_retained([], 7, 4) == set()
    one = dt("2026-03-10T08:00")
    assert select_retained([one, one], 1, 1) == {one}
    assert select_retained([one], 0, 0) == set()
    # naive timestamps are UTC; aware ones are bucketed by UTC day: 3/9 23:30-03:00 is
    # 3/10 02:30 UTC, the same day as the naive 3/10 08:00, which is newer
    naive = datetime(2026, 3, 10, 8, 0)
    late = datetime.fromisoformat("2026-03-09T23:30-03:00")
    assert select_retained([naive, late], 2, 0) == {naive}
    assert select_retained([naive, late, dt("2026-03-09T12:00")], 2, 0) == {naive, dt("2026-03-09T12:00")}
    with pytest.raises(ValueError):
        select_retained([one], -1, 0)


def test_the_password_goes_through_the_environment_not_the_command_line():
    for dsn in ("host=127.0.0.1 port=5432 user=ysh dbname=ysh password=s3cr3t",
                "postgresql://ysh:s3cr3t@127.0.0.1:5432/ysh"):
        conninfo, env = backup_mod._libpq(dsn)
        assert "s3cr3t" not in conninfo and "dbname=ysh" in conninfo
        assert env["PGPASSWORD"] == "s3cr3t"


# --- fixtures for the flows ---------------------------------------------------------------
@pytest.fixture(scope="module")
def backup_prefect():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture()
def backup_bucket(s3_server):
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    name = f"ysh-backups-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    return client, name


@pytest.fixture()
def backup_folders(tmp_path):
    landing = tmp_path / "landing"
    (landing / "catalog").mkdir(parents=True)
    (landing / "catalog" / "feed.csv").write_text("sku;preço\nA1;10,50\n", encoding="utf-8")
    (landing / "tariffs").mkdir()
    (landing / "tariffs" / "t.bin").write_bytes(bytes(range(256)) * 40)
    return [landing, tmp_path / "does-not-exist"]


@pytest.fixture()
def backup_settings(warehouse, s3_server, backup_bucket, backup_folders, tmp_path, backup_prefect):
    _, bucket = backup_bucket
    return Settings(
        _env_file=None, home=tmp_path / "home", postgres_dsn=warehouse.dsn,
        postgres_schema=warehouse.schema, backup_bucket=bucket, backup_prefix="backups/",
        backup_keep_daily=7, backup_keep_weekly=4, backup_paths=backup_folders,
        s3_endpoint_url=s3_server, s3_region="us-east-1",
        s3_access_key_id=ACCESS_KEY, s3_secret_access_key=SECRET_KEY,
    )


def seed(warehouse) -> None:
    with psycopg.connect(warehouse.dsn) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(warehouse.schema)))
        for i, (dist, sku, price) in enumerate([("sol", "M-550", 799.9), ("lumen", "INV-5K", None),
                                                ("sol", "Ç-ção", 1e-3)]):
            conn.execute(
                "INSERT INTO items_normalized (distributor, sku, category, brand, price_brl, "
                "inmetro_status, source_file, source_line, ingested_at) "
                "VALUES (%s, %s, 'module', 'Marca', %s, 'ok', 'f.csv', %s, now())",
                (dist, sku, price, i + 2))
        conn.execute(
            "INSERT INTO items_quarantine VALUES ('sol', 'f.csv', 9, 'bad_price', 'x', "
            "'{\"sku\": \"X\", \"preço\": \"abc\"}', now())")
        conn.execute("INSERT INTO company (id, name, municipality, state, latitude, longitude, utility) "
                     "VALUES ('c1', 'Solar Ltda', 'Curitiba', 'PR', -25.4, -49.3, 'COPEL-DIS')")
        conn.execute("INSERT INTO quote (id, company_id, customer_class, connection, "
                     "consumption_kwh_month) VALUES ('q1', 'c1', 'B1', 'bi', '[300,310,290]')")
        conn.execute("INSERT INTO quote_item VALUES ('qi1', 'q1', 'sol', 'M-550', 10, 799.9)")
        conn.execute('INSERT INTO "order" (id, quote_id) VALUES (\'o1\', \'q1\')')


def table_contents(dsn: str, schema: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_type = 'BASE TABLE' ORDER BY 1", (schema,))]
        return {t: [r[0] for r in conn.execute(sql.SQL("SELECT x::text FROM {}.{} x ORDER BY 1").format(
            sql.Identifier(schema), sql.Identifier(t)))] for t in tables}


@pytest.fixture()
def backup_new_database(pg_server):
    """Creates empty databases on the test server on demand; drops them afterwards."""
    created = []

    def make() -> str:
        name = f"restored_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_server.dsn(database="postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return pg_server.dsn(database=name)

    yield make
    with psycopg.connect(pg_server.dsn(database="postgres"), autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def keys(client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


# --- flows -----------------------------------------------------------------------------------
@pytest.mark.integration
def test_backup_then_restore_into_a_new_database(backup_settings, backup_bucket, warehouse,
                                                 backup_new_database, tmp_path):
    client, bucket = backup_bucket
    seed(warehouse)
    result = backup(backup_settings, now=dt("2026-03-10T12:34:56"))

    assert result.name == "20260310T123456Z"
    prefix = "backups/20260310T123456Z/"
    assert keys(client, bucket) == [prefix + "database.dump", prefix + "folders.tar.gz", prefix + "manifest.json"]
    manifest = json.loads(client.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    assert manifest == result.manifest
    assert manifest["schema"] == warehouse.schema
    assert manifest["pg_dump_version"].startswith("pg_dump (PostgreSQL) 18")
    assert manifest["tables"]["items_normalized"] == 3 and manifest["tables"]["order"] == 1
    for name in ("database.dump", "folders.tar.gz"):
        assert manifest["files"][name]["size"] > 0 and len(manifest["files"][name]["sha256"]) == 64
    assert [(f["archived_as"], f["files"]) for f in manifest["folders"]] == [("landing", 2), (None, 0)]
    assert [b.name for b in list_backups(backup_settings)] == ["20260310T123456Z"]
    assert result.retention.kept == ["20260310T123456Z"] and result.retention.deleted == []

    target = backup_new_database()
    restored = restore("20260310T123456Z", SecretStr(target), backup_settings, folders_to=tmp_path / "out")

    assert restored.tables == manifest["tables"]
    assert "password" not in restored.target
    source = table_contents(warehouse.dsn, warehouse.schema)
    assert "items_normalized" in source and len(source["items_normalized"]) == 3
    assert table_contents(target, warehouse.schema) == source
    out = tmp_path / "out" / "landing"
    assert (out / "catalog" / "feed.csv").read_text(encoding="utf-8") == "sku;preço\nA1;10,50\n"
    assert (out / "tariffs" / "t.bin").read_bytes() == bytes(range(256)) * 40
    assert restored.folders == ["landing"]


@pytest.mark.integration
def test_backup_report_artifact(backup_settings, warehouse):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    result = backup(backup_settings, now=dt("2026-03-11T00:00:00"))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["backup-report"])))
    assert any(result.name in (a.data or "") and warehouse.schema in (a.data or "") for a in artifacts)


@pytest.mark.integration
def test_restore_refuses_a_non_empty_target_and_accepts_an_empty_schema(
        backup_settings, warehouse, backup_new_database):
    seed(warehouse)
    name = backup(backup_settings, now=dt("2026-03-10T00:00:00")).name
    with pytest.raises(RestoreTargetNotEmptyError, match="empty database"):
        restore(name, SecretStr(warehouse.dsn), backup_settings)  # the source itself
    # a schema that exists but has nothing in it is fine
    target = backup_new_database()
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(warehouse.schema)))
    restore(name, SecretStr(target), backup_settings)
    assert table_contents(target, warehouse.schema) == table_contents(warehouse.dsn, warehouse.schema)


@pytest.mark.integration
def test_unknown_backup_name_lists_the_available_ones(backup_settings):
    backup(backup_settings, now=dt("2026-03-10T00:00:00"))
    backup(backup_settings, now=dt("2026-03-11T00:00:00"))
    with pytest.raises(BackupNotFoundError, match="'20250101T000000Z'.*available: 20260311T000000Z, 20260310T000000Z"):
        restore("20250101T000000Z", None, backup_settings)


@pytest.mark.integration
def test_a_corrupted_object_fails_the_sha256_check(backup_settings, backup_bucket, warehouse,
                                                   backup_new_database):
    client, bucket = backup_bucket
    seed(warehouse)
    name = backup(backup_settings, now=dt("2026-03-10T00:00:00")).name
    key = f"backups/{name}/database.dump"
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    target = backup_new_database()
    with pytest.raises(BackupIntegrityError, match="database.dump .*corrupted: sha256"):
        restore(name, SecretStr(target), backup_settings)
    with psycopg.connect(target) as conn:  # nothing was restored
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                            (warehouse.schema,)).fetchone() is None


@pytest.mark.integration
def test_retention_end_to_end(backup_settings, backup_bucket):
    client, bucket = backup_bucket
    settings = backup_settings.model_copy(update={"ops": backup_settings.ops.model_copy(update={
        "backup": backup_settings.ops.backup.model_copy(update={"keep_daily": 2, "keep_weekly": 2})})})
    # not ours: never listed, never deleted
    client.put_object(Bucket=bucket, Key="backups/notes.txt", Body=b"x")
    client.put_object(Bucket=bucket, Key="backups/manual/manifest.json", Body=b"{}")
    runs = {}
    for when in ["2026-03-02T10:00:00", "2026-03-04T10:00:00",  # Mon, Wed of ISO week 10
                 "2026-03-10T09:00:00", "2026-03-10T18:00:00", "2026-03-11T08:00:00"]:  # week 11
        result = backup(settings, now=dt(when))
        runs[result.name] = result.retention
    assert runs["20260310T090000Z"].deleted == ["20260302T100000Z"]
    assert runs["20260310T180000Z"].deleted == ["20260310T090000Z"]
    # daily: 3/11 and 3/10 (its newest); weekly: week 11 (3/11) and week 10 (3/4)
    assert runs["20260311T080000Z"].kept == ["20260311T080000Z", "20260310T180000Z", "20260304T100000Z"]
    assert [b.name for b in list_backups(settings)] == ["20260311T080000Z", "20260310T180000Z",
                                                        "20260304T100000Z"]
    remaining = keys(client, bucket)
    assert "backups/notes.txt" in remaining and "backups/manual/manifest.json" in remaining
    assert len(remaining) == 2 + 3 * 3


@pytest.mark.integration
def test_an_incomplete_backup_is_ignored_then_cleaned_after_a_day(backup_settings, backup_bucket):
    client, bucket = backup_bucket
    for name in ("database.dump", "folders.tar.gz"):  # an upload that died before its manifest
        client.put_object(Bucket=bucket, Key=f"backups/20260310T000000Z/{name}", Body=b"partial")
    assert list_backups(backup_settings) == []

    first = backup(backup_settings, now=dt("2026-03-10T20:00:00"))  # 20 h later: maybe still running
    assert first.retention.deleted_incomplete == []
    assert [b.name for b in list_backups(backup_settings)] == ["20260310T200000Z"]
    assert "backups/20260310T000000Z/database.dump" in keys(client, bucket)

    second = backup(backup_settings, now=dt("2026-03-11T00:00:01"))  # > 1 day: cleaned
    assert second.retention.deleted_incomplete == ["20260310T000000Z"]
    assert not [k for k in keys(client, bucket) if k.startswith("backups/20260310T000000Z/")]
    assert [b.name for b in list_backups(backup_settings)] == ["20260311T000001Z", "20260310T200000Z"]


@pytest.mark.integration
def test_a_transient_pg_dump_failure_is_retried(backup_settings, monkeypatch, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    calls = []
    real = backup_mod._pg_bin

    def flaky(tool: str) -> Path:
        calls.append(tool)
        if tool == "pg_dump" and calls.count("pg_dump") == 1:
            return tmp_path / "pg_dump-gone"  # the first attempt cannot even start pg_dump
        return real(tool)

    monkeypatch.setattr(backup_mod, "_pg_bin", flaky)
    monkeypatch.setattr(backup_mod, "dump_database",
                        backup_mod.dump_database.with_options(retry_delay_seconds=0))
    state = backup(backup_settings, now=dt("2026-03-10T00:00:00"), return_state=True)
    assert state.is_completed()
    assert state.result().name == "20260310T000000Z"
    assert calls.count("pg_dump") >= 2

    flow_run_id = state.state_details.flow_run_id

    def dump_run_count():
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        dumps = [r for r in runs if r.name.startswith("dump_database") and r.state and r.state.is_completed()]
        return dumps[0].run_count if dumps else None

    assert wait_for(dump_run_count, timeout=20, what="dump_database task run") == 2


@pytest.mark.integration
def test_missing_bucket_is_a_clear_error(backup_settings):
    settings = backup_settings.model_copy(update={"ops": backup_settings.ops.model_copy(update={
        "backup": backup_settings.ops.backup.model_copy(update={"bucket": None})})})
    with pytest.raises(BackupConfigError, match="YSH_BACKUP_BUCKET"):
        backup(settings)
    with pytest.raises(BackupConfigError, match="YSH_BACKUP_BUCKET"):
        list_backups(settings)
