"""The production evaluation of quotes (many at once, billing_vec) gives what the
month-by-month reference gives for each quote, errors included."""

import json
import math
import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from ysh.proposals.assumptions import Assumptions
from ysh.proposals.enrich import RESULT_FIELDS, SystemSize, as_row, evaluate_quote, evaluate_quotes

A = Assumptions()


def quote(rng: random.Random) -> dict:
    kwp = rng.choice([0.0, rng.uniform(1, 15), rng.uniform(80, 2_000), 6_000.0])  # none, micro, mini, too big
    size = SystemSize(kwp, kwp * 0.9, int(kwp * 2), kwp * rng.uniform(2_500, 4_000),
                      rng.choice([None, "ghost/NO-SKU"]))
    consumption = rng.choice([[0.0] * 12, [rng.uniform(0, 80) for _ in range(12)],
                              [rng.uniform(100, 3_000) for _ in range(12)], [300.0] * 11])  # 11 months: invalid
    tariff = rng.random() < 0.9
    quote_day = date(2023, 1, 1) + timedelta(days=rng.randrange(3 * 365))
    return dict(customer_class=rng.choice(["B1", "B3"]), connection=rng.choice(["mono", "bi", "tri"]), size=size,
                consumption=consumption, generation=[kwp * rng.uniform(90, 150) for _ in range(12)],
                te=rng.uniform(0.2, 0.4) if tariff else None, tusd=rng.uniform(0.3, 0.5) if tariff else None,
                fio_b=rng.uniform(0.1, 0.3) if tariff else None,
                tariff_error=None if tariff else "no tariffs for X B1 in tarifas_normalized",
                icms_pct=rng.choice([0.0, 18.0, 20.0]),
                access_request_date=rng.choice([quote_day, date(2021, 6, 1) + timedelta(days=rng.randrange(580))]),
                quote_date=quote_day, assumptions=A)


def same(a, b, unit=1e-6):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=unit)


def test_many_quotes_at_once_equal_the_reference_one_by_one():
    rng = random.Random(17)
    quotes = [quote(rng) for _ in range(1_500)]
    got = evaluate_quotes(quotes)
    errors = 0
    for q, result in zip(quotes, got, strict=True):
        want = evaluate_quote(**q)
        assert result["error"] == want["error"]
        if want["error"] is not None:
            errors += 1
            assert set(result) == {"error"}
            continue
        assert all(same(result[k], want[k]) for k in RESULT_FIELDS[1:-1]), (result, want)
        assert len(result["yearly"]) == len(want["yearly"]) == 25
        for r, w in zip(result["yearly"], want["yearly"]):
            assert (r["year"], r["calendar_year"]) == (w["year"], w["calendar_year"])
            # rounded to the Wh / cent: numpy and Python may round a value on a half apart
            assert all(same(r[k], w[k], unit=0.0101) for k in w), (r, w)
    reasons = {r["error"].split(":")[0].split(" (")[0] for r in got if r["error"]}
    assert reasons == {"no modules with a known power in the quote", "no tariff", "invalid proposal"}
    assert 100 < errors < 1_200  # both kinds of rows are there


def test_a_batch_of_errors_only_and_an_empty_batch():
    rng = random.Random(3)
    broken = [{**quote(rng), "te": None, "tariff_error": "none published"} for _ in range(3)]
    assert [r["error"] for r in evaluate_quotes(broken)] == [evaluate_quote(**q)["error"] for q in broken]
    assert evaluate_quotes([]) == []


def test_as_row_orders_the_fields():
    assert as_row({"error": "x"}) == ("x",) + (None,) * (len(RESULT_FIELDS) - 1)


def test_quotes_that_skip_validation_get_the_numbers_the_validated_model_gives(monkeypatch):
    """The fast path (typed rows straight into arrays) against every quote validated by
    ProposalInput: the same errors and bit-for-bit the same results."""
    from ysh.proposals import enrich

    rng = random.Random(29)
    quotes = [quote(rng) for _ in range(600)]
    fast = evaluate_quotes(quotes)
    assert sum(enrich._typed_inputs(q, {"B1", "B3"}) is not None for q in quotes) > 100  # the fast path is taken
    monkeypatch.setattr(enrich, "_typed_inputs", lambda quote, valid_classes: None)
    assert evaluate_quotes(quotes) == fast


