"""Stand-in remote-code checkpoints: tiny, random-init, written by geotune, loaded with ``trust_remote_code``.

The original InternVL2 / Mini-InternVL (``InternVLChatModel``) and InternLM-XComposer2-VL checkpoints
ship their own modeling code and cannot be downloaded here. These builders write checkpoint folders in
the same shape: ``config.json`` with ``auto_map``, the modeling ``.py`` files beside the weights
(``model.safetensors``) and a tokenizer, so the ``internvl_remote`` and ``xcomposer2`` adapters load
them exactly as they load the real ones. The modules reproduce the documented interfaces (module
names, ``img_context_token_id``, ``image_flags``, ``interleav_wrap``, ``im_mask``, Partial LoRA,
InternLM2's names, generation with a KV cache), not the original code. They are written for
transformers 5 and need no compat fix (beyond ``required_image_flags``, which the original needs too).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from finetune.files import atomic_folder

HERE = Path(__file__).resolve().parent
PHI3_TOKENS = ["<|user|>", "<|assistant|>", "<|end|>", "<|system|>"]
INTERNLM2_TOKENS = ["<s>"]  # InternLM2's BOS; <|im_start|>/<|im_end|> are in the tiny tokenizer already
IXC2_TOKENS = ["[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_141]", "<s>"]


def _tokenizer(extra_tokens=()):
    from finetune.models.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.padding_side = "right"
    if extra_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_tokens)})
    return tokenizer


def _write(out_dir, model, tokenizer, code_files, auto_map) -> Path:
    """Save weights + tokenizer + modeling code with ``auto_map`` into ``out_dir``, atomically."""
    out = Path(out_dir)
    with atomic_folder(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name in code_files:
            shutil.copy(HERE / name, tmp / name)
        config = json.loads((tmp / "config.json").read_text())
        config["auto_map"] = auto_map
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


INTERNVL_LLMS = {  # llm -> (architecture, template, extra tokens)
    "qwen2": ("Qwen2ForCausalLM", "Hermes-2", ()),
    "phi3": ("Phi3ForCausalLM", "phi3-chat", PHI3_TOKENS),
    "internlm2": ("InternLM2ForCausalLM", "internlm2-chat", INTERNLM2_TOKENS),
}
# The remote-code InternLM2 ships beside both VL models' code (InternVL2-2B's LLM, XComposer2's LLM).
INTERNLM2_CODE = ["configuration_internlm2.py", "modeling_internlm2.py"]
INTERNVL_CODE = ["configuration_internvl_chat.py", "modeling_internvl_chat.py", *INTERNLM2_CODE]


def build_standin_internvl_chat(out_dir, seed: int = 0, llm: str = "qwen2", image_size: int = 56) -> Path:
    """A tiny ``InternVLChatModel`` checkpoint: InternViT (14-px patches) + an LLM of ``INTERNVL_LLMS``.

    ``qwen2``: Hermes-2 (InternVL2-1B); ``phi3``: phi3-chat (Mini-InternVL-4B); ``internlm2``: the
    remote-code InternLM2 with internlm2-chat and a ``<s>`` BOS (Mini-InternVL-Chat-2B-V1-5, InternVL2-2B).
    ``image_size`` 56 gives 4 image tokens per tile (the real 448 gives 256).
    """
    import torch

    from finetune.models.standins.configuration_internvl_chat import InternVLChatConfig
    from finetune.models.standins.modeling_internvl_chat import InternVLChatModel

    if llm not in INTERNVL_LLMS:
        raise ValueError(f"stand-in InternVL: llm '{llm}' is not one of {', '.join(INTERNVL_LLMS)}")
    arch, template, tokens = INTERNVL_LLMS[llm]
    tokenizer = _tokenizer(tokens)
    if llm == "internlm2":
        tokenizer.bos_token = "<s>"
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    config = InternVLChatConfig(
        vision_config=dict(image_size=image_size, patch_size=14, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2),
        llm_config=dict(model_type=llm, architectures=[arch], **text),
        template=template, force_image_size=image_size,
        dynamic_image_size=True, use_thumbnail=True, max_dynamic_patch=6, downsample_ratio=0.5,
    )
    config.architectures = ["InternVLChatModel"]
    torch.manual_seed(seed)
    model = InternVLChatModel(config).eval()
    auto_map = {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                "AutoModel": "modeling_internvl_chat.InternVLChatModel",
                "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel"}
    return _write(out_dir, model, tokenizer, INTERNVL_CODE, auto_map)


def build_standin_xcomposer2(out_dir, seed: int = 0, image_size: int = 56) -> Path:
    """A tiny InternLM-XComposer2-VL checkpoint (CLIP 14-px patches: 16 image tokens at 56 px; 1,225 at 490)."""
    import torch

    from finetune.models.standins.configuration_internlm_xcomposer2 import InternLMXcomposer2Config
    from finetune.models.standins.modeling_internlm_xcomposer2 import InternLMXComposer2ForCausalLM

    tokenizer = _tokenizer(IXC2_TOKENS)
    tokenizer.bos_token = "<s>"
    config = InternLMXcomposer2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, img_size=image_size, plora_r=4, plora_alpha=8, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("[UNUSED_TOKEN_145]"),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14),
    )
    config.architectures = ["InternLMXComposer2ForCausalLM"]
    torch.manual_seed(seed)
    model = InternLMXComposer2ForCausalLM(config).eval()
    auto_map = {"AutoConfig": "configuration_internlm_xcomposer2.InternLMXcomposer2Config",
                "AutoModel": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
                "AutoModelForCausalLM": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM"}
    code = ["configuration_internlm_xcomposer2.py", "modeling_internlm_xcomposer2.py", *INTERNLM2_CODE]
    return _write(out_dir, model, tokenizer, code, auto_map)
