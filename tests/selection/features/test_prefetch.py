import threading

import pytest

from selection.features.prefetch import prefetched


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_yields_every_item_in_order_with_its_load(depth):
    assert list(prefetched(range(7), lambda x: x * x, depth=depth)) == [(x, x * x) for x in range(7)]


def test_loads_run_in_another_thread_and_no_further_ahead_than_depth():
    started, threads = [], set()

    def load(x):
        started.append(x)
        threads.add(threading.current_thread().name)
        return x

    stream = prefetched(range(10), load, depth=2)
    first = next(stream)
    # The consumer holds item 0: items 1 and 2 may be loading, item 3 must not have been submitted.
    assert first == (0, 0)
    assert max(started) <= 2
    assert [item for item, _ in stream] == list(range(1, 10))
    assert threads and threading.current_thread().name not in threads


def test_a_failed_load_raises_at_its_item():
    def load(x):
        if x == 3:
            raise OSError("cannot read image 3")
        return x

    got = []
    with pytest.raises(OSError, match="image 3"):
        for item, _ in prefetched(range(6), load, depth=2):
            got.append(item)
    assert got == [0, 1, 2]


def test_stopping_early_cancels_queued_loads():
    release = threading.Event()
    started = []

    def load(x):
        started.append(x)
        release.wait(timeout=5)
        return x

    stream = prefetched(range(100), load, depth=3)
    release.set()
    assert next(stream) == (0, 0)
    stream.close()
    assert len(started) <= 5


def test_negative_depth_is_refused():
    with pytest.raises(ValueError, match="depth"):
        list(prefetched([1], lambda x: x, depth=-1))
