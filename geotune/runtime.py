"""The process environment of a run, set in one visible place before any library code runs.

``geotune.experiment.run_experiment`` calls ``configure_process(cfg)`` first; nothing under
``finetune/``, ``selection/`` or ``eval/`` sets environment variables or patches classes by itself.
Every variable is only *defaulted*: a value the user exported wins.

| what | value | when | why |
|---|---|---|---|
| ``TOKENIZERS_PARALLELISM`` | ``false`` | always | samples are tokenised a few short pieces at a time: the tokenizers thread pool only adds wake-ups competing with the model's threads (100 batches of the throughput benchmark load in 1.0 s without it, 1.5-2.1 s with it), and DataLoader workers disable it after forking anyway |
| ``WANDB_MODE`` | ``offline`` | ``train.report_to`` has wandb and no ``WANDB_API_KEY`` | never reach a server the user did not configure |
| ``DS_ACCELERATOR`` | ``cpu`` | DeepSpeed asked for without a GPU | must be set before ``deepspeed`` is imported (``finetune/distributed.py``, point 3) |
| ``ACCELERATE_TORCH_DEVICE`` | ``cpu`` | same | pins accelerate's device (point 2) |
| ``accelerate.PartialState._prepare_backend`` patched | gloo / MULTI_CPU | same | accelerate picks no backend for CPU ranks (point 1) |
"""

from __future__ import annotations

import os

from finetune import distributed


def _default(name: str, value: str, changed: dict[str, str]) -> None:
    if name not in os.environ:
        os.environ[name] = value
        changed[name] = value


def configure_process(cfg) -> dict[str, str]:
    """Set the environment a run of ``cfg`` needs (table above); returns the variables it set.

    Raises:
        ValueError: DeepSpeed launched on CPU ranks without ``train.deepspeed``, or a DeepSpeed config
            that cannot run on CPU, before anything is loaded.
    """
    changed: dict[str, str] = {}
    _default("TOKENIZERS_PARALLELISM", "false", changed)
    if "wandb" in list(cfg.train.report_to) and not os.environ.get("WANDB_API_KEY"):
        _default("WANDB_MODE", "offline", changed)
    deepspeed_config = cfg.train.deepspeed
    if not deepspeed_config and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        import torch

        if not torch.cuda.is_available():
            # accelerate's own env-built DeepSpeed plugin sizes its batch from a state the CPU patch cannot
            # reach in time (DeepSpeed then sees 2 ranks, accelerate 1): the config must be named instead.
            raise ValueError(
                "accelerate launch --use_deepspeed on CPU: also set train.deepspeed=recipes/deepspeed/zero2.json "
                "(or zero3.json) so the HF Trainer builds the DeepSpeed config"
            )
    if distributed.cpu_deepspeed_requested(deepspeed_config):
        distributed.check_cpu_config(deepspeed_config)
        _default("DS_ACCELERATOR", "cpu", changed)
        _default("ACCELERATE_TORCH_DEVICE", "cpu", changed)
        distributed.patch_accelerate_backend()
    return changed
