"""The Pathway graph run statically, no server: feeds in, JSONL tables out."""

import json
from pathlib import Path

from typer.testing import CliRunner

from ysh.catalog import job
from ysh.cli import app

from .feeds_fixture import write_feeds


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_static_run_writes_items_quarantine_products_and_files(tmp_path):
    write_feeds(tmp_path / "landing")
    report = job.run_static([tmp_path / "landing"], out_dir=tmp_path / "out")

    items = read_jsonl(tmp_path / "out" / "items.jsonl")
    keys = [(i["distributor"], i["sku"]) for i in items]
    assert keys == [("energia_verde", "EV-1"), ("energia_verde", "EV-2"), ("fotovolt", "FS-10"),
                    ("sol_nascente", "SN001"), ("sol_nascente", "SN002")]
    quarantine = {(q["distributor"], q["line"]): q["reason"]
                  for q in read_jsonl(tmp_path / "out" / "quarantine.jsonl")}
    assert quarantine == {
        ("sol_nascente", 4): "missing_sku",
        ("sol_nascente", 5): "power_out_of_range",
        ("energia_verde", 3): "negative_price",
        ("fotovolt", 2): "unknown_category",
    }
    assert report.rows == 9 and report.items == 5 and report.quarantined == 4


def test_the_same_product_from_several_distributors_is_one_product(tmp_path):
    write_feeds(tmp_path / "landing")
    job.run_static([tmp_path / "landing"], out_dir=tmp_path / "out")
    products = {p["product_key"]: p for p in read_jsonl(tmp_path / "out" / "products.jsonl")}
    ja = products["JA Solar|JAM72S30550MR"]
    assert (ja["offers"], ja["distributors"], ja["min_price_brl"], ja["median_price_brl"]) == (
        2, 2, 589.9, 601.2)
    growatt = products["Growatt|MIN5000TLX"]
    assert (growatt["offers"], growatt["min_price_brl"], growatt["max_price_brl"]) == (2, 4990.0, 5149.9)


def test_two_files_of_one_distributor_newest_file_wins(tmp_path):
    folder = tmp_path / "landing" / "acme"
    folder.mkdir(parents=True)
    old, new = folder / "2026-11-01.csv", folder / "2026-11-20.csv"
    old.write_text("sku;categoria;potencia;preco\nA;Módulo;550;500\nB;Módulo;550;510\n")
    new.write_text("sku;categoria;potencia;preco\nA;Módulo;550;480\n")
    import os
    os.utime(old, (1_700_000_000, 1_700_000_000))
    os.utime(new, (1_800_000_000, 1_800_000_000))
    job.run_static([tmp_path / "landing"], out_dir=tmp_path / "out")
    items = {(i["distributor"], i["sku"]): i for i in read_jsonl(tmp_path / "out" / "items.jsonl")}
    assert set(items) == {("acme", "A"), ("acme", "B")}
    assert items[("acme", "A")]["price_brl"] == 480.0
    assert items[("acme", "A")]["source_file"].endswith("2026-11-20.csv")


