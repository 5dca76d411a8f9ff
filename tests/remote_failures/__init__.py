"""Stand-in remote-code checkpoints for the compat tests (our own code, tiny, in the real code's shape).

``build_standin(kind, parent)`` writes a checkpoint folder the way a Hub checkpoint with remote code looks:
the ``*.py`` files of this folder, ``config.json`` with ``auto_map``, ``model.safetensors`` and a tokenizer.
Every call writes a folder with a fresh name, so transformers imports its code as a fresh dynamic module
(fixes patch classes in place: a folder reused across tests would carry them over).

Kinds (the failures each carries are the real code's, listed in docs/remote_code.md):
- ``internlm2``: InternLM2ForCausalLM (tied-keys list, no GenerationMixin, rotary buffers, tuple cache,
  generation position_ids, ``rope_scaling: null`` read as ``rope_scaling['type']``).
- ``internvl_chat``: InternVLChatModel over InternLM2 (the above in a nested LM, plus image_flags, .cuda()).
- ``xcomposer2``: InternLMXComposer2ForCausalLM (the LM failures, plus config.max_length, nested CLIP
  from_pretrained, .vision_model, resized position table, hard-coded 92542, .cuda()); its config is
  InternLM2's, without ``vision_config``, as the original's.
``build_standin(..., tokenizer="sentencepiece")`` gives a kind InternLM2's sentencepiece-only tokenizer as
on the Hub (AutoTokenizer under transformers 5 passes its class over).
- ``intern_vit_timm``: a vision model whose code imports timm.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import uuid
from pathlib import Path

HERE = Path(__file__).parent

# rope_scaling null, as on the Hub (InternLM2-based checkpoints without long-context scaling).
LLM = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
       "max_position_embeddings": 128, "rope_scaling": None}

KINDS = {
    "internlm2": {
        "files": ["configuration_internlm2.py", "modeling_internlm2.py"],
        "auto_map": {"AutoConfig": "configuration_internlm2.InternLM2Config",
                     "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
                     "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM"},
        "config": {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", **LLM},
    },
    "internvl_chat": {
        "files": ["configuration_internlm2.py", "modeling_internlm2.py", "configuration_internvl_chat.py",
                  "modeling_internvl_chat.py"],
        "auto_map": {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                     "AutoModel": "modeling_internvl_chat.InternVLChatModel"},
        "config": {"architectures": ["InternVLChatModel"], "model_type": "internvl_chat", "template": "internlm2-chat",
                   "downsample_ratio": 0.5, "force_image_size": 64,
                   "vision_config": {"image_size": 64, "patch_size": 8},
                   "llm_config": {"architectures": ["InternLM2ForCausalLM"], **LLM}},
    },
    "xcomposer2": {
        "files": ["configuration_internlm2.py", "modeling_internlm2.py", "build_mlp.py",
                  "modeling_internlm_xcomposer2.py"],
        "auto_map": {"AutoConfig": "configuration_internlm2.InternLM2Config",
                     "AutoModel": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
                     "AutoModelForCausalLM": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM"},
        "config": {"architectures": ["InternLMXComposer2ForCausalLM"], "model_type": "internlm2", **LLM},
    },
    "intern_vit_timm": {
        "files": ["configuration_internvl_chat.py", "configuration_internlm2.py", "modeling_intern_vit_timm.py"],
        "auto_map": {"AutoConfig": "configuration_internvl_chat.InternVisionConfig",
                     "AutoModel": "modeling_intern_vit_timm.InternVisionModel"},
        "config": {"architectures": ["InternVisionModel"], "model_type": "intern_vit_6b"},
    },
}

# Folder names written by this session: transformers copies each one's code into its modules cache.
CREATED: list[str] = []


def fresh_folder(parent: Path, stem: str) -> Path:
    """A new folder path under ``parent`` whose transformers modules-cache copy is removed at cleanup."""
    out = Path(parent) / f"{stem}_{uuid.uuid4().hex[:8]}"
    CREATED.append(out.name)
    return out


def remove_cached_modules() -> None:
    """Delete the copies of our stand-in code that transformers made in its modules cache."""
    from transformers.dynamic_module_utils import HF_MODULES_CACHE

    for name in CREATED:
        shutil.rmtree(Path(HF_MODULES_CACHE) / "transformers_modules" / name, ignore_errors=True)
    CREATED.clear()


CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
        "image_size": 56, "patch_size": 14, "projection_dim": 32}


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    """The tiny chat tokenizer (``<|im_end|>`` is id 2, as eos), trained once per test session."""
    from finetune.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


def build_tiny_clip(out_dir: Path, seed: int = 0) -> Path:
    """A tiny ``CLIPVisionModel`` folder standing in for openai/clip-vit-large-patch14-336 (56 px, 4x4 patches)."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(**CLIP)
    model = CLIPVisionModel(config)
    config.save_pretrained(out_dir)  # (save_pretrained of the model imports deepspeed: seconds)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(Path(out_dir) / "model.safetensors"), metadata={"format": "pt"})
    return Path(out_dir)


