"""Fixes for the vision-language remote code: InternVL2 (``InternVLChatModel``) and InternLM-XComposer2."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import re
import threading
from pathlib import Path

import torch

from finetune.models.compat.base import CompatContext, Fix, RemoteCodeError, is_patched, own_methods, source_of, wrap_method

# Extras that the public remote code imports unconditionally -> the geotune extra that installs them.
REMOTE_EXTRA_PACKAGES = {"timm": "remote", "einops": "remote"}

# ------------------------------------------------------------------------------ missing imports (timm)


def _detect_missing_imports(ctx: CompatContext) -> list:
    from transformers.dynamic_module_utils import get_imports

    missing = []
    for file in sorted(ctx.path.glob("*.py")):
        for package in get_imports(file):
            if package in REMOTE_EXTRA_PACKAGES and importlib.util.find_spec(package) is None:
                missing.append((file, package))
    return missing


def fix_missing_remote_imports(ctx: CompatContext, target) -> None:
    """Remote code imports a package unconditionally (InternViT: ``from timm.models.layers import DropPath``)
    that geotune's base install lacks: fail before import with the install command (all versions)."""
    file, package = target
    raise RemoteCodeError(
        f"{file}: the checkpoint's remote code imports '{package}', which is not installed. "
        f"Install it with: pip install 'geotune[{REMOTE_EXTRA_PACKAGES[package]}]'"
    )


# ------------------------------------------------------------------------------ InternVLChatModel image_flags


def _detect_required_image_flags(ctx: CompatContext) -> list:
    found = []
    for cls in ctx.classes():
        forward = vars(cls).get("forward")
        if (
            forward is not None
            and "image_flags" in inspect.signature(forward).parameters
            and re.search(r"image_flags\s*=\s*image_flags\.squeeze", source_of(forward))
            and not is_patched(forward, "required_image_flags")
        ):
            found.append(cls)
    return found


