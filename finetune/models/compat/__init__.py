"""Load remote-code checkpoints (InternVL2, InternLM-XComposer2) unmodified under transformers 5.

``load_remote_model`` follows the auto class's ``trust_remote_code`` flow (``get_class_from_dynamic_module``,
then ``AutoModel*.from_pretrained``) and, at each stage, applies the fixes in ``FIXES`` whose failure it
detects: to the dynamically imported classes before instantiation when the failure happens during
construction or in methods, to the loaded model when it is about values. The checkpoint's files are
never written. Each applied fix is logged and returned by name; ``docs/remote_code.md`` lists them all.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from finetune.models.compat.base import CompatContext, Fix, RemoteCodeError, logger, sibling_modules
from finetune.models.compat.base import apply_fixes as _apply_stage
from finetune.models.compat.fixes_lm import LM_FIXES
from finetune.models.compat.fixes_vl import VL_FIXES
from finetune.models.compat.tokenizer import TOKENIZER_FIXES, compare_with_own_tokenizer

FIXES: list[Fix] = [*VL_FIXES[:1], *LM_FIXES, *VL_FIXES[1:], *TOKENIZER_FIXES]
FIX_NAMES = [fix.name for fix in FIXES]
TOKENIZER_FIX_NAMES = [fix.name for fix in TOKENIZER_FIXES]

__all__ = ["FIXES", "FIX_NAMES", "CompatContext", "RemoteCodeError", "apply_fixes", "compare_with_own_tokenizer",
           "load_remote_model", "load_tokenizer"]


def apply_fixes(ctx: CompatContext, stage: str, exclude: Sequence[str] = ()) -> list[str]:
    """Apply the fixes of one loading ``stage`` (files | config | class | model | tokenizer) to ``ctx``; names applied.

    Args:
        ctx: what the fixes look at (checkpoint path, config, dynamic modules, model...).
        stage: which fixes to run.
        exclude: names of fixes to leave out (also ``ctx.exclude``).
    """
    unknown = set(exclude) - set(FIX_NAMES)
    if unknown:
        raise ValueError(f"unknown compat fix(es) {sorted(unknown)}; known: {', '.join(FIX_NAMES)}")
    ctx.exclude = tuple({*ctx.exclude, *exclude})
    return _apply_stage(ctx, stage, FIXES)


def _read_config_json(path: Path) -> dict:
    file = path / "config.json"
    if not file.exists():
        raise FileNotFoundError(f"model.path: no checkpoint at '{path}' (config.json missing).")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise RemoteCodeError(f"{file}:{err.lineno}: invalid JSON ({err.msg}).") from None


def _class_reference(raw: dict, path: Path, auto_class: str) -> str:
    auto_map = raw.get("auto_map") or {}
    if auto_class not in auto_map:
        have = ", ".join(sorted(auto_map)) or "none"
        raise RemoteCodeError(
            f"{path / 'config.json'}: auto_map has no '{auto_class}' entry (has: {have}); this checkpoint "
            "ships no remote code for it. Use an HF-native adapter (e.g. model.adapter=internvl_hf) or another auto class."
        )
    reference = auto_map[auto_class]
    return reference[0] if isinstance(reference, (list, tuple)) else reference


def load_tokenizer(path, *, trust_remote_code: bool = True, exclude_fixes: Sequence[str] = ()):
    """The checkpoint's tokenizer as training and eval use it: ``AutoTokenizer`` + the ``tokenizer`` fixes.

    Returns:
        ``(tokenizer, applied_fixes)``.
    """
    from transformers import AutoTokenizer

    path = Path(path)
    ctx = CompatContext(path=path, family="tokenizer")
    ctx._tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    applied = apply_fixes(ctx, "tokenizer", exclude_fixes) if trust_remote_code else []
    return ctx.tokenizer, applied


def _tokenizer_loader(path: Path, exclude: Sequence[str]):
    def load():
        if not any((path / name).exists() for name in ("tokenizer_config.json", "tokenizer.json", "tokenizer.model")):
            return None
        try:
            return load_tokenizer(path, exclude_fixes=[n for n in exclude if n in TOKENIZER_FIX_NAMES])[0]
        except Exception as err:  # the tokenizer is optional for loading; fixes needing it are skipped
            logger.warning("compat: could not load the tokenizer of %s (%s); token-id fixes skipped", path, err)
            return None

    return load


def load_remote_model(
    path,
    *,
    family: str,
    auto_class: str = "AutoModel",
    dtype: torch.dtype = torch.float32,
    vision_tower_path: str | None = None,
    trust_remote_code: bool = True,
    exclude_fixes: Sequence[str] = (),
):
    """Load a checkpoint that ships its own modeling code, with the compat fixes it needs.

    Args:
        path: local checkpoint folder (``config.json`` with ``auto_map``, ``*.py``, weights).
        family: adapter name it is loaded as (``internvl_remote``, ``xcomposer2``); used in messages.
        auto_class: the ``auto_map`` entry to load (``AutoModel``, ``AutoModelForCausalLM``...).
        dtype: weights dtype.
        vision_tower_path: local folder for a vision tower the remote code downloads itself
            (XComposer2's ``openai/clip-vit-large-patch14-336``); recipe key ``model.vision_tower_path``.
        trust_remote_code: must be True (the recipe's ``model.trust_remote_code``); False is an error.
        exclude_fixes: fix names to leave out (tests use it to reproduce each failure).

    Returns:
        ``(model, applied_fixes)``: the model in train mode as ``from_pretrained`` leaves it, and the
        names of the fixes applied, in order.

    Raises:
        RemoteCodeError: remote code disallowed, missing auto_map entry or package, no vision tower.
    """
    import transformers
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    path = Path(path)
    if not trust_remote_code:
        raise RemoteCodeError(
            f"{path}: this {family} checkpoint runs its own modeling code; set model.trust_remote_code=true "
            "in the recipe (or pass --trust-remote-code) if you trust it."
        )
    raw = _read_config_json(path)
    reference = _class_reference(raw, path, auto_class)
    if not auto_class.startswith("Auto") or not hasattr(transformers, auto_class):
        raise ValueError(f"auto_class: '{auto_class}' is not a transformers auto class (e.g. AutoModel, AutoModelForCausalLM)")
    ctx = CompatContext(
        path=path,
        family=family,
        raw_config=raw,
        vision_tower_path=vision_tower_path,
        tokenizer_loader=_tokenizer_loader(path, exclude_fixes),
    )
    applied = apply_fixes(ctx, "files", exclude_fixes)
    ctx.config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    model_class = get_class_from_dynamic_module(reference, str(path))
    ctx.modules = sibling_modules(model_class.__module__)
    applied += apply_fixes(ctx, "config", exclude_fixes)
    applied += _class_fixes_in_effect(model_class, apply_fixes(ctx, "class", exclude_fixes))
    auto = getattr(transformers, auto_class)
    model, info = auto.from_pretrained(
        path, config=ctx.config, trust_remote_code=True, dtype=dtype, output_loading_info=True
    )
    _check_loading_info(path, model, info)
    ctx.model = model
    applied += apply_fixes(ctx, "model", exclude_fixes)
    logger.info(
        "loaded %s (%s) from %s under transformers %s; compat fixes: %s",
        type(model).__name__, family, path, transformers.__version__, ", ".join(applied) or "none",
    )
    return model, applied


def _class_fixes_in_effect(model_class: type, new: list[str]) -> list[str]:
    """Class fixes patch the (cached) dynamic module once; a later load of it reports them again."""
    module = sys.modules[model_class.__module__]
    in_effect = [*getattr(module, "__geotune_compat_fixes__", [])]
    in_effect += [name for name in new if name not in in_effect]
    module.__geotune_compat_fixes__ = in_effect
    return in_effect


def _check_loading_info(path: Path, model, info: dict) -> None:
    """Weights the checkpoint lacks would stay random: fail, naming them, rather than train on noise."""
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
    missing = [k for k in info.get("missing_keys", []) if k not in tied]
    if missing:
        shown = ", ".join(sorted(missing)[:8]) + (" ..." if len(missing) > 8 else "")
        raise RemoteCodeError(
            f"{path}: the checkpoint has no weights for {len(missing)} parameter(s) of "
            f"{type(model).__name__} ({shown}); it does not match its own modeling code."
        )
