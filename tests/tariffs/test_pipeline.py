"""The tariffs graph run statically (Pathway, no server) and the CLI around it."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from ysh.cli import app
from ysh.tariffs import job
from ysh.tariffs.aneel import COMPONENT_HEADER

from ..conftest import REPO
from .test_aneel import HEADER, component, tariff_line
from .test_book import PERIODS


@pytest.fixture()
def aneel_dir(tmp_path):
    folder = tmp_path / "aneel"
    folder.mkdir()
    overlap = tariff_line(start="2025-01-01", end="2025-12-31", tusd="999,00", subclass="Baixa Renda")
    (folder / "tarifas.csv").write_bytes(("\n".join([HEADER, *PERIODS, overlap, tariff_line(tusd="abc")]) + "\n")
                                         .encode("latin-1"))
    (folder / "componentes.csv").write_bytes(
        ("\n".join([";".join(COMPONENT_HEADER), component(value="183,42")]) + "\n").encode("utf-8-sig"))
    shutil.copy(REPO / "data" / "sample" / "tariffs" / "bandeira-tarifaria-acionamento.csv",
                folder / "bandeiras.csv")
    (folder / "notas.txt").write_text("não é um arquivo da ANEEL\n")
    return folder


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_static_run_writes_the_five_tables(aneel_dir, tmp_path):
    report = job.run_static([aneel_dir], tmp_path / "out")
    assert report.counts == {"tariffs": 4, "fio_b": 1, "flags": 136, "monthly": 46, "quarantine": 4}
    assert report.quarantine_by_reason == {"overlapping_validity": 2, "unparseable_value": 1, "unparseable_file": 1}
    tariffs = read(tmp_path / "out" / "tarifas_normalized.jsonl")
    b1 = [t for t in tariffs if t["subgroup"] == "B1"]
    assert [(t["valid_from"][:10], t["tusd_brl_per_kwh"], t["te_brl_per_kwh"]) for t in b1] == [
        ("2023-05-28", 0.44, 0.27), ("2024-05-28", 0.46, 0.28), ("2025-05-28", 0.48125, 0.28931)]
    monthly = {(m["subgroup"], m["month"][:7]): m for m in read(tmp_path / "out" / "tarifas_efetivas_mensais.jsonl")}
    june = monthly[("B1", "2025-06")]
    assert (june["flag"], june["total_brl_per_kwh"]) == ("Vermelha P1", round(0.28931 + 0.48125 + 0.04463, 6))
    quarantine = read(tmp_path / "out" / "tarifas_quarantine.jsonl")
    overlap = [q for q in quarantine if q["reason"] == "overlapping_validity"]
    assert sorted(q["line"] for q in overlap) == [6, 7]
    assert overlap[0]["raw"]["utility"] == "CEMIG-D"


def test_cli_load_and_at(aneel_dir, tmp_path):
    runner = CliRunner()
    loaded = runner.invoke(app, ["tariffs", "load", str(aneel_dir), "--out", str(tmp_path / "out")])
    assert loaded.exit_code == 0, loaded.output
    assert "overlapping_validity" in loaded.output
    found = runner.invoke(app, ["tariffs", "at", "CEMIG-D", "B1", "2025-10-01", "--data", str(aneel_dir)])
    assert found.exit_code == 0, found.output
    assert "0.48125" in found.output and "0.18342" in found.output and "Vermelha P1" in found.output
    missing = runner.invoke(app, ["tariffs", "at", "CEMIG-D", "B1", "2019-10-01", "--data", str(aneel_dir)])
    assert missing.exit_code == 1 and "no Tarifa de Aplicação valid" in missing.output
    bad_date = runner.invoke(app, ["tariffs", "at", "CEMIG-D", "B1", "01/10/2025", "--data", str(aneel_dir)])
    assert bad_date.exit_code == 2


@pytest.mark.parametrize("name", ["tarifas-homologadas-distribuidoras-energia-eletrica.csv",
                                  "componentes-tarifarias.csv", "bandeira-tarifaria-acionamento.csv"])
def test_chunks_parse_to_the_same_rows_and_lines_as_the_whole_file(name):
    from ysh.tariffs.load import load_file, split_file

    data = (REPO / "data" / "sample" / "tariffs" / name).read_bytes()
    chunks = split_file(data, chunk_bytes=1024)
    assert len(chunks) > 2 and all(c.data.startswith(data[:data.index(b"\n") + 1]) for c in chunks)
    whole = load_file(data, name)
    parts = [load_file(c.data, name, c.line_offset) for c in chunks]
    for kind in ("tariffs", "fio_b", "flags", "quarantine"):
        assert [r for p in parts for r in getattr(p, kind)] == getattr(whole, kind), kind


def test_a_line_break_inside_quotes_is_never_cut():
    from ysh.tariffs.load import load_file, split_file

    quoted = [tariff_line(start=f"20{y}-01-01", end=f"20{y}-12-31").replace("RESOLUÇÃO", '"RESOLUÇÃO\nHOMOL"', 1)
              for y in range(10, 40)]
    data = (HEADER + "\n" + "\n".join(quoted) + "\n").encode("utf-8")
    chunks = split_file(data, chunk_bytes=300)
    assert all(c.data.count(b'"') % 2 == 0 for c in chunks)
    whole = load_file(data, "q.csv")
    assert len(whole.tariffs) == 30 and whole.tariffs[1].line == 4  # physical lines: two per record
    assert [t for c in chunks for t in load_file(c.data, "q.csv", c.line_offset).tariffs] == whole.tariffs
    # a field with more line breaks than a chunk holds: every cut would fall inside quotes
    long_field = tariff_line().replace("RESOLUÇÃO", '"' + "RESOLUÇÃO\n" * 100 + '"', 1)
    data = (HEADER + "\n" + long_field + "\n").encode("utf-8")
    assert split_file(data, chunk_bytes=300) == [(data, 0)]


def test_two_pathway_processes_with_small_chunks_give_the_same_tables_as_one(tmp_path):
    import os
    import subprocess
    import sys

    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}"
        env = {**os.environ, "YSH_PATHWAY_PROCESSES": str(processes), "YSH_TARIFFS_CHUNK_BYTES": "4096"}
        done = subprocess.run([sys.executable, "-m", "ysh.cli", "tariffs", "load",
                               str(REPO / "data" / "sample" / "tariffs"), "--out", str(out)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs[processes] = {f: sorted(json.dumps(row, sort_keys=True) for row in read(out / f))
                              for f, _ in job.JSONL_FILES.values()}
    assert outputs[2] == outputs[1]
    assert len(outputs[2]["tarifas_normalized.jsonl"]) == 476
