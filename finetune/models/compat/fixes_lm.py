"""Fixes for remote causal language models (InternLM2, Phi-3 remote code) under transformers 5."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys

import torch

from finetune.models.compat.base import CompatContext, Fix, is_patched, own_methods, source_of, wrap_method

# ------------------------------------------------------------------------------ removed modeling_attn_mask_utils

_ATTN_MASK_IMPORT = re.compile(r"^\s*(from\s+transformers\.modeling_attn_mask_utils\s+import|import\s+transformers\.modeling_attn_mask_utils)", re.M)


def _attn_mask_utils_missing() -> bool:
    """True when the installed transformers has no such module (our shim standing in counts as missing)."""
    from finetune.models.compat import attn_mask_shim

    loaded = sys.modules.get(attn_mask_shim.MODULE_NAME)
    if loaded is not None:
        return loaded is attn_mask_shim
    try:
        return importlib.util.find_spec(attn_mask_shim.MODULE_NAME) is None
    except ModuleNotFoundError:
        return True


def _detect_removed_attn_mask_utils(ctx: CompatContext) -> list:
    if not _attn_mask_utils_missing():
        return []
    return [file for file in sorted(ctx.path.glob("*.py")) if _ATTN_MASK_IMPORT.search(file.read_text(errors="replace"))]


def fix_removed_attn_mask_utils(ctx: CompatContext, file) -> None:
    """Remote code imports `transformers.modeling_attn_mask_utils`, which transformers 5.2x removed.

    The import fails before any class exists (InternLM2, Phi-3 and LLaVA-style forks import
    ``_prepare_4d_causal_attention_mask`` at module level). Register geotune's re-implementation of the
    module's helpers (``finetune/models/compat/attn_mask_shim.py``) under the old name, once per process."""
    import transformers

    from finetune.models.compat import attn_mask_shim

    sys.modules[attn_mask_shim.MODULE_NAME] = attn_mask_shim  # idempotent: every such checkpoint reports the fix
    transformers.modeling_attn_mask_utils = attn_mask_shim


# ------------------------------------------------------------------------------ rope_scaling: null rewritten

_READS_ROPE_TYPE = re.compile(r"""rope_scaling\[\s*['"]type['"]\s*\]""")


def _configs(config) -> list:
    """``config`` and the sub-configs it holds (``llm_config``, ``text_config`` ...), outermost first."""
    from transformers import PretrainedConfig

    found = [config]
    for value in vars(config).values():
        if isinstance(value, PretrainedConfig):
            found += _configs(value)
    return found


def _rewritten_null_rope(config) -> bool:
    """The dict transformers >= 5 puts where ``rope_scaling`` was null: only ``rope_type: default`` (+ theta)."""
    scaling = getattr(config, "rope_scaling", None)
    return (isinstance(scaling, dict) and scaling.get("rope_type") == "default" and "type" not in scaling
            and set(scaling) <= {"rope_type", "rope_theta"})


def _detect_rope_scaling_null_rewritten(ctx: CompatContext) -> list:
    if ctx.config is None or not any(_READS_ROPE_TYPE.search(source_of(m)) for m in ctx.modules):
        return []
    return [config for config in _configs(ctx.config) if _rewritten_null_rope(config)]


def fix_rope_scaling_null_rewritten(ctx: CompatContext, config) -> None:
    """``rope_scaling: null`` comes back as ``{'rope_type': 'default', ...}`` (transformers >= 5.0).

    InternLM2's ``_init_rope`` tests ``rope_scaling is None`` and otherwise reads
    ``rope_scaling['type']``: ``KeyError: 'type'`` while the model is built. The rewritten dict means
    plain rotary positions, so set it back to None on that config (the outer one or ``llm_config``)."""
    config.rope_scaling = None


# ------------------------------------------------------------------------------ tied-weights keys


class _TiedKeysToInputEmbeddings:
    """Class attribute standing in for a legacy ``_tied_weights_keys`` list: on an instance it reads as the
    transformers-5 dict ``{target: source}``, the source being the model's input-embedding weight."""

    def __init__(self, names):
        self.names = list(names)

    def __get__(self, instance, owner):
        if instance is None:  # the source is a parameter name, known only on an instance
            return {}
        embeddings = instance.get_input_embeddings()
        source = next((f"{name}.weight" for name, module in instance.named_modules() if module is embeddings), None)
        return {name: source for name in self.names} if source else {}


