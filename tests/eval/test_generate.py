"""``generate_batch`` on every adapter family: new tokens only, left padding exact, cache exact.

Each family is checked against a greedy decoder by full forwards without cache (the reference), and
batched answers against one-prompt-at-a-time answers (a pad token attended to changes them).
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from eval.generate import generate_batch, generate_tokens
from finetune.models.adapters import get_adapter

FAMILIES = ["internvl_hf", "internvl_remote", "internvl_remote_internlm2", "xcomposer2"]
QUESTIONS = ["What is it?", "How many buildings are there next to the long river in this picture, roughly?", "Water?"]
# Different aspect ratios: InternVL tiles them into different numbers of tiles, so prompts differ in length.
SIZES = [(56, 56), (120, 50), (60, 130)]


@pytest.fixture(scope="module")
def loaded(tiny_internvl, remote_checkpoints):
    """``load(family) -> (model, processor, adapter)``, each loaded once, fp32, eval mode."""
    paths = {"internvl_hf": ("internvl_hf", tiny_internvl), **remote_checkpoints}
    cache = {}

    def load(family):
        if family not in cache:
            adapter_name, path = paths[family]
            adapter = get_adapter(adapter_name)
            cfg = OmegaConf.create({"path": str(path), "trust_remote_code": adapter_name != "internvl_hf",
                                    "dtype": "float32", "template": None, "system_message": None,
                                    "max_dynamic_patch": 6, "vision_tower_path": None})
            model, processor = adapter.load(cfg)
            cache[family] = (model.eval(), processor, adapter)
        return cache[family]

    return load


def images(seed=0):
    rng = torch.Generator().manual_seed(seed)
    return [Image.fromarray(torch.randint(0, 255, (h, w, 3), generator=rng, dtype=torch.uint8).numpy())
            for w, h in SIZES]


def next_token_logits(family, model, adapter, ids, pixel_values):
    """The last position's logits by one full forward (no cache), as each family trains."""
    if family == "xcomposer2":
        embeds, im_mask = adapter.image_embeds(model, ids, pixel_values)
        return model(inputs_embeds=embeds, im_mask=im_mask).logits[:, -1]
    if family == "internvl_hf":
        return model(input_ids=ids, pixel_values=pixel_values).logits[:, -1]
    flags = torch.ones(pixel_values.shape[0], dtype=torch.long)
    return model(pixel_values=pixel_values, input_ids=ids, image_flags=flags).logits[:, -1]


@torch.inference_mode()
def reference_tokens(family, model, adapter, batch, n):
    ids = batch["input_ids"]
    for _ in range(n):
        step = next_token_logits(family, model, adapter, ids, batch.get("pixel_values")).argmax(-1, keepdim=True)
        ids = torch.cat([ids, step], dim=1)
    return ids[0, batch["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_returns_the_new_tokens_of_a_greedy_decode(family, loaded):
    model, processor, adapter = loaded(family)
    prompt = adapter.generation_prompt(processor, QUESTIONS[0], 1)
    batch = dict(adapter.encode(processor, [prompt], [images()[:1]]))
    new = generate_tokens(model, processor, adapter, batch, max_new_tokens=6)[0].tolist()
    # Generation may stop early at an end-of-turn token; what it made is the reference's beginning.
    assert 1 <= len(new) <= 6 and new == reference_tokens(family, model, adapter, batch, 6)[: len(new)]


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_answers_equal_one_prompt_at_a_time(family, loaded):
    model, processor, adapter = loaded(family)
    prompts = [adapter.generation_prompt(processor, q, 1) for q in QUESTIONS]
    pictures = [[image] for image in images()]
    batch = adapter.encode(processor, prompts, pictures)
    lengths = batch["attention_mask"].sum(-1)
    assert len(set(lengths.tolist())) == 3 and bool((batch["attention_mask"][:, -1] == 1).all())  # left-padded
    batched = generate_batch(model, processor, adapter, prompts, pictures, max_new_tokens=6)
    alone = [generate_batch(model, processor, adapter, [prompt], [image], max_new_tokens=6)[0]
             for prompt, image in zip(prompts, pictures, strict=True)]
    assert batched == alone
