"""Least privilege and secrets: the pipelines' roles on the embedded server, the PID check
of postmaster.pid, secret files, reprs without passwords, the replication-slot WAL check."""

from __future__ import annotations

import os
import stat
import subprocess
import uuid

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from ysh import db
from ysh.services.postgres import CDC_ROLE, PIPELINES_ROLE, EmbeddedPostgres, free_port, is_server_process, write_secret
from ysh.settings import Settings, get_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory):
    """A YSH_HOME whose embedded server was set up by `ysh db migrate`."""
    from ysh.cli import app

    home = tmp_path_factory.mktemp("ysh-roles")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YSH_HOME", str(home))
        mp.setenv("YSH_EMBEDDED_POSTGRES_PORT", str(port))
        mp.delenv("YSH_POSTGRES_DSN", raising=False)
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["db", "migrate"])
        assert result.exit_code == 0, result.output
        settings = get_settings()
        server = db.embedded_server(settings)
        try:
            yield settings, server
        finally:
            server.stop()
            get_settings.cache_clear()


def role(dsn: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT rolname, rolsuper, rolreplication, rolcreaterole, rolcreatedb FROM pg_roles "
                            "WHERE rolname = current_user").fetchone()


def test_the_pipelines_connect_as_a_role_that_owns_the_schema_and_is_not_superuser(embedded_home):
    settings, server = embedded_home
    dsn = db.resolve_dsn(settings)
    assert role(dsn) == (PIPELINES_ROLE, False, False, False, False)
    with psycopg.connect(server.dsn()) as conn:  # as the superuser: who owns what
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s",
                              (settings.warehouse.schema_name,)).fetchall()
        schema_owner = conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s",
                                    (settings.warehouse.schema_name,)).fetchone()
    assert owners == [(PIPELINES_ROLE,)] and schema_owner == (PIPELINES_ROLE,)
    # and it does its work: writes, reads, migrates again
    with db.connect(dsn, settings.warehouse.schema_name) as conn:
        conn.execute("CREATE TABLE roles_probe (id int PRIMARY KEY)")
        conn.execute("INSERT INTO roles_probe VALUES (1) ON CONFLICT (id) DO NOTHING")
        assert conn.execute("SELECT count(*) FROM roles_probe").fetchone() == (1,)
        conn.execute("DROP TABLE roles_probe")
        conn.commit()
    assert db.migrate(dsn, settings.warehouse.schema_name) == []


def test_only_the_followers_role_has_replication(embedded_home):
    settings, _server = embedded_home
    cdc = db.Warehouse.from_settings(settings, replication=True)
    assert role(cdc.dsn) == (CDC_ROLE, False, True, False, False)
    slot = f"roles_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db.resolve_dsn(settings), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    with psycopg.connect(cdc.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        # a member of the owner role: it may publish the platform's tables
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}.ops_alerts_sent").format(
            sql.Identifier(slot), sql.Identifier(settings.warehouse.schema_name)))
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(slot)))


def test_a_schema_the_superuser_created_is_given_to_the_pipelines_role(embedded_home):
    """An install from before the roles: its tables belong to the superuser until the
    next start hands them over."""
    _settings, server = embedded_home
    schema = f"old_{uuid.uuid4().hex[:8]}"
    db.migrate(server.dsn(), schema)
    db.provision_roles(server, schema)
    with psycopg.connect(server.dsn()) as conn:
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()
        views = conn.execute("SELECT DISTINCT viewowner FROM pg_views WHERE schemaname = %s", (schema,)).fetchall()
    assert owners == [(PIPELINES_ROLE,)] and set(views) <= {(PIPELINES_ROLE,)}
    assert db.migrate(server.role_dsn(PIPELINES_ROLE), schema) == []


def test_the_password_files_are_0600(embedded_home):
    _settings, server = embedded_home
    for path in (server.password_file, server.role_password_file(PIPELINES_ROLE), server.role_password_file(CDC_ROLE)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert not list(server.root.glob(".*.tmp"))


def test_a_secret_file_is_0600_from_the_start_and_never_replaced(tmp_path):
    os.umask(0o022)
    target = tmp_path / "secret"
    write_secret(target, "first")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "first"
    with pytest.raises(FileExistsError):
        write_secret(target, "second")
    assert target.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_a_live_unrelated_pid_in_postmaster_pid_is_not_running_and_never_signalled(tmp_path, pg_server):
    server = EmbeddedPostgres(tmp_path / "pg", free_port())
    server.data_dir.mkdir(parents=True)
    (server.data_dir / "PG_VERSION").write_text("18\n")
    stranger = subprocess.Popen(["sleep", "120"])
    try:
        (server.data_dir / "postmaster.pid").write_text(f"{stranger.pid}\n{server.data_dir}\n")
        status = server.status()
        assert not status.running and status.pid is None
        assert server.stop() is False
        assert stranger.poll() is None  # not signalled
        (server.data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n")
        assert not server.status().running
    finally:
        stranger.kill()
        stranger.wait()
    # the real server passes the same check, with its own data directory only
    real = pg_server.status()
    assert real.running and is_server_process(real.pid, pg_server.data_dir)
    assert not is_server_process(real.pid, server.data_dir)


def test_reprs_hide_the_password(pg_server):
    from ysh.resources import WarehouseResource

    dsn = pg_server.dsn()
    password = psycopg.conninfo.conninfo_to_dict(dsn)["password"]
    assert password not in repr(db.Warehouse(dsn, "ysh")) and password not in str(db.Warehouse(dsn, "ysh"))
    assert password not in repr(WarehouseResource(dsn=dsn, schema_name="ysh"))
    settings = Settings(postgres_dsn=dsn, om_mqtt_password="mqtt-secret", om_kafka_sasl_password="kafka-secret")
    assert not {password, "mqtt-secret", "kafka-secret"} & set(repr(settings).replace("'", " ").split())


def test_the_wal_check_warns_when_a_slot_holds_back_more_than_the_limit(warehouse, pg_server):
    import dagster as dg

    from ysh import ops_assets
    from ysh.resources import SettingsResource, WarehouseResource

    slot = f"walcheck_{uuid.uuid4().hex[:8]}"
    resource = WarehouseResource(dsn=warehouse.dsn, schema_name=warehouse.schema)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            # about 3 MB of WAL the idle slot has to keep, flushed: the check reads the WAL's
            # write position, which an unflushed message may not have reached yet (a clean
            # run saw 1.5 MB of the 3)
            conn.execute("SELECT pg_logical_emit_message(false, 'ysh-test', repeat('x', 3 * 1024 * 1024), true)")
            slots = {s.name: s for s in ops_assets.replication_slots(resource)}
            assert slots[slot].retained_bytes > 2 * ops_assets.MB and not slots[slot].active
            passed, reason = ops_assets.judge(list(slots.values()), 1 * ops_assets.MB)
            assert not passed and slot in reason
            assert ops_assets.judge([slots[slot]], 1024 * ops_assets.MB)[0]
            # through Dagster: the observation carries the check, a warning
            os.environ["YSH_REPLICATION_SLOT_MAX_WAL_MB"] = "1"
            try:
                defs = dg.Definitions(assets=[ops_assets.warehouse_replication_slots], jobs=[ops_assets.ops_replication_job],
                                      resources={"warehouse": resource, "settings": SettingsResource()})
                result = defs.resolve_job_def("ops_replication_observe").execute_in_process()
            finally:
                del os.environ["YSH_REPLICATION_SLOT_MAX_WAL_MB"]
            [check] = result.get_asset_check_evaluations()
            assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
