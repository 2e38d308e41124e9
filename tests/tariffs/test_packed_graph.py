"""The file graph of ``ysh tariffs load`` keeps the tariff and Fio B rows packed per
utility (one overlap check per utility, JSONL written column by column): its five tables
are the pure domain path's (:func:`ysh.tariffs.load.load_paths` + ``TariffBook``) on files
of the benchmark's shape with overlaps and repeats across chunks and files, and its
per-row tables and JSONL writer agree with the packed rows."""

import datetime
import json
import math

import pytest

from ysh import pw_runtime
from ysh.tariffs import job, jsonl
from ysh.tariffs.aneel import COMPONENT_HEADER, TARIFF_HEADER
from ysh.tariffs.book import TariffBook
from ysh.tariffs.columnar import _values_of, value_of
from ysh.tariffs.load import load_paths
from ysh.tariffs.pipeline import _disjoint, _disjoint_days

from ..conftest import REPO
from .test_aneel import component

SAMPLE = REPO / "data" / "sample" / "tariffs"


@pytest.fixture()
def small_chunks(monkeypatch):
    from ysh.settings import get_settings

    monkeypatch.setenv("YSH_TARIFFS_CHUNK_BYTES", "16384")  # a key's periods spread over several chunks
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture()
def aneel_files(tmp_path):
    """A benchmark-shaped file (cp1252, CRLF) cut in two files, plus rows that overlap a
    period of their key, exact repeats of rows of the other file, a spelling of a utility
    in lower case, rows a rule rejects, the shipped Fio B and flag files and a Fio B overlap."""
    from ysh.samples.tariffs import write_benchmark_tariffs

    source = tmp_path / "bench.csv"
    write_benchmark_tariffs(source, 6000)
    header, *rows = [r for r in source.read_bytes().decode("cp1252").split("\r\n") if r]
    assert header == ";".join(TARIFF_HEADER)
    extra = []
    for i in range(0, 6000, 97):
        cells = rows[i].split(";")
        if i % 3 == 0:  # starts inside the key's period: both rows quarantined
            cells[4], cells[15] = cells[4][:8] + "15", "999,99"
        elif i % 3 == 1:
            cells[2] = cells[2].lower()  # the same key (labels compared folded), exact repeat: kept once
        extra.append(";".join(cells))
    extra += [rows[5].replace(";MWh;", ";kWh;"), rows[6].rsplit(";", 1)[0] + ";-1,00"]
    # a utility spelled two ways in kept rows (another modality: a key of its own)
    cells = rows[7].split(";")
    cells[2], cells[8] = cells[2].title(), "Modalidade Nova"
    extra.append(";".join(cells))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_bytes(("\r\n".join([header, *rows[:3000], *extra]) + "\r\n").encode("cp1252"))
    (folder / "b.csv").write_bytes(("\n".join([header, *rows[3000:], *rows[100:130]]) + "\n").encode("utf-8"))
    for name in ("componentes-tarifarias.csv", "bandeira-tarifaria-acionamento.csv"):
        (folder / name).write_bytes((SAMPLE / name).read_bytes())
    fio_b_overlap = component(value="190,00").replace("2025-05-28", "2025-06-01")
    (folder / "componentes-2.csv").write_bytes(
        ("\n".join([";".join(COMPONENT_HEADER), component(value="183,42"), fio_b_overlap]) + "\n").encode("utf-8"))
    return folder


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_file_graph_gives_the_domain_paths_tables(aneel_files, tmp_path, small_chunks):
    report = job.run_static([aneel_files], tmp_path / "out")
    ref = load_paths([aneel_files])
    out = tmp_path / "out"

    tariffs = read(out / "tarifas_normalized.jsonl")
    assert sorted((t["source_file"], t["line"]) for t in tariffs) == sorted((t.source_file, t.line)
                                                                           for t in ref.tariffs)
    by_line = {(t.source_file, t.line): t for t in ref.tariffs}
    for t in tariffs:
        r = by_line[(t["source_file"], t["line"])]
        assert (t["valid_from"][:10], t["tusd_brl_per_kwh"], t["te_brl_per_kw"], t["utility"]) == (
            r.valid_from.isoformat(), r.tusd_brl_per_kwh, r.te_brl_per_kw, r.utility)
    assert [(t["utility"], t["key_text"], t["valid_from"]) for t in tariffs] == sorted(
        (t["utility"], t["key_text"], t["valid_from"]) for t in tariffs)
    spellings: dict[str, set] = {}
    for t in tariffs:
        spellings.setdefault(t["key_text"].split("|")[0], set()).add(t["utility"])
    assert max(map(len, spellings.values())) == 2  # a utility spelled two ways: its rows sort apart
    assert report.utilities == sorted({t.utility for t in ref.tariffs})
    for name in ("tariffs", "fio_b"):  # the bytes write_jsonl writes for these rows
        filename, keys = job.JSONL_FILES[name]
        pw_runtime.write_jsonl(tmp_path / "again.jsonl", read(out / filename), keys)
        assert (tmp_path / "again.jsonl").read_bytes() == (out / filename).read_bytes()
    assert sorted((f["source_file"], f["line"]) for f in read(out / "tarifas_fio_b.jsonl")) == sorted(
        (f.source_file, f.line) for f in ref.fio_b)

    quarantine = read(out / "tarifas_quarantine.jsonl")
    assert sorted((q["source_file"], q["line"], q["reason"], q["detail"]) for q in quarantine) == sorted(
        (q.source_file, q.line, q.reason, q.detail) for q in ref.quarantine)
    overlapping = [q for q in quarantine if q["reason"] == "overlapping_validity"]
    assert len(overlapping) > 40 and any(q["raw"].get("fio_b_brl_per_kwh") for q in overlapping)
    assert ref.duplicates > 40  # the repeats, each kept once

    # the monthly view's book: the B1/B3 Tarifa de Aplicação energy rows (the graph's rule)
    book = TariffBook([t for t in ref.tariffs if t.subgroup.lower() in ("b1", "b3") and t.base == "aplicacao"
                       and t.unit == "MWh"], [], ref.flags)
    expected = sorted((m.utility, m.subgroup, m.month.isoformat(), m.total_brl_per_kwh, m.flag)
                      for u in book.utilities for s in ("B1", "B3") for m in book.months(u, s))
    monthly = read(out / "tarifas_efetivas_mensais.jsonl")
    assert sorted((m["utility"], m["subgroup"], m["month"][:10], m["total_brl_per_kwh"], m["flag"])
                  for m in monthly) == expected
    assert len(monthly) > 100
    assert report.counts["tariffs"] == len(ref.tariffs) and report.counts["flags"] == len(ref.flags)


