"""Generate the pinned O&M regression set (run once; the test reads only the stored files).

    .venv/bin/python tests/om/pinned/make_pinned.py inputs    # the telemetry files + plants (fixed bytes)
    .venv/bin/python tests/om/pinned/make_pinned.py expected  # the outputs of the code of the day

``inputs`` writes, from the simulator with fixed seeds (stored so that a later change of
the simulator does not move them):

* ``plants.json``: the sample fleet, with ``plant-bh-01`` declared a 15-minute logger
  (``report_interval_s`` 900: 15-minute windows);
* ``telemetry-a.jsonl.xz``: a whole variable day of the sample fleet (2026-01-15 03:00 UTC,
  local midnight, → 24 h: night at both ends), one fault of each kind (a trip, a comm loss
  = a gap, underperformance, clipping at an export limit, frozen values, a plant outage),
  the simulator's duplicates and invalid events; ``plant-bh-01`` thinned to one report per
  15 minutes, ``plant-sp-01`` to one per 5 minutes (interval inferred), a 40-minute gap on
  ``plant-cwb-01/inv-03``; 300 edge-case variants (night tare, larger negatives, above
  rated, unknown inverters, future and fractional timestamps, nulls, wrong types) and the
  poison pills of ``test_poison_pills`` (deep nesting, 5,000-digit integers, ``1e999``,
  NUL, lone surrogates, truncated lines), blank lines;
* ``telemetry-b.jsonl.xz``: out-of-order lines (events of the morning held back and sent
  after the afternoon: late for a streaming run; in a file replay nothing is late, so they
  fall into their windows) and exact copies of lines of the first file.

``expected`` runs ``job.run_detect`` (what ``ysh om run`` / ``ysh om detect`` run) over them
and stores the canonical outputs (``test_pinned_outputs.canonical``) in
``expected.json.xz``.
"""

from __future__ import annotations

import json
import lzma
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 1, 16, 3, 10, tzinfo=timezone.utc)


def make_inputs() -> None:
    from ysh.om.fleet import dump_plants, sample_plants
    from ysh.samples.om_telemetry import default_scenario, simulate

    plants = sample_plants()
    plants = [p.model_copy(update={"inverters": [i.model_copy(update={"report_interval_s": 900})
                                                  for i in p.inverters]})
              if p.plant_id == "plant-bh-01" else p for p in plants]
    dump_plants(plants, HERE / "plants.json")

    scenario = default_scenario("2026-01-15", 24, seed=11)
    events = list(simulate(scenario))
    rng = random.Random(14)

    def minute(e: dict) -> int | None:
        ts = e.get("ts")
        return int(ts[14:16]) if isinstance(ts, str) and len(ts) == 20 else None

    kept = []
    for e in events:
        m = minute(e)
        if m is not None and e.get("plant_id") == "plant-bh-01" and m % 15:
            continue
        if m is not None and e.get("plant_id") == "plant-sp-01" and m % 5:
            continue
        if (e.get("plant_id"), e.get("inverter_id")) == ("plant-cwb-01", "inv-03") and isinstance(e.get("ts"), str) \
                and "2026-01-15T15:10:00Z" <= e["ts"] < "2026-01-15T15:50:00Z":
            continue  # a gap
        kept.append(e)
    lines = [json.dumps(e) for e in kept]

    variants = []
    for e in rng.sample([e for e in kept if isinstance(e.get("ts"), str)], 300):
        variant = dict(e)
        field, value = rng.choice([
            ("ac_power_w", -3.0), ("ac_power_w", -50.0), ("ac_power_w", -50.5), ("ac_power_w", -1e4),
            ("dc_power_w", -3.0), ("dc_power_w", -500.0), ("ac_power_w", 7), ("ac_power_w", 1e7),
            ("energy_total_kwh", -0.001), ("energy_total_kwh", 0), ("inverter_id", "ghost"),
            ("ts", "2026-01-17T03:05:00Z"), ("ts", "2026-01-15T12:00:00.000001Z"), ("ts", "2026-01-15T12:00:00"),
            ("ts", "2026-01-15T09:00:00-03:00"), ("irradiance_wm2", 812.5), ("status_code", "E42"),
            ("status_code", True), ("temperature_c", "hot"), ("ac_power_w", None), ("event_id", ""),
        ])
        variant[field] = value
        variant["event_id"] = f"{variant['event_id']}-v" if variant["event_id"] else ""
        variants.append(json.dumps(variant))
    pills = [
        "[" * 3000 + "]" * 3000, '{"a":' * 3000 + "1" + "}" * 3000, "1" * 5000, "1e999", "-1e999", "NaN", "null",
        "[]", '"text"', "{", '{"event_id": "e"', "\x00\x01\x02", '{"ts": "\\ud800"}',
        '{"event_id": "\\u0000", "plant_id": "plant-sp-01", "inverter_id": "inv-01", "ts": "2026-01-15T12:00:00Z", '
        '"ac_power_w": 1, "energy_total_kwh": 1}',
        '{"event_id": "big", "plant_id": "plant-sp-01", "inverter_id": "inv-01", "ts": "2026-01-15T12:00:00Z", '
        '"ac_power_w": ' + "9" * 5000 + ', "energy_total_kwh": 1}',
        '{"event_id": "old", "plant_id": "plant-sp-01", "inverter_id": "inv-01", "ts": "0001-01-01T00:00:00+01:00", '
        '"ac_power_w": 1, "energy_total_kwh": 1}',
        "   ", "",
    ]
    mixed = lines + variants + pills
    rng.shuffle(mixed)  # shuffled within the day: out of order on a small scale too

    # held back: the morning (10:00–11:00 UTC) of two plants, sent after everything else
    held = [line for line in mixed if '"plant_id": "plant-gyn-01"' in line or '"plant_id": "plant-rj-01"' in line]
    held = [line for line in held if '"ts": "2026-01-15T10:' in line]
    held_set = set(held)
    first = [line for line in mixed if line not in held_set]
    second = held + rng.sample(lines, 200)  # + exact copies (a bus delivers at least once)
    (HERE / "telemetry-a.jsonl.xz").write_bytes(lzma.compress(("\n".join(first) + "\n").encode("utf-8", "surrogatepass")))
    (HERE / "telemetry-b.jsonl.xz").write_bytes(lzma.compress(("\n".join(second) + "\n").encode("utf-8", "surrogatepass")))
    print(f"{len(first)} + {len(second)} lines ({len(held)} held back)")


def make_expected() -> None:
    import tempfile

    sys.path.insert(0, str(HERE.parents[2]))
    from tests.om.test_pinned_outputs import canonical, run_pinned

    with tempfile.TemporaryDirectory() as tmp:
        outputs = canonical(run_pinned(Path(tmp)))
    (HERE / "expected.json.xz").write_bytes(lzma.compress(json.dumps(outputs, indent=0, sort_keys=True).encode()))
    print({k: len(v) for k, v in outputs.items()})


if __name__ == "__main__":
    {"inputs": make_inputs, "expected": make_expected}[sys.argv[1]]()
