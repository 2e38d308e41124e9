"""The shipped ANEEL sample files give exactly what tariffs_expected/expected.json lists."""

import json
from datetime import date

import pytest

from ysh.tariffs.book import TariffLookupError
from ysh.tariffs.load import load_paths

from ..conftest import REPO

SAMPLES = REPO / "data" / "sample" / "tariffs"
EXPECTED = json.loads((REPO / "data" / "sample" / "tariffs_expected" / "expected.json").read_text())


@pytest.fixture(scope="module")
def loaded():
    return load_paths([SAMPLES])


@pytest.mark.parametrize("filename", sorted(EXPECTED["files"]))
def test_every_planted_bad_row_is_quarantined_and_nothing_else(loaded, filename):
    planted = {(b["line"], b["reason"]) for b in EXPECTED["files"][filename]["bad"]}
    planted |= {(b["other_line"], b["reason"]) for b in EXPECTED["files"][filename]["bad"] if "other_line" in b}
    got = {(q.line, q.reason) for q in loaded.quarantine if q.source_file.endswith(filename)}
    assert got == planted


def test_row_counts(loaded):
    tariffs_file = EXPECTED["files"]["tarifas-homologadas-distribuidoras-energia-eletrica.csv"]
    from_tariffs = [q for q in loaded.quarantine if q.source_file.endswith("eletrica.csv")]
    assert len(loaded.tariffs) + len(from_tariffs) == tariffs_file["rows"]
    assert len(loaded.flags) == 136


@pytest.mark.parametrize("case", EXPECTED["lookups"], ids=lambda c: f"{c['sig_agente']}-{c['subgrupo']}-{c['date']}")
def test_point_in_time_lookup_gives_the_published_values(loaded, case):
    at = loaded.book().tariff_at(case["sig_agente"], case["subgrupo"], date.fromisoformat(case["date"]),
                                 case["modalidade"], tariff_class=case["classe"], subclass=case["subclasse"])
    assert (at.tusd_brl_per_kwh, at.te_brl_per_kwh, at.fio_b_brl_per_kwh) == (
        float(case["tusd_brl_per_kwh"]), float(case["te_brl_per_kwh"]), float(case["fio_b_brl_per_kwh"]))
    assert (str(at.valid_from), str(at.valid_to)) == tuple(case["vigencia"])
    assert at.resolution == case["reh"]


@pytest.mark.parametrize("case", EXPECTED["lookups_without_tariff"], ids=lambda c: f"{c['sig_agente']}-{c['date']}")
def test_dates_outside_every_period_have_no_tariff(loaded, case):
    with pytest.raises(TariffLookupError):
        loaded.book().tariff_at(case["sig_agente"], case["subgrupo"], date.fromisoformat(case["date"]),
                                case["modalidade"], tariff_class=case["classe"], subclass=case["subclasse"])


def test_default_lookup_matches_the_issue_signature(loaded):
    # tariff_at(utility, subgroup, date, modality="Convencional") with the B1/B3 defaults
    b1 = next(c for c in EXPECTED["lookups"] if c["subgrupo"] == "B1")
    at = loaded.book().tariff_at(b1["sig_agente"], "B1", date.fromisoformat(b1["date"]))
    assert at.tusd_brl_per_kwh == float(b1["tusd_brl_per_kwh"])
    b3 = next(c for c in EXPECTED["lookups"] if c["subgrupo"] == "B3")
    assert loaded.book().tariff_at(b3["sig_agente"], "B3", date.fromisoformat(b3["date"])).te_brl_per_kwh == float(
        b3["te_brl_per_kwh"])
