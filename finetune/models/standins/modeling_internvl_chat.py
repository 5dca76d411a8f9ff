"""Stand-in ``InternVLChatModel`` (written for geotune; mirrors OpenGVLab's public interface).

What it reproduces: ``vision_model`` (InternViT naming: ``encoder.layers.N.attn.qkv``, ``attn.proj``,
``mlp.fc1``, ``mlp.fc2``), ``mlp1`` projector after a 0.5 pixel-unshuffle, ``language_model`` (a
transformers causal LM: Qwen2 for Hermes-2, Phi3 for phi3-chat; or the remote-code InternLM2 of
``modeling_internlm2.py`` for internlm2-chat, as in Mini-InternVL-Chat-2B-V1-5 / InternVL2-2B),
``img_context_token_id`` set by the caller, and
``forward(pixel_values, input_ids, attention_mask, image_flags, labels)`` that *requires* ``image_flags``
and writes the ViT embeddings over the ``<IMG_CONTEXT>`` positions.
``generate`` takes the same inputs and returns only new tokens, as the original does.
"""

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast

from .configuration_internvl_chat import InternVisionConfig, InternVLChatConfig
from .modeling_internlm2 import InternLM2ForCausalLM


class InternVisionEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embedding = nn.Conv2d(config.num_channels, config.hidden_size, config.patch_size, config.patch_size)
        n = (config.image_size // config.patch_size) ** 2
        self.position_embedding = nn.Parameter(torch.zeros(1, n + 1, config.hidden_size))

    def forward(self, pixel_values):
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(patches.shape[0], -1, -1).to(patches.dtype)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.to(patches.dtype)


class InternAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class InternMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class InternVisionEncoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = InternAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = InternMLP(config)
        self.ls1 = nn.Parameter(torch.ones(config.hidden_size))
        self.ls2 = nn.Parameter(torch.ones(config.hidden_size))

    def forward(self, x):
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class InternVisionEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList([InternVisionEncoderLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class InternVisionModel(PreTrainedModel):
    config_class = InternVisionConfig
    main_input_name = "pixel_values"

    def __init__(self, config):
        super().__init__(config)
        self.embeddings = InternVisionEmbeddings(config)
        self.encoder = InternVisionEncoder(config)
        self.post_init()

    def forward(self, pixel_values, output_hidden_states=False, return_dict=True):
        return BaseModelOutput(last_hidden_state=self.encoder(self.embeddings(pixel_values)))


class InternVLChatModel(PreTrainedModel):
    config_class = InternVLChatConfig
    main_input_name = "pixel_values"
    base_model_prefix = "language_model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternVisionEncoderLayer", "Qwen2DecoderLayer", "Phi3DecoderLayer", "InternLM2DecoderLayer"]

    def __init__(self, config):
        super().__init__(config)
        image_size = config.force_image_size or config.vision_config.image_size
        self.patch_size = config.vision_config.patch_size
        self.select_layer, self.template = config.select_layer, config.template
        self.downsample_ratio, self.ps_version = config.downsample_ratio, config.ps_version
        self.num_image_token = int((image_size // self.patch_size) ** 2 * (config.downsample_ratio ** 2))
        self.vision_model = InternVisionModel(config.vision_config)
        if config.llm_config.architectures[0] == "InternLM2ForCausalLM":
            self.language_model = InternLM2ForCausalLM(config.llm_config)
        else:
            self.language_model = AutoModelForCausalLM.from_config(config.llm_config)
        vit_hidden = config.vision_config.hidden_size * int(1 / config.downsample_ratio) ** 2
        llm_hidden = config.llm_config.hidden_size
        self.mlp1 = nn.Sequential(nn.LayerNorm(vit_hidden), nn.Linear(vit_hidden, llm_hidden), nn.GELU(),
                                  nn.Linear(llm_hidden, llm_hidden))
        self.img_context_token_id = None
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def pixel_shuffle(self, x, scale_factor=0.5):
        n, w, h, c = x.size()
        x = x.view(n, w, int(h * scale_factor), int(c / scale_factor))
        x = x.permute(0, 2, 1, 3).contiguous()
        x = x.view(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
        return x.permute(0, 2, 1, 3).contiguous()

    def extract_feature(self, pixel_values):
        vit_embeds = self.vision_model(pixel_values=pixel_values).last_hidden_state[:, 1:, :]
        h = w = int(vit_embeds.shape[1] ** 0.5)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], h, w, -1)
        vit_embeds = self.pixel_shuffle(vit_embeds, scale_factor=self.downsample_ratio)
        vit_embeds = vit_embeds.reshape(vit_embeds.shape[0], -1, vit_embeds.shape[-1])
        return self.mlp1(vit_embeds)

    def _merge(self, input_ids, vit_embeds):
        input_embeds = self.language_model.get_input_embeddings()(input_ids).clone()
        b, n, c = input_embeds.shape
        input_embeds = input_embeds.reshape(b * n, c)
        selected = input_ids.reshape(b * n) == self.img_context_token_id
        input_embeds[selected] = input_embeds[selected] * 0.0 + vit_embeds.reshape(-1, c).to(input_embeds.dtype)
        return input_embeds.reshape(b, n, c)

    def forward(self, pixel_values, input_ids=None, attention_mask=None, position_ids=None, image_flags=None,
                past_key_values=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        image_flags = image_flags.squeeze(-1)  # the original fails the same way without image_flags
        vit_embeds = self.extract_feature(pixel_values)[image_flags == 1]
        input_embeds = self._merge(input_ids, vit_embeds)
        outputs = self.language_model(inputs_embeds=input_embeds, attention_mask=attention_mask,
                                      position_ids=position_ids, use_cache=use_cache,
                                      output_hidden_states=output_hidden_states)
        logits = outputs.logits
        loss = None
        if labels is not None:
            shift_logits = logits[..., :-1, :].contiguous().view(-1, logits.shape[-1]).float()
            shift_labels = labels[..., 1:].contiguous().view(-1).to(shift_logits.device)
            loss = nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states)

    @torch.no_grad()
    def generate(self, pixel_values=None, input_ids=None, attention_mask=None, visual_features=None,
                 generation_config=None, output_hidden_states=None, **generate_kwargs):
        assert self.img_context_token_id is not None
        if pixel_values is not None:
            vit_embeds = visual_features if visual_features is not None else self.extract_feature(pixel_values)
            input_embeds = self._merge(input_ids, vit_embeds)
        else:
            input_embeds = self.language_model.get_input_embeddings()(input_ids)
        return self.language_model.generate(inputs_embeds=input_embeds, attention_mask=attention_mask,
                                            generation_config=generation_config or GenerationConfig(),
                                            output_hidden_states=output_hidden_states, use_cache=True, **generate_kwargs)
