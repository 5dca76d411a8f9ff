"""`geotune export RUN_OR_CHECKPOINT --out DIR [--merge]`: ship a trained run.

Without ``--merge`` the adapter (or full weights) and the processor are copied with a README that says
how to load them. With ``--merge`` a peft LoRA adapter is folded into its base model
(``merge_and_unload``), saved as safetensors with the processor, reloaded from disk and checked: its
logits on a dummy image+text input must equal the adapter model's within tolerance, or nothing is
written. XComposer2 merges exactly too (why: the comment above ``ExportError``). Output folders appear atomically.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from finetune.files import atomic_folder

# Trainer / DeepSpeed state that a shipped model does not need.
TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "latest",
                  "zero_to_fp32.py")
TRAINING_STATE_PREFIXES = ("rng_state", "global_step")

# XComposer2 merges exactly, as eval does (eval.api.load_checkpoint): what geotune trains is a peft LoRA
# on the language model's linear layers (attention.wqkv/wo, feed_forward.w1/w2/w3), dense over every
# token. Those layers are the model's own Partial-LoRA linears, PLoRA(x, im_mask) = W x + b +
# [image token] * s * B_p A_p x, whose Plora_A/B stay frozen. peft wraps each PLoRA as its base layer:
# y = PLoRA(x, im_mask) + s' B A x = (W + s' B A) x + b + [image token] * s * B_p A_p x, and merging
# writes W + s' B A into the PLoRA's weight, leaving the image-only branch as it was: the same function.
# (Only a LoRA *on Plora_A/B themselves* could not be folded into W; lora_targets never picks them.)


class ExportError(RuntimeError):
    """An export the user can fix; the message says what and how."""


def find_checkpoint(source: Path) -> Path:
    """The folder holding the weights: ``RUN/final``, else the newest ``RUN/checkpoint-N``, else SOURCE."""
    if (source / "final").is_dir():
        return source / "final"
    steps = sorted(source.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit(
        "-", 1)[-1].isdigit() else -1)
    if steps and not _has_weights(source):
        return steps[-1]
    if _has_weights(source):
        return source
    raise ExportError(f"{source}: no trained weights (adapter_config.json or config.json + *.safetensors), no final/ "
                      "and no checkpoint-*/; pass a run directory or a checkpoint folder")


def _has_weights(folder: Path) -> bool:
    return (folder / "adapter_config.json").exists() or (folder / "config.json").exists()


def find_run_config(source: Path, checkpoint: Path):
    """The run's resolved recipe (``config.yaml`` beside the checkpoint or in the run), or None."""
    from omegaconf import OmegaConf

    for folder in (checkpoint, source, checkpoint.parent):
        if (folder / "config.yaml").exists():
            return OmegaConf.load(folder / "config.yaml")
    return None


def model_config(run_cfg, base: str | None):
    """The ``model`` section used to load the base: the run's (over the schema defaults), ``--base`` as its path."""
    from omegaconf import OmegaConf

    from finetune.config import ModelConfig

    model = OmegaConf.structured(ModelConfig)
    if run_cfg is not None and "model" in run_cfg:
        model = OmegaConf.merge(model, run_cfg.model)
    if base:
        model.path = str(base)
    return model


def _copy_shippable(src: Path, dst: Path) -> list[str]:
    copied = []
    for item in sorted(src.iterdir()):
        if item.name in TRAINING_STATE or item.name.startswith(TRAINING_STATE_PREFIXES) or item.is_dir():
            continue
        shutil.copy2(item, dst / item.name)
        copied.append(item.name)
    return copied


def _readme(checkpoint: Path, model_cfg, is_adapter: bool, files: list[str]) -> str:
    trust = bool(model_cfg.trust_remote_code)
    if not is_adapter:
        load = (f"model = AutoModelForImageTextToText.from_pretrained(\"<this folder>\", trust_remote_code={trust})\n"
                f"processor = AutoProcessor.from_pretrained(\"<this folder>\", trust_remote_code={trust})")
    else:
        load = (f"base = AutoModelForImageTextToText.from_pretrained(\"{model_cfg.path}\", trust_remote_code={trust})\n"
                "model = PeftModel.from_pretrained(base, \"<this folder>\")\n"
                f"processor = AutoProcessor.from_pretrained(\"<this folder>\", trust_remote_code={trust})")
    kind = "a peft LoRA adapter" if is_adapter else "full model weights"
    return (
        f"# Exported by geotune\n\nFrom `{checkpoint}`: {kind} and the processor (model family adapter "
        f"`{model_cfg.adapter}`, base `{model_cfg.path}`).\n\nFiles: {', '.join(files)}\n\n## Load\n\n```python\n"
        "from peft import PeftModel\nfrom transformers import AutoModelForImageTextToText, AutoProcessor\n\n"
        f"{load}\n```\n\nOr evaluate it with `geotune eval recipe=<the run's recipe> checkpoint=<this folder>`.\n"
        + ("\nXComposer2 models need their own remote class (`AutoModel` with trust_remote_code); the adapter "
           "merges exactly (`geotune export --merge`).\n" if model_cfg.adapter == "xcomposer2" else "")
    )


