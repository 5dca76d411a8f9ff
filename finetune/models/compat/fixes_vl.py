"""Fixes for the vision-language remote code: InternVL2 (``InternVLChatModel``) and InternLM-XComposer2."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import re
import threading
from pathlib import Path

import torch

from finetune.models.compat.base import (
    CompatContext,
    Fix,
    RemoteCodeError,
    is_patched,
    own_methods,
    source_of,
    wrap_method,
)

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
    """Remote code imports a package geotune's base install lacks (InternViT: timm).

    The public InternViT code does ``from timm.models.layers import DropPath`` unconditionally (all
    transformers versions). Fail before any import with the install command (extra ``remote``)."""
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
    """``InternVLChatModel.forward`` fails without ``image_flags`` although it defaults to None.

    It calls ``image_flags.squeeze(-1)`` (all transformers versions), so eval, doctor and HF-style
    collators fail. Default it to "every tile is a real image": ones of shape ``(num_tiles, 1)``."""

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
    """Methods call ``.cuda()``, which fails on a machine without CUDA (all versions).

    InternVL ``chat``/``batch_chat`` and XComposer2's text-only ``chat`` do. On such a machine, route the
    calls made inside those methods to the model's device."""
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
    return [
        cls
        for cls in ctx.classes()
        if "__init__" in vars(cls)
        and re.search(r"config\.max_length", source_of(vars(cls)["__init__"]))
        and not is_patched(vars(cls)["__init__"], "missing_config_max_length")
    ]


def fix_missing_config_max_length(ctx: CompatContext, cls: type) -> None:
    """XComposer2's ``__init__`` reads ``config.max_length``, gone from configs in transformers >= 5.0.

    Construction fails with AttributeError, and a ``max_length`` left on the config makes ``generate``
    refuse to run. Provide it during ``__init__`` only: the value in ``config.json`` when written there,
    else ``max_position_embeddings``."""
    value = ctx.raw_config.get("max_length") or getattr(ctx.config, "max_position_embeddings", 4096)

    def init_wrapper(original):
        def __init__(self, config, *args, **kwargs):
            if getattr(config, "max_length", None) is not None:
                return original(self, config, *args, **kwargs)
            config.max_length = value
            try:
                return original(self, config, *args, **kwargs)
            finally:
                del config.max_length

        return __init__

    wrap_method(cls, "__init__", "missing_config_max_length", init_wrapper)


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
    """XComposer2's ``__init__`` downloads CLIP with a nested ``from_pretrained`` (fails on meta / offline).

    It calls ``CLIPVisionModel.from_pretrained('openai/clip-vit-large-patch14-336')``: offline that needs a
    local folder, and transformers >= 5.0 builds the outer model on the meta device, where a nested
    ``from_pretrained`` raises. Redirect the name to ``model.vision_tower_path`` (or the Hub cache); on
    the meta device build the tower from its config (its weights are in the outer checkpoint)."""
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
    """The code reaches CLIP through ``CLIPVisionModel.vision_model``, removed in transformers >= 5.0.

    Embeddings and encoder sit on the model itself now: AttributeError. Give the module's CLIP class a
    ``vision_model`` property that returns the model."""
    compat_clip_class(module).vision_model = property(lambda self: self)


def _detect_clip_size_check(ctx: CompatContext) -> list:
    return [
        m
        for m in _clip_modules(ctx)
        if re.search(r"position_embedding\s*=", source_of(m))
        and not is_patched(vars(m.CLIPVisionModel).get("__init__"), "clip_resized_position_table")
    ]


def _sized_by_position_table(embeddings_class: type) -> type:
    """A subclass of CLIP's vision embeddings whose image size and patch counts follow its position table."""
    import math

    def derived(count):
        return property(lambda self: count(self.position_embedding.num_embeddings), lambda self, value: None)

    return type(
        embeddings_class.__name__,
        (embeddings_class,),
        {
            "num_positions": derived(lambda n: n),
            "num_patches": derived(lambda n: n - 1),
            "image_size": property(
                lambda self: math.isqrt(self.position_embedding.num_embeddings - 1) * self.patch_size,
                lambda self, value: None,
            ),
            "__module__": __name__,
        },
    )