def fix_required_image_flags(ctx: CompatContext, cls: type) -> None:
    """``InternVLChatModel.forward`` calls ``image_flags.squeeze(-1)`` although ``image_flags`` defaults to
    None, so a forward without it (eval, doctor, HF-style collators) fails (all transformers versions).
    Default it to "every tile is a real image": ones of shape ``(num_tiles, 1)``."""

    def forward_wrapper(original):
        signature = inspect.signature(original)

        def forward(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            pixels = bound.arguments.get("pixel_values")
            if bound.arguments.get("image_flags") is None and pixels is not None:
                bound.arguments["image_flags"] = torch.ones(pixels.shape[0], 1, dtype=torch.long, device=pixels.device)
            return original(*bound.args, **bound.kwargs)

        return forward

    wrap_method(cls, "forward", "required_image_flags", forward_wrapper)


# ------------------------------------------------------------------------------ .cuda() on a CPU machine

_CUDA_LOCK = threading.RLock()


@contextlib.contextmanager
def _cuda_calls_to(device: torch.device):
    """Within the block, ``tensor.cuda()`` moves to ``device`` instead (process-wide, so serialised)."""
    with _CUDA_LOCK:
        original = torch.Tensor.cuda
        torch.Tensor.cuda = lambda tensor, *args, **kwargs: tensor.to(device)
        try:
            yield
        finally:
            torch.Tensor.cuda = original


def _detect_cuda_calls(ctx: CompatContext) -> list:
    if torch.cuda.is_available():
        return []
    return [
        (cls, name)
        for cls in ctx.classes()
        for name, func in own_methods(cls, r"\.cuda\(\)")
        if not is_patched(func, "cuda_calls_on_cpu")
    ]


def fix_cuda_calls_on_cpu(ctx: CompatContext, target) -> None:
    """Methods call ``.cuda()`` (InternVL ``chat``/``batch_chat``, XComposer2 text-only ``chat``), which fails
    on a machine without CUDA (all versions). On such a machine, route those calls to the model's device."""
    cls, name = target

    def wrapper(original):
        def method(self, *args, **kwargs):
            device = getattr(self, "device", None) or next(self.parameters()).device
            with _cuda_calls_to(device):
                return original(self, *args, **kwargs)

        return method

    wrap_method(cls, name, "cuda_calls_on_cpu", wrapper)


# ------------------------------------------------------------------------------ XComposer2 config.max_length


def _detect_missing_max_length(ctx: CompatContext) -> list:
    if getattr(ctx.config, "max_length", None) is not None:
        return []
    uses = any(re.search(r"config\.max_length", source_of(m)) for m in ctx.modules)
    return [ctx.config] if uses else []


def fix_missing_config_max_length(ctx: CompatContext, config) -> None:
    """XComposer2's ``__init__`` reads ``config.max_length``; transformers >= 5.0 no longer gives configs the
    generation attributes (``max_length`` included), so construction fails with AttributeError. Restore it
    from ``config.json`` when written there, else ``max_position_embeddings`` (the most the model takes)."""
    config.max_length = ctx.raw_config.get("max_length") or getattr(config, "max_position_embeddings", 4096)


# ------------------------------------------------------------------------------ XComposer2 CLIP vision tower

CLIP_HUB_NAME = "openai/clip-vit-large-patch14-336"


def _clip_modules(ctx: CompatContext) -> list:
    from transformers import CLIPVisionModel

    return [
        m
        for m in ctx.modules
        if isinstance(getattr(m, "CLIPVisionModel", None), type) and issubclass(m.CLIPVisionModel, CLIPVisionModel)
    ]


def compat_clip_class(module) -> type:
    """The module's own subclass of ``CLIPVisionModel`` that the CLIP fixes add to (made once per module)."""
    current = module.CLIPVisionModel
    if getattr(current, "__geotune_compat__", False):
        return current
    subclass = type("CLIPVisionModel", (current,), {"__geotune_compat__": True, "__module__": current.__module__})
    module.CLIPVisionModel = subclass
    return subclass


def _building_on_meta_device() -> bool:
    return torch.empty(0).device.type == "meta"


def resolve_vision_tower(name: str, vision_tower_path, family: str = "xcomposer2") -> str:
    """A local folder for the nested CLIP load: ``model.vision_tower_path``, a local ``name``, or the Hub
    cache (offline); otherwise a RemoteCodeError that says which recipe key to set."""
    if vision_tower_path:
        if not (Path(vision_tower_path) / "config.json").exists():
            raise RemoteCodeError(
                f"model.vision_tower_path: '{vision_tower_path}' is not a CLIP checkpoint folder (config.json "
                f"missing); point it at a local copy of {CLIP_HUB_NAME}."
            )
        return str(vision_tower_path)
    if Path(name).is_dir():
        return name
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return str(Path(cached).parent)
    raise RemoteCodeError(
        f"The {family} checkpoint's remote code loads its vision tower '{name}' from the Hugging Face Hub, "
        f"which is not available here (offline, not in the cache). Set model.vision_tower_path (or "
        f"--vision-tower-path) to a local folder holding {name}."
    )


def _detect_nested_clip_load(ctx: CompatContext) -> list:
    return [
        m
        for m in _clip_modules(ctx)
        if re.search(r"CLIPVisionModel\.from_pretrained\(", source_of(m))
        and not is_patched(getattr(m.CLIPVisionModel, "from_pretrained", None), "nested_clip_from_pretrained")
    ]


def fix_nested_clip_from_pretrained(ctx: CompatContext, module) -> None:
    """XComposer2's ``__init__`` calls ``CLIPVisionModel.from_pretrained('openai/clip-vit-large-patch14-336')``:
    offline that needs a local folder, and in transformers >= 5.0 the outer load builds on the meta device,
    where a nested ``from_pretrained`` fails. Redirect the name to ``model.vision_tower_path`` (or the Hub
    cache); on the meta device build the tower from its config: its weights are in the outer checkpoint."""
    clip = compat_clip_class(module)
    local = resolve_vision_tower(CLIP_HUB_NAME, ctx.vision_tower_path, ctx.family)
    loader = super(clip, clip).from_pretrained.__func__

    def from_pretrained(cls, name, *args, **kwargs):
        path = local if str(name) == CLIP_HUB_NAME else resolve_vision_tower(str(name), None, ctx.family)
        if _building_on_meta_device():
            from transformers import CLIPVisionConfig

            return cls(CLIPVisionConfig.from_pretrained(path))
        return loader(cls, path, *args, **kwargs)

    from_pretrained.__geotune_fixes__ = ("nested_clip_from_pretrained",)
    clip.from_pretrained = classmethod(from_pretrained)


def _detect_vision_model_attr(ctx: CompatContext) -> list:
    return [
        m
        for m in _clip_modules(ctx)
        if re.search(r"\.vision_model\.", source_of(m)) and "vision_model" not in dir(m.CLIPVisionModel)
    ]


def fix_clip_vision_model_attr(ctx: CompatContext, module) -> None:
    """The remote code reaches CLIP's layers through ``CLIPVisionModel.vision_model``, a wrapper that
    transformers >= 5.0 removed (embeddings/encoder sit on the model itself): AttributeError. Give the
    module's CLIP class a ``vision_model`` property returning the model itself."""
    compat_clip_class(module).vision_model = property(lambda self: self)


def _detect_clip_size_check(ctx: CompatContext) -> list:
    return [
        m
        for m in _clip_modules(ctx)
        if re.search(r"position_embedding\s*=", source_of(m))
        and not is_patched(vars(m.CLIPVisionModel).get("forward"), "clip_resized_position_table")
    ]


def fix_clip_resized_position_table(ctx: CompatContext, module) -> None:
    """XComposer2 resizes CLIP's position table from 24x24 to 35x35 patches (490 px) but leaves
    ``config.image_size`` at 336; CLIP in transformers >= 4.45 rejects 490-px input ("Input image size
    (490*490) doesn't match model (336*336)"). Pass ``interpolate_pos_encoding=True`` for such input: with a
    table of exactly the input's patch count CLIP then uses the resized table as is."""
    clip = compat_clip_class(module)
    original = clip.forward

    def forward(self, pixel_values=None, *args, **kwargs):
        if pixel_values is not None and pixel_values.shape[-1] != self.config.image_size:
            kwargs.setdefault("interpolate_pos_encoding", True)
        return original(self, pixel_values, *args, **kwargs)

    forward.__geotune_fixes__ = ("clip_resized_position_table",)
    clip.forward = forward


# ------------------------------------------------------------------------------ hard-coded token ids

# Ids the InternLM2 tokenizer gives these tokens, hard-coded in XComposer2's ``mask_human_targets``.
INTERNLM2_IDS = {"<|im_end|>": 92542, "eos": 2}


def _token_permutation(pairs: dict[int, int]) -> dict[int, int]:
    """Complete ``{actual_id: hard_coded_id}`` into a bijection (displaced ids swap back)."""
    mapping = {a: h for a, h in pairs.items() if a != h}
    free_sources = [h for h in mapping.values() if h not in mapping]
    free_targets = [a for a in mapping if a not in mapping.values()]
    mapping.update(zip(free_sources, free_targets))
    return mapping


def _permute(ids: torch.Tensor, mapping: dict[int, int]) -> torch.Tensor:
    out = ids.clone()
    for src, dst in mapping.items():
        out[ids == src] = dst
    return out


def _actual_ids(tokenizer) -> dict[int, int]:
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if im_end is None or im_end == tokenizer.unk_token_id:
        im_end = tokenizer.convert_tokens_to_ids("[UNUSED_TOKEN_145]")
    pairs = {}
    if im_end is not None and im_end != tokenizer.unk_token_id:
        pairs[int(im_end)] = INTERNLM2_IDS["<|im_end|>"]
    eos = tokenizer.eos_token_id
    if eos is not None and int(eos) not in pairs:
        pairs[int(eos)] = INTERNLM2_IDS["eos"]
    return pairs


def _detect_hard_coded_ids(ctx: CompatContext) -> list:
    candidates = [
        (cls, name)
        for cls in ctx.classes()
        for name, func in own_methods(cls, r"\b92542\b")
        if not is_patched(func, "hard_coded_token_ids")
    ]
    if not candidates or ctx.tokenizer is None:
        return []
    return candidates if _token_permutation(_actual_ids(ctx.tokenizer)) else []


def fix_hard_coded_token_ids(ctx: CompatContext, target) -> None:
    """XComposer2's ``mask_human_targets`` hard-codes InternLM2's ids (``<|im_end|>`` = 92542, eos = 2), so with
    any other tokenizer the human turns are not masked (all versions). Derive the ids from the checkpoint's
    tokenizer: run the method on ids permuted so that the tokenizer's ``<|im_end|>``/eos read as 92542/2, and
    permute the kept targets back (the method only compares and copies ids)."""
    cls, name = target
    mapping = _token_permutation(_actual_ids(ctx.tokenizer))
    inverse = {v: k for k, v in mapping.items()}

    def wrapper(original):
        def method(self, input_ids, *args, **kwargs):
            targets = original(self, _permute(input_ids, mapping), *args, **kwargs)
            return _permute(targets, inverse)

        return method

    wrap_method(cls, name, "hard_coded_token_ids", wrapper)


VL_FIXES = [
    Fix("missing_remote_imports", "files", "all versions", _detect_missing_imports, fix_missing_remote_imports),
    Fix("missing_config_max_length", "config", "transformers>=5.0", _detect_missing_max_length, fix_missing_config_max_length),
    Fix("nested_clip_from_pretrained", "class", "transformers>=5.0 (offline: all)", _detect_nested_clip_load, fix_nested_clip_from_pretrained),
    Fix("clip_vision_model_attr", "class", "transformers>=5.0", _detect_vision_model_attr, fix_clip_vision_model_attr),
    Fix("clip_resized_position_table", "class", "transformers>=4.45", _detect_clip_size_check, fix_clip_resized_position_table),
    Fix("required_image_flags", "class", "all versions", _detect_required_image_flags, fix_required_image_flags),
    Fix("hard_coded_token_ids", "class", "all versions", _detect_hard_coded_ids, fix_hard_coded_token_ids),
    Fix("cuda_calls_on_cpu", "class", "all versions (CPU-only machines)", _detect_cuda_calls, fix_cuda_calls_on_cpu),
]
