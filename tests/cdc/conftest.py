import uuid

import psycopg
import pytest


@pytest.fixture(scope="session")
def dsn(pg_server):
    """The session's PostgreSQL (wal_level=logical), default database."""
    return pg_server.dsn()


@pytest.fixture
def db(dsn):
    """An autocommit connection plus a unique name prefix; slots/publications dropped after."""
    conn = psycopg.connect(dsn, autocommit=True)
    prefix = "t" + uuid.uuid4().hex[:8]
    yield conn, prefix
    conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name LIKE %s AND active_pid IS NULL", (prefix + "%",))
    for (pub,) in conn.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE %s",
                               (prefix + "%",)).fetchall():
        conn.execute(f'DROP PUBLICATION "{pub}"')
    conn.close()
