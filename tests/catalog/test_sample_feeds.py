"""The shipped sample feeds give exactly the results listed in catalog_expected/expected.json."""

import json

import pytest

from ysh.catalog import parsing as p
from ysh.catalog.normalize import normalize_feed

from ..conftest import REPO, SAMPLE_CATALOG

EXPECTED = json.loads((REPO / "data" / "sample" / "catalog_expected" / "expected.json").read_text())


@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_sample_feed_quarantines_exactly_the_planted_bad_rows(filename):
    expected = EXPECTED[filename]
    data = (SAMPLE_CATALOG / filename).read_bytes()
    result = normalize_feed(data, str(SAMPLE_CATALOG / filename), filename.rsplit(".", 1)[0])
    planted = {(b["line"], b["reason"]) for b in expected["bad"] if b["quarantined"]}
    assert {(q.line, q.reason) for q in result.quarantine} == planted
    assert result.rows == expected["rows"]
    assert len(result.items) == expected["accepted"]
    assert result.duplicate_skus == len(expected["duplicates"])


@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_sample_feed_duplicates_keep_the_last_line(filename):
    result = normalize_feed((SAMPLE_CATALOG / filename).read_bytes(), filename, "d")
    by_sku = {item.sku: item for item in result.items}
    for duplicate in EXPECTED[filename]["duplicates"]:
        sku = duplicate["sku"].replace(" ", "").upper()
        assert by_sku[sku].line == max(duplicate["lines"])


@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_sample_feed_inmetro_flags(filename):
    result = normalize_feed((SAMPLE_CATALOG / filename).read_bytes(), filename, "d")
    status_by_line = {item.line: item.inmetro_status for item in result.items}
    for bad in EXPECTED[filename]["bad"]:
        if bad["reason"] == "inmetro_invalid":
            assert status_by_line[bad["line"]] == "invalid"
        if bad["reason"] == "inmetro_missing":
            assert status_by_line[bad["line"]] == "missing"


def test_every_sample_item_has_a_category_and_every_powered_item_a_power():
    for path in SAMPLE_CATALOG.iterdir():
        for item in normalize_feed(path.read_bytes(), str(path), path.stem).items:
            assert item.category in p.CATEGORIES
            if item.category in ("module", "inverter", "microinverter"):
                assert item.power_w is not None and item.brand is not None, item
