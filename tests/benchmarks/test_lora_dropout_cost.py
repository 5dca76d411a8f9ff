"""benchmarks/lora_dropout_cost.py: the two peft layers differ only in their dropout (same weights, equal
outputs in eval mode), the candidate mask keeps 1 - p of the inputs scaled by 1 / (1 - p), and the table
has a row per shape with the dropout's share between 0 and 1."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import lora_dropout_cost  # noqa: E402


def test_the_sparse_layer_has_geotunes_dropout():
    layer = lora_dropout_cost.lora_linear(8, 4, 0.05, sparse=True)
    assert [type(m).__name__ for m in layer.modules() if "Dropout" in type(m).__name__] == ["SparseDropout"]


def test_the_two_layers_differ_only_in_their_dropout():
    with_dropout, without = lora_dropout_cost.lora_linear(8, 4, 0.05), lora_dropout_cost.lora_linear(8, 4, 0.0)
    assert with_dropout.state_dict().keys() == without.state_dict().keys()
    for key, value in with_dropout.state_dict().items():
        assert torch.equal(value, without.state_dict()[key]), key
    trainable = [n for n, p in with_dropout.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)  # the base layer is frozen, as in a LoRA run
    with torch.no_grad():  # peft starts lora_B at zero, where no mask could show in the output
        for model in (with_dropout, without):
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.fill_(0.1)
    x = torch.randn(2, 3, 8)
    with_dropout.eval()
    without.eval()
    assert torch.equal(with_dropout(x), without(x))
    with_dropout.train()
    torch.manual_seed(1)
    assert not torch.equal(with_dropout(x), without(x))  # the mask is drawn in training mode


def test_the_candidate_mask_keeps_one_minus_p_and_rescales():
    x = torch.ones(1_000_000)
    out = lora_dropout_cost.numpy_stream_dropout(x, 0.05, np.random.Generator(np.random.SFC64(0)))
    kept = out != 0
    # 1e6 Bernoulli(0.95) draws: standard deviation of the share 2.2e-4; 5 sigma
    assert abs(kept.double().mean().item() - 0.95) < 5 * (0.95 * 0.05 / 1e6) ** 0.5
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.95))


def test_table_has_a_row_per_shape_and_shares_in_range(capsys):
    results = lora_dropout_cost.main(["--rounds", "1", "--repeats", "1", "--shapes", "tiny"])
    assert list(results) == ["tiny"]
    row = results["tiny"]
    assert row["ms_with_dropout"] > 0 and row["ms_without"] > 0 and row["ms_torch_dropout"] > 0
    assert row["dropout_share"] == pytest.approx(1 - row["ms_without"] / row["ms_with_dropout"], abs=2e-3)
    assert row["dropout_share"] < 1 and row["sparse_share"] < 1 and row["ms_sparse"] > 0
    assert row["sparse_over_torch"] == pytest.approx(row["ms_sparse_dropout"] / row["ms_torch_dropout"], abs=0.01)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("| layer") and printed[2].startswith("| tiny (2400 x 64 -> 64) |")
