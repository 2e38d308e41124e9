"""The graph routes a feed's items by what they can collide with: a distributor's only
feed skips the newest-file ranking, and an ordinary feed (no storefront offer keys) also
skips the storefront-offer decision. The route must not show in the result: a feed's
items are the same alone as beside a second feed of its distributor (which sends them
through the ranking), on a sample distributor feed and on real storefront exports."""

import json
import os
import shutil
from pathlib import Path

import pytest

from ysh.catalog import job

from ..conftest import REPO

EXPORTS = REPO / "data" / "distributors" / "exports"
SAMPLE = REPO / "data" / "sample" / "catalog"
OTHER_FEED = "sku;categoria;marca;modelo;potencia;preco\nZZ-1;Módulo;JA Solar;JAM72S30-550/MR;550;700\n"


def items_of(landing: Path, out: Path) -> dict[str, dict]:
    job.run_static([landing], out_dir=out)
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    return {row["sku"]: {k: v for k, v in row.items() if k != "ingested_at"} for row in rows}


@pytest.mark.parametrize("feed", [
    SAMPLE / "casa_do_integrador.csv",                  # ordinary feed: its own SKU column
    EXPORTS / "solfacil" / "solfacil-raw-0.csv",        # storefront scrape: SKUs from model codes
    EXPORTS / "solfacil" / "solfacil-inverters.json",   # storefront JSON dump
], ids=lambda p: p.name)
def test_a_feed_gives_the_same_items_alone_and_beside_a_second_feed_of_its_distributor(tmp_path, feed):
    alone = tmp_path / "alone" / "acme"
    alone.mkdir(parents=True)
    shutil.copy(feed, alone / feed.name)
    beside = tmp_path / "beside" / "acme"
    beside.mkdir(parents=True)
    other = beside / "older.csv"
    other.write_text(OTHER_FEED, encoding="utf-8")
    os.utime(other, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))  # older: the feed wins any SKU
    shutil.copy(feed, beside / feed.name)

    by_itself = items_of(alone.parent, tmp_path / "out-alone")
    with_other = items_of(beside.parent, tmp_path / "out-beside")

    assert len(by_itself) > 5
    assert with_other.pop("ZZ-1")["source_file"].endswith("older.csv")
    for sku, item in with_other.items():
        item["source_file"] = item["source_file"].replace("/beside/", "/alone/")
    assert with_other == by_itself
