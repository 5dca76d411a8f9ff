"""Stand-in ``InternLMXcomposer2Config`` (written for geotune; mirrors the public IXC2-VL interface).

As in the original, InternLM2's fields plus Partial-LoRA's and nothing about vision: no
``vision_config``, no image size (the modeling code holds them).
"""

from transformers import PretrainedConfig


class InternLMXcomposer2Config(PretrainedConfig):
    model_type = "internlmxcomposer2"

    def __init__(self, vocab_size=92544, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096, rms_norm_eps=1e-5,
                 rope_theta=1000000, rope_scaling=None, plora_r=8, plora_alpha=16, pad_token_id=0,
                 bos_token_id=1, eos_token_id=2, **kwargs):
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)
        self.vocab_size, self.hidden_size, self.intermediate_size = vocab_size, hidden_size, intermediate_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        self.num_key_value_heads, self.max_position_embeddings = num_key_value_heads, max_position_embeddings
        self.rms_norm_eps, self.rope_theta, self.rope_scaling = rms_norm_eps, rope_theta, rope_scaling
        self.plora_r, self.plora_alpha = plora_r, plora_alpha
