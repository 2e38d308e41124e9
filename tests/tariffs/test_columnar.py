"""The column-by-column parse of *tarifas homologadas* (what the Pathway graph runs) gives
exactly the rows of the row-by-row domain parser, on the shipped ANEEL sample, on a file of
the benchmark's shape, and on layouts it must hand back to the row parser."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ysh.tariffs.aneel import _decimal_or_none, per_kwh
from ysh.tariffs.columnar import (
    SEPARATOR,
    engine_row,
    gathered_columns_hold,
    parse_tariffs_columnar,
    rows_with_edge_spaces,
    value_of,
)
from ysh.tariffs.load import load_file, split_file

from ..conftest import REPO
from .test_aneel import HEADER, tariff_line

REH = "RESOLUÇÃO HOMOLOGATÓRIA Nº 3.456, DE 27 DE MAIO DE 2025"
SAMPLE = REPO / "data" / "sample" / "tariffs" / "tarifas-homologadas-distribuidoras-energia-eletrica.csv"


def assert_same_as_row_parser(data: bytes, name: str = "t.csv", line_offset: int = 0):
    got = parse_tariffs_columnar(data, name, line_offset)
    assert got is not None, "the columnar parser refused a plain layout"
    ref = load_file(data, name, line_offset)
    assert got.rows == [engine_row(t) for t in ref.tariffs]
    assert got.quarantine == ref.quarantine
    assert got.encoding == ref.encoding
    spans = {key: sorted(s[0] for s in group) for key, group in got.spans}
    assert spans == {key: sorted(r[1] for r in got.rows if r[0] == key) for key in {r[0] for r in got.rows}}
    return got


def test_the_shipped_sample_parses_to_the_same_rows_and_quarantine():
    got = assert_same_as_row_parser(SAMPLE.read_bytes(), SAMPLE.name)
    # the sample's planted bad rows (data/sample/tariffs_expected): every reason the parse gives
    assert {q.reason for q in got.quarantine} == {"negative_value", "missing_key", "unknown_unit",
                                                  "unparseable_value"}
    assert len(got.rows) + len(got.quarantine) == 489


def test_the_sample_in_chunks_gives_the_same_rows_and_line_numbers():
    data = SAMPLE.read_bytes()
    chunks = split_file(data, chunk_bytes=8192)
    assert len(chunks) > 3
    rows = [r for c in chunks for r in assert_same_as_row_parser(c.data, SAMPLE.name, c.line_offset).rows]
    assert rows == [engine_row(t) for t in load_file(data, SAMPLE.name).tariffs]


def test_a_benchmark_shaped_file_parses_to_the_same_rows(tmp_path):
    from ysh.samples.tariffs import write_benchmark_tariffs

    path = tmp_path / "tarifas.csv"
    write_benchmark_tariffs(path, 5000)
    got = assert_same_as_row_parser(path.read_bytes())
    assert len(got.rows) == 5000


def test_padded_cells_and_utf8_are_stripped_like_the_row_parser():
    lines = [tariff_line(), tariff_line(start="2024-05-28", end="2025-05-27").replace(";MWh;", "; MWh ;"),
             tariff_line(start="2023-05-28", end="2024-05-27", tusd=" 440,00"), tariff_line(te="-1,00"),
             tariff_line(tusd="abc"), tariff_line(start="2020-02-30")]
    for encoding in ("utf-8", "cp1252", "utf-8-sig"):
        data = ("\r\n".join([HEADER, *lines]) + "\r\n").encode(encoding)
        got = assert_same_as_row_parser(data)
        assert sorted(q.reason for q in got.quarantine) == ["negative_value", "unparseable_date",
                                                            "unparseable_value"]


@pytest.mark.parametrize("layout", ["quoted line break", "extra field", "extra field first", "blank line",
                                    "escaped quote", "only spaces", "utf-16"])
def test_layouts_the_row_parser_decides_are_handed_back(layout):
    lines = [tariff_line(), tariff_line(start="2024-05-28", end="2025-05-27")]
    if layout == "quoted line break":
        lines[1] = lines[1].replace(REH, '"RESOLUÇÃO\nHOMOLOGATÓRIA"')
    elif layout == "extra field":
        lines[1] += ";X"
    elif layout == "extra field first":
        lines[0] += ";X"
    elif layout == "blank line":
        lines.insert(1, "")
    elif layout == "escaped quote":
        lines[1] = lines[1].replace(REH, '"RESOLUÇÃO ""A"""')
    elif layout == "only spaces":
        lines.insert(1, "   ")
    text = "\n".join([HEADER, *lines]) + "\n"
    data = text.encode("utf-16") if layout == "utf-16" else text.encode("utf-8")
    assert parse_tariffs_columnar(data, "t.csv") is None


