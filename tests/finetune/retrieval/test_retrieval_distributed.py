"""The retrieval loop's rank slices: W ranks of batch b take the global batches a one-process run of batch W*b
takes. The whole run on two CPU ranks (train.py under torchrun) is the app's test:
tests/geotune/test_retrieval_two_ranks.py."""

from __future__ import annotations

import torch
from torch.utils.data import RandomSampler

from finetune.retrieval.training import rank_batches


def test_rank_slices_of_each_global_batch_are_the_one_process_batches():
    one = rank_batches(23, 6, 1, 0, torch.Generator().manual_seed(5), drop_last=True)
    sampler = list(RandomSampler(range(23), generator=torch.Generator().manual_seed(5)))
    assert one == [sampler[i:i + 6] for i in range(0, 18, 6)]  # the order RandomSampler gives, batched
    ranks = [rank_batches(23, 3, 2, r, torch.Generator().manual_seed(5), drop_last=True) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == one
    tail = rank_batches(23, 6, 1, 0, torch.Generator().manual_seed(5), drop_last=False)
    assert tail[:3] == one and len(tail[3]) == 5
