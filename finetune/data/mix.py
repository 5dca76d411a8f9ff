"""Sampling and domain/general mixing with exact counts, reproducible by seed.

Rounding: every count is ``round_half_up(x) = floor(x + 0.5)`` (so 2.5 -> 3, unlike Python's
``round``), computed once from the input sizes; the functions return exactly that many records.

Repeats: a record drawn more than once keeps its id on its first copy and gets ``<id>#<k>`` on the
k-th extra copy, so ids stay unique (selection manifests are keyed by id).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence

from finetune.data.records import Record


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _copy(record: Record, k: int) -> Record:
    return record if k == 0 else dataclasses.replace(record, id=f"{record.id}#{k}")


def draw(records: Sequence[Record], count: int, seed: int) -> list[Record]:
    """Exactly ``count`` records: whole copies of the list, then a seeded sample of the remainder.

    Order: copy 0 of everything drawn, in input order, then copy 1, and so on.
    """
    if count < 0:
        raise ValueError(f"cannot draw {count} records")
    if count == 0 or not records:
        if count and not records:
            raise ValueError(f"cannot draw {count} records from an empty list")
        return []
    whole, rest = divmod(count, len(records))
    picked = sorted(random.Random(seed).sample(range(len(records)), rest))
    out = [_copy(r, k) for k in range(whole) for r in records]
    out += [_copy(records[i], whole) for i in picked]
    return out


def sample_records(records: Sequence[Record], amount: float, seed: int) -> list[Record]:
    """Sample or repeat a dataset.

    Args:
        records: the dataset.
        amount: ``< 1``: fraction sampled at random without replacement (``round_half_up(n*amount)``
            records, in input order); ``1``: all; ``> 1``: repeat count — ``floor(amount)`` whole copies
            plus a seeded sample of the fractional part (e.g. 2.5 on 10 records gives 25).
        seed: seed of the sampling.

    Returns:
        Exactly ``round_half_up(len(records) * amount)`` records.
    """
    if amount < 0 or math.isnan(amount):
        raise ValueError(f"sample amount must be >= 0, got {amount}")
    if amount == 1:
        return list(records)
    return draw(records, round_half_up(len(records) * amount), seed)


def general_count(n_domain: int, general_ratio: float) -> int:
    """General samples to add so that they are ``general_ratio`` of the mix: ``n_d * r / (1 - r)``."""
    if not 0 <= general_ratio < 1:
        raise ValueError(f"mix.general_ratio must be in [0, 1), got {general_ratio}")
    return round_half_up(n_domain * general_ratio / (1 - general_ratio))


def mix_general(domain: Sequence[Record], general: Sequence[Record], general_ratio: float, seed: int) -> list[Record]:
    """All domain records plus ``general_count(len(domain), general_ratio)`` general records.

    General records are sampled without replacement when there are enough, else repeated (whole
    copies plus a seeded remainder), as ``sample_records`` does. Returns domain records first, then the
    general ones; shuffling is the trainer's sampler's job.

    Raises:
        ValueError: ratio outside [0, 1), or general records needed but none given.
    """
    n_general = general_count(len(domain), general_ratio)
    if n_general and not general:
        raise ValueError(f"mix.general_ratio={general_ratio} needs {n_general} general records but no dataset has kind=general")
    return list(domain) + draw(general, n_general, seed)