def export_copy(checkpoint: Path, out: Path, model_cfg) -> Path:
    """Copy the adapter or weights + processor files and write a README.md; atomic."""
    with atomic_folder(out) as tmp:
        files = _copy_shippable(checkpoint, tmp)
        is_adapter = (checkpoint / "adapter_config.json").exists()
        (tmp / "README.md").write_text(_readme(checkpoint, model_cfg, is_adapter, files))
    return out


def dummy_batch(family, processor):
    """One image + question through the family adapter: exercises vision, projector and LLM."""
    from PIL import Image

    size = getattr(processor, "image_processor", None)
    side = 64
    if size is not None and isinstance(getattr(size, "size", None), dict):
        side = int(size.size.get("height", side))
    image = Image.new("RGB", (side, side))
    image.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(side) for x in range(side)])
    prompt = family.generation_prompt(processor, "Classify the given image. Answer in one word.", 1)
    return family.encode(processor, [prompt], [[image]])


def _logits(family, model, batch):
    """Logits of the family's own forward (XComposer2: image embeddings + ``im_mask``, so the frozen
    Partial-LoRA branch of the image tokens is part of what is compared)."""
    import torch

    with torch.no_grad():
        if hasattr(family, "forward_for_training"):
            return family.forward_for_training(model, {**batch, "labels": batch["input_ids"]}).logits.float()
        return model(**batch).logits.float()


def _base_dtype(base: Path):
    import torch

    cfg = json.loads((base / "config.json").read_text())
    name = cfg.get("dtype") or cfg.get("torch_dtype") or "float32"
    return getattr(torch, str(name), torch.float32)


def export_merged(checkpoint: Path, out: Path, model_cfg, rtol: float | None = None) -> dict:
    """Merge a LoRA adapter into its base, save, reload and compare logits; atomic.

    Returns:
        The export report (also written as ``export_info.json``): base, dtype, max |logit diff|, tolerance.

    Raises:
        ExportError: a missing base, or merged logits that differ.
    """
    import torch
    from peft import PeftModel

    from finetune.models.adapters import get_adapter

    base = Path(model_cfg.path)
    if not (base / "config.json").exists():
        raise ExportError(f"base model '{base}' (model.path of the run) has no config.json; pass --base PATH")
    family = get_adapter(model_cfg.adapter)
    exact = copy.deepcopy(model_cfg)
    exact.dtype = "float32"  # merge in fp32, then store in the base's own dtype
    model, processor = family.load(exact)
    if any((checkpoint / n).exists() for n in ("tokenizer_config.json", "processor_config.json")):
        from transformers import AutoProcessor, AutoTokenizer

        from finetune.models.adapters.internvl_remote import RemoteProcessor

        remote = bool(model_cfg.trust_remote_code)
        if isinstance(processor, RemoteProcessor):  # remote-code families: geotune's processor, the run's tokenizer
            processor.tokenizer = AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=remote)
        else:
            processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=remote)
    model = PeftModel.from_pretrained(model, checkpoint).eval()
    batch = dummy_batch(family, processor)
    expected = _logits(family, model, batch)
    merged = model.merge_and_unload()
    dtype = _base_dtype(base)
    with atomic_folder(out) as tmp:
        merged.to(dtype).save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for code in base.glob("*.py"):  # remote modeling code travels with the weights
            shutil.copy2(code, tmp / code.name)
        reloaded, _ = family.load(_with_path(exact, tmp))
        got = _logits(family, reloaded.eval(), batch)
        diff = float((got - expected).abs().max())
        rtol = rtol if rtol is not None else (1e-4 if dtype == torch.float32 else 2e-2)
        tolerance = rtol * max(1.0, float(expected.abs().max()))
        report = {"source": str(checkpoint), "base": str(base), "merged": True, "dtype": str(dtype).removeprefix("torch."),
                  "max_abs_logit_diff": diff, "tolerance": tolerance}
        if not diff <= tolerance:
            raise ExportError(f"merged model's logits differ from the adapter model's by {diff:.3g} (> {tolerance:.3g}); "
                              "nothing was written. Export without --merge and load the adapter instead")
        (tmp / "export_info.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _with_path(model_cfg, path: Path):
    cfg = copy.deepcopy(model_cfg)
    cfg.path = str(path)
    cfg.tiny = False
    return cfg
