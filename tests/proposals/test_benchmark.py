"""The proposals benchmark in a tiny size: it runs the production path end to end (its own
PostgreSQL, the sample catalog and tariffs, Medusa-like quotes, ``job.run_batch`` both
ways) and its correctness comparisons hold (kernel against the reference loop, the
production graph's ``propostas_analytics`` against the per-row graph's, quote by quote)."""

import os
import re
import subprocess
import sys

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.integration


def test_the_proposals_benchmark_runs_the_production_path_and_its_results_agree(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "proposals.py"), "--proposals", "400",
                           "--loop-sample", "300", "--quotes", "60"],
                          capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "COLUMNS": "200", "YSH_HOME": str(tmp_path / "home")})
    out = " ".join(done.stdout.split())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the exit code is 0 only when both comparisons hold; the lines say so too
    assert "results equal on every one of the 300 sampled proposals: yes" in out
    assert "propostas_analytics equal in both variants: yes" in out
    assert re.search(r"end to end: 60 quotes \(\d+ evaluated", out)
    # the figures and target lines, with the machine they were measured on
    assert re.search(r"kernel: vectorized [\d,]+ proposals/s \(target ≥ 20,000\): (met|NOT met)", out)
    assert re.search(r"end to end: [\d,]+ proposals/s, [\d.]+× the per-row path \(target ≥ 5,000\): (met|NOT met)",
                     out)
    assert re.search(r"machine: \d+ cores, load average [\d.]+, [\d.]+, [\d.]+", out)
