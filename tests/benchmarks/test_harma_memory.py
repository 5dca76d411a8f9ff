"""benchmarks/harma_memory.py on the tiny CLIP: the byte counts follow from the tensors AdamW keeps, every
method starts from the same model (equal first loss), and the table has its columns and ratios."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import harma_memory  # noqa: E402

COLUMNS = ["method", "trainable params", "trainable share", "params MiB", "grads MiB", "optimizer MiB",
           "grads + optimizer vs full FT", "peak RSS MiB", "peak RSS vs full FT", "RSS after build MiB",
           "peak RSS in training MiB", "added by training MiB", "added vs full FT", "s / step (median)",
           "time vs full FT", "loss per step"]


@pytest.fixture(scope="module")
def rows():
    """Each method in a child process, as the script runs them: ``measure`` resets its process's peak RSS,
    which must not be the test process's (tests/finetune/test_step_memory.py reads that one)."""
    args = SimpleNamespace(size="tiny", steps=3, batch=4, lr=1e-3)
    return [harma_memory.run_child(key, args) for key in harma_memory.METHODS]


def test_bytes_are_those_of_the_tensors(rows):
    by = {r["key"]: r for r in rows}
    full = by["full"]
    # fp32: 4 bytes a number; AdamW keeps two moments per trainable number and a 4-byte step count per tensor.
    assert full["param_bytes"] == 4 * full["total_params"]
    assert full["trainable_params"] == full["total_params"] - 1  # CLIP's logit_scale is frozen (and unused)
    assert full["grad_bytes"] == 4 * full["trainable_params"]
    assert full["optimizer_bytes"] == 2 * 4 * full["trainable_params"] + 4 * full["trainable_tensors"]
    for r in rows:
        assert r["grad_bytes"] == 4 * r["trainable_params"], r["key"]
        assert r["optimizer_bytes"] == 8 * r["trainable_params"] + 4 * r["trainable_tensors"], r["key"]
        assert r["trainable_params"] < full["trainable_params"] or r["key"] == "full"
    # HarMA holds its adapters as parameters too; LoRA its A and B.
    assert by["harma"]["param_bytes"] == by["harma_both"]["param_bytes"] > full["param_bytes"]
    assert by["lora"]["param_bytes"] - full["param_bytes"] == 4 * (by["lora"]["trainable_params"] - 1)


def test_every_method_starts_from_the_same_model(rows):
    """Zero-init HarMA up-projections and LoRA B: the first loss is the backbone's for all; then they part.
    share=text_only and share=both part at step 3: the shared adapter's own up-projection moves at step 2."""
    first = [r["losses"][0] for r in rows]
    assert max(first) - min(first) < 1e-5 and first[0] > 0
    assert all(len(r["losses"]) == len(r["seconds"]) == 3 and min(r["seconds"]) > 0 for r in rows)
    assert len({r["losses"][2] for r in rows}) == len(rows)


def test_table_has_the_columns_and_ratios_to_full_fine_tuning(rows):
    lines = harma_memory.table(rows).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == COLUMNS
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]}
    assert list(cells) == [harma_memory.METHODS[k][0] for k in harma_memory.METHODS]
    full = cells["full fine-tuning"]
    assert full[6] == full[8] == full[12] == full[14] == "1.000"
    harma = next(r for r in rows if r["key"] == "harma")
    full_row = next(r for r in rows if r["key"] == "full")
    expected = (harma["grad_bytes"] + harma["optimizer_bytes"]) / (full_row["grad_bytes"] + full_row["optimizer_bytes"])
    assert cells["HarMA share=text_only"][6] == f"{expected:.3f}"
    assert cells["HarMA share=text_only"][15] == ", ".join(f"{v:.4f}" for v in harma["losses"])
    # The peak in training is at least the RSS it started from; the process peak covers both.
    assert all(r["rss_built_mib"] - 1 <= r["training_peak_rss_mib"] <= r["peak_rss_mib"] for r in rows)


def test_cli_runs_the_method_in_its_own_process(tmp_path):
    out = tmp_path / "memory.md"
    assert harma_memory.main(["--size", "tiny", "--methods", "harma", "--steps", "1", "--batch", "2",
                              "--out", str(out)]) == 0
    text = out.read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| HarMA share=text_only |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert text.startswith("tiny CLIP") and cells[6] == cells[8] == cells[12] == cells[14] == "-"  # no full FT row
    assert float(cells[7]) > 100 and float(cells[10]) > 100  # the child's own peaks: torch alone is over 100 MiB
    with pytest.raises(SystemExit, match="--methods: ful not among"):
        harma_memory.main(["--methods", "ful"])
