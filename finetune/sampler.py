"""A length-grouped sampler whose order depends only on (seed, epoch), so a resumed run sees the same data.

Vision-language samples vary from ~300 to several thousand tokens (1 to 13 tiles of 256 tokens),
so random batches are mostly padding. Like HF's ``LengthGroupedSampler`` this shuffles, cuts the
shuffled order into mega-batches, and sorts each mega-batch by length, so a group of similar
lengths becomes one optimiser step; unlike it, it takes precomputed lengths (HF's would encode every
sample to measure it) and re-derives its order from ``seed + epoch`` instead of the global RNG.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """Indices in groups of ``group_size`` similar lengths, groups in random order, longest group first.

    Args:
        lengths: token count per sample.
        group_size: samples per optimiser step across ranks (per-device batch x ranks x grad-accum);
            consecutive per-device batches cut from one group have similar lengths.
        seed: base seed; epoch ``e`` uses ``seed + e`` (``set_epoch``, called by the Trainer).
        megabatch_groups: groups per mega-batch (``train.length_megabatch``; HF uses 50): larger = less
            padding, but when length follows task type a batch holds one task; 1 = random batches.

    Raises:
        ValueError: ``megabatch_groups`` below 1.
    """

    def __init__(self, lengths: Sequence[int], group_size: int, seed: int = 0, megabatch_groups: int = 50):
        if int(megabatch_groups) < 1:
            raise ValueError(f"train.length_megabatch: {megabatch_groups} is below 1 (1 = random order, 50 = HF's)")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.group_size = max(1, int(group_size))
        self.seed, self.epoch, self.megabatch_groups = int(seed), 0, int(megabatch_groups)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def groups(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator)
        mega = self.group_size * self.megabatch_groups
        groups: list[list[int]] = []
        for start in range(0, len(order), mega):
            chunk = order[start : start + mega]
            chunk = chunk[torch.argsort(self.lengths[chunk], descending=True, stable=True)].tolist()
            groups += [chunk[i : i + self.group_size] for i in range(0, len(chunk), self.group_size)]
        # Batches are cut from the flat order every `group_size` indices: a short group anywhere but last
        # would shift every later cut off its group (a tenth of the slots padding instead of 1%).
        short = [groups.pop()] if groups and len(groups[-1]) < self.group_size else []
        if len(groups) > 1:
            # The longest group first: an out-of-memory shows at step 1, not hours in.
            longest = max(range(len(groups)), key=lambda g: self.lengths[groups[g][0]])
            groups.insert(0, groups.pop(longest))
            rest = torch.randperm(len(groups) - 1, generator=generator).tolist()
            groups = [groups[0]] + [groups[1 + i] for i in rest]
        return groups + short

    def __iter__(self) -> Iterator[int]:
        for group in self.groups():
            yield from group


def padding_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of padded positions when each batch is padded to its longest sample."""
    real = sum(lengths[i] for batch in batches for i in batch)
    slots = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if batch)
    return 1.0 - real / slots if slots else 0.0
