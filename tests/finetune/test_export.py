"""`geotune export`: LoRA merge checked by logits after a reload from disk; XComposer2 refused."""

import json

import pytest
import torch

from finetune.export import PLORA_REFUSAL, ExportError, export_merged, find_checkpoint, model_config
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


def test_xcomposer2_merge_is_refused_with_the_alternative(lora_run, tmp_path, capsys):
    run = tmp_path / "ixc2_run"
    (run / "final").mkdir(parents=True)
    (run / "final" / "adapter_config.json").write_text("{}")
    cfg = load_recipe("rs_third", [f"run_dir={run}"])
    save_resolved(cfg)
    assert main(["export", str(run), "--out", str(tmp_path / "out"), "--merge"]) == 2
    err = capsys.readouterr().err
    assert "Partial-LoRA" in err and "im_mask" in err and "without --merge" not in err and "no --merge" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ExportError, match="PLoRA"):
        export_merged(run / "final", tmp_path / "out", model_config(cfg, None))
    assert "cannot be folded" in PLORA_REFUSAL


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
