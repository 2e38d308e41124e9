"""No poison pill (issue 14, part 4): whatever bytes a line holds, the O&M graph goes on,
and every line is accounted for: a window sample or a quarantine row.

Hypothesis mutates valid events with hostile values (integers of thousands of digits,
deep nesting, timestamps that overflow, lone surrogates, NUL characters, wrong types,
non-objects, truncated lines, random text) and runs the real graph over each batch."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pathway as pw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ysh import pw_runtime
from ysh.om.fleet import Inverter, Plant
from ysh.om.pipeline import build_om_graph

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
PLANT = Plant(plant_id="p1", capacity_kwp=7.2, latitude=-23.55, longitude=-46.63, tilt_deg=20, azimuth_deg=0,
              inverters=[Inverter(inverter_id="inv-1", rated_power_w=6000.0)])

HOSTILE_VALUES = [
    None, True, [], {}, "", "x", "\x00", "\ud800", -1, 0, 1e308, "__BIG__", "__-BIG__", float("nan"),
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00Z", "2026-13-45T99:99:99Z",
    "2026-01-15T12:00:00", "1e999", "NaN", "2026-01-15T12:00:00+25:00", "\u202e", "A" * 5000,
]
RAW_LINES = [
    "[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "1" * 5000, "1e999", "-1e999",
    "NaN", "null", "[]", '"text"', "{", '{"event_id": "e"', "\x00\x01\x02", '{"ts": "\\ud800"}',
    '{"event_id": "\\u0000", "plant_id": "p1", "inverter_id": "inv-1", "ts": "2026-01-15T12:00:00Z", '
    '"ac_power_w": 1, "energy_total_kwh": 1}',
]
FIELDS = ["event_id", "plant_id", "inverter_id", "ts", "ac_power_w", "energy_total_kwh", "dc_power_w",
          "temperature_c", "status_code", "irradiance_wm2"]


def good(k: int) -> dict:
    return {"event_id": f"e-{k}", "plant_id": "p1", "inverter_id": "inv-1",
            "ts": (T0 + timedelta(seconds=37 * k)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ac_power_w": 1000.0 + k, "energy_total_kwh": 100.0 + k / 100}


def dumps(obj) -> str:
    """JSON text; the markers ``"__BIG__"`` / ``"__-BIG__"`` become integers of 5,000 digits
    (Python's own encoder refuses them, a datalogger's firmware may not)."""
    text = json.dumps(obj, allow_nan=True)
    return text.replace('"__BIG__"', "9" * 5000).replace('"__-BIG__"', "-" + "9" * 5000)


@st.composite
def line(draw) -> str:
    k = draw(st.integers(0, 500))
    kind = draw(st.sampled_from(["good", "mutate", "drop", "raw", "text", "truncate"]))
    event = good(k)
    if kind == "mutate":
        event[draw(st.sampled_from(FIELDS))] = draw(st.sampled_from(HOSTILE_VALUES))
    elif kind == "drop":
        event.pop(draw(st.sampled_from(FIELDS[:6])))
    elif kind == "raw":
        return draw(st.sampled_from(RAW_LINES))
    elif kind == "text":
        return draw(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "\n" not in s))
    text = dumps(event)
    if kind == "truncate":
        text = text[: draw(st.integers(1, len(text) - 1))]
    return text


class _Messages(pw.Schema):
    data: bytes


def run(lines: list[str] | list[bytes]) -> tuple[list[dict], list[dict]]:
    """The streaming graph over ``lines`` (text rows, as a followed file gives them, or
    bus messages as bytes)."""
    pw_runtime.fresh_graph()
    if lines and isinstance(lines[0], bytes):
        table = pw.debug.table_from_rows(_Messages, [(m,) for m in lines])
    else:
        table = pw.debug.table_from_pandas(pd.DataFrame({"data": lines}))
    tables = build_om_graph(table, [PLANT], now=T0 + timedelta(days=1))
    windows = pw_runtime.TableCollector(tables.windows, "windows")
    quarantine = pw_runtime.TableCollector(tables.quarantine, "quarantine")
    pw_runtime.run()
    return windows.values(), quarantine.values()


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(line(), min_size=1, max_size=25))
def test_every_line_is_a_window_sample_or_a_quarantine_row(lines):
    lines = [s for s in lines if s.strip()]  # blank lines are skipped before the graph
    if not lines:
        return
    windows, quarantine = run(lines)  # the run completes
    quarantined = {q["quarantine_key"] for q in quarantine}
    assert all(isinstance(q["reason"], str) and q["reason"] for q in quarantine)
    kept = [s for s in lines if _key(s) not in quarantined]
    # every line not quarantined is a valid event, counted once per event id in a window
    assert sum(w["samples"] for w in windows) == len({json.loads(s)["event_id"] for s in kept})
    # and every quarantine row comes from one of the lines
    assert quarantined <= {_key(s) for s in lines}


def test_the_known_poison_pills_are_quarantined_with_a_reason():
    pills = [dumps({**good(1), "ac_power_w": "__BIG__"}), "[" * 100_000 + "]" * 100_000,
             dumps({**good(2), "ts": "0001-01-01T00:00:00+01:00"}), dumps({**good(3), "ac_power_w": 1e308 * 10}),
             '{"event_id": "e-4", "plant_id": "p1", "inverter_id": "inv-1", "ts": "2026-01-15T12:00:00Z", '
             '"ac_power_w": 1e999, "energy_total_kwh": 1}', dumps({**good(5), "event_id": "\ud800"}),
             dumps({**good(6), "event_id": "a\x00b"}), dumps(good(7))]
    windows, quarantine = run(pills)
    assert len(quarantine) == len(pills) - 1 and {q["reason"] for q in quarantine} == {"malformed"}
    assert sum(w["samples"] for w in windows) == 1
    assert all("\x00" not in v for q in quarantine for v in q.values() if isinstance(v, str))


def test_bus_messages_with_bytes_that_are_not_utf8_are_quarantined_line_by_line():
    """MQTT and Kafka deliver bytes (``stream.read_telemetry`` reads them raw): a line of
    a message that is not UTF-8 is a ``malformed`` quarantine row, never an event — even
    when a backslash before the bad byte would make its text valid JSON — and the
    message's other lines are read."""
    from ysh.om.chunks import message_lines

    spliced = dumps(good(2)).encode().replace(b'"e-2"', b'"e-2\\\xff"')  # "e-2\<0xff>": \\xff is a JSON escape
    message = b"\n".join([dumps(good(1)).encode(), b'{"event_id": "e-9\xff"}', spliced, b"\xc3\x28",
                          dumps(good(3)).encode()])
    assert len(message_lines(message)) == 5
    windows, quarantine = run([message])  # one row: the message, split in the graph
    assert sum(w["samples"] for w in windows) == 2
    assert len(quarantine) == 3 and {q["reason"] for q in quarantine} == {"malformed"}
    assert all(q["detail"].startswith("not UTF-8") for q in quarantine)
    assert {'{"event_id": "e-9\\xff"}', "\\xc3("} < {q["raw"] for q in quarantine}
    assert all("\x00" not in v for q in quarantine for v in q.values() if isinstance(v, str))


def test_validation_never_raises_on_hostile_values():
    from ysh.om.validation import MALFORMED, validate_event

    registry = {("p1", "inv-1"): 6000.0}
    cases = {"ts": ["0001-01-01T00:00:00+01:00", "1999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59"],
             "ac_power_w": [10 ** 5000, -(10 ** 5000)], "energy_total_kwh": [10 ** 400],
             "event_id": ["a\x00b", "\ud800"], "status_code": [10 ** 5000, "x" * 100, "\x00"]}
    for field, values in cases.items():
        for value in values:
            result = validate_event({**good(1), field: value}, registry, T0 + timedelta(days=1))
            assert result.reason == MALFORMED, (field, value)
    assert validate_event({**good(1), "ts": "2000-01-01T00:00:00Z"}, registry, T0).event_id == "e-1"
