"""A regression guard on the production graph: ``job.run_detect`` (what ``ysh om run`` and
``ysh om detect`` run over files) over a fixed telemetry file set gives the windows, alerts
and quarantine pinned in ``tests/om/pinned/expected.json.xz``.

The inputs are stored bytes (``tests/om/pinned/telemetry-*.jsonl.xz``, ``plants.json``;
how they were made: ``tests/om/pinned/make_pinned.py``): a whole day of the sample fleet
with night at both ends, one fault of each kind (trip, comm loss, underperformance,
clipping at an export limit, frozen values, plant outage), a declared 15-minute logger, an
inferred 5-minute one, a gap, duplicates, out-of-order ("late" in a stream) lines, night
tares, edge-case values and poison pills. The expected outputs were generated once by the
code before the graph was rewritten (issue 14 part 1, fifth pass), so a rewrite is checked
against outputs that did not come from the rewritten code.

Canonical form: every output sorted; floats rounded to 9 significant digits (a reordered
sum moves the last bits of a mean, nothing a reader can see); timestamps as UTC ISO text.
"""

from __future__ import annotations

import json
import lzma
import math
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ysh.om import job

PINNED = Path(__file__).resolve().parent / "pinned"
NOW = datetime(2026, 1, 16, 3, 10, tzinfo=timezone.utc)
OUTPUTS = {"windows": "windows.jsonl", "alerts": "alerts.jsonl", "quarantine": "quarantine.jsonl"}
#: significant digits kept of every float
DIGITS = 9
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")


def _canon(value):
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0.0:
            return value
        return float(f"{value:.{DIGITS - 1}e}")
    if isinstance(value, str) and _ISO.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).isoformat()
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return value


def canonical(out: Path) -> dict[str, list[dict]]:
    """The three outputs of a ``run_detect`` to files, canonical and sorted."""
    result = {}
    for name, filename in OUTPUTS.items():
        rows = [_canon(json.loads(line)) for line in (out / filename).read_text().splitlines()]
        result[name] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
    return result


def run_pinned(tmp: Path, **kwargs) -> Path:
    """The pinned inputs through ``job.run_detect`` into ``tmp/out``."""
    (tmp / "in").mkdir(parents=True, exist_ok=True)
    for packed in sorted(PINNED.glob("telemetry-*.jsonl.xz")):
        (tmp / "in" / packed.name.removesuffix(".xz")).write_bytes(lzma.decompress(packed.read_bytes()))
    job.run_detect([tmp / "in"], PINNED / "plants.json", tmp / "out", now=NOW, **kwargs)
    return tmp / "out"


@pytest.fixture(scope="module")
def expected() -> dict[str, list[dict]]:
    return json.loads(lzma.decompress((PINNED / "expected.json.xz").read_bytes()))


def _assert_same(got: dict[str, list[dict]], expected: dict[str, list[dict]]) -> None:
    for name in OUTPUTS:
        want, have = expected[name], got[name]
        missing = [r for r in want if r not in have][:3]
        extra = [r for r in have if r not in want][:3]
        assert (len(have), missing, extra) == (len(want), [], []), name


def test_the_pinned_set_covers_what_it_claims(expected):
    """The fixed inputs exercise what the graph must keep doing: every fault rule, the
    15-minute windows, the night tare, and several quarantine reasons."""
    rules = {a["rule"] for a in expected["alerts"]}
    assert {"inverter_trip", "comm_loss", "underperformance", "frozen_values", "plant_outage", "clipping"} <= rules
    assert {r["reason"] for r in expected["quarantine"]} >= {"malformed", "negative_power", "power_above_rated",
                                                              "future_ts", "unknown_inverter"}
    lengths = {(w["plant_id"], datetime.fromisoformat(w["window_end"]) - datetime.fromisoformat(w["window_start"]))
               for w in expected["windows"]}
    assert ("plant-bh-01", datetime(2026, 1, 1, 0, 15) - datetime(2026, 1, 1)) in lengths
    assert sum(1 for w in expected["windows"] if w["samples"] == 0) == 0


def test_the_production_graph_gives_the_pinned_windows_alerts_and_quarantine(tmp_path, expected):
    _assert_same(canonical(run_pinned(tmp_path)), expected)


def test_the_streaming_window_operator_gives_the_pinned_outputs_too(tmp_path, expected):
    """``ysh om follow``'s window operator (``windowby`` with the late-data cutoff) over the
    same finite files: nothing is late in one static read, so the same outputs."""
    _assert_same(canonical(run_pinned(tmp_path, static_windows=False)), expected)
