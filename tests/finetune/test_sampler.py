"""LengthGroupedSampler: a permutation, deterministic per (seed, epoch), less padding than random order."""

from __future__ import annotations

import random

import pytest
import torch

from finetune.sampler import LengthGroupedSampler, padding_share


def test_permutation_deterministic_and_epoch_dependent():
    lengths = [random.Random(i).randint(10, 500) for i in range(97)]
    sampler = LengthGroupedSampler(lengths, group_size=4, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(97))
    assert list(LengthGroupedSampler(lengths, group_size=4, seed=3)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    groups = LengthGroupedSampler(lengths, group_size=4, seed=3).groups()
    assert max(lengths[i] for i in groups[0]) == max(lengths)  # longest group first


def test_groups_cut_padding():
    rng = random.Random(0)
    lengths = [rng.choice([40, 300, 1100, 1400]) + rng.randint(0, 30) for _ in range(400)]
    grouped = LengthGroupedSampler(lengths, group_size=8, seed=0).groups()
    order = list(range(400))
    rng.shuffle(order)
    shuffled = [order[i : i + 8] for i in range(0, 400, 8)]
    assert padding_share(lengths, grouped) < 0.05 < 0.3 < padding_share(lengths, shuffled)
    assert padding_share([2, 4], [[0, 1]]) == 0.25


def test_batches_cut_from_the_flat_order_stay_inside_groups():
    """The DataLoader cuts batches every `group_size` indices of the flat order: the short group (pool size
    not a multiple of it) must come last, or every later batch straddles two groups."""
    rng = random.Random(1)
    lengths = [rng.randint(50, 170) for _ in range(1500)]  # 1500 = 187 x 8 + 4
    for seed in range(5):
        sampler = LengthGroupedSampler(lengths, group_size=8, seed=seed)
        groups = sampler.groups()
        order = list(sampler)
        batches = [order[i : i + 8] for i in range(0, len(order), 8)]
        assert [sorted(b) for b in batches] == [sorted(g) for g in groups]
        assert len(groups[-1]) == 4 and all(len(g) == 8 for g in groups[:-1])
        assert padding_share(lengths, batches) < 0.02


def test_megabatch_size_trades_padding_for_mixed_batches():
    """Length follows task type (4 tasks, 4 length bands): one mega-batch per step keeps random batches
    (several tasks per batch, random-order padding); 50 gives one task per batch and almost no padding."""
    rng = random.Random(2)
    task = [rng.randrange(4) for _ in range(800)]
    lengths = [(40, 300, 1100, 1400)[t] + rng.randint(0, 30) for t in task]

    def measure(megabatch):
        groups = LengthGroupedSampler(lengths, group_size=8, seed=0, megabatch_groups=megabatch).groups()
        tasks_per_batch = sum(len({task[i] for i in g}) for g in groups) / len(groups)
        return padding_share(lengths, groups), tasks_per_batch

    (pad1, mix1), (pad4, mix4), (pad50, mix50) = measure(1), measure(4), measure(50)
    generator = torch.Generator().manual_seed(0)
    random_batches = torch.randperm(800, generator=generator).view(-1, 8).tolist()
    assert sorted(map(sorted, LengthGroupedSampler(lengths, 8, seed=0, megabatch_groups=1).groups())) == \
        sorted(map(sorted, random_batches))  # one step per mega-batch: exactly the random batches
    assert pad50 < pad4 < pad1 and mix50 < mix4 < mix1
    assert mix50 < 1.1 and mix1 > 3.0


def test_megabatch_below_one_names_the_recipe_key():
    with pytest.raises(ValueError, match="train.length_megabatch"):
        LengthGroupedSampler([1, 2, 3], group_size=2, megabatch_groups=0)
