"""HarMA's losses against their formulas (HARMA.md section 2), written out element by element."""

import math

import torch
import torch.nn.functional as F

from finetune.retrieval.losses import contrastive_loss, focal_triplet_loss, gather_features, harma_loss


def _batch():
    torch.manual_seed(0)
    images = F.normalize(torch.randn(4, 6, dtype=torch.float64), dim=-1)
    texts = F.normalize(torch.randn(4, 6, dtype=torch.float64), dim=-1)
    return images, texts, torch.tensor([0, 0, 1, 2])  # rows 0 and 1: two captions of one image


def test_contrastive_is_multi_positive_infonce():
    images, texts, ids = _batch()
    temp = torch.tensor(0.07, dtype=torch.float64)
    n = len(ids)
    total = 0.0
    for logits in (images @ texts.t() / temp, texts @ images.t() / temp):
        per_row = []
        for i in range(n):
            positives = [j for j in range(n) if ids[i] == ids[j]]
            log_norm = math.log(sum(math.exp(float(logits[i, k])) for k in range(n)))
            per_row.append(-sum((float(logits[i, j]) - log_norm) / len(positives) for j in positives))
        total += sum(per_row) / n
    assert math.isclose(float(contrastive_loss(images, texts, temp, ids)), total / 2, rel_tol=1e-12)


def test_triplet_is_focal_weighted_and_summed():
    images, texts, _ = _batch()
    s = images @ texts.t()
    n, m, gamma = s.shape[0], 0.2, 2.0
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            for c in (max(0.0, m + float(s[i, j] - s[i, i])), max(0.0, m + float(s[i, j] - s[j, j]))):
                total += (1 - math.exp(-c)) ** gamma * c
    assert math.isclose(float(focal_triplet_loss(images, texts, m, gamma)), total / 2, rel_tol=1e-12)


def test_total_is_one_to_one_and_local_without_ddp():
    images, texts, ids = _batch()
    temp = torch.tensor(0.07, dtype=torch.float64)
    out = harma_loss(images, texts, temp, ids)
    assert torch.equal(gather_features(images), images)
    assert torch.allclose(out["loss"], contrastive_loss(images, texts, temp, ids) + focal_triplet_loss(images, texts))
    assert float(focal_triplet_loss(images, images)) < float(focal_triplet_loss(images, texts))
