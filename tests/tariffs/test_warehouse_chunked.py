"""The warehouse batch (``ysh tariffs run``) reads ``tarifas_raw`` in chunks and parses
*tarifas homologadas* by columns; it must write exactly the tables of the row-by-row
batch (one UDF call per raw row, Pathway's own writer), on the shipped sample and on
rows the columnar parser hands back to the row parser, against a real PostgreSQL."""

import json
import os
import subprocess
import sys

import pytest
from psycopg import sql

from ysh import db
from ysh.tariffs import job

from ..conftest import REPO, query
from .test_aneel import HEADER, tariff_line
from .test_book import PERIODS
from .test_warehouse import land, write_tariffs

pytestmark = pytest.mark.integration

SAMPLE = REPO / "data" / "sample" / "tariffs"
OUTPUTS = [table for table, _ in job.TABLES.values()]


def full_state(warehouse) -> dict[str, list[tuple]]:
    """Every output table, every column but ``updated_at``, sorted."""
    state = {}
    for table in OUTPUTS:
        columns = [c for (c,) in query(warehouse, "SELECT column_name FROM information_schema.columns "
                                                  "WHERE table_schema = %s AND table_name = %s "
                                                  "AND column_name <> 'updated_at' ORDER BY ordinal_position",
                                       (warehouse.schema, table))]
        rows = query(warehouse, sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)).as_string())
        state[table] = sorted((tuple(json.dumps(v, sort_keys=True, ensure_ascii=False) if isinstance(v, (dict, list))
                                     else v for v in row) for row in rows), key=repr)
    return state


def empty_outputs(warehouse) -> None:
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, OUTPUTS))))
        conn.commit()


def assert_chunked_equals_row_by_row(warehouse, chunk_rows: int = job.RAW_CHUNK_ROWS) -> dict[str, list[tuple]]:
    job.run_warehouse(warehouse, chunked=False)
    reference = full_state(warehouse)
    empty_outputs(warehouse)  # a first load into empty tables (the COPY path)
    job.run_warehouse(warehouse, chunk_rows=chunk_rows)
    assert full_state(warehouse) == reference
    job.run_warehouse(warehouse, chunk_rows=chunk_rows)  # over its own rows: upserts, nothing pruned
    assert full_state(warehouse) == reference
    for writer in ("pathway", "copy"):  # the rows unpacked in the graph, by Pathway's writer and by kit.sinks
        empty_outputs(warehouse)
        job.run_warehouse(warehouse, chunk_rows=chunk_rows, writer=writer)
        assert full_state(warehouse) == reference
    return reference


def test_an_unknown_writer_and_packed_rows_by_row_are_refused(warehouse):
    with pytest.raises(ValueError, match="'packed', 'pathway', 'copy'"):
        job.run_warehouse(warehouse, writer="csv")
    with pytest.raises(ValueError, match="needs the chunked batch"):
        job.run_warehouse(warehouse, chunked=False, writer="packed")


@pytest.mark.parametrize("chunk_rows", [job.RAW_CHUNK_ROWS, 37])
def test_the_sample_gives_the_same_tables_chunked_and_row_by_row(warehouse, chunk_rows):
    land(warehouse, SAMPLE)
    state = assert_chunked_equals_row_by_row(warehouse, chunk_rows)
    assert len(state["tarifas_normalized"]) > 400 and len(state["tarifas_efetivas_mensais"]) == 398
    assert {q[2] for q in state["tarifas_quarantine"]} == {"missing_key", "negative_value", "overlapping_validity",
                                                         "unknown_unit", "unparseable_value"}
    assert len(state["tarifas_fio_b"]) > 0 and len(state["tarifas_bandeiras"]) > 0


