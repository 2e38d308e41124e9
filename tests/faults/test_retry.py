"""The retry helpers every sink uses, on their own: a lost server is retried with
backoff and logged, a budget spent raises; a Pathway time's changes net to keyed upserts
and deletes (what makes a retried write neither lose nor double a row)."""

from __future__ import annotations

import logging

import psycopg
import pytest

from ysh import db
from ysh.kit.sinks import SnapshotSink


def test_a_server_that_stays_away_is_retried_with_backoff_then_the_error_is_raised(caplog):
    from ysh.services.postgres import free_port

    dsn = f"host=127.0.0.1 port={free_port()} user=nobody dbname=nothing connect_timeout=2"  # nothing listens
    calls = []

    def action():
        calls.append(1)
        with psycopg.connect(dsn):
            pass

    with caplog.at_level(logging.WARNING, logger="ysh.db"), pytest.raises(psycopg.OperationalError):
        db.with_reconnect(action, what="writing t", budget_s=1.2, initial_s=0.1, cap_s=0.4)
    assert len(calls) >= 3
    retried = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retried) == len(calls) - 1
    assert retried[0].startswith("writing t failed (attempt 1")
    assert any("giving up" in r.getMessage() for r in caplog.records)


def test_a_failure_that_passes_is_retried_and_the_result_returned():
    outcomes = [psycopg.OperationalError("server closed the connection unexpectedly"),
                psycopg.OperationalError("the database system is starting up"), "written"]

    def action():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert db.with_reconnect(action, what="writing t", budget_s=30, initial_s=0.01, cap_s=0.02) == "written"
    assert outcomes == []


def test_other_errors_are_not_retried():
    calls = []

    def action():
        calls.append(1)
        raise psycopg.errors.UniqueViolation("duplicate key")

    with pytest.raises(psycopg.errors.UniqueViolation):
        db.with_reconnect(action, what="writing t", budget_s=30, initial_s=0.01)
    assert calls == [1]


def test_a_time_nets_to_upserts_by_key_and_deletes_of_keys_only_retracted():
    sink = SnapshotSink("", "s", "t", ("a", "b"))
    upserts, deletes = sink.net([
        ({"a": 1, "b": "x", "v": 1}, False), ({"a": 1, "b": "x", "v": 2}, True),  # an update
        ({"a": 2, "b": "y", "v": 5}, False),  # a deletion
        ({"a": 3, "b": "z", "v": 7}, True),  # an insertion
        ({"a": 4, "b": "w", "v": 8}, True), ({"a": 5, "b": "w", "v": 8}, False),  # the key changed
    ])
    assert upserts == {(1, "x"): {"a": 1, "b": "x", "v": 2}, (3, "z"): {"a": 3, "b": "z", "v": 7},
                       (4, "w"): {"a": 4, "b": "w", "v": 8}}
    assert deletes == [(2, "y"), (5, "w")]


def test_a_transient_version_and_its_retraction_in_one_time_cancel_in_any_order():
    sink = SnapshotSink("", "s", "kpis", ("customer_class", "state"))
    final = {"customer_class": "B1", "state": "MG", "quotes": 1, "kwp": 3.45}
    transient = {"customer_class": "B1", "state": "MG", "quotes": 1, "kwp": 0.0}
    # the final version first, then a transient one with its retraction: the final one stays
    for changes in ([(final, True), (transient, True), (transient, False)],
                    [(transient, True), (final, True), (transient, False)],
                    [(transient, False), (transient, True), (final, True)]):
        assert sink.net(changes) == ({("B1", "MG"): final}, []), changes
    # a version added and retracted in the same time, nothing else: no write for that key
    assert sink.net([(transient, True), (transient, False)]) == ({}, [])


def test_a_time_of_additions_only_is_its_rows_by_key_and_a_key_twice_is_counted():
    sink = SnapshotSink("", "s", "t", ("a",))
    rows = [{"a": i, "v": i * 10} for i in range(5)]
    assert sink.net([(r, True) for r in rows]) == ({(i,): rows[i] for i in range(5)}, [])
    # one key added twice in a time (two versions, neither retracted): the last version, as
    # when retractions are in the time too
    second = {"a": 1, "v": 99}
    assert sink.net([(r, True) for r in rows] + [(second, True)])[0][(1,)] == second
