"""The static O&M run reads telemetry files in chunks of whole lines (``ysh.om.chunks``,
``build_om_graph(packed=True)``): the lines are the ones Pathway's plaintext reader
gives, a chunk boundary changes nothing in the outputs, and a line that is not UTF-8 is
quarantined instead of dropped."""

import json
from datetime import timedelta

import pathway as pw
from hypothesis import given, settings
from hypothesis import strategies as st

from ysh import pw_runtime
from ysh.kit.files import data_path
from ysh.om.chunks import NOT_UTF8, WHITESPACE, chunks_of, lines_of, message_lines
from ysh.om.job import run_detect
from ysh.samples.om_telemetry import default_scenario, simulate, write_jsonl

PLANTS = data_path("sample", "om", "plants.json")
OUTPUTS = ("windows.jsonl", "alerts.jsonl", "quarantine.jsonl")

# lines with white space of every kind at their ends and inside, and characters that
# Python's str.strip() takes and Rust's trim() keeps
HOSTILE_LINES = [
    '{"a": 1}', "  padded  ", "\ttabbed\t", "crlf\r", "\r", "", "   ", "\x0b\x0cvt-ff\x0c", "nbsp\xa0",
    "\xa0\u2028sep\u2029", "\x85nel\x85", "\x1cfile-sep\x1f", "\x1d\x1e", "ideo\u3000", "\u200b zero-width \u200b",
    "inner \r cr", "\x00nul\x00", "\u202f\u205fnarrow", "é ação ", "\ud7ff", "last",
]


def test_lines_are_what_pathways_plaintext_reader_gives(tmp_path):
    """The per-line reader the chunks replace: Pathway's ``pw.io.plaintext.read`` (split
    at ``\\n``, trimmed as Rust's ``trim``): the same lines, as a multiset."""
    data = "\n".join(HOSTILE_LINES).encode()
    (tmp_path / "f.txt").write_bytes(data)
    pw_runtime.fresh_graph()
    table = pw.io.plaintext.read(str(tmp_path / "f.txt"), mode="static")
    seen = pw_runtime.TableCollector(table, "lines")
    pw_runtime.run()
    assert sorted(row["data"] for row in seen.values()) == sorted(lines_of(data))
    assert "\x1cfile-sep\x1f" in list(lines_of(data))  # str.strip() would have taken these


def test_a_line_that_is_not_utf8_comes_marked():
    data = b'{"ok": 1}\r\nbad \xff\xfe line\n  fine  \n'
    assert list(lines_of(data)) == ['{"ok": 1}', NOT_UTF8 + "bad \\xff\\xfe line", "fine", ""]


def test_bus_messages_are_split_as_pathways_plaintext_format_split_them():
    """MQTT and Kafka are read as raw bytes; a message is trimmed at both ends and split
    at ``\\n``, as the plaintext format did (seen on mosquitto: ``b"  a\\r\\nb  \\r\\n"`` came
    as ``"a\\r\\nb"``); replayed text rows of that reader split as before."""
    assert message_lines(b"  a\r\nb  \r\n") == ["a\r", "b"]
    assert message_lines("a\r\nb") == ["a\r", "b"]
    assert message_lines('{"x": "ção"}'.encode()) == ['{"x": "ção"}']
    assert message_lines(b'{"a": 1}\n{"b": "\xff"}\n') == ['{"a": 1}', NOT_UTF8 + '{"b": "\\xff"}', ""]
    # a message that is not UTF-8: each line trimmed, CRLF as LF
    assert message_lines(b' {"a":1}\r\n\xff \r\n') == ['{"a":1}', NOT_UTF8 + "\\xff", ""]


