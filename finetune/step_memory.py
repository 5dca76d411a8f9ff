"""Measured memory: of one training step, by the planner's categories (its calibration and tests), and the
peak resident memory of this process (run summaries)."""

from __future__ import annotations

import resource

from finetune.loss import next_token_labelled, supervised_logits_loss


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB to 0.1 (Linux reports ``ru_maxrss`` in KiB).

    Linux carries ``ru_maxrss`` across fork + exec: a process started by a bigger one reports at least the
    parent's size at the fork (``benchmarks/`` read ``VmHWM`` for that reason).
    """
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _NoHandle:
    def remove(self) -> None:
        pass


def measure_step_memory(model, batch: dict, optimizer, supervised_logits: bool = False) -> dict[str, int]:
    """Peak bytes by category of one training step (forward, backward, optimizer step), measured with
    torch's ``MemTracker`` (tensor-level accounting, any device). A first untracked step creates the
    Adam states, so the tracked one is the steady state every later step repeats.

    Args:
        supervised_logits: step as ``GeoTrainer`` does with ``train.supervised_logits``: the model is
            asked for logits at labelled positions only and scored with ``supervised_logits_loss``.

    Returns:
        ``{"params", "buffers", "grads", "optimizer", "activations", "total"}`` at the step's peak; ``activations``
        includes autograd temporaries.
    """
    from torch.distributed._tools.mem_tracker import MemTracker

    def loss():
        if not supervised_logits:
            return model(**batch).loss
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return supervised_logits_loss(model(**inputs, logits_to_keep=next_token_labelled(labels)), labels)

    def step():
        loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    tracker = MemTracker()
    tracker.track_external(model, optimizer)
    # MemTracker registers a gradient hook on every parameter, which torch refuses for frozen ones (LoRA):
    # mark those as hooked already, with handles that remove nothing.
    for param in model.parameters():
        if not param.requires_grad:
            tracker._param_to_grad_hook_handles[param] = (_NoHandle(), _NoHandle())
    with tracker:
        step()
    (peak,) = tracker.get_tracker_snapshot("peak").values()
    by = {str(k.value if hasattr(k, "value") else k): v for k, v in peak.items()}
    return {"params": by["Parameter"], "buffers": by["Buffer"], "grads": by["Gradient"], "optimizer": by["Optstate"],
            "activations": by["Activation"] + by["Temp"] + by["Other"], "total": by["Total"]}