def sentencepiece_vocab_size(out: Path) -> int:
    """Pieces + added tokens of a ``write_internlm2_sentencepiece_tokenizer`` folder (the model's vocab)."""
    added = json.loads((out / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    return max(int(i) for i in added) + 1


def _write_files(kind: str, out: Path, vocab_size: int) -> dict:
    spec = KINDS[kind]
    out.mkdir(parents=True)
    for name in spec["files"]:
        shutil.copy(HERE / name, out / name)
    config = {**spec["config"], "auto_map": spec["auto_map"], "vocab_size": vocab_size}
    if "llm_config" in config:
        config["llm_config"] = {**config["llm_config"], "vocab_size": vocab_size}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return config


def build_standin(kind: str, parent: Path, seed: int = 0, vision_tower_path=None, tokenizer: str = "fast") -> Path:
    """Write a stand-in checkpoint of ``kind`` under ``parent`` and return its folder.

    The weights come from instantiating the stand-in class with the compat fixes that construction needs
    (XComposer2 cannot be built otherwise); loading it again is what the tests check. ``tokenizer``:
    ``fast`` (the tiny chat tokenizer) or ``sentencepiece`` (InternLM2's, as on the Hub: ``tokenizer.model``
    + ``tokenization_internlm2.py``, the class named by ``tokenizer_class`` only, ``<s>`` BOS).
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from finetune.models import compat
    from finetune.models.compat.base import sibling_modules
    out = fresh_folder(parent, kind)
    if tokenizer == "sentencepiece":
        from finetune.models.standins import write_internlm2_sentencepiece_tokenizer

        files = write_internlm2_sentencepiece_tokenizer(Path(parent) / f"{out.name}_tokenizer")
        raw = _write_files(kind, out, sentencepiece_vocab_size(files))
        for file in files.iterdir():
            shutil.move(file, out / file.name)
        files.rmdir()
    else:
        raw = _write_files(kind, out, len(tiny_tokenizer()))
        tiny_tokenizer().save_pretrained(out)
    if kind == "intern_vit_timm":
        return out
    ctx = compat.CompatContext(path=out, family=kind, raw_config=raw, vision_tower_path=vision_tower_path)
    compat.apply_fixes(ctx, "files")
    ctx.config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    model_class = get_class_from_dynamic_module(raw["auto_map"]["AutoModel"], str(out))
    ctx.modules = sibling_modules(model_class.__module__)
    compat.apply_fixes(ctx, "config")
    compat.apply_fixes(ctx, "class")
    torch.manual_seed(seed)
    model = model_class(ctx.config)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def fresh_copy(checkpoint: Path, parent: Path) -> Path:
    """A copy of ``checkpoint`` under a new folder name: transformers imports its code as a new module."""
    out = fresh_folder(parent, checkpoint.name.rsplit("_", 1)[0])
    shutil.copytree(checkpoint, out)
    return out


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in ``folder``: the compat layer must leave them all unchanged."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir()) if p.is_file()}
