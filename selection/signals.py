"""Per-sample scalar signals from a model: adaptive-shift translation and reference-model loss/EL2N.

``shift_scores`` (seed 000, DESIGN.md "Selection" A): ``shift_i = ‖φ(x_i) − φ(x̃_i)‖₂`` where φ is the
model's pooled hidden state (the target backend's pooling, *not* normalised: normalising would make
L2 a monotone function of the cosine distance) and x̃_i the perturbed copy of sample i
(:mod:`selection.perturb`, seeded per record id so it is the same in every run, shard and rank).
Options (``selection.options``; unknown keys are left to the selector):

    perturbation       "image:gaussian_noise" (sigma 0.1) — see selection.perturb for the choices
    distance           "l2" | "cosine" (1 − cos)        default l2, as the paper's formula
    shift_layers       [-1] (the last decoder layer's output, before the final norm)
    shift_pooling      "mean" (image + text tokens) | "separate"
    perturbation_seed  0
    batch_size         16 (original and perturbed copies run in one forward pass of 2·batch_size)
    shard_size         4096
    cache_dir          None: <cache root>/signals (finetune.cache; the recipe's cache_dir)

None of these is published; they are geotune's defaults (docs/selection.md says why).

``loss_scores`` (COINCIDE's Perplexity and EL2N baselines): per sample, over the tokens training
supervises (every answer and its end-of-turn token, in the adapter's training encoding), the mean token
cross-entropy ``loss`` (perplexity = exp(loss)) and ``el2n`` = mean over those tokens of
‖softmax(z_t) − onehot(y_t)‖₂.

Both are cached like features (sharded, resumable, keyed by data + model + options).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from finetune.cache import cache_dir
from selection.features.inputs import ENCODING, ModelRunner, prefetched_samples
from selection.features.store import cache_key, data_fingerprint, model_fingerprint, run_sharded
from selection.features.target import PooledStates
from selection.perturb import parse_perturbation, perturb_sample, sample_seed

SHIFT_DEFAULTS: dict[str, Any] = {
    "perturbation": "image:gaussian_noise",
    "distance": "l2",
    "shift_layers": [-1],
    "shift_pooling": "mean",
    "perturbation_seed": 0,
    "batch_size": 16,
    "shard_size": 4096,
    "cache_dir": None,
}
DISTANCES = ("l2", "cosine")


def shift_options(options: Mapping | None) -> dict[str, Any]:
    """The shift options with defaults filled in and checked (other selector keys are ignored)."""
    if options is not None and hasattr(options, "items") and not isinstance(options, dict):
        from omegaconf import OmegaConf

        options = OmegaConf.to_container(options, resolve=True)
    merged = {**SHIFT_DEFAULTS, **{k: v for k, v in dict(options or {}).items() if k in SHIFT_DEFAULTS}}
    if merged["distance"] not in DISTANCES:
        raise ValueError(f"selection.options.distance: unknown '{merged['distance']}'; choose from {', '.join(DISTANCES)}")
    merged["perturbation"] = parse_perturbation(merged["perturbation"]).describe()
    return merged


def distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """Row-wise ``l2`` distance or cosine distance ``1 − cos`` (float32)."""
    a, b = a.float(), b.float()
    if kind == "l2":
        return torch.linalg.vector_norm(a - b, dim=-1)
    # Clamped: rounding can push 1 − cos of identical vectors a hair below zero.
    return (1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)).clamp(min=0.0)


def _sharded_signal(name, records, data, model_cfg, parts, shard_size, cache_root, compute_rows, on_shard_done):
    key = cache_key({"data": data_fingerprint(records, data), "model": model_fingerprint(model_cfg.path), "encoding": ENCODING,
                     "adapter": model_cfg.adapter, "dtype": model_cfg.dtype, "shard_size": shard_size, **parts})
    entry = cache_dir("signals", override=cache_root) / f"{name}-{key}"
    return run_sharded(entry, len(records), shard_size, compute_rows, dtype="float32", desc=name,
                       on_shard_done=on_shard_done, meta={"signal": name, "records": len(records), **parts})


def shift_scores(
    records,
    data,
    model_cfg,
    options: Mapping | None = None,
    *,
    on_shard_done: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Adaptive-shift translation per record, shape (N,), float32, >= 0 (see the module docstring).

    A record whose forward pass gave NaN/inf keeps a NaN score (counted as ``nan_rows`` in the cache
    report); selectors rank it last and the manifest header counts it (``info.nan_scores``).
    """
    opts = shift_options(options)
    perturbation = parse_perturbation(opts["perturbation"])
    loaded: dict[str, PooledStates] = {}

    def compute(lo: int, hi: int):
        if "pool" not in loaded:
            runner = ModelRunner(model_cfg)
            loaded["pool"] = PooledStates(runner, opts["shift_layers"], opts["shift_pooling"], normalise=False,
                                          key="selection.options.shift_layers")
        pool, part = loaded["pool"], records[lo:hi]
        out = np.zeros((len(part), 1), dtype=np.float32)
        for idx, originals in prefetched_samples(part, data, int(opts["batch_size"])):
            # Perturbed here, not in the loader thread: torchvision's transforms seed torch's global RNG.
            seeds = [sample_seed(int(opts["perturbation_seed"]), part[i].id) for i in idx]
            perturbed = [perturb_sample(s, perturbation, seed) for s, seed in zip(originals, seeds, strict=True)]
            phi = pool(originals + perturbed)
            out[idx, 0] = distance(phi[: len(idx)], phi[len(idx) :], opts["distance"]).cpu().numpy()
        # Kept as NaN (not 0, which `prefer: low` would rank best): selection ranks them last and counts them.
        return out, {"nan_rows": int((~np.isfinite(out[:, 0])).sum())}

    parts = {k: opts[k] for k in ("perturbation", "distance", "shift_layers", "shift_pooling", "perturbation_seed")}
    values = _sharded_signal("shift", records, data, model_cfg, parts, int(opts["shard_size"]), opts["cache_dir"],
                             compute, on_shard_done)
    return np.array(values[:, 0])


