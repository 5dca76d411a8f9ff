"""DeepSpeed ZeRO on CPU processes (``DS_ACCELERATOR=cpu``, gloo), so a ZeRO setup dry-runs without GPUs.

The same ``train.py`` runs under ``torchrun --nproc_per_node 2`` or ``accelerate launch --num_processes 2
--use_deepspeed``. On GPUs nothing here changes anything. On CPU, accelerate (1.15) and the HF Trainer
(transformers 5) do not wire DeepSpeed by themselves; what breaks, and what ``geotune/runtime.py`` does
with the functions here before ``TrainingArguments`` is built:

1. ``accelerate.PartialState._prepare_backend`` picks a distributed backend only for an accelerator
   (nccl, hccl, xccl ...) or for ``cpu=True``. With ``LOCAL_RANK`` set and no GPU it returns *no*
   backend, so the state says ``DistributedType.NO`` / one process even though DeepSpeed's comm has
   initialised two ranks: DeepSpeed then rejects the batch config (``train_batch_size 4 != 4 * 1 * 2``)
   and ``main_process_first`` does not wait. ``cpu=True`` (``use_cpu``) is no way out: both
   ``PartialState`` and ``AcceleratorState`` skip DeepSpeed when ``cpu`` is set. So we patch
   ``_prepare_backend`` to answer ``("gloo", MULTI_CPU)`` when launched distributed without a GPU;
   the DeepSpeed branch then calls ``deepspeed.init_distributed(dist_backend="gloo")``.
2. Device selection: ``ACCELERATE_TORCH_DEVICE=cpu`` pins the state's device (otherwise it would
   ask ``torch.cpu`` for a device index per rank).
3. DeepSpeed's accelerator autodetection: without CUDA it already falls back to CPU, with a warning;
   ``DS_ACCELERATOR=cpu`` makes it explicit, and must be set before ``deepspeed`` is imported.
4. Optimizer: DeepSpeed's ``FusedAdam``/``DeepSpeedCPUAdam`` are JIT-built C++/CUDA ops that need a
   compiler and may not build; the recipes' ZeRO configs have no ``optimizer`` section, so the HF
   Trainer builds ``torch.optim.AdamW`` and DeepSpeed wraps it (``zero_allow_untested_optimizer``).
   A config that names ``"optimizer"`` is refused on CPU here with what to do.
5. Mixed precision: bf16/fp16 are ``"auto"`` in the configs and the Trainer resolves them from
   ``train.bf16``, which geotune turns on only with CUDA: CPU ranks run fp32, so their losses can be
   compared with a one-process run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def cpu_deepspeed_requested(deepspeed_config: str | None) -> bool:
    """DeepSpeed asked for, and no CUDA device to run it on (or ``DS_ACCELERATOR=cpu`` said so)."""
    if not deepspeed_config:
        return False
    if os.environ.get("DS_ACCELERATOR") == "cpu":
        return True
    import torch

    return not torch.cuda.is_available()


def patch_accelerate_backend() -> None:
    """Make accelerate choose gloo / MULTI_CPU for a distributed launch without a GPU (point 1 above).

    Class-wide and idempotent: it changes ``PartialState`` for the whole process, so only the entry
    point (``geotune.runtime.configure_process``) calls it, and only for DeepSpeed on CPU ranks.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    original = PartialState._prepare_backend
    if getattr(original, "_geotune_cpu_deepspeed", False):
        return

    def prepare_backend(self, cpu=False, sagemaker_dp=False, backend=None):
        chosen, distributed_type = original(self, cpu, sagemaker_dp, backend)
        if distributed_type == DistributedType.NO and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return backend or "gloo", DistributedType.MULTI_CPU
        return chosen, distributed_type

    prepare_backend._geotune_cpu_deepspeed = True
    PartialState._prepare_backend = prepare_backend


def check_cpu_config(deepspeed_config: str) -> None:
    """Refuse what cannot run on CPU ranks, saying why and what to use instead (point 4 above)."""
    path = Path(deepspeed_config)
    if not path.exists():
        raise FileNotFoundError(f"train.deepspeed: no DeepSpeed config at '{path}' (see recipes/deepspeed/)")
    config = json.loads(path.read_text())
    if "optimizer" in config:
        raise ValueError(
            f"{path}: an 'optimizer' section makes DeepSpeed build its own fused Adam, which needs CUDA or a "
            "compiled CPU op; for CPU ranks drop the section (the Trainer's torch AdamW is used) and keep "
            '"zero_allow_untested_optimizer": true'
        )
    offload = config.get("zero_optimization", {})
    for key in ("offload_optimizer", "offload_param"):
        if offload.get(key, {}).get("device") not in (None, "none") and offload[key].get("pin_memory"):
            # Pinned memory needs a CUDA driver; on CPU it is meaningless, and DeepSpeed asks the accelerator.
            raise ValueError(f"{path}: zero_optimization.{key}.pin_memory needs CUDA; use zero2.json/zero3.json on CPU")


def training_argument_overrides(deepspeed_config: str | None) -> dict:
    """``TrainingArguments`` fields that CPU DeepSpeed needs (gloo; no pinned host memory)."""
    if not cpu_deepspeed_requested(deepspeed_config):
        return {}
    return {"ddp_backend": "gloo", "dataloader_pin_memory": False}


def process_state():
    """accelerate's ``PartialState``, the one way every package asks "which rank am I, on what device".

    Without CUDA it must be told ``cpu=True`` to see the processes of ``accelerate launch --cpu`` /
    ``torchrun`` (gloo); otherwise every process thinks it is alone. The state is a singleton: whoever
    creates it first decides, so all callers go through here.
    """
    import torch
    from accelerate import PartialState

    use_cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return PartialState(cpu=use_cpu)


def free_training_state(trainer) -> None:
    """Drop the model, optimizer, scheduler and DeepSpeed engine of a finished ``Trainer``.

    Evaluation after training loads the saved checkpoint again; with the training copy, its optimizer
    state (2x the trainable weights in fp32) and the ZeRO partitions still alive, a 24 GB card runs
    out. The training set's pixel cache (``SupervisedDataset.release_pixel_cache``) goes too.
    ``trainer.accelerator`` stays usable for barriers.
    """
    import gc

    import torch

    trainer.accelerator.free_memory()  # its references to models, optimizers, schedulers, the engine
    for name in ("model", "model_wrapped", "optimizer", "lr_scheduler", "deepspeed"):
        if hasattr(trainer, name):
            setattr(trainer, name, None)
    release_pixel_cache = getattr(getattr(trainer, "train_dataset", None), "release_pixel_cache", None)
    if release_pixel_cache is not None:
        release_pixel_cache()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
