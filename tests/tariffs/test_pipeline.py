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

    reh = "RESOLUÇÃO HOMOLOGATÓRIA Nº 3.456, DE 27 DE MAIO DE 2025"
    quoted = [tariff_line(start=f"20{y}-01-01", end=f"20{y}-12-31").replace(reh, '"RESOLUÇÃO\n' + reh[10:] + '"', 1)
              for y in range(10, 40)]
    data = (HEADER + "\n" + "\n".join(quoted) + "\n").encode("utf-8")
    chunks = split_file(data, chunk_bytes=300)
    assert all(c.data.count(b'"') % 2 == 0 for c in chunks)
    whole = load_file(data, "q.csv")
    assert len(whole.tariffs) == 30 and whole.tariffs[1].line == 4  # physical lines: two per record
    assert [t for c in chunks for t in load_file(c.data, "q.csv", c.line_offset).tariffs] == whole.tariffs
    # a field with more line breaks than a chunk holds: every cut would fall inside quotes
    long_field = tariff_line().replace(reh, '"' + "RESOLUÇÃO\n" * 100 + '"', 1)
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


def test_monthly_tariffs_need_neither_fio_b_nor_flags(tmp_path):
    only_tariffs = tmp_path / "only"
    only_tariffs.mkdir()
    shutil.copy(REPO / "data" / "sample" / "tariffs" / "tarifas-homologadas-distribuidoras-energia-eletrica.csv",
                only_tariffs)
    report = job.run_static([only_tariffs], tmp_path / "out")
    assert (report.counts["fio_b"], report.counts["flags"], report.counts["monthly"]) == (0, 0, 398)
    monthly = read(tmp_path / "out" / "tarifas_efetivas_mensais.jsonl")
    assert all(m["flag"] is None and m["flag_addon_brl_per_kwh"] == 0.0 for m in monthly)


def test_conflicting_flags_are_quarantined_in_both_paths(tmp_path):
    from ysh.tariffs.load import load_paths

    header = "DatGeracaoConjuntoDados;DatCompetencia;NomBandeiraAcionada;VlrAdicionalBandeira"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(f"{header}\n2026-05-01;2015-02-01;Amarela;10,00\n"
                                           "2026-05-01;2015-01-01;Verde;,00\n")
    (tmp_path / "in" / "b.csv").write_text(f"{header}\n2026-05-01;2015-01-01;Vermelha P1;30,00\n"
                                           "2026-05-01;2015-02-01;Amarela;10,00\n")
    report = job.run_static([tmp_path / "in"], tmp_path / "out")
    assert (report.counts["flags"], report.quarantine_by_reason) == (1, {"conflicting_flag": 2})
    flags = read(tmp_path / "out" / "tarifas_bandeiras.jsonl")
    assert [(f["month"][:7], f["flag"]) for f in flags] == [("2015-02", "Amarela")]  # the repeat, kept once
    conflict = read(tmp_path / "out" / "tarifas_quarantine.jsonl")[0]
    assert "conflicts with" in conflict["detail"] and conflict["raw"]["month"] == "2015-01-01"
    loaded = load_paths([tmp_path / "in"])
    assert [f.flag for f in loaded.flags] == ["Amarela"]
    assert sorted(q.reason for q in loaded.quarantine) == ["conflicting_flag", "conflicting_flag"]


def test_a_file_given_twice_counts_once_and_nothing_found_is_an_error(aneel_dir, tmp_path):
    once = job.run_static([aneel_dir], tmp_path / "once")
    twice = job.run_static([aneel_dir, aneel_dir / "tarifas.csv"], tmp_path / "twice")
    assert twice.counts == once.counts
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no files"):
        job.run_static([tmp_path / "empty"], tmp_path / "out")
