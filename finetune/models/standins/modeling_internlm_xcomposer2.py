"""Stand-in InternLM-XComposer2-VL (written for geotune; mirrors the public IXC2-VL interface).

What it reproduces: an InternLM2 decoder (``modeling_internlm2.py``, beside it as in the original)
whose ``attention.wqkv``, ``attention.wo`` and ``feed_forward.w1/w2/w3`` are Partial-LoRA linears
(``PLoRA``: ``Plora_A``/``Plora_B`` applied only where ``im_mask`` is true), ``tok_embeddings`` and
``output`` names, a CLIP vision tower ``vit`` whose sizes live in this file, not in the config (the
original's ``build_mlp.py`` hard-codes ``openai/clip-vit-large-patch14-336`` resized to 490 px; here a
tiny CLIP at ``IMAGE_SIZE`` pixels, built from its config), frozen when built as in the original,
``vision_proj``, ``img2emb``,
``interleav_wrap(img_list, text_list)`` returning ``(embeds, attention_mask, targets, im_mask)`` for
``<ImageHere>`` texts, ``forward(inputs_embeds=..., attention_mask=..., labels=..., im_mask=...)``, and
generation as the original's ``chat`` does it: ``generate(inputs_embeds=..., im_mask=...)`` returns
only the new tokens; the cached steps feed token ids, for which ``im_mask`` is all false.
"""

import functools

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from .configuration_internlm_xcomposer2 import InternLMXcomposer2Config
from .modeling_internlm2 import InternLM2ForCausalLM


class PLoRA(nn.Linear):
    def __init__(self, in_features, out_features, bias=False, lora_r=8, lora_alpha=16, lora_dropout=0.0):
        super().__init__(in_features, out_features, bias)
        self.lora_scaling = lora_alpha / lora_r
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.Plora_A = nn.Linear(in_features, lora_r, bias=False)
        self.Plora_B = nn.Linear(lora_r, out_features, bias=False)

    def forward(self, x, im_mask=None):
        res = super().forward(x)
        if im_mask is not None and bool(im_mask.any()):
            part = self.Plora_B(self.Plora_A(self.lora_dropout(x[im_mask]))) * self.lora_scaling
            res = res.clone()
            res[im_mask] = res[im_mask] + part
        return res


# The original's vision settings are constants of its code, not config fields (CLIP-L/14 at 490 px).
IMAGE_SIZE = 56
CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14)


class CLIPVisionTower(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision_tower = CLIPVisionModel(CLIPVisionConfig(image_size=IMAGE_SIZE, **CLIP))
        self.vision_tower.requires_grad_(False)

    def forward(self, images):
        hidden = self.vision_tower(images, output_hidden_states=True).hidden_states[-1]
        return hidden[:, 1:]


class InternLMXComposer2ForCausalLM(InternLM2ForCausalLM):
    config_class = InternLMXcomposer2Config
    _no_split_modules = ["InternLM2DecoderLayer", "CLIPEncoderLayer"]

    def __init__(self, config):
        super().__init__(config, linear=functools.partial(PLoRA, lora_r=config.plora_r, lora_alpha=config.plora_alpha))
        self.vit = CLIPVisionTower()
        self.vision_proj = nn.Sequential(nn.Linear(CLIP["hidden_size"], config.hidden_size), nn.GELU(),
                                         nn.Linear(config.hidden_size, config.hidden_size))
        self.tokenizer = None
        self.post_init()

    def img2emb(self, image):
        img_embeds = self.vision_proj(self.vit(image.to(self.device)))
        atts_img = torch.ones(img_embeds.shape[:-1], dtype=torch.long, device=img_embeds.device)
        img_target = torch.full(img_embeds.shape[:2], -100, dtype=torch.long, device=img_embeds.device)
        return img_embeds, atts_img, img_target

    def interleav_wrap(self, img_list, text_list):
        """One sample per text; each ``<ImageHere>`` takes the next image's embeddings (the original's API)."""
        embeds, masks, im_masks = [], [], []
        images = iter(img_list)
        for text in text_list:
            parts, pieces, flags = text.split("<ImageHere>"), [], []
            for i, part in enumerate(parts):
                ids = self.tokenizer(part, return_tensors="pt", add_special_tokens=i == 0).input_ids.to(self.device)
                pieces.append(self.model.tok_embeddings(ids)[0])
                flags.append(torch.zeros(ids.shape[1], dtype=torch.bool, device=self.device))
                if i < len(parts) - 1:
                    img = self.img2emb(next(images)[None])[0][0]
                    pieces.append(img)
                    flags.append(torch.ones(img.shape[0], dtype=torch.bool, device=self.device))
            embeds.append(torch.cat(pieces))
            im_masks.append(torch.cat(flags))
            masks.append(torch.ones(embeds[-1].shape[0], dtype=torch.long, device=self.device))
        n = max(e.shape[0] for e in embeds)
        pad = lambda t, v: torch.cat([t, t.new_full((n - t.shape[0], *t.shape[1:]), v)])  # noqa: E731
        targets = torch.full((len(embeds), n), -100, dtype=torch.long, device=self.device)
        return (torch.stack([pad(e, 0) for e in embeds]), torch.stack([pad(m, 0) for m in masks]), targets,
                torch.stack([pad(m, False) for m in im_masks]))

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                im_mask=None, past_key_values=None, **kwargs):
        """As the original: ``im_mask`` applies to ``inputs_embeds``; steps on token ids have no image tokens."""
        im_mask = im_mask.bool() if im_mask is not None and inputs_embeds is not None else None
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, cache=cache,
                               inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache,
                               output_hidden_states=output_hidden_states, im_mask=im_mask,
                               past_key_values=past_key_values)