def test_cli_normalize_writes_jsonl_with_the_distributor_from_the_stem(tmp_path):
    paths = write_feeds(tmp_path / "landing")
    result = CliRunner().invoke(app, ["catalog", "normalize", str(paths["fotovolt"]),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    items = read_jsonl(tmp_path / "out" / "items.jsonl")
    assert [(i["distributor"], i["sku"], i["brand"], i["power_w"]) for i in items] == [
        ("fotovolt", "FS-10", "Growatt", 5000.0)]
    assert "unknown_category" in result.output


def test_cli_normalize_distributor_override(tmp_path):
    paths = write_feeds(tmp_path / "landing")
    result = CliRunner().invoke(app, ["catalog", "normalize", str(paths["fotovolt"]),
                                      "--out", str(tmp_path / "out"), "--distributor", "Fotovolt Sul"])
    assert result.exit_code == 0, result.output
    assert {i["distributor"] for i in read_jsonl(tmp_path / "out" / "items.jsonl")} == {"Fotovolt Sul"}


def test_cli_normalize_rejects_a_missing_path(tmp_path):
    result = CliRunner().invoke(app, ["catalog", "normalize", str(tmp_path / "nope.csv"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2  # usage error, before any pipeline runs
    assert "Invalid value" in result.output
    assert not (tmp_path / "out").exists()


def test_two_pathway_processes_give_the_same_tables_as_one(tmp_path):
    import os
    import subprocess
    import sys

    write_feeds(tmp_path / "landing")
    outputs = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}"
        env = {**os.environ, "YSH_PATHWAY_PROCESSES": str(processes)}
        done = subprocess.run([sys.executable, "-m", "ysh.cli", "catalog", "normalize",
                               str(tmp_path / "landing"), "--out", str(out)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        outputs[processes] = {name: sorted(
            json.dumps({k: v for k, v in row.items() if k != "ingested_at" and k != "updated_at"}, sort_keys=True)
            for row in read_jsonl(out / name)) for name in ("items.jsonl", "quarantine.jsonl", "products.jsonl")}
    assert outputs[2] == outputs[1]
    assert len(outputs[2]["items.jsonl"]) == 5


def test_a_landing_area_under_a_hidden_folder_is_read_but_hidden_files_in_it_are_not(tmp_path):
    landing = tmp_path / ".ysh" / "landing" / "catalog"  # the default lives under .ysh/
    write_feeds(landing)
    (landing / ".~lock.sol_nascente.csv#").write_text("lock")
    (landing / ".hidden").mkdir()
    (landing / ".hidden" / "old.csv").write_text("sku;categoria;potencia;preco\nZ;Módulo;550;1\n")
    (landing / "feed.csv.tmp").write_text("partial")
    report = job.run_static([landing], out_dir=tmp_path / "out")
    assert report.files == 3 and report.items == 5


_WHO_NORMALIZES = r'''
import os, sys
import pathway as pw
from ysh import pw_runtime
from ysh.catalog import pipeline

normalized = pipeline._normalized

def logged(data, path, *args):
    process = os.environ.get("PATHWAY_PROCESS_ID", "0")
    with open(os.path.join(sys.argv[2], "process-" + process), "a", encoding="utf-8") as log:
        log.write(path + "\n")
    return normalized(data, path, *args)

pipeline._normalized = logged
pw_runtime.fresh_graph()
tables = pipeline.build_catalog_graph(pipeline.read_feed_files_fs(sys.argv[1]), landing_root=sys.argv[1])
for name in ("items", "quarantine", "products", "files"):
    pw.io.null.write(getattr(tables, name))
pw_runtime.run()
'''


def test_two_pathway_processes_share_the_normalizing_of_the_files(tmp_path):
    """In 2 processes the file connector shares the files between the workers and each
    normalizes its own, once (16 copies of the sample feeds: all of them landing in one
    process has a chance of 2 in 65,536)."""
    import os
    import subprocess
    import sys

    from ysh import pw_runtime

    sample = Path(__file__).resolve().parents[2] / "data" / "sample" / "catalog"
    landing = tmp_path / "landing"
    landing.mkdir()
    feeds = sorted(p for p in sample.iterdir() if p.is_file() and p.suffix in (".csv", ".json", ".jsonl"))
    for i in range(16):
        source = feeds[i % len(feeds)]
        (landing / f"copy{i:02d}_{source.name}").write_bytes(source.read_bytes())
    script = tmp_path / "who.py"
    script.write_text(_WHO_NORMALIZES)
    logs = tmp_path / "logs"
    logs.mkdir()
    done = subprocess.run(pw_runtime.spawn_argv([sys.executable, str(script), str(landing), str(logs)], 2),
                          capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    by_process = {log.name: log.read_text(encoding="utf-8").split() for log in logs.iterdir()}
    normalized = sorted(path for paths in by_process.values() for path in paths)
    assert normalized == sorted(str(p) for p in landing.iterdir())  # each file once
    assert sorted(by_process) == ["process-0", "process-1"], by_process