def _detect_tied_keys_list(ctx: CompatContext) -> list:
    return [cls for cls in ctx.classes() if isinstance(vars(cls).get("_tied_weights_keys"), (list, tuple))]


def fix_tied_weights_keys_list(ctx: CompatContext, cls: type) -> None:
    """``_tied_weights_keys`` is a list; transformers >= 5.0 wants a ``{target: source}`` dict.

    ``save_pretrained`` (and weight tying) fail with "'list' object has no attribute 'keys'". Replace the
    list by a descriptor that reads, on an instance, as ``{key: <input-embedding weight>}``."""
    cls._tied_weights_keys = _TiedKeysToInputEmbeddings(vars(cls)["_tied_weights_keys"])


# ------------------------------------------------------------------------------ GenerationMixin


def _detect_missing_generation_mixin(ctx: CompatContext) -> list:
    from transformers import GenerationMixin, PreTrainedModel

    return [
        cls
        for cls in ctx.classes()
        if issubclass(cls, PreTrainedModel)
        and "prepare_inputs_for_generation" in vars(cls)
        and not issubclass(cls, GenerationMixin)
    ]


def fix_missing_generation_mixin(ctx: CompatContext, cls: type) -> None:
    """The class has ``prepare_inputs_for_generation`` but no ``generate`` (transformers >= 4.50).

    Since 4.50 ``PreTrainedModel`` no longer inherits ``GenerationMixin``; the auto class adds it only to
    the top-level class, so a nested language model (``InternVLChatModel.language_model``) stays without
    ``generate``. Add ``GenerationMixin`` to the class's bases."""
    from transformers import GenerationMixin

    cls.__bases__ = (*cls.__bases__, GenerationMixin)


# ------------------------------------------------------------------------------ post_init never called


def _construction_calls_post_init(cls: type) -> bool:
    """Whether ``cls(config)`` reaches a ``post_init()`` call through its own or its bases' ``__init__``."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        if klass.__module__.startswith("transformers."):
            return False
        source = source_of(init)
        if "post_init(" in source:
            return True
        if "super().__init__" not in source and "super(" not in source:
            return False
    return False


def _detect_missing_post_init(ctx: CompatContext) -> list:
    from transformers import PreTrainedModel

    return [
        cls
        for cls in ctx.classes()
        if issubclass(cls, PreTrainedModel)
        and "__init__" in vars(cls)
        and not _construction_calls_post_init(cls)
        and not is_patched(vars(cls)["__init__"], "missing_post_init")
    ]


def fix_missing_post_init(ctx: CompatContext, cls: type) -> None:
    """``__init__`` never calls ``self.post_init()`` (InternVLChatModel); transformers >= 5.0 needs it.

    transformers 5 sets ``all_tied_weights_keys`` and the other per-model loading tables in ``post_init``,
    so ``from_pretrained`` fails with "object has no attribute 'all_tied_weights_keys'". Call it at the end
    of ``__init__`` when construction did not."""

    def init_wrapper(original):
        def __init__(self, *args, **kwargs):
            original(self, *args, **kwargs)
            if not hasattr(self, "all_tied_weights_keys"):
                self.post_init()

        return __init__

    wrap_method(cls, "__init__", "missing_post_init", init_wrapper)


# ------------------------------------------------------------------------------ rotary buffers


def _rotary_modules(model) -> list:
    return [
        m
        for m in model.modules()
        if "inv_freq" in getattr(m, "_non_persistent_buffers_set", ())
        and isinstance(getattr(m, "inv_freq", None), torch.Tensor)
        and hasattr(m, "dim")
        and hasattr(m, "base")
    ]


def _expected_inv_freq(module) -> torch.Tensor:
    exponent = torch.arange(0, module.dim, 2, dtype=torch.int64, device=module.inv_freq.device).float() / module.dim
    return (1.0 / (module.base**exponent)).to(module.inv_freq.dtype)


def _rotary_state(module) -> dict:
    return {n: b.clone() for n, b in module.named_buffers(recurse=False) if n in ("inv_freq", "cos_cached", "sin_cached")}


def _recompute_rotary(module) -> None:
    module.inv_freq = _expected_inv_freq(module)
    if hasattr(module, "_set_cos_sin_cache") and hasattr(module, "max_seq_len_cached"):
        dtype = module.cos_cached.dtype if isinstance(getattr(module, "cos_cached", None), torch.Tensor) else torch.float32
        module._set_cos_sin_cache(seq_len=module.max_seq_len_cached, device=module.inv_freq.device, dtype=dtype)


def _detect_rotary_garbage(ctx: CompatContext) -> list:
    broken = []
    for module in _rotary_modules(ctx.model):
        before = _rotary_state(module)
        with torch.no_grad():
            _recompute_rotary(module)
        after = _rotary_state(module)
        for name, value in before.items():
            setattr(module, name, value)
        if any(not torch.equal(before[n], after[n]) for n in before if n in after):
            broken.append(module)
    return broken


@torch.no_grad()
def fix_rotary_buffers_after_meta_init(ctx: CompatContext, module) -> None:
    """Rotary ``inv_freq``/``cos_cached``/``sin_cached`` hold garbage after loading (transformers >= 5.0).

    They are non-persistent buffers computed in ``__init__``; transformers 5 builds the model on the meta
    device and re-creates them uninitialised, so the loss is NaN (or silently wrong) with no error.
    Recompute them from the module's ``dim``/``base`` after loading."""
    _recompute_rotary(module)


