"""Stand-in for ``transformers.modeling_attn_mask_utils``, which later transformers 5 releases removed.

Remote code written for transformers 4.3x (InternLM2's ``modeling_internlm2.py``, Phi-3's, many LLaVA
forks) imports ``_prepare_4d_causal_attention_mask`` / ``_prepare_4d_causal_attention_mask_for_sdpa`` /
``AttentionMaskConverter`` from it at module level, so the checkpoint fails to import at all. The
compat fix ``removed_attn_mask_utils`` registers this module under the old name before the remote
code is imported. It rebuilds the documented behaviour of those helpers: additive float masks of
shape ``(batch, 1, query_len, past_len + query_len)``, 0 where a query may attend and the dtype's
minimum elsewhere (causal, padding and an optional sliding window). The ``_for_sdpa`` variant always
returns the explicit mask (the original sometimes returned None to let SDPA use ``is_causal``; an
explicit mask gives the same attention, only without that shortcut).
"""

from __future__ import annotations

import torch

MODULE_NAME = "transformers.modeling_attn_mask_utils"


def _causal_allowed(query_len: int, past_len: int, device, sliding_window: int | None = None) -> torch.Tensor:
    """(query_len, past_len + query_len) bool: key j is visible from query i (absolute position past_len + i)."""
    query_pos = torch.arange(past_len, past_len + query_len, device=device).unsqueeze(1)
    key_pos = torch.arange(past_len + query_len, device=device).unsqueeze(0)
    allowed = key_pos <= query_pos
    if sliding_window is not None:
        allowed &= key_pos > query_pos - sliding_window
    return allowed


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def _prepare_4d_causal_attention_mask(attention_mask, input_shape, inputs_embeds, past_key_values_length: int,
                                      sliding_window: int | None = None):
    """Causal (+ padding) additive mask ``(batch, 1, query_len, past_len + query_len)`` in the embeddings' dtype.

    ``attention_mask`` is ``(batch, past_len + query_len)`` with 1 on real tokens, or None (causal only);
    an already 4-D mask is returned as is (inverted to additive form when it is boolean/0-1).
    """
    batch, query_len = input_shape[0], input_shape[-1]
    dtype, device = inputs_embeds.dtype, inputs_embeds.device
    if attention_mask is not None and attention_mask.dim() == 4:
        if attention_mask.dtype == torch.bool or not attention_mask.is_floating_point():
            return _additive(attention_mask.bool(), dtype)
        return attention_mask
    allowed = _causal_allowed(query_len, past_key_values_length, device, sliding_window)
    allowed = allowed.unsqueeze(0).unsqueeze(0).expand(batch, 1, -1, -1)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool().to(device)[:, None, None, :]
    return _additive(allowed, dtype)


def _prepare_4d_causal_attention_mask_for_sdpa(attention_mask, input_shape, inputs_embeds,
                                               past_key_values_length: int, sliding_window: int | None = None):
    """As :func:`_prepare_4d_causal_attention_mask` (never None; see the module docstring)."""
    return _prepare_4d_causal_attention_mask(attention_mask, input_shape, inputs_embeds, past_key_values_length,
                                             sliding_window)


def _prepare_4d_attention_mask(mask: torch.Tensor, dtype: torch.dtype, tgt_len: int | None = None) -> torch.Tensor:
    """Padding-only (non-causal) additive mask ``(batch, 1, tgt_len, src_len)`` from ``(batch, src_len)``."""
    batch, src_len = mask.shape
    allowed = mask.bool()[:, None, None, :].expand(batch, 1, tgt_len or src_len, src_len)
    return _additive(allowed, dtype)


class AttentionMaskConverter:
    """The old converter's public surface: ``to_causal_4d``, ``to_4d`` and the static helpers."""

    def __init__(self, is_causal: bool, sliding_window: int | None = None):
        if sliding_window is not None and sliding_window <= 0:
            raise ValueError(f"sliding_window must be a positive integer, got {sliding_window}")
        self.is_causal, self.sliding_window = is_causal, sliding_window

    def to_causal_4d(self, batch_size: int, query_length: int, key_value_length: int, dtype: torch.dtype,
                     device="cpu") -> torch.Tensor | None:
        if not self.is_causal:
            raise ValueError(f"{type(self)} is not causal: use to_4d")
        past = key_value_length - query_length
        allowed = _causal_allowed(query_length, past, device, self.sliding_window)
        return _additive(allowed, dtype).expand(batch_size, 1, -1, -1)

    def to_4d(self, attention_mask_2d: torch.Tensor, query_length: int, dtype: torch.dtype,
              key_value_length: int | None = None) -> torch.Tensor:
        batch, kv_len = attention_mask_2d.shape
        allowed = attention_mask_2d.bool()[:, None, None, :].expand(batch, 1, query_length, kv_len)
        if self.is_causal:
            past = (key_value_length or kv_len) - query_length
            allowed = allowed & _causal_allowed(query_length, past, attention_mask_2d.device, self.sliding_window)
        return _additive(allowed, dtype)

    @staticmethod
    def _unmask_unattended(expanded_mask: torch.Tensor, min_dtype: float) -> torch.Tensor:
        """Rows that attend nowhere (left padding) attend everywhere instead, so SDPA gives no NaN."""
        unattended = torch.all(expanded_mask == min_dtype, dim=-1, keepdim=True)
        return expanded_mask.masked_fill(unattended, 0.0)

    @staticmethod
    def _ignore_causal_mask_sdpa(*args, **kwargs) -> bool:
        """Never drop the mask: callers then always pass the explicit mask (same result, no shortcut)."""
        return False
