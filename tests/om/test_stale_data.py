"""The frozen-value rule on the labelled stale-data inverter series that ships inside the
``pvanalytics`` wheel (issue 6); skipped when pvanalytics is not installed.

The evaluation itself lives in ``benchmarks/om_evaluation.py`` (:func:`stale_data_evaluation`,
where windows, rated power, the daylight envelope and the per-run / per-sample scores
are defined). Measured: 3/3 stale runs found, 4/4 alerts correct (one 25-hour run spans
two days, so two alerts); 89/89 labelled daylight samples flagged, no other one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("pvanalytics")

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "om_evaluation.py"


def _evaluation():
    spec = importlib.util.spec_from_file_location("om_evaluation", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("om_evaluation", module)  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_frozen_rule_on_pvanalytics_stale_data():
    ev = _evaluation()
    path = ev.stale_csv_path()
    assert path is not None, "pvanalytics is installed but its stale-data CSV is missing"
    r = ev.stale_data_evaluation(path)
    assert r.step.total_seconds() == 900 and r.runs == 3
    # every labelled run found, every alert on a labelled run
    assert r.runs_found == r.runs
    assert r.alerts_correct == r.alerts >= r.runs
    # per daylight sample: ≥ 0.9 each (a lost run or a spurious daylight plateau fails this)
    assert r.sample_recall >= 0.9 and r.sample_precision >= 0.9


def test_the_score_fails_a_rule_that_cannot_see_frozen_data():
    """The floor means something: with the run length out of reach nothing is found."""
    from ysh.om.rules import Thresholds

    ev = _evaluation()
    r = ev.stale_data_evaluation(ev.stale_csv_path(), Thresholds(frozen_samples=10_000))
    assert r.runs_found == 0 and r.alerts == 0 and r.sample_tp == 0
