"""Load the next batches' inputs in a background thread while the model runs the current one.

Image decoding (PIL) and the model's forward (torch) both release the GIL, so one loader thread
overlaps them without worker processes, pickling or a second copy of the records. The look-ahead is
bounded (``depth`` batches), so memory stays at a few batches whatever the pool size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")


def prefetched(items: Iterable[Item], load: Callable[[Item], Loaded], depth: int = 2) -> Iterator[tuple[Item, Loaded]]:
    """Yield ``(item, load(item))`` in input order, with up to ``depth`` loads running ahead.

    ``depth=0`` loads in the calling thread (no look-ahead). An exception raised by ``load`` is raised
    here, at the item it belongs to; loads still queued are cancelled when the consumer stops early.
    """
    if depth < 0:
        raise ValueError(f"prefetch depth must be >= 0, got {depth}")
    if depth == 0:
        for item in items:
            yield item, load(item)
        return
    pending: deque[tuple[Item, Future]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="geotune-prefetch") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(load, item)))
                if len(pending) > depth:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()