def test_rows_for_the_graph_carry_the_yearly_table_as_json_text():
    import json

    from ysh.proposals.enrich import evaluate_quote_rows

    rng = random.Random(31)
    quotes = [quote(rng) for _ in range(200)]
    rows = evaluate_quote_rows(quotes)
    for row, result in zip(rows, evaluate_quotes(quotes), strict=True):
        assert row[:-1] == as_row(result)[:-1]
        assert (None if row[-1] is None else json.loads(row[-1])) == result.get("yearly")


# --- the assumptions are validated for every consumer class of a batch -----------------------

SAMPLE_PROPOSAL = Path(__file__).resolve().parents[2] / "data" / "sample" / "proposals" / "b1_cemig_4kwp.json"


def sample_quotes(assumptions: Assumptions, classes: list[str]) -> list[dict]:
    """Quotes shaped like the sample proposal (B1, CEMIG-D, 4.4 kWp, its tariff and 12
    months), one per entry of ``classes``, each a little larger than the one before."""
    p = json.loads(SAMPLE_PROPOSAL.read_text())
    quotes = []
    for i, customer_class in enumerate(classes):
        scale = 1.0 + i / 10
        kwp = p["system_kwp"] * scale
        size = SystemSize(kwp, kwp * 0.8, round(8 * scale), p["capex_brl"] * scale - 1200.0 * kwp, None)
        quotes.append(dict(
            customer_class=customer_class, connection=p["connection"], size=size,
            consumption=[float(v) for v in p["consumption_kwh_month"]],
            generation=[v * scale for v in map(float, p["generation_kwh_month"])],
            te=p["te_brl_per_kwh"], tusd=p["tusd_brl_per_kwh"], fio_b=p["fio_b_brl_per_kwh"], tariff_error=None,
            icms_pct=p["icms_pct"], access_request_date=date.fromisoformat(p["access_request_date"]),
            quote_date=date(p["start_year"], 3, 15), assumptions=assumptions))
    return quotes


@pytest.mark.parametrize("valid_class, invalid_class", [("B1", "B3"), ("B3", "B1")])
def test_an_invalid_simultaneity_of_the_second_class_of_a_batch_is_an_error_of_its_quotes(valid_class, invalid_class):
    """The first valid quote validates the shared assumptions for its own class only: the
    other class's simultaneity factor (out of [0, 1] here) must still fail its quotes, as
    the reference does, instead of being billed on the fast path."""
    field = {"B1": "simultaneity_b1", "B3": "simultaneity_b3"}[invalid_class]
    assumptions = Assumptions(**{field: 1.5})
    quotes = sample_quotes(assumptions, [valid_class, invalid_class, valid_class, invalid_class])
    got = evaluate_quotes(quotes)
    want = [evaluate_quote(**q) for q in quotes]
    assert [r["error"] for r in got] == [w["error"] for w in want]
    assert [r["error"] is None for r in got] == [True, False, True, False]
    assert all(r["error"].startswith("invalid proposal: simultaneity") for r in got[1::2])
    for r, w in zip(got[::2], want[::2]):
        assert all(same(r[k], w[k]) for k in RESULT_FIELDS[1:-1]), (r, w)


def test_valid_assumptions_are_validated_once_per_class_of_a_batch(monkeypatch):
    """With valid assumptions the fast path still carries the batch: one quote per
    consumer class goes through the model's validation, the rest skip it."""
    from ysh.proposals import enrich

    validated = []
    real = enrich.proposal_of
    monkeypatch.setattr(enrich, "proposal_of", lambda **q: validated.append(q["customer_class"]) or real(**q))
    quotes = sample_quotes(A, ["B1", "B1", "B3", "B1", "B3", "B3"])
    got = evaluate_quotes(quotes)
    assert all(r["error"] is None for r in got)
    assert validated == ["B1", "B3"]


