"""`geotune doctor` on the tiny HF-native InternVL, on each stand-in remote checkpoint, and on broken ones
(its checks one by one: tests/finetune/test_doctor_checks.py)."""

from __future__ import annotations

import json

import pytest
from remote_failures import fresh_copy
from safetensors.torch import load_file, save_file

from geotune.cli import main


def doctor(capsys, *argv):
    code = main(["doctor", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_doctor_tiny_internvl_hf(tiny_internvl, capsys):
    code, out, err = doctor(capsys, tiny_internvl)
    assert code == 0, err
    assert "(adapter internvl_hf)" in out
    assert "compat fixes applied     none" in out
    assert "image tokens per tile    16" in out
    assert "dtype                    float32" in out
    assert "150,688 total, 150,688 trainable" in out
    assert "[ok] cached and uncached generation agree" in out


@pytest.mark.parametrize(
    "kind, adapter, tokens, fixes",
    [
        ("internlm2", "remote_lm", "n/a (text-only)", ["legacy_tuple_kv_cache", "rotary_buffers_after_meta_init"]),
        ("internvl_chat_sp", "internvl_remote", "16", ["missing_post_init", "required_image_flags", "generation_position_ids",
                                                       "rope_scaling_null_rewritten", "remote_tokenizer_class_ignored"]),
        ("xcomposer2_sp", "xcomposer2", "25", ["nested_clip_from_pretrained", "clip_resized_position_table",
                                               "hard_coded_token_ids", "remote_tokenizer_class_ignored"]),
    ],
)
def test_doctor_on_each_standin(standins, tmp_path, capsys, kind, adapter, tokens, fixes):
    """The original-shaped code and Hub-shaped files (InternLM2's sentencepiece tokenizer, no vision_config
    in XComposer2's config), loaded through the adapter as train.py loads them."""
    folder = fresh_copy(standins[kind], tmp_path)
    code, out, err = doctor(capsys, folder, "--trust-remote-code", "--vision-tower-path", standins["clip"])
    assert code == 0, out + err
    assert f"(adapter {adapter})" in out and f"image tokens per tile    {tokens}" in out
    for name in fixes:
        assert f"    - {name}: " in out
    assert "FAIL" not in out and "OK: loads, trains a step and generates" in out
    if adapter != "remote_lm":
        assert "[ok] tokenizer ids match the checkpoint's own tokenizer class" in out
        assert "tokenizer                InternLM2Tokenizer (checkpoint's own: tokenization_internlm2.InternLM2Tokenizer)" in out


def test_doctor_refuses_what_training_refuses(standins, tmp_path, capsys):
    """Doctor loads through the adapter: a template train.py refuses fails here too, with the same key."""
    folder = fresh_copy(standins["internvl_chat_sp"], tmp_path)
    code, out, err = doctor(capsys, folder, "--trust-remote-code", "--template", "internvl9")
    assert code == 1 and "model.template: 'internvl9' is not one of" in err


def test_doctor_refuses_remote_code_without_the_flag(standins, tmp_path, capsys):
    code, out, err = doctor(capsys, fresh_copy(standins["internlm2"], tmp_path))
    assert code == 1
    assert "model.trust_remote_code=true" in err


def test_doctor_names_the_vision_tower_key_when_clip_is_missing(standins, tmp_path, capsys):
    code, out, err = doctor(capsys, fresh_copy(standins["xcomposer2"], tmp_path), "--trust-remote-code")
    assert code == 1
    assert "model.vision_tower_path" in err


def test_doctor_fails_a_checkpoint_with_nan_weights(standins, tmp_path, capsys):
    folder = fresh_copy(standins["internlm2"], tmp_path)
    weights = load_file(folder / "model.safetensors")
    weights["model.layers.0.feed_forward.w2.weight"][0, 0] = float("nan")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    code, out, err = doctor(capsys, folder, "--trust-remote-code")
    assert code == 1
    assert "[FAIL] loss is finite: loss is nan" in out
    assert "[FAIL] logits are finite" in out


def test_doctor_fails_a_checkpoint_whose_weights_do_not_match(standins, tmp_path, capsys):
    folder = fresh_copy(standins["internlm2"], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    code, out, err = doctor(capsys, folder, "--trust-remote-code")
    assert code == 1
    assert "no weights for" in err and "model.layers.2" in err


def test_doctor_without_a_checkpoint(tmp_path, capsys):
    code, _, err = doctor(capsys, tmp_path / "nothing")
    assert code == 2 and "config.json missing" in err


def test_doctor_fails_a_checkpoint_whose_kv_cache_path_is_wrong(standins, tmp_path, capsys):
    folder = fresh_copy(standins["internlm2"], tmp_path)
    code_file = folder / "modeling_internlm2.py"
    source = code_file.read_text()
    broken = "torch.cat([past_key_value[1] * float('nan'), value_states], dim=2)"  # only cached steps see it
    code_file.write_text(source.replace("torch.cat([past_key_value[1], value_states], dim=2)", broken))
    code, out, err = doctor(capsys, folder, "--trust-remote-code")
    assert code == 1
    assert "[FAIL] cached and uncached generation agree: step " in out
    assert "[ok] loss is finite" in out  # training alone would not have shown it
