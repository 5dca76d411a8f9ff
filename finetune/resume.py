"""What a resumed run needs from a checkpoint beyond HF's own: full weights under their runtime names,
and the token counts of the steps already done.

Full weights: ``save_pretrained`` writes a checkpoint in the model's *original* key layout (transformers
5 reverts its load-time renaming on save: InternVL's ``model.language_model.*`` is written as
``language_model.model.*``), but HF ``Trainer`` resumes with a raw ``load_state_dict(strict=False)``,
so no key matched and a full fine-tune went on from its initial weights without a word.
``load_full_weights`` maps every saved key back through the same renaming and refuses a checkpoint
that still leaves any weight unloaded.

Token counts: ``train_summary.json`` reports samples and tokens of the whole run; each rank writes its
counts into every checkpoint and, on resume, rank 0 takes the sum of them all (so the total is right
whatever the world size of the earlier run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from finetune.files import write_json_atomic

COUNTS_FILE = "geotune_token_counts_rank{rank}.json"


def _read_checkpoint_tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    single = checkpoint / "model.safetensors"
    if single.is_file():
        return load_file(single, device="cpu")
    index = json.loads((checkpoint / "model.safetensors.index.json").read_text())
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(index["weight_map"].values())):
        state.update(load_file(checkpoint / shard, device="cpu"))
    return state


def has_full_weights(checkpoint: str | os.PathLike) -> bool:
    checkpoint = Path(checkpoint)
    return (checkpoint / "model.safetensors").is_file() or (checkpoint / "model.safetensors.index.json").is_file()


def saved_names(model: torch.nn.Module) -> dict[str, str]:
    """Runtime parameter/buffer name -> the name ``save_pretrained`` writes it under."""
    from transformers.core_model_loading import revert_weight_conversion

    names = {}
    for key, tensor in model.state_dict().items():
        reverted = revert_weight_conversion(model, {key: tensor})
        if len(reverted) != 1:  # a merge/split converter: not a renaming we can invert key by key
            raise RuntimeError(f"cannot map weight '{key}' to its saved name ({len(reverted)} saved tensors); "
                               "resume this model family with DeepSpeed checkpoints or start again")
        names[key] = next(iter(reverted))
    return names


def load_full_weights(model: torch.nn.Module, checkpoint: str | os.PathLike) -> None:
    """Load a ``save_pretrained`` checkpoint of ``model`` (full fine-tuning) into it, every weight accounted for.

    Tied weights (``lm_head`` sharing the embeddings) are saved once; they count as loaded when the
    tensor they share is.

    Raises:
        RuntimeError: keys left over on either side, named (never a silent resume from initial weights).
    """
    checkpoint = Path(checkpoint)
    state = _read_checkpoint_tensors(checkpoint)
    runtime_of = {saved: runtime for runtime, saved in saved_names(model).items()}
    unexpected = sorted(k for k in state if k not in runtime_of)
    result = model.load_state_dict({runtime_of[k]: v for k, v in state.items() if k in runtime_of}, strict=False)
    current = model.state_dict()
    loaded = {current[runtime_of[k]].data_ptr() for k in state if k in runtime_of}
    missing = sorted(k for k in result.missing_keys if current[k].data_ptr() not in loaded)
    if missing or unexpected:
        raise RuntimeError(
            f"{checkpoint}: the checkpoint does not match the model ({len(missing)} weights missing, e.g. "
            f"{missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]}); refusing to resume from the "
            "initial weights. Was it written by another model or train.mode?")


def save_token_counts(checkpoint: str | os.PathLike, counts: dict[str, int], rank: int) -> None:
    write_json_atomic(Path(checkpoint) / COUNTS_FILE.format(rank=rank), counts, indent=None, sort_keys=True)


def load_token_counts(checkpoint: str | os.PathLike, keys) -> dict[str, int]:
    """The counts summed over every rank's file in ``checkpoint`` (zeros when it has none)."""
    total = dict.fromkeys(keys, 0)
    for path in sorted(Path(checkpoint).glob(COUNTS_FILE.format(rank="*"))):
        for key, value in json.loads(path.read_text()).items():
            if key in total:
                total[key] += int(value)
    return total