def test_rows_the_columns_cannot_vouch_for_give_the_row_parsers_result(warehouse, tmp_path):
    reh = "RESOLUÇÃO HOMOLOGATÓRIA Nº 3.456, DE 27 DE MAIO DE 2025"
    lines = [*PERIODS,
             PERIODS[2],  # an exact repeat: kept once
             tariff_line(start="2025-06-01", end="2025-12-31", tusd="500,00"),  # overlaps PERIODS[2]
             tariff_line(utility="COPEL-DIS") + ";X",  # a value beyond the header: malformed_row
             tariff_line(utility="COPEL-DIS", start="2024-05-28", end="2025-05-27").replace(
                 reh, '"RESOLUÇÃO\nHOMOLOGATÓRIA ""A"""'),  # a line break and a quote inside a field
             tariff_line(utility="LIGHT", te="-1,00"), tariff_line(utility="LIGHT", tusd="abc"),
             tariff_line(utility="LIGHT", start="2020-02-30"), tariff_line(utility="LIGHT", unit="kWh"),
             tariff_line(utility="LIGHT", start="2026-01-01", end="2025-01-01"),
             tariff_line(utility="LIGHT", base="Outra"), tariff_line(utility=""),
             tariff_line(utility="LIGHT", unit="kW", tusd="12,34", te=",00"),
             tariff_line(utility="LIGHT", tusd="1.234,56"),
             tariff_line(utility="ENEL SP", klass="", subclass="", detail="", post="")]
    land(warehouse, write_tariffs(tmp_path / "tarifas-edge.csv", *lines), SAMPLE / "bandeira-tarifaria-acionamento.csv")
    # rows written by hand (as a CDC producer could): spaces around values, a missing
    # column, every value empty, a column beyond ANEEL's, and a componentes row that is not Fio B
    record = dict(zip(HEADER.split(";"), tariff_line(utility="CELESC-DIS").split(";")))
    padded = {k: f" {v} " for k, v in record.items()}
    missing = {k: v for k, v in record.items() if k != "DscREH"}
    missing["DatInicioVigencia"] = "2024-01-01"
    missing["DatFimVigencia"] = "2024-12-31"
    empty = {k: "" for k in record}
    extra_column = {**record, "DatInicioVigencia": "2023-01-01", "DatFimVigencia": "2023-12-31", "Observacao": "x"}
    # the unit separator inside a value (the server's column separator): that chunk comes as records
    separator = {**record, "DatInicioVigencia": "2022-01-01", "DatFimVigencia": "2022-12-31", "DscREH": "REH\x1f1"}
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        for line, (dataset, rec) in enumerate([("tariffs", padded), ("tariffs", missing), ("tariffs", empty),
                                               ("tariffs", extra_column), ("fio_b", record),
                                               ("tariffs", separator)], start=2):
            conn.execute("INSERT INTO tarifas_raw (source, line, dataset, record, extra_fields, batch_id) "
                         "VALUES ('manual.csv', %s, %s, %s, 0, 'by-hand')",
                         (line, dataset, json.dumps(rec, ensure_ascii=False)))
        conn.commit()
    state = assert_chunked_equals_row_by_row(warehouse, chunk_rows=4)
    reasons = sorted(q[2] for q in state["tarifas_quarantine"])
    assert reasons == sorted(["overlapping_validity"] * 2 + ["malformed_row", "negative_value", "unparseable_value",
                                                            "unparseable_date", "unknown_unit", "inverted_validity",
                                                            "missing_key", "missing_key", "missing_key"])
    manual = query(warehouse, "SELECT line, resolution, utility FROM tarifas_normalized "
                              "WHERE source_file = 'manual.csv' ORDER BY line")
    assert [(line, utility) for line, _, utility in manual] == [(2, "CELESC-DIS"), (3, "CELESC-DIS"),
                                                                 (5, "CELESC-DIS"), (7, "CELESC-DIS")]
    assert manual[1][1] == ""  # the missing column reads as the row parser reads it
    assert manual[3][1] == "REH\x1f1"


def test_lines_at_the_ends_of_bigint_are_read(warehouse):
    """A chunk starts after the last line of the one before: the first starts at the
    source's lowest line, whatever it is (no sentinel value that a line could equal)."""
    record = dict(zip(HEADER.split(";"), tariff_line(utility="CELESC-DIS").split(";")))
    lines = [(-(1 << 63), "2020"), (0, "2021"), ((1 << 63) - 1, "2022")]
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        for line, year in lines:
            conn.execute("INSERT INTO tarifas_raw (source, line, dataset, record, extra_fields, batch_id) "
                         "VALUES ('extremes.csv', %s, 'tariffs', %s, 0, 'by-hand')",
                         (line, json.dumps({**record, "DatInicioVigencia": f"{year}-01-01",
                                            "DatFimVigencia": f"{year}-12-31"}, ensure_ascii=False)))
        conn.commit()
    state = assert_chunked_equals_row_by_row(warehouse, chunk_rows=1)
    assert sorted(row[-1] for row in state["tarifas_normalized"]) == [line for line, _ in lines]


def test_a_removed_source_is_pruned_by_the_chunked_batch(warehouse):
    land(warehouse, SAMPLE)
    job.run_warehouse(warehouse)
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        conn.execute("DELETE FROM tarifas_raw WHERE source = 'bandeira-tarifaria-acionamento.csv'")
        conn.commit()
    counts = job.run_warehouse(warehouse, chunk_rows=50)
    assert (counts["tarifas_bandeiras"], counts["tarifas_efetivas_mensais"]) == (0, 398)
    chunked = full_state(warehouse)
    job.run_warehouse(warehouse, chunked=False)
    assert full_state(warehouse) == chunked


