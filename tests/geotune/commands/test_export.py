"""`geotune export`: LoRA merge checked by logits after a reload from disk; XComposer2 merges exactly."""

import json

import pytest
import torch

from finetune.export import ExportError, find_checkpoint, model_config
from geotune.cli import main
from geotune.config import load_recipe, save_resolved


@pytest.fixture(scope="module")
def lora_run(tiny_internvl, tmp_path_factory):
    """A run folder like training writes: <run>/config.yaml + <run>/final/ (adapter + processor),
    LoRA on q_proj/v_proj of the language model with non-zero (perturbed) B matrices."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    run = tmp_path_factory.mktemp("runs") / "lora_run"
    cfg = load_recipe("demo", [f"model.path={tiny_internvl}", f"run_dir={run}", "model.tiny=false"])
    save_resolved(cfg)
    model = AutoModelForImageTextToText.from_pretrained(tiny_internvl)
    targets = [n for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and "language_model" in n and n.endswith(("q_proj", "v_proj"))]
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.add_(torch.randn_like(param) * 0.5)  # lora_B starts at 0: make the delta non-zero
    peft_model.save_pretrained(run / "final")
    AutoProcessor.from_pretrained(tiny_internvl).save_pretrained(run / "final")
    (run / "final" / "trainer_state.json").write_text("{}")  # training state that must not be shipped
    return run


def test_merge_reloads_with_equal_logits(lora_run, tiny_internvl, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from finetune.export import dummy_batch
    from finetune.models.adapters import get_adapter

    out = tmp_path / "merged"
    assert main(["export", str(lora_run), "--out", str(out), "--merge"]) == 0
    info = json.loads((out / "export_info.json").read_text())
    assert info["merged"] and info["max_abs_logit_diff"] <= info["tolerance"]
    assert list(out.glob("*.safetensors")) and not list(out.glob("adapter_*")) and not (out / "trainer_state.json").exists()

    # Independent check: the merged folder loads as a plain model and matches the adapter model.
    from peft import PeftModel

    batch = dummy_batch(get_adapter("internvl_hf"), AutoProcessor.from_pretrained(out))
    merged = AutoModelForImageTextToText.from_pretrained(out).eval()
    base = AutoModelForImageTextToText.from_pretrained(tiny_internvl)
    adapted = PeftModel.from_pretrained(base, lora_run / "final").eval()
    plain = AutoModelForImageTextToText.from_pretrained(tiny_internvl).eval()
    with torch.no_grad():
        got, want, before = (m(**batch).logits for m in (merged, adapted, plain))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (want - before).abs().max() > 1e-2  # the adapter really changed the model


def test_copy_without_merge_ships_adapter_and_readme(lora_run, tmp_path):
    out = tmp_path / "adapter"
    assert main(["export", str(lora_run), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer_config.json"} <= names
    assert "trainer_state.json" not in names
    readme = (out / "README.md").read_text()
    assert "PeftModel.from_pretrained" in readme and "<this folder>" in readme


def _xcomposer2_lora(standin_xcomposer2):
    """The stand-in IXC2 with geotune's LoRA targets (non-zero B) and non-zero frozen Plora branches."""
    from peft import LoraConfig, get_peft_model

    from finetune.models.adapters import xcomposer2

    cfg = load_recipe("rs_third", [f"model.path={standin_xcomposer2}", "model.dtype=float32", "model.vision_tower_path=null"])
    model, processor = xcomposer2.load(cfg.model)
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "Plora_B" in name:
                param.normal_(std=0.5)  # the image-only branch is zero at init: make it matter
    targets = xcomposer2.lora_targets(model, cfg.train.lora)  # rs_third's: wqkv, wo, w1, w2, w3
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.add_(torch.randn_like(param) * 0.5)
    return peft_model.eval(), processor


def test_xcomposer2_lora_merges_exactly(standin_xcomposer2):
    """Merged and unmerged logits agree on image and text tokens: the peft LoRA is dense, the model's own
    Partial-LoRA (image tokens only) is frozen and left as it is by the merge (finetune/export.py)."""
    from finetune.export import _logits, dummy_batch
    from finetune.models.adapters import xcomposer2

    model, processor = _xcomposer2_lora(standin_xcomposer2)
    batch = dummy_batch(xcomposer2, processor)
    _, im_mask = xcomposer2.image_embeds(model, batch["input_ids"], batch["pixel_values"])
    assert 0 < int(im_mask.sum()) < im_mask.numel()  # image and text tokens both present
    unmerged = _logits(xcomposer2, model, batch)
    with model.disable_adapter():
        base = _logits(xcomposer2, model, batch)
    merged = _logits(xcomposer2, model.merge_and_unload(), batch)
    assert (unmerged - base).abs().max() > 1e-2  # the LoRA changes the model
    # Merged W + BA rounds differently from W x + B(A x) in float32, by the CPU's kernels: up to 1.7e-5 on
    # one machine. A wrong merge is off by the LoRA's effect, above 1e-2.
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)


def test_xcomposer2_export_merge_agrees_with_eval(standin_xcomposer2, tmp_path):
    from eval.api import load_checkpoint
    from finetune.export import _logits, dummy_batch
    from finetune.models.adapters import xcomposer2

    model, processor = _xcomposer2_lora(standin_xcomposer2)
    run = tmp_path / "ixc2_run"
    model.save_pretrained(run / "final")
    processor.save_pretrained(run / "final")  # as Trainer.save_model does
    cfg = load_recipe("rs_third", [f"run_dir={run}", f"model.path={standin_xcomposer2}", "model.dtype=float32",
                                   "model.vision_tower_path=null"])
    save_resolved(cfg)
    out = tmp_path / "merged"
    assert main(["export", str(run), "--out", str(out), "--merge"]) == 0
    info = json.loads((out / "export_info.json").read_text())
    assert info["max_abs_logit_diff"] <= info["tolerance"]
    evaluated, eval_processor, _ = load_checkpoint(cfg, run / "final")  # eval merges the same adapter
    batch = dummy_batch(xcomposer2, eval_processor)
    exported, _ = xcomposer2.load(load_recipe("rs_third", [f"model.path={out}", "model.dtype=float32",
                                                          "model.vision_tower_path=null"]).model)
    torch.testing.assert_close(_logits(xcomposer2, exported.eval(), batch), _logits(xcomposer2, evaluated, batch),
                               rtol=1e-4, atol=1e-4)


def test_base_override_and_checkpoint_resolution(lora_run, tmp_path):
    assert find_checkpoint(lora_run) == lora_run / "final"
    assert model_config(None, "/models/x").path == "/models/x"
    with pytest.raises(ExportError, match="no trained weights"):
        find_checkpoint(tmp_path)
    out = tmp_path / "m"
    assert main(["export", str(lora_run), "--out", str(out), "--merge", "--base", str(tmp_path / "missing")]) == 2
    assert not out.exists()


def test_newest_checkpoint_is_used_when_there_is_no_final(tmp_path):
    for step in (2, 10, 9):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "adapter_config.json").write_text("{}")
    assert find_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
