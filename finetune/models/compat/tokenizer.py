"""The checkpoint's own tokenizer class, which transformers 5's ``AutoTokenizer`` can pass over.

InternLM2-based checkpoints (InternVL2 / Mini-InternVL 2B, InternLM-XComposer2) ship a slow
sentencepiece tokenizer (``tokenizer.model`` + ``tokenization_internlm2.py``, no ``tokenizer.json``).
transformers 4.x found its class through ``tokenizer_config.json``'s ``auto_map``, else ``config.json``'s
``auto_map``, else the ``tokenizer_class`` defined beside the weights. transformers 5 reads only the first
and otherwise converts ``tokenizer.model`` into a generic ``TokenizersBackend``: other ids for plain text,
no ``<s>``, added tokens that may move. Nothing fails; training and generation run on wrong ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from finetune.models.compat.base import CompatContext, Fix


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def _auto_tokenizer_entry(raw: dict) -> str | None:
    auto_map = raw.get("auto_map")
    entry = auto_map if isinstance(auto_map, (list, tuple)) else (auto_map or {}).get("AutoTokenizer")
    if isinstance(entry, str):
        return entry
    if isinstance(entry, (list, tuple)):
        return next((ref for ref in entry if ref), None)  # the slow class first, as the checkpoint wrote it
    return None


def own_tokenizer_reference(path) -> str | None:
    """``module.Class`` of the tokenizer a checkpoint ships as code, found as transformers 4.x found it.

    ``tokenizer_config.json``'s ``auto_map``, else ``config.json``'s, else the ``tokenizer_class`` of
    ``tokenizer_config.json`` when a ``tokenization_*.py`` in the folder defines it; None if none.
    """
    path = Path(path)
    tokenizer_config = _json(path / "tokenizer_config.json")
    reference = _auto_tokenizer_entry(tokenizer_config) or _auto_tokenizer_entry(_json(path / "config.json"))
    if reference:
        return reference.split("--")[-1]
    name = (tokenizer_config.get("tokenizer_class") or "").removesuffix("Fast")
    for file in sorted(path.glob("tokenization_*.py")) if name else []:
        if re.search(rf"^class\s+{re.escape(name)}\b", file.read_text(errors="replace"), re.M):
            return f"{file.stem}.{name}"
    return None


def load_own_tokenizer(path, reference: str):
    """An instance of the checkpoint's own tokenizer class ``reference`` (remote code)."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    return get_class_from_dynamic_module(reference, str(path)).from_pretrained(str(path))


def _detect_remote_tokenizer_class_ignored(ctx: CompatContext) -> list:
    reference = own_tokenizer_reference(ctx.path)
    if reference is None or ctx.tokenizer is None:
        return []
    return [] if type(ctx.tokenizer).__name__ == reference.rsplit(".", 1)[-1] else [reference]


def fix_remote_tokenizer_class_ignored(ctx: CompatContext, reference: str) -> None:
    """`AutoTokenizer` builds a generic tokenizer instead of the checkpoint's own class (transformers >= 5.0).

    When only ``config.json``'s ``auto_map`` or ``tokenizer_class`` names the remote class, transformers 5
    converts ``tokenizer.model`` into a ``TokenizersBackend``: plain text gets other ids, no ``<s>`` is
    added, added tokens declared at piece ids may move. Load the checkpoint's own class instead."""
    ctx._tokenizer = load_own_tokenizer(ctx.path, reference)


def compare_with_own_tokenizer(tokenizer, path, tokens: list[str], sentence: str) -> tuple[str | None, list[str]]:
    """``(own class reference, differences)`` between ``tokenizer`` and the checkpoint's own class.

    Compares the ids of ``tokens`` (a chat template's special tokens) and of ``sentence``; no own
    class: ``(None, [])``.
    """
    reference = own_tokenizer_reference(path)
    if reference is None:
        return None, []
    own = load_own_tokenizer(path, reference)
    differences = []
    for token in tokens:
        mine, theirs = tokenizer.convert_tokens_to_ids(token), own.convert_tokens_to_ids(token)
        if mine != theirs:
            differences.append(f"{token!r}: {mine} here, {theirs} with {reference}")
    mine, theirs = tokenizer(sentence)["input_ids"], own(sentence)["input_ids"]
    if mine != theirs:
        differences.append(f"{sentence!r}: {mine} here, {theirs} with {reference}")
    return reference, differences


TOKENIZER_FIXES = [
    Fix("remote_tokenizer_class_ignored", "tokenizer", "transformers>=5.0", _detect_remote_tokenizer_class_ignored,
        fix_remote_tokenizer_class_ignored),
]
