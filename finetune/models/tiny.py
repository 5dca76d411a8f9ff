"""Tiny random-init checkpoints of the real architectures, built offline.

No weights can be downloaded here, so tests, the demo and benchmarks run on a checkpoint folder that
this module writes: a real ``InternVLForConditionalGeneration`` (2-layer vision tower, 2-layer Qwen2
text model) with a byte-level BPE tokenizer trained by ``tokenizers`` on an embedded corpus, and a
real ``InternVLProcessor``. The folder loads with ``AutoModelForImageTextToText.from_pretrained`` and
``AutoProcessor.from_pretrained`` exactly like an ``OpenGVLab/*-hf`` checkpoint. Same seed, same files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from finetune.files import atomic_folder

# The chat tokens of Qwen2/Hermes-2 and the image tokens the InternVL processor needs (DESIGN.md).
CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
IMAGE_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}

# Hermes-2 / Qwen2 chat layout, as in the InternVL -hf checkpoints; an image becomes one
# <IMG_CONTEXT> that the processor expands to <img> + N x <IMG_CONTEXT> + </img>.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Words the tokenizer should know as whole tokens: RS class names, question and answer vocabulary.
_CORPUS = """
agricultural airplane baseball diamond beach buildings chaparral dense residential forest freeway golf course
harbor intersection medium residential mobile home park overpass parking lot river runway sparse residential
storage tanks tennis court airport bare land bridge center church commercial desert farmland industrial
meadow mountain park playground pond port railway station resort school square stadium viaduct
Classify the given image in one of the following classes. Classes: Answer in one word or a short phrase.
Answer the question using a single word or phrase. Is there a road? Are there more buildings than water areas?
How many small buildings are there? Is it a rural or an urban area? yes no rural urban 0 1 2 3 4 5 6 7 8 9 10
Describe the image in detail. Where is the storage tank? What object is in this location? The image shows
a scene with roads, houses, trees, fields, water, boats, planes, cars and courts seen from above.
What is the capital of France? Paris. Write a short poem. Count the objects. red green blue white black gray
""".split()


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=CHAT_TOKENS + list(IMAGE_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the corpus as sentences so merges of whole words are learned deterministically.
    lines = [" ".join(_CORPUS[i : i + 12]) for i in range(0, len(_CORPUS), 12)] * 4
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def build_tiny_tokenizer(vocab_size: int = 600):
    """A ``PreTrainedTokenizerFast`` with the chat and InternVL image special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(vocab_size),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        extra_special_tokens=dict(IMAGE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=4096,
    )


def tiny_internvl_config(vocab_size: int, image_token_id: int, image_size: int = 64, patch_size: int = 8,
                         text_overrides: dict | None = None):
    """Config of a tiny InternVL: ``(image_size/patch_size * 0.5)^2`` image tokens per tile;
    ``text_overrides`` replaces fields of the 2-layer, 64-wide Qwen2 text model (e.g. a wider one)."""
    from transformers import InternVLConfig

    vision = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[image_size, image_size],
        patch_size=[patch_size, patch_size],
    )
    text = dict(
        model_type="qwen2",
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    ) | dict(text_overrides or {})
    seq_len = int((image_size // patch_size) ** 2 * 0.25)
    return InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        image_seq_length=seq_len,
        downsample_ratio=0.5,
    )


def build_tiny_internvl(out_dir: str | os.PathLike, seed: int = 0, image_size: int = 64, max_patches: int = 6,
                        text_overrides: dict | None = None) -> Path:
    """Write a tiny random-init HF-native InternVL checkpoint folder and return its path.

    Args:
        out_dir: folder to create (replaced atomically if it exists).
        seed: weight-init seed; the same seed writes the same files.
        image_size: tile size in pixels (448 for real checkpoints; 64 keeps CPU runs fast).
        max_patches: most tiles per image when dynamic tiling is on.
        text_overrides: text-model config fields to change (``tiny_internvl_config``).

    Returns:
        The checkpoint folder.
    """
    import torch
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    out = Path(out_dir)
    tokenizer = build_tiny_tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKENS["context_image_token"])
    config = tiny_internvl_config(len(tokenizer), image_token_id, image_size=image_size, text_overrides=text_overrides)
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    image_processor = GotOcr2ImageProcessor(
        size={"height": image_size, "width": image_size},
        crop_to_patches=False,
        min_patches=1,
        max_patches=max_patches,
        do_convert_rgb=True,
    )
    video_processor = InternVLVideoProcessor(size={"height": image_size, "width": image_size})
    processor = InternVLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_length=config.image_seq_length,
        chat_template=CHAT_TEMPLATE,
    )
    with atomic_folder(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "geotune_tiny.json").write_text(json.dumps({"family": "internvl-hf", "seed": seed}) + "\n")
    return out