# ------------------------------------------------------------------------------ legacy tuple KV cache


def _to_legacy(cache):
    """A transformers ``Cache`` as the legacy tuple of per-layer ``(key, value)``; None when empty."""
    from transformers.cache_utils import Cache

    if not isinstance(cache, Cache):
        return cache
    if cache.get_seq_length() == 0:
        return None
    return tuple((layer.keys, layer.values) for layer in cache.layers)


def _from_legacy(past):
    from transformers.cache_utils import Cache, DynamicCache

    if past is None or isinstance(past, Cache):
        return past
    cache = DynamicCache()
    for idx, (key, value) in enumerate(past):
        cache.update(key, value, idx)
    return cache


def _output_cache_field(outputs) -> str | None:
    """The output's KV-cache field: ``cache`` since transformers 5.24, ``past_key_values`` before."""
    fields = getattr(outputs, "__dataclass_fields__", {})
    return next((name for name in ("cache", "past_key_values") if name in fields), None)


def _detect_tuple_cache(ctx: CompatContext) -> list:
    return [
        cls
        for cls in ctx.classes()
        if "prepare_inputs_for_generation" in vars(cls)
        and re.search(r"past_key_values\[0\]\[0\]", source_of(cls))
        and not is_patched(vars(cls)["prepare_inputs_for_generation"], "legacy_tuple_kv_cache")
    ]


