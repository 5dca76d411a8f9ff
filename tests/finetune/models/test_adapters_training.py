"""Remote-code families through their adapters, on geotune's stand-in checkpoints; auto; LoRA targets."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from recipe_sections import library_recipe

from finetune.config import LoraConfig, ModelConfig
from finetune.data.records import Record
from finetune.models.adapters import auto, internvl_hf, internvl_remote, xcomposer2
from finetune.models.adapters.supervision import IGNORE_INDEX
from finetune.training import build_trainer

RECORD = Record(id="r", images=["a.png"], conversations=[{"from": "human", "value": "<image>\nWhat is it?"},
                                                       {"from": "gpt", "value": "forest"}])


def model_cfg(path, **kw):
    return OmegaConf.structured(ModelConfig(path=str(path), **{"trust_remote_code": True, **kw}))


def supervised(out):
    return [t for t, lab in zip(out["input_ids"], out["labels"], strict=True) if lab != IGNORE_INDEX]


def train_two_steps(path, adapter, data, tmp_path, *extra):
    cfg = library_recipe(f"model.path={path}", f"model.adapter={adapter}", "model.trust_remote_code=true",
                         f"run_dir={tmp_path / adapter}", "train.max_steps=2", "train.per_device_batch_size=2",
                         "train.report_to=[none]", "train.logging_steps=1", "train.warmup_ratio=0", "train.learning_rate=1e-2", "train.lora.dropout=0", *extra)
    trainer = build_trainer(cfg, data)
    # Every parameter, frozen ones too: a step must move the trainable ones and nothing else.
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p)]
    return trainer, losses, moved


def test_internvl_remote_needs_trust_and_encodes_hermes2(standin_internvl):
    with pytest.raises(ValueError, match="trust_remote_code"):
        internvl_remote.load(model_cfg(standin_internvl, trust_remote_code=False))
    model, processor = internvl_remote.load(model_cfg(standin_internvl, system_message=""))
    tok = processor.tokenizer
    assert model.img_context_token_id == tok.convert_tokens_to_ids("<IMG_CONTEXT>") == internvl_remote.image_token_id(model)
    image = Image.new("RGB", (120, 50), (10, 200, 10))
    out = internvl_remote.encode_for_training(processor, RECORD, [image], 512)
    tiles = out["pixel_values"].shape[0]
    assert tiles == 3 and out["image_flags"].tolist() == [1, 1, 1]  # 2 x 1 grid + thumbnail
    assert internvl_remote.encode_for_training(processor, RECORD, [image.size], 512)["input_ids"] == out["input_ids"]
    text = tok.decode(out["input_ids"])
    assert text == ("<|im_start|>user\n<img>" + "<IMG_CONTEXT>" * 4 * tiles + "</img>\nWhat is it?<|im_end|>\n"
                    "<|im_start|>assistant\nforest<|im_end|>\n")
    assert tok.decode(supervised(out)) == "forest<|im_end|>"
    with torch.no_grad():
        loss = model(pixel_values=out["pixel_values"], input_ids=torch.tensor([out["input_ids"]]),
                     labels=torch.tensor([out["labels"]]), image_flags=out["image_flags"]).loss
    assert torch.isfinite(loss)


def test_internvl_remote_text_only_gets_a_flagged_blank_tile(standin_internvl):
    _, processor = internvl_remote.load(model_cfg(standin_internvl))
    text_only = Record(id="t", images=[], conversations=[{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "yes"}])
    out = internvl_remote.encode_for_training(processor, text_only, [], 512)
    assert out["image_flags"].tolist() == [0] and out["pixel_values"].shape == (1, 3, 56, 56)


def test_internvl_remote_trains_lora_on_llm_only(standin_internvl, colour_data, tmp_path):
    trainer, losses, moved = train_two_steps(standin_internvl, "internvl_remote", colour_data, tmp_path)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    names = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert any("language_model" in n and "lora_" in n for n in names)
    assert not any("vision_model" in n for n in names) and set(moved) == set(names)


def test_xcomposer2_prompt_plora_and_training(standin_xcomposer2, colour_data, tmp_path):
    model, processor = xcomposer2.load(model_cfg(standin_xcomposer2))
    tok = processor.tokenizer
    out = xcomposer2.encode_for_training(processor, RECORD, [Image.new("RGB", (80, 60))], 512)
    assert out["pixel_values"].shape == (1, 3, 56, 56)
    assert tok.decode(out["input_ids"]) == ("<s>[UNUSED_TOKEN_146]user\n" + "[UNUSED_TOKEN_141]" * 16
                                            + "\nWhat is it?[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n"
                                            "forest[UNUSED_TOKEN_145]\n")
    assert tok.decode(supervised(out)) == "forest[UNUSED_TOKEN_145]"
    targets = xcomposer2.lora_targets(model, LoraConfig())
    assert "model.layers.0.attention.wqkv" in targets and "model.layers.1.feed_forward.w2" in targets
    assert len(targets) == 10 and not any(t.startswith("vit") or "Plora" in t for t in targets)
    # Partial LoRA: im_mask changes the output only through the image positions' Plora weights.
    ids = torch.tensor([out["input_ids"]])
    embeds, im_mask = xcomposer2.image_embeds(model, ids, out["pixel_values"])
    assert int(im_mask.sum()) == 16
    with torch.no_grad():
        for layer in model.model.layers:
            torch.nn.init.normal_(layer.attention.wqkv.Plora_B.weight)
        with_mask = model(inputs_embeds=embeds, im_mask=im_mask).logits
        without = model(inputs_embeds=embeds).logits
    first_image = int(im_mask[0].nonzero()[0])
    assert torch.allclose(with_mask[0, :first_image], without[0, :first_image])
    assert not torch.allclose(with_mask, without)
    trainer, losses, moved = train_two_steps(standin_xcomposer2, "xcomposer2", colour_data, tmp_path)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert moved and all("lora_" in n or "vision_proj" in n for n in moved)


def test_auto_labels_match_the_internvl_family_adapter(tiny_internvl):
    cfg = model_cfg(tiny_internvl, trust_remote_code=False)
    _, processor = internvl_hf.load(cfg)
    two = Record(id="2", images=["a.png"], conversations=RECORD.conversations + [
        {"from": "human", "value": "Sure?"}, {"from": "gpt", "value": "yes"}])
    image = Image.new("RGB", (64, 64))
    ours = internvl_hf.encode_for_training(processor, two, [image], 512)
    generic = auto.encode_for_training(processor, two, [image], 512)
    assert generic["input_ids"] == ours["input_ids"] and generic["labels"] == ours["labels"]
    assert torch.equal(generic["pixel_values"], ours["pixel_values"])
    assert auto.encode_for_training(processor, two, [image.size], 512)["input_ids"] == ours["input_ids"]


def test_lora_targets_stay_out_of_the_vision_tower_unless_asked(tiny_internvl):
    model, _ = internvl_hf.load(model_cfg(tiny_internvl, trust_remote_code=False))
    llm_only = internvl_hf.lora_targets(model, LoraConfig())
    assert len(llm_only) == 14 and all(n.startswith("model.language_model.layers.") for n in llm_only)
    with_vision = internvl_hf.lora_targets(model, LoraConfig(vision=True))
    vision = sorted(set(with_vision) - set(llm_only))
    assert vision[:3] == ["model.vision_tower.encoder.layer.0.attention.k_proj",
                          "model.vision_tower.encoder.layer.0.attention.projection_layer",
                          "model.vision_tower.encoder.layer.0.attention.q_proj"]
    assert len(vision) == 12
    assert auto.lora_targets(model, LoraConfig()) == llm_only


def remote_standin_layout(tmp_path, llm: str, system_message: str):
    """``(path, model, processor, decoded sample, decoded supervised tokens)`` of RECORD on a stand-in."""
    from finetune.models.standins import build_standin_internvl_chat

    path = build_standin_internvl_chat(tmp_path / llm, llm=llm)
    model, processor = internvl_remote.load(model_cfg(path, system_message=system_message))
    out = internvl_remote.encode_for_training(processor, RECORD, [Image.new("RGB", (56, 56))], 512)
    return path, model, processor, processor.tokenizer.decode(out["input_ids"]), processor.tokenizer.decode(supervised(out))


def test_internvl_remote_phi3_chat_layout(tmp_path):
    _, model, processor, text, answer = remote_standin_layout(tmp_path, "phi3", "Be brief.")
    assert processor.template == "phi3-chat"
    assert text == ("<|system|>\nBe brief.<|end|>\n<|user|>\n<img>" + "<IMG_CONTEXT>" * 4 + "</img>\nWhat is it?<|end|>\n"
                    "<|assistant|>\nforest<|end|>\n")
    assert answer == "forest<|end|>"
    targets = internvl_remote.lora_targets(model, LoraConfig())
    assert {t.rsplit(".", 1)[-1] for t in targets} == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    assert all(t.startswith("language_model.") for t in targets)


def test_internvl_remote_internlm2_layout_targets_and_lora_training(colour_data, tmp_path):
    """Mini-InternVL-Chat-2B-V1-5 / InternVL2-2B: remote-code InternLM2 LLM, internlm2-chat, ``<s>`` first."""
    path, model, processor, text, answer = remote_standin_layout(tmp_path, "internlm2", "")
    assert processor.template == "internlm2-chat"
    assert text == ("<s><|im_start|>user\n<img>" + "<IMG_CONTEXT>" * 4 + "</img>\nWhat is it?<|im_end|>\n"
                    "<|im_start|>assistant\nforest<|im_end|>\n")
    assert answer == "forest<|im_end|>"
    targets = internvl_remote.lora_targets(model, LoraConfig())
    assert len(targets) == 10 and all(t.startswith("language_model.model.layers.") for t in targets)
    assert {t.split(".", 4)[-1] for t in targets} == {"attention.wqkv", "attention.wo", "feed_forward.w1",
                                                     "feed_forward.w2", "feed_forward.w3"}
    # Projector frozen: the steps must move the LLM's LoRA weights and nothing else (through checkpointed layers).
    trainer, losses, moved = train_two_steps(path, "internvl_remote", colour_data, tmp_path,
                                             "train.freeze_projector=true", "train.gradient_checkpointing=true")
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    lora = [n for n, _ in trainer.model.named_parameters() if "lora_" in n]
    assert len(lora) == 20 and all(".language_model.model.layers." in n for n in lora)
    assert set(moved) == set(lora) == {n for n, p in trainer.model.named_parameters() if p.requires_grad}
