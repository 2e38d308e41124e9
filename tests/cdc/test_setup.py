import psycopg
import pytest

from ysh.cdc.connector import CdcError, check_server_setup


def test_a_missing_publication_is_a_clear_error(db):
    conn, p = db
    conn.execute(f'CREATE TABLE "{p}" (id int PRIMARY KEY)')
    with pytest.raises(CdcError, match=f"CREATE PUBLICATION {p}_pub FOR TABLE {p}"):
        check_server_setup(conn, p, f"{p}_pub")
    conn.execute(f'CREATE PUBLICATION "{p}_pub" FOR TABLE "{p}"')
    check_server_setup(conn, p, f"{p}_pub")  # now fine


class _ServerAnswering:
    """Stands in for a server whose wal_level is not logical (ours always is)."""

    def __init__(self, wal_level):
        self.wal_level = wal_level

    def execute(self, query, params=()):
        assert query == "SHOW wal_level"
        return self

    def fetchone(self):
        return (self.wal_level,)


def test_wal_level_other_than_logical_is_a_clear_error():
    with pytest.raises(CdcError, match="set wal_level = logical"):
        check_server_setup(_ServerAnswering("replica"), "quote", "quote_pub")


def test_a_role_without_replication_is_refused(db, dsn):
    conn, p = db
    conn.execute(f"CREATE ROLE {p} LOGIN PASSWORD 'test-only-{p}' NOREPLICATION")
    try:
        conn.execute(f'CREATE TABLE "{p}" (id int PRIMARY KEY)')
        conn.execute(f'CREATE PUBLICATION "{p}_pub" FOR TABLE "{p}"')
        other = psycopg.conninfo.make_conninfo(dsn, user=p, password=f"test-only-{p}")
        with psycopg.connect(other) as limited, pytest.raises(CdcError, match="REPLICATION"):
            check_server_setup(limited, p, f"{p}_pub")
    finally:
        conn.execute(f'DROP PUBLICATION IF EXISTS "{p}_pub"')
        conn.execute(f'DROP TABLE IF EXISTS "{p}"')
        conn.execute(f"DROP ROLE {p}")
