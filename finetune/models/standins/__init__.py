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


# InternLM2's chat pieces as the Hub's tokenizer_config.json declares them: added tokens at the ids of
# sentencepiece pieces ([UNUSED_TOKEN_145] is <|im_end|>), InternVL's image tokens past the pieces.
SP_PIECES = ["[UNUSED_TOKEN_141]", "[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_146]"]
SP_ADDED_AT_PIECES = {"[UNUSED_TOKEN_145]": "<|im_end|>", "[UNUSED_TOKEN_146]": "<|im_start|>"}
SP_ADDED_AFTER = ["<img>", "</img>", "<IMG_CONTEXT>"]


def write_internlm2_sentencepiece_tokenizer(out_dir, class_named_by: str = "tokenizer_class",
                                            vocab_size: int = 400) -> Path:
    """An InternLM2 tokenizer as the Hub ships it: ``tokenizer.model`` + ``tokenization_internlm2.py``, no
    ``tokenizer.json``; BPE with byte fallback and no normalisation (trained here, offline), ``<s>`` BOS, the chat tokens at the
    ids of sentencepiece pieces, ``<img>``/``</img>``/``<IMG_CONTEXT>`` after them.

    ``class_named_by`` says where the remote class is named: ``tokenizer_class`` (``tokenizer_config.json``
    names it, no ``auto_map``), ``config_auto_map`` (``config.json``'s ``auto_map``, which must exist) or
    ``tokenizer_auto_map`` (``tokenizer_config.json``'s ``auto_map``).
    """
    import io

    import sentencepiece as spm

    from finetune.models.tiny import _CORPUS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(_CORPUS[i : i + 12]) for i in range(0, len(_CORPUS), 12)] * 4
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, user_defined_symbols=SP_PIECES, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        character_coverage=1.0, num_threads=1, minloglevel=2,
        # LLaMA-style, as InternLM2's: text kept as is ("\n" through byte fallback), "▁" prefixed.
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
    )
    (out / "tokenizer.model").write_bytes(model.getvalue())
    pieces = spm.SentencePieceProcessor(model_proto=model.getvalue())
    added = {0: "<unk>", 1: "<s>", 2: "</s>"}
    added |= {pieces.piece_to_id(piece): token for piece, token in SP_ADDED_AT_PIECES.items()}
    added |= {pieces.get_piece_size() + i: token for i, token in enumerate(SP_ADDED_AFTER)}
    config = {
        "added_tokens_decoder": {str(i): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True} for i, token in sorted(added.items())},
        "additional_special_tokens": [*SP_ADDED_AT_PIECES.values(), *SP_ADDED_AFTER],
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False, "model_max_length": 4096, "tokenizer_class": "InternLM2Tokenizer",
    }
    reference = {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]}
    if class_named_by == "tokenizer_auto_map":
        config["auto_map"] = reference
    elif class_named_by == "config_auto_map":
        raw = json.loads((out / "config.json").read_text())
        raw["auto_map"] = {**raw.get("auto_map", {}), **reference}
        (out / "config.json").write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    elif class_named_by != "tokenizer_class":
        raise ValueError(f"class_named_by: '{class_named_by}' is not tokenizer_class, config_auto_map or tokenizer_auto_map")
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copy(HERE / "tokenization_internlm2.py", out / "tokenization_internlm2.py")
    return out


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


def build_standin_xcomposer2(out_dir, seed: int = 0) -> Path:
    """A tiny InternLM-XComposer2-VL checkpoint (CLIP 14-px patches: 16 image tokens at 56 px; 1,225 at 490).

    Its config, like the original's, has no vision fields: the CLIP sizes are constants of its modeling code.
    """
    import torch

    from finetune.models.standins.configuration_internlm_xcomposer2 import InternLMXcomposer2Config
    from finetune.models.standins.modeling_internlm_xcomposer2 import InternLMXComposer2ForCausalLM

    tokenizer = _tokenizer(IXC2_TOKENS)
    tokenizer.bos_token = "<s>"
    config = InternLMXcomposer2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, plora_r=4, plora_alpha=8, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("[UNUSED_TOKEN_145]"),
    )
    config.architectures = ["InternLMXComposer2ForCausalLM"]
    torch.manual_seed(seed)
    model = InternLMXComposer2ForCausalLM(config).eval()
    auto_map = {"AutoConfig": "configuration_internlm_xcomposer2.InternLMXcomposer2Config",
                "AutoModel": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
                "AutoModelForCausalLM": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM"}
    code = ["configuration_internlm_xcomposer2.py", "modeling_internlm_xcomposer2.py", *INTERNLM2_CODE]
    return _write(out_dir, model, tokenizer, code, auto_map)
