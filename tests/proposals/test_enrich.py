"""The production evaluation of quotes (many at once, billing_vec) gives what the
month-by-month reference gives for each quote, errors included."""

import math
import random
from datetime import date, timedelta

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
    assert sum(enrich._typed_inputs(q, True) is not None for q in quotes) > 100  # the fast path is taken
    monkeypatch.setattr(enrich, "_typed_inputs", lambda quote, constants_valid: None)
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
