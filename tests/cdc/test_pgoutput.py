"""Decoder checks on real pgoutput payloads, fetched through the SQL interface
(pg_logical_slot_peek_binary_changes gives the same bytes as the stream)."""
import os

from ysh.cdc import pgoutput as po


def changes(conn, slot, pub, **extra):
    opts = ["proto_version", "1", "publication_names", pub]
    for k, v in extra.items():
        opts += [k, v]
    rows = conn.execute(
        "SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL, "
        + ", ".join(["%s"] * len(opts)) + ")", [slot, *opts]).fetchall()
    return [(po.parse_lsn(lsn), po.decode(data)) for lsn, data in rows]


def setup(conn, p, ddl, identity=None):
    conn.execute(f"CREATE TABLE {p} ({ddl})")
    if identity:
        conn.execute(f"ALTER TABLE {p} REPLICA IDENTITY {identity}")
    conn.execute(f"CREATE PUBLICATION {p}_pub FOR TABLE {p}")
    conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (p + "_slot",))


def test_insert_update_delete_truncate_default_identity(db):
    conn, p = db
    setup(conn, p, "id int PRIMARY KEY, name text, n numeric, ts timestamptz")
    conn.execute(f"INSERT INTO {p} VALUES (1, 'a', 1.5, '2026-01-02 03:04:05.678+00'), (2, NULL, NULL, NULL)")
    conn.execute(f"UPDATE {p} SET name = 'b' WHERE id = 1")
    conn.execute(f"UPDATE {p} SET id = 3 WHERE id = 2")  # key change -> 'K' tuple
    conn.execute(f"DELETE FROM {p} WHERE id = 1")
    conn.execute(f"TRUNCATE {p}")
    msgs = [m for _, m in changes(conn, p + "_slot", p + "_pub")]
    kinds = [type(m).__name__ for m in msgs]
    assert kinds == ["Begin", "Relation", "Insert", "Insert", "Commit",
                     "Begin", "Update", "Commit", "Begin", "Update", "Commit",
                     "Begin", "Delete", "Commit", "Begin", "Relation", "Truncate", "Commit"]
    rel = msgs[1]
    assert (rel.namespace, rel.name, rel.replica_identity) == ("public", p, "d")
    assert [(c.name, c.is_key) for c in rel.columns] == [
        ("id", True), ("name", False), ("n", False), ("ts", False)]
    assert msgs[2].new == ("1", "a", "1.5", "2026-01-02 03:04:05.678+00")
    assert msgs[3].new == ("2", None, None, None)
    assert msgs[6].key is None and msgs[6].old is None and msgs[6].new[:2] == ("1", "b")
    assert msgs[9].key == ("2", None, None, None) and msgs[9].new[0] == "3"
    assert msgs[12].key == ("1", None, None, None)
    assert msgs[16].rel_ids == (rel.rel_id,)
    begin, commit = msgs[0], msgs[4]
    assert begin.final_lsn == commit.commit_lsn < commit.end_lsn


def test_replica_identity_full_and_unchanged_toast(db):
    conn, p = db
    setup(conn, p, "id int PRIMARY KEY, small text, big text", identity="FULL")
    big = os.urandom(20000).hex()  # incompressible: stored out of line (TOAST)
    conn.execute(f"INSERT INTO {p} VALUES (1, 's', %s)", (big,))
    conn.execute(f"UPDATE {p} SET small = 't' WHERE id = 1")
    conn.execute(f"DELETE FROM {p} WHERE id = 1")
    msgs = [m for _, m in changes(conn, p + "_slot", p + "_pub")]
    rel = next(m for m in msgs if isinstance(m, po.Relation))
    assert rel.replica_identity == "f" and all(c.is_key for c in rel.columns)
    upd = next(m for m in msgs if isinstance(m, po.Update))
    assert upd.new == ("1", "t", po.UNCHANGED_TOAST)  # new tuple omits the TOASTed value...
    assert upd.old == ("1", "s", big)  # ...but FULL's old tuple carries it (detoasted)
    dele = next(m for m in msgs if isinstance(m, po.Delete))
    assert dele.old == ("1", "t", big) and dele.key is None


def test_unchanged_toast_default_identity(db):
    conn, p = db
    setup(conn, p, "id int PRIMARY KEY, small text, big text")
    big = os.urandom(20000).hex()
    conn.execute(f"INSERT INTO {p} VALUES (1, 's', %s)", (big,))
    conn.execute(f"UPDATE {p} SET small = 't' WHERE id = 1")
    upd = next(m for _, m in changes(conn, p + "_slot", p + "_pub") if isinstance(m, po.Update))
    assert upd.old is None and upd.key is None
    assert upd.new == ("1", "t", po.UNCHANGED_TOAST)


def test_type_message_for_enum_and_logical_message(db):
    conn, p = db
    conn.execute(f"CREATE TYPE {p}_mood AS ENUM ('ok', 'sad')")
    setup(conn, p, f"id int PRIMARY KEY, mood {p}_mood")
    with conn.transaction():
        conn.execute(f"INSERT INTO {p} VALUES (1, 'sad')")
        conn.execute("SELECT pg_logical_emit_message(true, 'pfx', 'hello')")
    msgs = [m for _, m in changes(conn, p + "_slot", p + "_pub", messages="true")]
    types = [m for m in msgs if isinstance(m, po.TypeInfo)]
    assert types and types[0].name == f"{p}_mood"
    ins = next(m for m in msgs if isinstance(m, po.Insert))
    assert ins.new == ("1", "sad")
    lm = next(m for m in msgs if isinstance(m, po.LogicalMessage))
    assert (lm.transactional, lm.prefix, lm.content) == (True, "pfx", b"hello")
    conn.execute(f"DROP TABLE {p}")
    conn.execute(f"DROP TYPE {p}_mood")


def test_errors():
    import pytest
    with pytest.raises(po.ProtocolError):
        po.decode(b"")
    with pytest.raises(po.ProtocolError):
        po.decode(b"Z")
    with pytest.raises(po.ProtocolError):
        po.decode(b"B\x00\x00")  # truncated
    with pytest.raises(po.ProtocolError):
        po.decode(b"I\x00\x00\x00\x01N\x00\x01b\x00\x00\x00\x01x")  # binary column


def test_lsn_roundtrip():
    assert po.format_lsn(po.parse_lsn("16/B374D848")) == "16/B374D848"
    assert po.parse_lsn("0/1") == 1