def fix_legacy_tuple_kv_cache(ctx: CompatContext, cls: type) -> None:
    """The model indexes ``past_key_values[i][0]`` while ``generate`` passes a ``DynamicCache`` (>= 4.56).

    In transformers 5 ``DynamicCache`` is not subscriptable: "'DynamicCache' object is not subscriptable".
    Convert at the boundary: Cache -> legacy tuple into the remote code, tuple -> DynamicCache out of it."""

    def prepare_wrapper(original):
        def prepare_inputs_for_generation(self, input_ids, past_key_values=None, **kwargs):
            inputs = original(self, input_ids, past_key_values=_to_legacy(past_key_values), **kwargs)
            if "past_key_values" in inputs:
                inputs["past_key_values"] = past_key_values if inputs["past_key_values"] is not None else None
            return inputs

        return prepare_inputs_for_generation

    def forward_wrapper(original):
        signature = inspect.signature(original)

        def forward(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            given = bound.arguments.get("past_key_values")
            if given is not None:
                bound.arguments["past_key_values"] = _to_legacy(given)
            outputs = original(*bound.args, **bound.kwargs)
            field = _output_cache_field(outputs)
            if field and getattr(outputs, field) is not None:
                setattr(outputs, field, _from_legacy(getattr(outputs, field)))
            return outputs

        return forward

    wrap_method(cls, "prepare_inputs_for_generation", "legacy_tuple_kv_cache", prepare_wrapper)
    wrap_method(cls, "forward", "legacy_tuple_kv_cache", forward_wrapper)


# ------------------------------------------------------------------------------ generation position_ids


def _detect_unsliced_position_ids(ctx: CompatContext) -> list:
    found = []
    for cls in ctx.classes():
        for name, func in own_methods(cls, r"""kwargs\.get\(\s*['"]position_ids['"]"""):
            if name == "prepare_inputs_for_generation" and not is_patched(func, "generation_position_ids"):
                found.append(cls)
    return found


def fix_generation_position_ids(ctx: CompatContext, cls: type) -> None:
    """``generate`` passes full-length ``position_ids`` at every step (transformers >= 4.56).

    The remote ``prepare_inputs_for_generation`` slices ``input_ids`` to the new tokens but passes a given
    ``position_ids`` through whole, so cached decoding indexes the wrong rotary rows (shape error or wrong
    tokens). Keep the last ``n`` positions, ``n`` being the number of new tokens."""

    def prepare_wrapper(original):
        def prepare_inputs_for_generation(self, *args, **kwargs):
            inputs = original(self, *args, **kwargs)
            positions = inputs.get("position_ids")
            new = inputs.get("input_ids") if inputs.get("input_ids") is not None else inputs.get("inputs_embeds")
            if positions is not None and new is not None and positions.shape[-1] > new.shape[1]:
                inputs["position_ids"] = positions[..., -new.shape[1] :]
            return inputs

        return prepare_inputs_for_generation

    wrap_method(cls, "prepare_inputs_for_generation", "generation_position_ids", prepare_wrapper)


# ------------------------------------------------------------------------------ generate's renamed cache argument


def _generate_passes_cache() -> bool:
    """True when this transformers' ``generate`` hands the KV cache over as ``cache=`` (>= 5.24)."""
    from transformers import GenerationMixin

    return "cache" in inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters


def _detect_renamed_cache_argument(ctx: CompatContext) -> list:
    if not _generate_passes_cache():
        return []
    found = []
    for cls in ctx.classes():
        prepare = vars(cls).get("prepare_inputs_for_generation")
        if prepare is None or is_patched(prepare, "renamed_cache_argument"):
            continue
        parameters = inspect.signature(prepare).parameters
        if "past_key_values" in parameters and "cache" not in parameters:
            found.append(cls)
    return found


def fix_renamed_cache_argument(ctx: CompatContext, cls: type) -> None:
    """``generate`` passes the KV cache as ``cache=``; the remote code reads ``past_key_values`` (>= 5.24).

    The cache lands in the remote ``**kwargs`` and is never used: no error, but every decoding step
    re-runs the whole sequence (quadratic time, and positions past the rotary table on long answers).
    Hand ``cache`` over as ``past_key_values``; the returned inputs keep the remote names, which the
    remote ``forward`` reads, and its ``past_key_values=`` output is stored as ``cache`` by transformers."""

    def prepare_wrapper(original):
        def prepare_inputs_for_generation(self, input_ids, *args, cache=None, **kwargs):
            if cache is not None and kwargs.get("past_key_values") is None:
                kwargs["past_key_values"] = cache
            kwargs.pop("next_sequence_length", None)  # the remote code slices by the cache length itself
            return original(self, input_ids, *args, **kwargs)

        return prepare_inputs_for_generation

    wrap_method(cls, "prepare_inputs_for_generation", "renamed_cache_argument", prepare_wrapper)


LM_FIXES = [
    Fix("removed_attn_mask_utils", "files", "transformers>=5.2x (module removed)", _detect_removed_attn_mask_utils,
        fix_removed_attn_mask_utils),
    Fix("rope_scaling_null_rewritten", "config", "transformers>=5.0", _detect_rope_scaling_null_rewritten,
        fix_rope_scaling_null_rewritten),
    Fix("tied_weights_keys_list", "class", "transformers>=5.0", _detect_tied_keys_list, fix_tied_weights_keys_list),
    Fix("missing_generation_mixin", "class", "transformers>=4.50", _detect_missing_generation_mixin, fix_missing_generation_mixin),
    Fix("missing_post_init", "class", "transformers>=5.0", _detect_missing_post_init, fix_missing_post_init),
    Fix("legacy_tuple_kv_cache", "class", "transformers>=4.56", _detect_tuple_cache, fix_legacy_tuple_kv_cache),
    Fix("generation_position_ids", "class", "transformers>=4.56", _detect_unsliced_position_ids, fix_generation_position_ids),
    # After the two above: its wrapper is the outermost, so they see the cache under its old name.
    Fix("renamed_cache_argument", "class", "transformers>=5.24", _detect_renamed_cache_argument, fix_renamed_cache_argument),
    Fix("rotary_buffers_after_meta_init", "model", "transformers>=5.0", _detect_rotary_garbage, fix_rotary_buffers_after_meta_init),
]
