"""The seed's own checkpoints through geotune: original-shaped remote code with Hub-shaped files.

``standins["xcomposer2_sp"]`` / ``["internvl_chat_sp"]`` (``remote_failures``): XComposer2's config without
``vision_config`` (as ``InternLMXcomposer2Config``), InternLM2's sentencepiece-only tokenizer,
``rope_scaling: null``. Each test runs what ``train.py`` and ``geotune eval`` run on them, through
finetune's adapters (eval's generation loop itself is tested in tests/eval).
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from remote_failures import fresh_copy
from test_adapters_training import RECORD, model_cfg, supervised, train_two_steps

from finetune.models.adapters import generate_new_tokens, internvl_remote, xcomposer2


def generate(adapter, model, processor, prompts, images):
    """Greedy new tokens (at most 3) for a left-padded batch, through the adapter as eval generates
    (eval's own generate_batch on these families: tests/eval/test_remote_families.py)."""
    with torch.inference_mode():
        return generate_new_tokens(adapter, model.eval(), processor, adapter.encode(processor, prompts, images),
                                   max_new_tokens=3)


def test_xcomposer2_original_config_loads_encodes_and_generates(standins):
    """Before: ``AttributeError: 'InternLM2Config' object has no attribute 'vision_config'`` in ``load``."""
    path = standins["xcomposer2_sp"]
    assert "vision_config" not in json.loads((path / "config.json").read_text())
    model, processor = xcomposer2.load(model_cfg(path, vision_tower_path=standins["clip"]))
    assert (processor.image_size, processor.num_image_token) == (70, 25)  # the stand-in's 5x5-patch table
    assert type(processor.tokenizer).__name__ == "InternLM2Tokenizer"
    # As the original leaves it: CLIP frozen, everything else trainable (the recipe's flags apply later).
    assert not any(p.requires_grad for p in model.vit.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("vit."))
    tok = processor.tokenizer
    out = xcomposer2.encode_for_training(processor, RECORD, [Image.new("RGB", (90, 80), (200, 40, 10))], 512)
    assert out["input_ids"][0] == tok.bos_token_id == 1 and out["pixel_values"].shape == (1, 3, 70, 70)
    assert out["input_ids"].count(tok.convert_tokens_to_ids("[UNUSED_TOKEN_141]")) == 25
    answer = supervised(out)  # [UNUSED_TOKEN_145] is <|im_end|>'s id, as in InternLM2's tokenizer
    assert tok.decode(answer[:-1]) == "forest" and answer[-1] == tok.convert_tokens_to_ids("[UNUSED_TOKEN_145]")
    batch = {"input_ids": torch.tensor([out["input_ids"]]), "labels": torch.tensor([out["labels"]]),
             "attention_mask": torch.ones(1, len(out["input_ids"]), dtype=torch.long), "pixel_values": out["pixel_values"]}
    loss = xcomposer2.forward_for_training(model, batch).loss
    loss.backward()
    assert torch.isfinite(loss) and model.vision_proj[0].weight.grad.abs().sum() > 0
    tokens = generate(xcomposer2, model, processor, [xcomposer2.generation_prompt(processor, "What is it?")],
                      [[Image.new("RGB", (64, 64))]])
    assert tokens.shape[0] == 1 and 0 < tokens.shape[1] <= 3


def test_xcomposer2_original_trains_with_train_py(standins, colour_data, tmp_path):
    folder = fresh_copy(standins["xcomposer2_sp"], tmp_path)
    trainer, losses, moved = train_two_steps(folder, "xcomposer2", colour_data, tmp_path,
                                             f"model.vision_tower_path={standins['clip']}")
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert moved and set(moved) == {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert not any(".vit." in n for n in moved)


def test_internvl_internlm2_original_tokenises_turns_as_internvl_does(standins):
    """Sentencepiece puts a "▁" before a piece tokenised on its own: the answer must be tokenised inside
    its turn, as InternVL's preprocessing tokenises whole turns (before: "▁forest" in training only)."""
    model, processor = internvl_remote.load(model_cfg(standins["internvl_chat_sp"], system_message=""))
    tok = processor.tokenizer
    assert processor.template == "internlm2-chat" and type(tok).__name__ == "InternLM2Tokenizer"
    out = internvl_remote.encode_for_training(processor, RECORD, [Image.new("RGB", (64, 64))], 512)
    image = "<img>" + "<IMG_CONTEXT>" * model.num_image_token + "</img>"
    turns = [f"<|im_start|>user\n{image}\nWhat is it?<|im_end|>\n", "<|im_start|>assistant\nforest<|im_end|>", "\n"]
    expected = [tok.bos_token_id] + [i for turn in turns for i in tok(turn, add_special_tokens=False)["input_ids"]]
    assert out["input_ids"] == expected
    answer = tok("<|im_start|>assistant\nforest<|im_end|>", add_special_tokens=False)["input_ids"]
    prefix = len(tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"])
    assert supervised(out) == answer[prefix:]


def test_internvl_internlm2_original_trains_and_evaluates(standins, colour_data, tmp_path):
    folder = fresh_copy(standins["internvl_chat_sp"], tmp_path)
    trainer, losses, moved = train_two_steps(folder, "internvl_remote", colour_data, tmp_path)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert moved and all("lora_" in n or ".mlp1." in n for n in moved)
    model, processor = internvl_remote.load(model_cfg(folder))
    tokens = generate(internvl_remote, model, processor, [internvl_remote.generation_prompt(processor, "What is it?")] * 2,
                      [[Image.new("RGB", (64, 64))], [Image.new("RGB", (96, 64))]])
    assert tokens.shape[0] == 2 and 0 < tokens.shape[1] <= 3


@pytest.mark.parametrize("bos", [True, False])
def test_internvl2_5_template_layout(standins, tmp_path, bos):
    """InternVL2.5 / InternVL3 (``template: internvl2_5``): ChatML turns, their own system message, ``<s>``
    first exactly when the tokenizer adds one (InternVL's ``preprocess_internvl2_5``)."""
    folder = fresh_copy(standins["internvl_chat_sp"], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "template": "internvl2_5"}))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "add_bos_token": bos}))
    model, processor = internvl_remote.load(model_cfg(folder))
    assert processor.template == "internvl2_5" and processor.system_message == internvl_remote.SYSTEM_MESSAGES["internvl2_5"]
    tok = processor.tokenizer
    out = internvl_remote.encode_for_training(processor, RECORD, [Image.new("RGB", (64, 64))], 512)
    image = "<img>" + "<IMG_CONTEXT>" * model.num_image_token + "</img>"
    assert tok.decode(out["input_ids"]) == (("<s>" if bos else "") + f"<|im_start|>system\n{processor.system_message}"
                                            f"<|im_end|>\n<|im_start|>user\n{image}\nWhat is it?<|im_end|>\n"
                                            "<|im_start|>assistant\nforest<|im_end|>\n")
    assert tok.decode(supervised(out)) == "forest<|im_end|>"
    prompt = internvl_remote.generation_prompt(processor, "What is it?")
    assert prompt.startswith("<s><|im_start|>system\n" if bos else "<|im_start|>system\n")


def test_an_unknown_template_fails_before_the_weights_load(standins):
    with pytest.raises(ValueError, match="model.template: 'internvl9' is not one of .*internvl2_5"):
        internvl_remote.load(model_cfg(standins["internvl_chat_sp"], template="internvl9"))
