"""Stand-in InternLM-XComposer2-VL (written for geotune; mirrors the public IXC2-VL interface).

What it reproduces: an InternLM2 decoder whose ``attention.wqkv``, ``attention.wo`` and
``feed_forward.w1/w2/w3`` are Partial-LoRA linears (``PLoRA``: ``Plora_A``/``Plora_B`` applied only
where ``im_mask`` is true), ``tok_embeddings`` and ``output`` names, a CLIP vision tower ``vit``
(built from its config here: the original downloads ``openai/clip-vit-large-patch14-336``) at
``config.img_size`` pixels, ``vision_proj``, ``img2emb``, ``interleav_wrap(img_list, text_list)``
returning ``(embeds, attention_mask, targets, im_mask)`` for ``<ImageHere>`` texts, and
``forward(inputs_embeds=..., attention_mask=..., labels=..., im_mask=...)``.
Rotary tables are computed in ``forward`` (no buffers), so loading on the meta device is safe.
"""

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_internlm_xcomposer2 import InternLMXcomposer2Config


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


class InternLM2RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x):
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary(q, k, positions, theta):
    dim = q.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, device=q.device, dtype=torch.float32) / dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]
    cos, sin = emb.cos().to(q.dtype), emb.sin().to(q.dtype)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class InternLM2Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads, self.num_kv = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.groups, self.theta = self.num_heads // self.num_kv, config.rope_theta
        lora = dict(lora_r=config.plora_r, lora_alpha=config.plora_alpha)
        self.wqkv = PLoRA(config.hidden_size, (self.num_heads + 2 * self.num_kv) * self.head_dim, **lora)
        self.wo = PLoRA(self.num_heads * self.head_dim, config.hidden_size, **lora)

    def forward(self, x, mask, positions, im_mask=None):
        b, n, _ = x.shape
        qkv = self.wqkv(x, im_mask).view(b, n, self.num_kv, self.groups + 2, self.head_dim)
        q = qkv[..., : self.groups, :].reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = qkv[..., -2, :].transpose(1, 2).repeat_interleave(self.groups, dim=1)
        v = qkv[..., -1, :].transpose(1, 2).repeat_interleave(self.groups, dim=1)
        q, k = rotary(q, k, positions, self.theta)
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(b, n, -1), im_mask)


class InternLM2MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        lora = dict(lora_r=config.plora_r, lora_alpha=config.plora_alpha)
        self.w1 = PLoRA(config.hidden_size, config.intermediate_size, **lora)
        self.w3 = PLoRA(config.hidden_size, config.intermediate_size, **lora)
        self.w2 = PLoRA(config.intermediate_size, config.hidden_size, **lora)

    def forward(self, x, im_mask=None):
        return self.w2(nn.functional.silu(self.w1(x, im_mask)) * self.w3(x, im_mask), im_mask)


class InternLM2DecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = InternLM2Attention(config)
        self.feed_forward = InternLM2MLP(config)
        self.attention_norm = InternLM2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.ffn_norm = InternLM2RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, mask, positions, im_mask=None):
        x = x + self.attention(self.attention_norm(x), mask, positions, im_mask)
        return x + self.feed_forward(self.ffn_norm(x), im_mask)


class InternLM2Model(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList([InternLM2DecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = InternLM2RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, im_mask=None):
        x = self.tok_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        b, n, _ = x.shape
        attention_mask = torch.ones(b, n, dtype=torch.bool, device=x.device) if attention_mask is None else attention_mask.bool()
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        allowed = causal[None] & attention_mask[:, None, :]
        allowed |= torch.eye(n, dtype=torch.bool, device=x.device)[None]  # padded rows attend to themselves
        mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(~allowed, torch.finfo(x.dtype).min)
        for layer in self.layers:
            x = layer(x, mask[:, None], positions, im_mask)
        return self.norm(x)


class CLIPVisionTower(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.vision_tower = CLIPVisionModel(CLIPVisionConfig(image_size=config.img_size, **config.vision_config))

    def forward(self, images):
        hidden = self.vision_tower(images, output_hidden_states=True).hidden_states[-1]
        return hidden[:, 1:]


class InternLMXComposer2ForCausalLM(PreTrainedModel):
    config_class = InternLMXcomposer2Config
    base_model_prefix = "model"
    _no_split_modules = ["InternLM2DecoderLayer", "CLIPEncoderLayer"]

    def __init__(self, config):
        super().__init__(config)
        self.model = InternLM2Model(config)
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.vit = CLIPVisionTower(config)
        vis = config.vision_config["hidden_size"]
        self.vision_proj = nn.Sequential(nn.Linear(vis, config.hidden_size), nn.GELU(),
                                         nn.Linear(config.hidden_size, config.hidden_size))
        self.tokenizer = None
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def get_input_embeddings(self):
        return self.model.tok_embeddings

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

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        im_mask = kwargs.get("im_mask")
        if im_mask is None:
            shape = (inputs_embeds if inputs_embeds is not None else input_ids).shape[:2]
            im_mask = torch.zeros(shape, dtype=torch.bool, device=self.device)
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                            im_mask=im_mask.bool())
        logits = self.output(hidden).float()
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                               labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)
