"""Stand-in InternLM2 causal LM (written for geotune; mirrors the public InternLM2 remote-code interface).

What it reproduces: the module names LoRA targets and checkpoints use (``model.tok_embeddings``,
``model.layers.N.attention.wqkv`` / ``attention.wo``, ``feed_forward.w1/w2/w3``, ``attention_norm``,
``ffn_norm``, ``model.norm``, ``output``), grouped-query attention with the fused ``wqkv`` layout
(per KV head: its query heads, then key, then value), rotary positions from the attention mask (so
left padding is exact), a KV cache, and ``GenerationMixin`` (``generate(inputs_embeds=...)`` returns
only the new tokens, as for any HF decoder). Mini-InternVL-Chat-2B-V1-5 / InternVL2-2B nest this LM
as ``language_model``; InternLM-XComposer2 builds the same decoder with Partial-LoRA linears and
passes ``im_mask`` through it. Rotary tables are computed in ``forward`` (no buffers), so loading on
the meta device is safe.
"""

import torch
from torch import nn
from transformers import DynamicCache, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_internlm2 import InternLM2Config

# transformers renamed the output's KV-cache field from ``past_key_values`` to ``cache`` in 5.x.
CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def project(linear, x, im_mask):
    """Plain linears take no ``im_mask``; XComposer2's Partial-LoRA linears (``PLoRA``) do."""
    return linear(x) if im_mask is None else linear(x, im_mask)


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
    def __init__(self, config, layer_idx, linear=nn.Linear):
        super().__init__()
        self.num_heads, self.num_kv = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.groups, self.theta, self.layer_idx = self.num_heads // self.num_kv, config.rope_theta, layer_idx
        self.wqkv = linear(config.hidden_size, (self.num_heads + 2 * self.num_kv) * self.head_dim, bias=False)
        self.wo = linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(self, x, mask, positions, cache=None, im_mask=None):
        b, n, _ = x.shape
        qkv = project(self.wqkv, x, im_mask).view(b, n, self.num_kv, self.groups + 2, self.head_dim)
        q = qkv[..., : self.groups, :].reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = qkv[..., -2, :].transpose(1, 2), qkv[..., -1, :].transpose(1, 2)
        q, k = rotary(q, k, positions, self.theta)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        k, v = k.repeat_interleave(self.groups, dim=1), v.repeat_interleave(self.groups, dim=1)
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return project(self.wo, out.transpose(1, 2).reshape(b, n, -1), im_mask)


class InternLM2MLP(nn.Module):
    def __init__(self, config, linear=nn.Linear):
        super().__init__()
        self.w1 = linear(config.hidden_size, config.intermediate_size, bias=False)
        self.w3 = linear(config.hidden_size, config.intermediate_size, bias=False)
        self.w2 = linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x, im_mask=None):
        gated = nn.functional.silu(project(self.w1, x, im_mask)) * project(self.w3, x, im_mask)
        return project(self.w2, gated, im_mask)


class InternLM2DecoderLayer(nn.Module):
    def __init__(self, config, layer_idx, linear=nn.Linear):
        super().__init__()
        self.attention = InternLM2Attention(config, layer_idx, linear)
        self.feed_forward = InternLM2MLP(config, linear)
        self.attention_norm = InternLM2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.ffn_norm = InternLM2RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, mask, positions, cache=None, im_mask=None):
        x = x + self.attention(self.attention_norm(x), mask, positions, cache, im_mask)
        return x + self.feed_forward(self.ffn_norm(x), im_mask)


def attention_bias(attention_mask, n_new, dtype):
    """Additive (b, 1, n_new, total) mask: causal over cached + new positions, padding masked.

    A padded query row attends to itself only, so it stays finite (its output is never used).
    """
    b, total = attention_mask.shape
    past = total - n_new
    query = torch.arange(past, total, device=attention_mask.device)[:, None]
    key = torch.arange(total, device=attention_mask.device)[None]
    allowed = (key <= query)[None] & attention_mask.bool()[:, None, :]
    allowed |= (key == query)[None]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


class InternLM2Model(nn.Module):
    def __init__(self, config, linear=nn.Linear):
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList([InternLM2DecoderLayer(config, i, linear) for i in range(config.num_hidden_layers)])
        self.norm = InternLM2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.gradient_checkpointing = False  # set by ``gradient_checkpointing_enable``

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, cache=None, im_mask=None):
        """Final hidden states; ``attention_mask`` covers the cached and the new positions."""
        x = self.tok_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        b, n, _ = x.shape
        past = cache.get_seq_length() if cache is not None else 0
        if attention_mask is None:
            attention_mask = torch.ones(b, past + n, dtype=torch.long, device=x.device)
        # Positions count real tokens only, so a left-padded prompt gets the positions it has alone.
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -n:]
        mask = attention_bias(attention_mask, n, x.dtype)
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = self._gradient_checkpointing_func(layer.__call__, x, mask, positions, cache, im_mask)
            else:
                x = layer(x, mask, positions, cache, im_mask)
        return self.norm(x)


class InternLM2ForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = InternLM2Config
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternLM2DecoderLayer"]

    def __init__(self, config, linear=nn.Linear):
        super().__init__(config)
        self.model = InternLM2Model(config, linear)
        self.output = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
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

    def set_input_embeddings(self, value):
        self.model.tok_embeddings = value

    def get_output_embeddings(self):
        return self.output

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                im_mask=None, past_key_values=None, **kwargs):
        """Logits (float32), the loss on shifted ``labels``, and the cache when ``use_cache``.

        ``cache`` is transformers >= 5.x's name for the KV cache, ``past_key_values`` the older one.
        Positions come from ``attention_mask``, so ``position_ids`` is accepted and not needed.
        """
        cache = cache if cache is not None else past_key_values
        if use_cache and cache is None:
            cache = DynamicCache()
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                            cache=cache, im_mask=im_mask)
        logits = self.output(hidden).float()
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                               labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)
        hidden_states = (hidden,) if output_hidden_states else None
        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=hidden_states,
                                      **{CACHE_FIELD: cache if use_cache else None})