@torch.inference_mode()
def answer_losses(runner: ModelRunner, samples) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean cross-entropy and EL2N over the tokens training supervises (every answer and its
    end-of-turn token, from the adapter's training encoding).

    Left padding puts the last answer at the right edge, so only the logits from the first supervised
    position of the batch on are computed (``logits_to_keep`` when the model supports it).
    """
    batch, labels = runner.encode_with_labels(samples)
    width = labels.shape[1]
    supervised = labels != -100
    first = int(supervised.float().argmax(dim=1).min()) if supervised.any() else width - 1
    first = max(first, 1)
    keep = width - first + 1  # logits at positions first-1 .. width-2 predict tokens first .. width-1
    kwargs = {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(runner.model.forward).parameters else {}
    logits = runner.model(**batch, use_cache=False, **kwargs).logits[:, -keep:-1].float()
    targets = batch["input_ids"][:, first:]
    mask = supervised[:, first:]
    log_probs = torch.log_softmax(logits, dim=-1)
    token_loss = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    error = log_probs.exp()
    error.scatter_add_(-1, targets.unsqueeze(-1), -torch.ones_like(token_loss).unsqueeze(-1))
    token_el2n = torch.linalg.vector_norm(error, dim=-1)
    count = mask.sum(dim=1).clamp(min=1)
    loss = torch.where(mask, token_loss, 0.0).sum(1) / count
    el2n = torch.where(mask, token_el2n, 0.0).sum(1) / count
    return loss, el2n


def loss_scores(
    records,
    data,
    model_cfg,
    *,
    batch_size: int = 8,
    shard_size: int = 4096,
    cache_root: str | None = None,
    on_shard_done: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """``{"loss": (N,), "el2n": (N,)}`` from a reference model over answer tokens (module docstring)."""
    loaded: dict[str, ModelRunner] = {}

    def compute(lo: int, hi: int):
        if "runner" not in loaded:
            loaded["runner"] = ModelRunner(model_cfg)
        part = records[lo:hi]
        out = np.zeros((len(part), 2), dtype=np.float32)
        for idx, samples in prefetched_samples(part, data, batch_size):
            loss, el2n = answer_losses(loaded["runner"], samples)
            out[idx, 0], out[idx, 1] = loss.cpu().numpy(), el2n.cpu().numpy()
        return out, {}

    values = _sharded_signal("loss", records, data, model_cfg, {}, shard_size, cache_root, compute, on_shard_done)
    return {"loss": np.array(values[:, 0]), "el2n": np.array(values[:, 1])}