def test_a_line_longer_than_a_chunk_is_read_whole(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(b"x" * 10_000 + b"\n" + b"y" * 50 + b"\n" + b"z" * 3_000)
    assert [(o, len(d)) for o, d in chunks_of(path, 1024)] == [(0, 10_052), (10_052, 3_000)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_no_line_marked_not_utf8_is_json_and_every_line_is_kept(data):
    """A marked line is JSON for no parser (even when a backslash in the input makes the
    written ``\\xNN`` a valid JSON escape), and the lines of a message are its lines."""
    import orjson

    lines = message_lines(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert len(lines) == data.count(b"\n") + 1
        for raw, got in zip(data.split(b"\n"), lines):
            try:
                assert got == raw.decode("utf-8").strip(WHITESPACE)
            except UnicodeDecodeError:
                assert got == NOT_UTF8 + raw.strip().decode("utf-8", "backslashreplace")
                for parse in (json.loads, orjson.loads):
                    try:
                        parse(got)
                    except ValueError:
                        continue
                    raise AssertionError(f"{got!r} parsed as JSON")
    else:
        assert lines == text.strip(WHITESPACE).split("\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.booleans(), st.integers(1, 64))
def test_chunks_are_whole_lines_that_join_back_into_the_file(tmp_path_factory, lines, final_newline, chunk_bytes):
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = tmp_path_factory.mktemp("c") / "f.jsonl"
    path.write_bytes(data)
    chunks = list(chunks_of(path, chunk_bytes))
    assert b"".join(c for _, c in chunks) == data
    assert all(c.endswith(b"\n") for _, c in chunks[:-1])
    assert all(c for _, c in chunks)
    assert [o for o, _ in chunks] == [sum(len(c) for _, c in chunks[:i]) for i in range(len(chunks))]


def _read(folder):
    return {name: (folder / name).read_text() for name in OUTPUTS}


def test_chunk_boundaries_change_nothing(tmp_path):
    """Twelve hours with duplicates (some in other chunks than their first copy), invalid
    lines and faults, in two files: chunks of 2 KB (a window's samples spread over many
    chunks), of the default size (each file one chunk) and the streaming operator's
    line-by-line read give the same windows, alerts and quarantine, line for line."""
    scenario = default_scenario("2026-01-15", 12, seed=11)
    events = list(simulate(scenario))
    events += events[::997]  # copies far from their first delivery
    half = len(events) // 2
    write_jsonl(events[half:], tmp_path / "in" / "a.jsonl")
    write_jsonl(events[:half], tmp_path / "in" / "b.jsonl")
    end = scenario.start + timedelta(hours=12)
    small = run_detect([tmp_path / "in"], PLANTS, tmp_path / "small", now=end, chunk_bytes=2048)
    whole = run_detect([tmp_path / "in"], PLANTS, tmp_path / "whole", now=end)
    run_detect([tmp_path / "in"], PLANTS, tmp_path / "lines", now=end, static_windows=False)
    assert small.windows == whole.windows > 0 and small.alerts_by_rule and small.quarantine_by_reason
    assert _read(tmp_path / "small") == _read(tmp_path / "whole") == _read(tmp_path / "lines")


def test_a_line_that_is_not_utf8_is_quarantined_and_the_run_goes_on(tmp_path):
    """Pathway's plaintext reader logs such a line and drops it; the chunked read keeps
    it as a ``malformed`` quarantine row. CRLF line ends read as LF."""
    scenario = default_scenario("2026-01-15", 2, seed=2)
    events = list(simulate(scenario))
    write_jsonl(events, tmp_path / "clean" / "t.jsonl")
    text = (tmp_path / "clean" / "t.jsonl").read_bytes()
    lines = text.splitlines()
    hostile = b"\r\n".join([*lines[:50], b'{"event_id": "x\xff\xfe", "plant_id": "p"}', *lines[50:]]) + b"\r\n"
    (tmp_path / "hostile").mkdir()
    (tmp_path / "hostile" / "t.jsonl").write_bytes(hostile)
    end = scenario.start + timedelta(hours=2)
    clean = run_detect([tmp_path / "clean"], PLANTS, tmp_path / "out-clean", now=end, chunk_bytes=4096)
    report = run_detect([tmp_path / "hostile"], PLANTS, tmp_path / "out-hostile", now=end, chunk_bytes=4096)
    assert report.windows == clean.windows > 0 and report.events == clean.events
    assert report.quarantine_by_reason.get("malformed", 0) == clean.quarantine_by_reason.get("malformed", 0) + 1
    rows = [json.loads(x) for x in (tmp_path / "out-hostile" / "quarantine.jsonl").read_text().splitlines()]
    bad = [r for r in rows if r["detail"].startswith("not UTF-8")]
    assert len(bad) == 1 and bad[0]["reason"] == "malformed" and "x\\xff\\xfe" in bad[0]["raw"]
    assert (tmp_path / "out-hostile" / "windows.jsonl").read_text() == (tmp_path / "out-clean" / "windows.jsonl").read_text()


def test_a_slow_read_gives_the_same_alerts(tmp_path, monkeypatch):
    """The static fold takes each window once and final, so the chunked source commits
    once, at the end of its input: a read that pauses longer than Pathway's default
    autocommit (1.5 s) between files must not hand the fold half of the input first (with
    it, 24 h in two files gave 35 alerts instead of 19: false comm_loss and plant_offline)."""
    import time

    from ysh.om import job
    from ysh.om.chunks import TelemetryChunksSubject

    scenario = default_scenario("2026-01-15", 24, seed=3)
    events = list(simulate(scenario))
    half = len(events) // 2
    write_jsonl(events[half:], tmp_path / "in" / "a-late-hours.jsonl")
    write_jsonl(events[:half], tmp_path / "in" / "b-early-hours.jsonl")
    end = scenario.start + timedelta(hours=24)
    fast = run_detect([tmp_path / "in"], PLANTS, tmp_path / "fast", now=end)

    class SlowSubject(TelemetryChunksSubject):
        def next(self, **values):
            if values["path"].endswith("b-early-hours.jsonl") and values["offset"] == 0:
                time.sleep(2.5)  # between the files: past the default autocommit
            super().next(**values)

    monkeypatch.setattr(job, "TelemetryChunksSubject", SlowSubject)
    slow = run_detect([tmp_path / "in"], PLANTS, tmp_path / "slow", now=end)
    assert fast.alerts_by_rule and slow.alerts_by_rule == fast.alerts_by_rule
    assert _read(tmp_path / "slow") == _read(tmp_path / "fast")


def test_the_followed_folder_gives_whole_lines_once_and_goes_on_where_it_stopped(tmp_path):
    """``ysh om follow --source jsonl``: each file is followed from its saved offset; a line
    is given once its newline is written (or its file stopped growing), as raw bytes; a
    file that shrank is read again; a restart seeks to the persisted offsets."""
    import json
    import os
    import time

    from ysh.om.chunks import FolderTailSubject

    folder = tmp_path / "landing"
    folder.mkdir()
    tail = FolderTailSubject(folder, settle_s=3600)
    log = folder / "a.jsonl"
    log.write_bytes(b'{"a": 1}\n{"b": \xff}\n{"c": ')  # the last line still being written
    assert tail._read_new(log) == [b'{"a": 1}', b'{"b": \xff}']
    assert tail._read_new(log) == []
    with log.open("ab") as fh:
        fh.write(b'3}\n\n')
    assert tail._read_new(log) == [b'{"c": 3}']  # blank lines skipped
    # a restart: the persisted offsets, then only what came after them
    state = json.dumps(tail._offsets).encode()
    with log.open("ab") as fh:
        fh.write(b'{"d": 4}\n')
    again = FolderTailSubject(folder, settle_s=3600)
    again._seek(state)
    assert again._read_new(log) == [b'{"d": 4}']
    # a last line without its newline, once the file stopped growing
    other = folder / "b.jsonl"
    other.write_bytes(b'{"e": 5}')
    assert again._read_new(other) == []
    old = time.time() - 7200
    os.utime(other, (old, old))
    assert again._read_new(other) == [b'{"e": 5}']
    # a file replaced by a shorter one is read from its start
    log.write_bytes(b'{"f": 6}\n')
    assert again._read_new(log) == [b'{"f": 6}']
    # a subfolder's files too, each with its own offset
    (folder / "plant-2").mkdir()
    (folder / "plant-2" / "a.jsonl").write_bytes(b'{"g": 7}\n')
    assert [p.relative_to(folder).as_posix() for p in again._files()] == ["a.jsonl", "b.jsonl", "plant-2/a.jsonl"]
    assert again._read_new(folder / "plant-2" / "a.jsonl") == [b'{"g": 7}']
    assert again._offsets["plant-2/a.jsonl"] == 9 and again._offsets["a.jsonl"] == 9
