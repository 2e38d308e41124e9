"""Whether a follower runs (:meth:`ysh.kit.follower.Follower.active`), against the session's
real PostgreSQL: a follower holds an advisory lock from its start, so a batch is refused in
the moments none of its slots is active yet (its first batch, the slot's creation, the
initial snapshot: a CI run once raced a batch into that gap), and a second follower of the
same schema is refused."""

from __future__ import annotations

import psycopg
import pytest

from ysh.kit.follower import FollowerRunning, _LOCK_SPACE, _Presence
from ysh.tariffs import job

from ..conftest import wait_for


def hold_lock(warehouse) -> psycopg.Connection:
    """Another session holding the follower lock, as a follower process in its start-up does."""
    conn = psycopg.connect(warehouse.dsn, autocommit=True)
    conn.execute("SELECT pg_advisory_lock(hashtext(%s), hashtext(%s))",
                 (_LOCK_SPACE, f"{warehouse.schema}:{job.FOLLOWER.pipeline}"))
    return conn


def test_a_follower_without_an_active_slot_still_refuses_a_batch(warehouse):
    assert not job.FOLLOWER.active(warehouse)
    other = hold_lock(warehouse)
    try:
        assert job.FOLLOWER.active(warehouse)
        with pytest.raises(FollowerRunning, match="stop it to recompute"):
            job.run_warehouse(warehouse)
    finally:
        other.close()
    # the server ends the closed session (and frees its lock) a moment later
    wait_for(lambda: not job.FOLLOWER.active(warehouse), 30, "the lock released")
    job.run_warehouse(warehouse)  # nobody follows: the batch runs


def test_the_lock_is_per_schema(warehouse, pg_server):
    other = hold_lock(warehouse)
    try:
        from ysh.db import Warehouse

        assert not job.FOLLOWER.active(Warehouse(warehouse.dsn, warehouse.schema + "_other"))
    finally:
        other.close()


def test_a_follower_runs_its_own_first_batch_and_refuses_a_second_follower(warehouse):
    name = f"{warehouse.schema}:{job.FOLLOWER.pipeline}"
    with _Presence(warehouse.dsn, name):
        assert job.FOLLOWER.active(warehouse)
        job.run_warehouse(warehouse)  # the follower's own batch, in its process
        with pytest.raises(FollowerRunning, match="another .* holds the follower lock"):
            with _Presence(warehouse.dsn, name, wait_s=0.5):
                pass
    assert not job.FOLLOWER.active(warehouse)


def test_a_batch_holds_the_lock_while_it_runs_and_releases_it(warehouse, monkeypatch):
    from ysh import pw_runtime

    name = f"{warehouse.schema}:{job.FOLLOWER.pipeline}"
    seen = {}

    def run(*args, **kwargs):  # during the batch's run: a follower could not take the lock
        seen["held"] = job.FOLLOWER.active(warehouse)
        with pytest.raises(FollowerRunning):
            with _Presence(warehouse.dsn, name, wait_s=0.5):
                pass
        return real_run(*args, **kwargs)

    real_run = pw_runtime.run
    monkeypatch.setattr(pw_runtime, "run", run)
    job.run_warehouse(warehouse)
    assert seen["held"]
    assert not job.FOLLOWER.active(warehouse)  # released at once, not when the session ends