def _columns_of(quotes: list[dict]) -> dict:
    """The quotes as the graph's batched UDF holds them: columns, sizes and tariffs as tuples."""
    import numpy as np

    return dict(customer_class=[q["customer_class"] for q in quotes], connection=[q["connection"] for q in quotes],
                size=[(q["size"].kwp, q["size"].inverter_kw, q["size"].modules, q["size"].equipment_brl,
                       q["size"].unknown_skus) for q in quotes],
                consumption=[q["consumption"] for q in quotes],
                generation=np.array([q["generation"] for q in quotes], dtype=float).reshape(-1, 12),
                tariff=[(q["te"], q["tusd"], q["fio_b"], q["tariff_error"]) for q in quotes],
                icms_pct=[q["icms_pct"] for q in quotes], access_request_date=[q["access_request_date"] for q in quotes],
                quote_date=[q["quote_date"] for q in quotes], assumptions=A)


def test_quotes_given_by_columns_give_the_rows_of_the_quotes_given_one_by_one(monkeypatch):
    """What the graph calls (columns, checks made by numpy for the whole batch) against
    :func:`evaluate_quote_rows` on the same quotes as dictionaries: the same tuples, errors
    and yearly JSON text included, with the fast path and with every quote validated."""
    from ysh.proposals import enrich

    rng = random.Random(41)
    quotes = [quote(rng) for _ in range(900)]
    # quotes the fast path must refuse: an int where a float is typed, a NaN, a negative month
    quotes[5] = {**quotes[5], "icms_pct": 18}
    quotes[6] = {**quotes[6], "te": float("nan"), "tariff_error": None}
    quotes[7] = {**quotes[7], "consumption": [-1.0] + [300.0] * 11}
    want = enrich.evaluate_quote_rows(quotes)
    got = enrich.evaluate_quote_columns(**_columns_of(quotes))
    assert got == want
    assert sum(r[0] is None for r in got) > 200 and sum(r[0] is not None for r in got) > 100
    monkeypatch.setattr(enrich, "MICRO_LIMIT_KW", -1.0)  # nothing passes the fast path's range check
    assert enrich.evaluate_quote_columns(**_columns_of(quotes)) == want
    assert enrich.evaluate_quote_columns(**_columns_of([])) == []


def test_the_yearly_table_keeps_its_keys_in_order():
    from ysh.proposals.enrich import evaluate_quote_rows

    rng = random.Random(43)
    rows = [r for r in evaluate_quote_rows([quote(rng) for _ in range(60)]) if r[0] is None]
    first = json.loads(rows[0][-1])[0]
    assert list(first) == ["year", "calendar_year", "generation_kwh", "savings_brl", "cash_flow_brl",
                           "cumulative_brl", "discounted_cumulative_brl"]


def test_the_yearly_documents_are_the_text_of_the_yearly_dictionaries():
    """``yearly_documents`` writes the dictionaries as literals: the very text orjson gives
    for ``_yearly``'s dictionaries, for any horizon (the shortest first), start year and
    value (NaN → null, −0.0, large and tiny numbers)."""
    import numpy as np
    import orjson

    from ysh.proposals.enrich import YEARLY_COLUMNS, _yearly, yearly_documents

    rng = np.random.default_rng(2026)
    for trial in range(60):
        n, years = int(rng.integers(1, 30)), int(rng.integers(1, 31))
        columns = {}
        for name in YEARLY_COLUMNS:
            values = np.round(rng.normal(0.0, 10.0 ** rng.integers(0, 9), (n, years)), 2)
            values[rng.random((n, years)) < 0.05] = np.nan
            values[rng.random((n, years)) < 0.05] = -0.0
            values[0, 0] = [1e20, 1e-7, 0.5, -3.0][trial % 4]
            columns[name] = values.tolist()
        starts = rng.integers(2000, 2101, n).tolist()
        horizons = rng.integers(1, years + 1, n).tolist()
        assert yearly_documents(columns, starts, horizons) == [
            orjson.dumps(_yearly(columns, j, starts[j], horizons[j])).decode() for j in range(n)]