CLIP_TOKENS = {"eos_token": "<|endoftext|>", "bos_token": "<|startoftext|>", "pad_token": "<pad>"}


def build_tiny_clip_tokenizer(vocab_size: int = 400):
    """A byte-level BPE ``PreTrainedTokenizerFast`` that wraps text as ``<|startoftext|> ... <|endoftext|>``.

    The end-of-text token is id 0: inside the vocabulary, and not 2, which transformers' CLIP takes as
    the legacy "pool at the highest id" marker.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [CLIP_TOKENS["eos_token"], CLIP_TOKENS["bos_token"], CLIP_TOKENS["pad_token"]]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    words = [w.lower() for w in _CORPUS]
    tok.train_from_iterator([" ".join(words[i:i + 12]) for i in range(0, len(words), 12)] * 4, trainer=trainer)
    bos, eos = specials[1], specials[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=77, **CLIP_TOKENS)


def tiny_clip_config(vocab_size: int, eos_token_id: int, bos_token_id: int, pad_token_id: int, image_size: int = 32,
                     patch_size: int = 8, width: int | None = None):
    """A 2-layer CLIP in both towers, QuickGELU like OpenAI's.

    Default: text 32-d, vision 48-d, MLPs 2x wide, 32-d embeddings (fast, for tests and the demo). With
    ``width`` both towers are ``width`` wide with ViT-B's proportions: MLPs 4x wide, 32-d heads, and
    ``width``-d embeddings. Wide enough (128+) that HarMA's r=16 adapters are under 5 % of the
    parameters, as on ViT-B/32 (3.8 %); at the default widths they are 11.5 %.
    """
    from transformers import CLIPConfig

    if width is not None and (width < 32 or width % 32):
        raise ValueError(f"tiny CLIP width must be a multiple of 32 (32-d heads), got {width}")
    text_w, vision_w, ratio, proj = (32, 48, 2, 32) if width is None else (width, width, 4, width)
    heads = (2, 2) if width is None else (width // 32, width // 32)
    text = dict(vocab_size=vocab_size, hidden_size=text_w, intermediate_size=ratio * text_w, num_hidden_layers=2,
                num_attention_heads=heads[0], max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=proj,
                eos_token_id=eos_token_id, bos_token_id=bos_token_id, pad_token_id=pad_token_id)
    vision = dict(hidden_size=vision_w, intermediate_size=ratio * vision_w, num_hidden_layers=2, num_attention_heads=heads[1],
                  image_size=image_size, patch_size=patch_size, hidden_act="quick_gelu", projection_dim=proj)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=proj)


def build_tiny_clip(out_dir: str | os.PathLike, seed: int = 0, image_size: int = 32, width: int | None = None) -> Path:
    """Write a tiny random-init ``CLIPModel`` with its tokenizer and ``CLIPImageProcessor``; returns the folder.

    ``width``: both towers' width (see :func:`tiny_clip_config`); None keeps the default 32/48.

    Reloads with ``CLIPModel.from_pretrained`` / ``AutoTokenizer.from_pretrained``. Same seed, same files.
    """
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    out = Path(out_dir)
    tokenizer = build_tiny_clip_tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in CLIP_TOKENS.items()}
    config = tiny_clip_config(len(tokenizer), ids["eos_token"], ids["bos_token"], ids["pad_token"], image_size,
                              width=width)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    with atomic_folder(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "geotune_tiny.json").write_text(json.dumps({"family": "clip", "seed": seed, "width": width}) + "\n")
    return out


FAMILIES = {"internvl-hf": build_tiny_internvl, "clip": build_tiny_clip}
