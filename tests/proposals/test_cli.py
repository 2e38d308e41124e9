"""``ysh proposals evaluate``: JSON out, clear errors naming the field."""

import json

from typer.testing import CliRunner

from ysh.cli import app
from ysh.proposals.billing import ProposalInput, evaluate

from ..conftest import REPO

SAMPLE = REPO / "data" / "sample" / "proposals" / "b1_cemig_4kwp.json"


def test_evaluate_prints_kpis_and_the_yearly_table():
    done = CliRunner().invoke(app, ["proposals", "evaluate", str(SAMPLE)])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    expected = evaluate(ProposalInput.model_validate_json(SAMPLE.read_text()))
    assert out["kpis"]["npv_brl"] == expected.kpis.npv_brl
    assert len(out["years"]) == 25 and out["years"][0]["calendar_year"] == 2026
    assert out["cash_flows"][0] == -17600.0
    assert 0 < out["kpis"]["payback_years"] < 10


def test_invalid_proposals_name_the_field(tmp_path):
    data = json.loads(SAMPLE.read_text())
    data["generation_kwh_month"] = data["generation_kwh_month"][:11]
    data["customer_class"] = "A4"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    done = CliRunner().invoke(app, ["proposals", "evaluate", str(bad)])
    assert done.exit_code == 2
    assert "generation_kwh_month" in done.output and "12 monthly values" in done.output
    assert "customer_class" in done.output
    (tmp_path / "broken.json").write_text("{not json")
    done = CliRunner().invoke(app, ["proposals", "evaluate", str(tmp_path / "broken.json")])
    assert done.exit_code == 2 and "not valid JSON" in done.output
