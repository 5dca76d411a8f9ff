"""Stand-in ``InternLM2Config`` (written for geotune; mirrors the public InternLM2 interface)."""

from transformers import PretrainedConfig


class InternLM2Config(PretrainedConfig):
    model_type = "internlm2"

    def __init__(self, vocab_size=92544, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                 num_attention_heads=16, num_key_value_heads=8, max_position_embeddings=32768, rms_norm_eps=1e-5,
                 rope_theta=1000000, pad_token_id=2, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                 **kwargs):
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                         tie_word_embeddings=tie_word_embeddings, **kwargs)
        self.vocab_size, self.hidden_size, self.intermediate_size = vocab_size, hidden_size, intermediate_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        self.num_key_value_heads, self.max_position_embeddings = num_key_value_heads, max_position_embeddings
        self.rms_norm_eps, self.rope_theta = rms_norm_eps, rope_theta