def test_the_warehouse_benchmark_runs_and_its_variants_agree(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "tariffs.py"), "--warehouse", "--rows", "2000",
                           "--repeat", "1", "--data", str(tmp_path)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "equal the row-by-row batch's (every column): yes" in out
    assert "equal to pandas' in every warehouse variant: yes" in out
    assert "the row-by-row batch" in out and "load average" in out and "not judged at 2,000" in out


def test_the_quick_check_of_jsonb_text_never_misses_a_padded_or_non_text_value(warehouse):
    from ysh.tariffs.columnar import jsonb_values_are_stripped_text

    spaces = [chr(c) for c in range(0x110000) if chr(c).strip() == "" and chr(c) != ""]
    values = [f"{s}x" for s in spaces] + [f"x{s}" for s in spaces] + [s for s in spaces]
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        def as_jsonb_text(record) -> str:
            return conn.execute("SELECT %s::jsonb::text", (json.dumps(record, ensure_ascii=False),)).fetchone()[0]

        for value in values:  # first, middle and last key of a record
            for record in ({"A": value, "B": "y"}, {"A": "y", "B": value, "C": "z"}, {"A": "y", "B": value}):
                assert not jsonb_values_are_stripped_text(as_jsonb_text(record)), (value, record)
        for odd in (1, 2.5, None, True, ["x"], {"k": "v"}):
            assert not jsonb_values_are_stripped_text(as_jsonb_text({"A": "y", "B": odd}))
        plain = {"A": "RESOLUÇÃO \"HOMOLOGATÓRIA\" Nº 3.456", "B": "", "C": "a b", "D": "x\\", "E": "ÇÃ"}
        assert jsonb_values_are_stripped_text(as_jsonb_text(plain))
    land(warehouse, SAMPLE)
    texts = [t for (t,) in query(warehouse, "SELECT record::text FROM tarifas_raw")]
    assert jsonb_values_are_stripped_text("[" + ",".join(texts) + "]")


def test_a_batch_whose_read_fails_leaves_the_tables_as_they_were(warehouse, monkeypatch):
    """The chunk source fails half-way (a lost server, say): the batch raises and the
    tables keep the last good batch's rows — nothing replaced by a part, nothing pruned."""
    land(warehouse, SAMPLE)
    job.run_warehouse(warehouse)
    before = full_state(warehouse)

    class FailingSubject(job.RawChunksSubject):
        def next(self, **values):
            self.sent = getattr(self, "sent", 0) + 1
            if self.sent == 3:
                raise OSError("the server went away")
            super().next(**values)

    monkeypatch.setattr(job, "RawChunksSubject", FailingSubject)
    with pytest.raises(Exception, match="the server went away|did not read everything"):
        job.run_warehouse(warehouse, chunk_rows=50)
    assert full_state(warehouse) == before


def test_records_that_are_not_json_objects_are_quarantined_not_fatal(warehouse):
    """A poison pill in ``tarifas_raw`` (a record written by hand or by another tool as
    JSON null, an array, a string, a number, a boolean) becomes a ``malformed_row``
    quarantine row in every dataset; the batch goes on, chunked and row by row alike."""
    land(warehouse, SAMPLE)
    record = dict(zip(HEADER.split(";"), tariff_line(utility="CELESC-DIS").split(";")))
    odd = ["null", "[]", '["x", 1]', '"texto"', "5", "true", "2.5"]
    rows = [(dataset, text) for dataset in ("tariffs", "fio_b", "flags") for text in odd]
    rows.insert(4, ("tariffs", json.dumps(record, ensure_ascii=False)))  # a good record among them
    with db.connect(warehouse.dsn, warehouse.schema) as conn:
        for line, (dataset, text) in enumerate(rows, start=2):
            conn.execute("INSERT INTO tarifas_raw (source, line, dataset, record, extra_fields, batch_id) "
                         "VALUES ('odd.csv', %s, %s, %s::jsonb, 0, 'by-hand')", (line, dataset, text))
        conn.commit()
    state = assert_chunked_equals_row_by_row(warehouse, chunk_rows=3)
    quarantined = query(warehouse, "SELECT line, reason, detail, raw FROM tarifas_quarantine "
                                   "WHERE source_file = 'odd.csv' ORDER BY line")
    assert len(quarantined) == len(odd) * 3
    assert {reason for _, reason, _, _ in quarantined} == {"malformed_row"}
    assert all("not a JSON object" in detail for _, _, detail, _ in quarantined)
    assert [raw for _, _, _, raw in quarantined[:len(odd)]] == [None, [], ["x", 1], "texto", 5, True, 2.5]
    assert [tuple(r) for r in query(warehouse, "SELECT line FROM tarifas_normalized WHERE source_file = 'odd.csv'")] \
        == [(6,)]  # the good record
    assert len(state["tarifas_quarantine"]) > len(quarantined)  # the sample's own, beside
