"""Hostile feed files never end a catalog run or the follower (issue 15, part 3).

JSON nested 100,000 levels deep, integers of more than 4,300 digits (Python refuses to
convert them), invalid UTF-8, NUL bytes and ``\\u0000``/lone-surrogate escapes (which no
PostgreSQL text holds: the writer used to fail and take the pipeline down): each file or
record becomes a quarantine row with a reason, and the rest of the feeds go on."""

from __future__ import annotations

import json
import os

import pytest

from ysh.catalog import job
from ysh.catalog.normalize import normalize_feed

from ..conftest import query, wait_for
from .feeds_fixture import ENERGIA_VERDE, rewrite, write_feeds
from .test_keep_good_feed import follower  # noqa: F401 - the fixture

GOOD_ROW = b'{"sku": "OK-1", "categoria": "Modulo", "potencia": 550, "preco": 100}'
HEADER = b"sku;categoria;potencia;preco;estoque\n"

#: file name → (bytes, the quarantine rows expected as (line, reason), SKUs that still become items)
HOSTILE: dict[str, tuple[bytes, list[tuple[int, str]], list[str]]] = {
    "deep.json": (b"[" * 100_000 + b"]" * 100_000, [(0, "unparseable_file")], []),
    "deep-value.jsonl": (b'{"sku": "D-1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n" + GOOD_ROW + b"\n",
                         [(1, "malformed_json")], ["OK-1"]),
    "bigint.json": (b'[{"sku": "B-1", "categoria": "Modulo", "potencia": 550, "preco": ' + b"9" * 5000 + b"}, "
                    + GOOD_ROW + b"]", [(1, "unparseable_price")], ["OK-1"]),
    "bigint.jsonl": (b'{"sku": "B-2", "categoria": "Modulo", "potencia": ' + b"5" * 4301 + b', "preco": 100}\n',
                     [(1, "unparseable_power")], []),
    "bigint.csv": (HEADER + b"B-3;Modulo;550;100;" + b"7" * 5000 + b"\nOK-1;Modulo;550;100;3\n",
                   [(2, "unparseable_stock")], ["OK-1"]),
    "invalid-utf8.csv": (HEADER + b"U-1;M\xf3dulo;550;100;1\nU-2\xff\x81;Inversor;5000;3000;1\n", [],
                         ["U-1", "U-2Ÿ\x81"]),
    "broken-utf16.csv": (b"\xff\xfe" + "sku;preco\n".encode("utf-16-le") + b"\x00", [(0, "unparseable_file")], []),
    "nul-late.csv": (HEADER + b"OK-1;Modulo;550;100;1\n" * 4000 + b"N-1\x00;Modulo;550;100;1\n",
                     [(0, "unparseable_file")], []),
    "nul-escape.json": (b'[{"sku": "N-2\\u0000", "categoria": "Modulo", "potencia": 550, "preco": 100}, '
                        b'{"sku": "N-3", "descricao": "lone \\ud800 surrogate", "categoria": "Modulo", '
                        b'"potencia": 550, "preco": 100}, ' + GOOD_ROW + b"]",
                        [(1, "malformed_record"), (2, "malformed_record")], ["OK-1"]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_normalizer_turns_hostile_input_into_quarantine_rows(name):
    data, rows, skus = HOSTILE[name]
    result = normalize_feed(data, name, "hostile")
    assert [(q.line, q.reason) for q in result.quarantine] == rows
    assert [item.sku for item in result.items] == skus
    for q in result.quarantine:  # what PostgreSQL's text and jsonb, and Pathway's Json, can hold
        json.loads(q.raw)
        assert "\x00" not in q.raw + q.detail and "\\u0000" not in q.raw
        (q.raw + q.detail).encode("utf-8")


def land_hostile(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _, _) in HOSTILE.items():
        (folder / name).write_bytes(data)


def expected_rows():
    return sorted((name, line, reason) for name, (_, rows, _) in HOSTILE.items() for line, reason in rows)


def quarantined(warehouse, distributor="hostile"):
    return sorted((os.path.basename(f), line, reason) for f, line, reason in query(
        warehouse, "SELECT source_file, line, reason FROM items_quarantine WHERE distributor = %s", (distributor,)))


@pytest.mark.integration
def test_a_batch_run_quarantines_hostile_files_and_writes_the_rest(warehouse, tmp_path):
    landing = tmp_path / "landing"
    write_feeds(landing)
    land_hostile(landing / "hostile")
    report = job.run_static([landing], warehouse=warehouse, reconcile_after=True)
    assert quarantined(warehouse) == expected_rows()
    assert sorted(s for (s,) in query(warehouse, "SELECT sku FROM items_normalized WHERE distributor = 'hostile'")) \
        == ["OK-1", "U-1", "U-2Ÿ\x81"]  # OK-1 once: the newest of its files wins
    assert query(warehouse, "SELECT count(*) FROM items_normalized WHERE distributor <> 'hostile'") == [(5,)]
    assert report.files == 3 + len(HOSTILE)


@pytest.mark.integration
def test_the_follower_quarantines_hostile_files_and_goes_on(follower, warehouse):  # noqa: F811
    landing, start = follower
    paths = write_feeds(landing)
    proc, log_path = start()
    wait_for(lambda: query(warehouse, "SELECT count(*) FROM items_normalized") == [(5,)], timeout=120,
             what="the good feeds")
    land_hostile(landing / "hostile")
    # a good feed's new version nested 100,000 levels deep: held, its items stay
    rewrite(paths["energia_verde"], b"[" * 100_000 + b"]" * 100_000)
    wait_for(lambda: quarantined(warehouse) == expected_rows(), timeout=120, what="the hostile files quarantined")
    wait_for(lambda: query(warehouse, "SELECT reason FROM items_quarantine WHERE distributor = 'energia_verde' "
                                      "AND line = 0") == [("unparseable_file",)], what="the deep re-upload held")
    assert query(warehouse, "SELECT sku FROM items_normalized WHERE distributor = 'energia_verde' ORDER BY 1") == [
        ("EV-1",), ("EV-2",)]
    assert proc.poll() is None, log_path.read_text()[-3000:]

    # and it goes on: a feed landed after them is followed as usual
    (landing / "after.json").write_text(json.dumps([{**ENERGIA_VERDE[0], "sku": "AFTER-1"}]))
    wait_for(lambda: query(warehouse, "SELECT sku FROM items_normalized WHERE distributor = 'after'")
             == [("AFTER-1",)], what="a feed landed after the hostile ones")
    assert proc.poll() is None
