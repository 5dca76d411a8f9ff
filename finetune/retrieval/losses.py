"""HarMA's two losses (HARMA.md section 2), on L2-normalised features gathered across ranks.

``L = L_itc + L_tri``: a multi-positive InfoNCE with a raw learnable temperature, and a focal-weighted
bidirectional hinge summed over all B^2 pairs (no hardest-negative mining). Under DDP the features of
every rank enter the loss (``torch.distributed.nn.functional.all_gather`` keeps the gradient path);
in one process the local batch is used, so single-GPU and CPU runs work.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows of ``x`` (with gradients), or ``x`` itself outside DDP."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def contrastive_loss(image_feats: torch.Tensor, text_feats: torch.Tensor, temp: torch.Tensor,
                     image_ids: torch.Tensor) -> torch.Tensor:
    """Multi-positive InfoNCE: every caption of the same image (``image_ids`` equal) is a positive.

    ``P_ij = 1[id_i = id_j] / sum_k 1[id_i = id_k]``;  ``L = (CE(F T^T / temp, P) + CE(T F^T / temp, P)) / 2``.
    """
    logits = image_feats @ text_feats.t() / temp
    ids = image_ids.view(-1, 1)
    positives = torch.eq(ids, ids.t()).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    loss_i2t = -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()
    loss_t2i = -(F.log_softmax(logits.t(), dim=1) * targets).sum(dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


def focal_triplet_loss(image_feats: torch.Tensor, text_feats: torch.Tensor, margin: float = 0.2,
                       gamma: float = 2.0) -> torch.Tensor:
    """``(sum w * [m + S_ij - S_ii]_+ + sum w * [m + S_ij - S_jj]_+) / 2``, ``w = (1 - exp(-c))^gamma``.

    The positive is the diagonal only: other captions of the same image count as negatives, as in
    the public code. A sum, not a mean, so it grows with the (global) batch.
    """
    scores = image_feats @ text_feats.t()
    diagonal = scores.diag().view(-1, 1)
    eye = torch.eye(scores.size(0), dtype=torch.bool, device=scores.device)
    cost_i2t = (margin + scores - diagonal).clamp(min=0).masked_fill(eye, 0)
    cost_t2i = (margin + scores - diagonal.t()).clamp(min=0).masked_fill(eye, 0)
    weighted = [((1 - torch.exp(-c)) ** gamma * c).sum() for c in (cost_i2t, cost_t2i)]
    return (weighted[0] + weighted[1]) / 2


def harma_loss(image_feats: torch.Tensor, text_feats: torch.Tensor, temp: torch.Tensor, image_ids: torch.Tensor,
               margin: float = 0.2, gamma: float = 2.0) -> dict[str, torch.Tensor]:
    """Gather across ranks, then ``{"loss": itc + tri, "itc": ..., "tri": ...}`` (weighted 1:1)."""
    images, texts, ids = (gather_features(t) for t in (image_feats, text_feats, image_ids))
    itc = contrastive_loss(images, texts, temp, ids)
    tri = focal_triplet_loss(images, texts, margin, gamma)
    return {"loss": itc + tri, "itc": itc, "tri": tri}