def fix_clip_resized_position_table(ctx: CompatContext, module) -> None:
    """CLIP's sizes stay at 336 px after XComposer2 resizes its position table to 490 px.

    CLIP in transformers >= 4.45 rejects 490-px input ("Input image size (490*490) doesn't match model
    (336*336)"), and transformers >= 5.0 re-initialises ``position_ids`` after loading from the stale count
    (size-mismatch RuntimeError). Make the tower's embeddings take their sizes from the table."""
    clip = compat_clip_class(module)
    original = clip.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        embeddings = self.embeddings
        if not getattr(type(embeddings), "__geotune_sized__", False):
            embeddings.__class__ = _sized_by_position_table(type(embeddings))
            embeddings.__class__.__geotune_sized__ = True

    __init__.__geotune_fixes__ = ("clip_resized_position_table",)
    clip.__init__ = __init__


# ------------------------------------------------------------------------------ hard-coded token ids

# Ids the InternLM2 tokenizer gives these tokens, hard-coded in XComposer2's ``mask_human_targets``
# (XComposer2.5 also looks for 92543 = ``<|im_start|>``); name -> (InternLM2 id, alternative spelling).
INTERNLM2_IDS = {"<|im_end|>": (92542, "[UNUSED_TOKEN_145]"), "<|im_start|>": (92543, "[UNUSED_TOKEN_146]")}
INTERNLM2_EOS = 2


def _token_permutation(pairs: dict[int, int]) -> dict[int, int]:
    """Complete ``{actual_id: hard_coded_id}`` into a bijection (displaced ids swap back)."""
    mapping = {a: h for a, h in pairs.items() if a != h}
    free_sources = [h for h in mapping.values() if h not in mapping]
    free_targets = [a for a in mapping if a not in mapping.values()]
    mapping.update(zip(free_sources, free_targets, strict=True))
    return mapping


def _permute(ids: torch.Tensor, mapping: dict[int, int]) -> torch.Tensor:
    out = ids.clone()
    for src, dst in mapping.items():
        out[ids == src] = dst
    return out


def _token_id(tokenizer, *spellings):
    for token in spellings:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and token_id != tokenizer.unk_token_id:
            return int(token_id)
    return None


def _actual_ids(tokenizer) -> dict[int, int]:
    """``{this tokenizer's id: InternLM2's id}`` for the chat tokens and eos the remote code hard-codes."""
    pairs = {}
    for name, (internlm2_id, alternative) in INTERNLM2_IDS.items():
        token_id = _token_id(tokenizer, name, alternative)
        if token_id is not None:
            pairs[token_id] = internlm2_id
    eos = tokenizer.eos_token_id
    if eos is not None and int(eos) not in pairs:
        pairs[int(eos)] = INTERNLM2_EOS
    return pairs


def _detect_hard_coded_ids(ctx: CompatContext) -> list:
    candidates = [
        (cls, name)
        for cls in ctx.classes()
        for name, func in own_methods(cls, r"\b9254[23]\b")
        if not is_patched(func, "hard_coded_token_ids")
    ]
    if not candidates or ctx.tokenizer is None:
        return []
    return candidates if _token_permutation(_actual_ids(ctx.tokenizer)) else []


def fix_hard_coded_token_ids(ctx: CompatContext, target) -> None:
    """``mask_human_targets`` hard-codes InternLM2's ids (``<|im_end|>`` 92542, eos 2).

    With any other tokenizer the human turns are not masked (all versions; XComposer2.5 also hard-codes
    ``<|im_start|>`` 92543). Derive the ids from the checkpoint's tokenizer: run the method on ids permuted
    so that the tokenizer's ``<|im_end|>``/``<|im_start|>``/eos read as 92542/92543/2, and permute the kept
    targets back (the method only compares and copies ids)."""
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
    Fix("missing_config_max_length", "class", "transformers>=5.0", _detect_missing_max_length, fix_missing_config_max_length),
    Fix("nested_clip_from_pretrained", "class", "transformers>=5.0 (offline: all)", _detect_nested_clip_load, fix_nested_clip_from_pretrained),
    Fix("clip_vision_model_attr", "class", "transformers>=5.0", _detect_vision_model_attr, fix_clip_vision_model_attr),
    Fix("clip_resized_position_table", "class", "transformers>=4.45", _detect_clip_size_check, fix_clip_resized_position_table),
    Fix("required_image_flags", "class", "all versions", _detect_required_image_flags, fix_required_image_flags),
    Fix("hard_coded_token_ids", "class", "all versions", _detect_hard_coded_ids, fix_hard_coded_token_ids),
    Fix("cuda_calls_on_cpu", "class", "all versions (CPU-only machines)", _detect_cuda_calls, fix_cuda_calls_on_cpu),
]