def test_the_graph_gives_the_row_parsers_rows_for_handed_back_layouts(tmp_path):
    from ysh.tariffs import job

    lines = [tariff_line(), tariff_line(start="2024-05-28", end="2025-05-27") + ";X",
             tariff_line(start="2023-05-28", end="2024-05-27")]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "t.csv").write_bytes(("\n".join([HEADER, *lines]) + "\n").encode("utf-8"))
    report = job.run_static([tmp_path / "in"], tmp_path / "out")
    assert report.counts["tariffs"] == 2 and report.quarantine_by_reason == {"malformed_row": 1}


def test_values_equal_the_exact_decimal_conversion():
    texts = [",00", "0", "1", "377,80", "1.234,56", "0,000001", "123456789012345,1234567891", "-3,2", "abc",
             "12,3,4", "", "1e3", " 5", "٣,٣"]
    texts += [f"{i * 7919 % 100000},{i * 104729 % 1000:03d}" for i in range(2000)]
    for text in texts:
        value = _decimal_or_none(text)
        expected = None if value is None or value < 0 else (per_kwh(value), float(value))
        assert value_of(text) == expected, text


def test_the_quick_disjointness_check_agrees_with_the_overlap_rules():
    import random
    from datetime import date

    from ysh.tariffs.book import Span, check_periods
    from ysh.tariffs.pipeline import _disjoint

    rng = random.Random(7)
    seen = {True: 0, False: 0}
    for case in range(3000):
        spans = []
        for i in range(rng.randint(1, 5)):
            start = 738000 + rng.randint(0, 60)
            end = None if rng.random() < 0.1 else start + rng.randint(0, 20)
            spans.append((f"t{i:02d}", i + 2, start, end, (rng.choice((1.0, 2.0)),)))
        if rng.random() < 0.1:
            spans.append(("t99", 99, *spans[0][2:]))  # an exact repeat
        overlapping, duplicates = check_periods(
            Span(t, line, date.fromordinal(a), date.fromordinal(b) if b else None, v) for t, line, a, b, v in spans)
        disjoint = _disjoint(spans)
        seen[disjoint] += 1
        assert disjoint == (not overlapping and not duplicates), spans
    assert min(seen.values()) > 300


def _gathered(*columns: list[str]) -> list[str]:
    return [SEPARATOR.join(values) for values in columns]


def test_values_with_spaces_at_an_edge_are_found_in_gathered_columns():
    joined = _gathered(["CPFL", "ENEL SP", " LIGHT", "COPEL"],  # inner space: plain; leading space: row 2
                       ["B1", "B3\xa0", "B1", "B1"],  # a no-break space at the end: row 1
                       ["a", "b", "c", "\u3000d"])  # an ideographic space at the start of the last value: row 3
    assert rows_with_edge_spaces(joined) == {1, 2, 3}
    assert rows_with_edge_spaces(_gathered(["RESOLUÇÃO Nº 1", "x y"], ["", "B1"])) == set()
    assert rows_with_edge_spaces(_gathered(["\tA", "B "])) == {0, 1}  # the first value's start, the last's end


def test_a_value_holding_the_separator_is_told_by_the_count():
    assert gathered_columns_hold(_gathered(["a", "b", ""], ["c", "d", "e"]), 3)
    assert not gathered_columns_hold(_gathered(["a", "b" + SEPARATOR + "x", "c"]), 3)
    assert gathered_columns_hold([""], 1)  # one empty value


_VALUE_CHARS = st.sampled_from(["a", "Ç", "1", " ", "\t", "\n", "\xa0", "\u3000", "\x1c", "\x85", "\u2028", "-"])


@given(st.lists(st.lists(st.text(_VALUE_CHARS, max_size=4), min_size=1, max_size=6), min_size=1, max_size=3))
def test_edge_spaces_are_the_values_strip_would_change(columns):
    n = min(len(c) for c in columns)
    columns = [c[:n] for c in columns]
    want = {i for col in columns for i, v in enumerate(col) if v != v.strip()}
    assert rows_with_edge_spaces(_gathered(*columns)) == want
