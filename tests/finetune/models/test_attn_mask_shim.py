"""The stand-in for transformers.modeling_attn_mask_utils: masks checked by hand, and against the real
module where the installed transformers still has it."""

import importlib.util

import pytest
import torch

from finetune.models.compat.attn_mask_shim import (
    AttentionMaskConverter,
    _prepare_4d_attention_mask,
    _prepare_4d_causal_attention_mask,
    _prepare_4d_causal_attention_mask_for_sdpa,
)

NEG = torch.finfo(torch.float32).min


def visible(mask):
    return (mask == 0).int()


def test_causal_mask_with_left_padding_and_a_cache():
    embeds = torch.zeros(2, 2, 4)
    attention = torch.tensor([[0, 1, 1], [1, 1, 1]])  # 1 cached position + 2 new queries; row 0 left-padded
    mask = _prepare_4d_causal_attention_mask(attention, (2, 2), embeds, past_key_values_length=1)
    assert mask.shape == (2, 1, 2, 3) and mask.dtype == torch.float32
    assert visible(mask[0, 0]).tolist() == [[0, 1, 0], [0, 1, 1]]
    assert visible(mask[1, 0]).tolist() == [[1, 1, 0], [1, 1, 1]]
    assert set(mask.unique().tolist()) == {0.0, NEG}
    assert torch.equal(_prepare_4d_causal_attention_mask_for_sdpa(attention, (2, 2), embeds, 1), mask)


def test_no_mask_is_causal_only_and_sliding_window_limits_the_past():
    embeds = torch.zeros(1, 4, 2, dtype=torch.bfloat16)
    mask = _prepare_4d_causal_attention_mask(None, (1, 4), embeds, 0, sliding_window=2)
    assert mask.dtype == torch.bfloat16
    assert visible(mask[0, 0]).tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]


def test_padding_only_mask_and_converter():
    pad = _prepare_4d_attention_mask(torch.tensor([[1, 1, 0]]), torch.float32, tgt_len=2)
    assert visible(pad[0, 0]).tolist() == [[1, 1, 0], [1, 1, 0]]
    converter = AttentionMaskConverter(is_causal=True)
    two_d = torch.tensor([[0, 1, 1]])
    assert torch.equal(converter.to_4d(two_d, 3, torch.float32),
                       _prepare_4d_causal_attention_mask(two_d, (1, 3), torch.zeros(1, 3, 1), 0))
    assert visible(converter.to_causal_4d(1, 2, 3, torch.float32)[0, 0]).tolist() == [[1, 1, 0], [1, 1, 1]]
    fully_masked_row = converter.to_4d(two_d, 3, torch.float32)
    assert (AttentionMaskConverter._unmask_unattended(fully_masked_row, NEG)[0, 0, 0] == 0).all()
    with pytest.raises(ValueError, match="sliding_window"):
        AttentionMaskConverter(is_causal=True, sliding_window=0)


@pytest.mark.skipif(importlib.util.find_spec("transformers.modeling_attn_mask_utils") is None
                    or "compat" in str(importlib.util.find_spec("transformers.modeling_attn_mask_utils").origin),
                    reason="the installed transformers has no modeling_attn_mask_utils to compare with")
def test_matches_the_original_where_it_still_exists():
    from transformers import modeling_attn_mask_utils as original

    embeds = torch.zeros(2, 3, 4)
    attention = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    ours = _prepare_4d_causal_attention_mask(attention, (2, 3), embeds, 2)
    theirs = original._prepare_4d_causal_attention_mask(attention, (2, 3), embeds, 2)
    assert torch.equal(visible(ours), visible(theirs))
