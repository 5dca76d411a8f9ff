"""Length-sorted index batches: the one batcher for inference passes (selection features, eval answers).

Training does not use this (it shuffles; see ``finetune/sampler.py``): inference visits every item
once and only wants little padding.
"""

from __future__ import annotations

from collections.abc import Sequence


def length_sorted_batches(lengths: Sequence, batch_size: int, key: str = "batch_size") -> list[list[int]]:
    """Index batches over ``lengths`` sorted longest first (ties in input order), ``batch_size`` each.

    Callers write results back by these indices, which restores input order. Longest first puts the
    largest batch first, so an out-of-memory batch fails at once rather than at the end.

    Args:
        lengths: one sortable length per item (an int, or a tuple such as ``(images, characters)``).
        batch_size: items per batch.
        key: the recipe key that set ``batch_size``, named in the error.

    Raises:
        ValueError: ``batch_size`` below 1.
    """
    if batch_size < 1:
        raise ValueError(f"{key} must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)  # stable: ties keep input order
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