def test_the_unpacked_tables_hold_the_packed_rows(aneel_files, small_chunks):
    tables = job.build([aneel_files])
    packed = {name: pw_runtime.TableCollector(tables.packed[name], f"packed_{name}") for name in job.LAYOUTS}
    rows = {name: pw_runtime.TableCollector(getattr(tables, name), name) for name in job.LAYOUTS}
    pw_runtime.run()
    for name, layout in job.LAYOUTS.items():
        names, from_packed = job._packed_rows(packed[name].values(), layout, ("utility", "key_text", "valid_from"))
        unpacked = [tuple(r[n] for n in names) for r in rows[name].values()]
        assert len(unpacked) == len(from_packed) > 0
        assert sorted(unpacked, key=str) == sorted(from_packed, key=str)


def test_the_column_writer_writes_what_write_jsonl_writes(tmp_path):
    names = ("text", "day", "value", "line", "other", "raw")
    rows = [
        ("Não se aplica", datetime.datetime(2025, 5, 28), 0.48125, 7, True, {"a": 1}),
        ('aspas " e \\ barra', None, -0.0, 8, None, [1, "ç"]),
        ("tab\tlinha\nnova \x00", datetime.date(2025, 1, 1), 0.0, 9, 1.5, None),
        (None, datetime.datetime(2026, 1, 1, 12, 30), math.inf, 10, "x", "y"),
        ("RESOLUÇÃO HOMOLOGATÓRIA Nº 3.456", datetime.datetime(2026, 1, 1), -math.inf, 11, 2, 3.0),
        ("emoji 🌞 e \u2028", datetime.datetime(2026, 1, 1), math.nan, 12, False, {}),
        ("", datetime.datetime(2026, 1, 1), None, -1, 0, 1e300),
    ] * 3
    pw_runtime.write_jsonl(tmp_path / "dicts.jsonl", [dict(zip(names, r)) for r in rows])
    for together in ((), (("text", "day"),), (("text", "day", "value"), ("other", "raw"))):
        jsonl.write_rows(tmp_path / "columns.jsonl", names, rows, together)
        assert (tmp_path / "columns.jsonl").read_bytes() == (tmp_path / "dicts.jsonl").read_bytes(), together
    with pytest.raises(ValueError, match="not adjacent"):
        jsonl.write_rows(tmp_path / "columns.jsonl", names, rows, (("text", "value"),))
    jsonl.write_rows(tmp_path / "empty.jsonl", names, [])
    assert (tmp_path / "empty.jsonl").read_bytes() == b""


@pytest.mark.parametrize("column", [
    ["377,80", ",00", "0,50", "12", "377,80", "999999999999999,9999999999"],
    ["377,80", "1.234,56", "", "abc", "-1,00", "-0,00", "1234567890123456", "12,3,4", ",5"],
    ["1\n2", "3"],  # a value holding a line break (possible in tarifas_raw's records)
    ["1" * 400],
])
def test_a_column_of_values_converts_as_each_value_does(column):
    assert _values_of(column) == [value_of(v) for v in column]


def test_the_check_on_day_numbers_alone_agrees_with_the_full_spans():
    import random

    rng = random.Random(3)
    for _ in range(2000):
        spans = []
        for i in range(rng.randint(0, 5)):
            start = rng.randint(0, 40)
            end = None if rng.random() < 0.2 else start + rng.randint(0, 15)
            spans.append((f"t{i}", i, start, end, (1.0,)))
        assert _disjoint_days([(s[2], s[3]) for s in spans]) == _disjoint(spans)
