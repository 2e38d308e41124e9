"""A batch runs with Python's collector kept off the objects that lived before it, and
leaves the collector as it found it (run_batch is also called in long-lived processes)."""

import gc

import pytest

from ysh.proposals.job import quiet_gc


@pytest.fixture()
def collector():
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    yield
    gc.set_threshold(*threshold)
    if gc.get_freeze_count() and not frozen:
        gc.unfreeze()


def test_a_batch_freezes_what_lives_and_restores_the_collector_after(collector):
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with quiet_gc(young=50_000):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == max(50_000, before[0])
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_its_own_objects_keeps_its_freeze(collector):
    gc.freeze()
    frozen = gc.get_freeze_count()
    fresh = [[] for _ in range(1000)]  # live, not frozen: a second freeze would take them in
    with quiet_gc():
        pass
    # neither unfrozen (0) nor frozen again (+1000); frozen objects that another thread
    # frees meanwhile leave the count, so it may only have gone down a little
    assert frozen - 100 < gc.get_freeze_count() <= frozen
    assert len(fresh) == 1000


def test_the_collector_is_restored_when_the_run_fails(collector):
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), quiet_gc():
        raise RuntimeError("the graph failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
