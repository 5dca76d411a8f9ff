"""Original Mini-InternVL / InternVL2 checkpoints (``InternVLChatModel``, remote code).

Loaded only with ``model.trust_remote_code: true``, through ``finetune.models.compat.load_remote_model``
and ``load_tokenizer`` (fixes for transformers 5). Images: dynamic 448-px tiling with a thumbnail; each
image becomes ``<img>`` + ``num_image_token``·tiles x ``<IMG_CONTEXT>`` + ``</img>``. Templates Hermes-2
(Qwen2), internlm2-chat (InternLM2), phi3-chat (Phi-3) and internvl2_5 (InternVL2.5 / InternVL3: the
ChatML layout, ``<s>`` first when the tokenizer adds one). ``forward`` always gets ``image_flags``.
Tested against geotune's stand-in checkpoints (``finetune.models.standins``), not the real weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from finetune.models.adapters import supervision as sv
from finetune.models.adapters.internvl_hf import resolve_dtype
from finetune.models.compat import load_remote_model, load_tokenizer

IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# InternVL's conversation templates (internvl_chat/internvl/conversation.py) by the name config.json gives.
TEMPLATES = {"Hermes-2": sv.HERMES2, "internlm2-chat": sv.INTERNLM2_CHAT, "phi3-chat": sv.PHI3_CHAT,
             "internvl2_5": sv.HERMES2}
# InternVL's preprocess_internvl2_5 prepends <s> exactly when the tokenizer adds one (InternLM2.5 LLMs).
BOS_FROM_TOKENIZER = {"internvl2_5"}
# The system messages of InternVL2's templates and of internvl2_5's.
SYSTEM_MESSAGE = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
SYSTEM_MESSAGES = {"internvl2_5": "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"}
PARTS = {"vision": ["vision_model"], "projector": ["mlp1"], "llm": ["language_model"]}
PROCESSOR_FILE = "geotune_processor.json"


@dataclass
class RemoteProcessor:
    """Tokenizer + image settings of a remote-code checkpoint (the role of an HF processor)."""

    tokenizer: object
    image_size: int
    num_image_token: int = 0
    template: str = "Hermes-2"
    system_message: str | None = None
    max_tiles: int = 6
    use_thumbnail: bool = True
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def save_pretrained(self, out_dir) -> None:
        self.tokenizer.save_pretrained(out_dir)
        settings = {k: v for k, v in asdict(self).items() if k != "tokenizer"}
        (Path(out_dir) / PROCESSOR_FILE).write_text(json.dumps(settings, indent=2) + "\n")

    def pixels(self, image) -> torch.Tensor:
        """Resize to ``image_size`` square (bicubic), scale to 0-1, normalise: (3, S, S)."""
        from torchvision.transforms import functional as F

        image = image.convert("RGB").resize((self.image_size, self.image_size), 3)  # 3 = bicubic
        return F.normalize(F.to_tensor(image), self.mean, self.std)


def load_remote(model_cfg, family: str):
    """The model through compat's loader when present, else plain ``AutoModel`` with remote code."""
    path = Path(model_cfg.path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"model.path: no checkpoint at '{path}' (config.json missing)")
    if not model_cfg.trust_remote_code:
        raise ValueError(
            f"model.trust_remote_code: the {family} adapter runs the checkpoint's own code in '{path}'; "
            "set model.trust_remote_code=true in the recipe if you trust it"
        )
    model, _fixes = load_remote_model(path, family=family, dtype=resolve_dtype(model_cfg.dtype),
                                      vision_tower_path=model_cfg.vision_tower_path)
    return model


def load_remote_tokenizer(model_cfg):
    """The checkpoint's tokenizer through compat's ``load_tokenizer``: its own class where transformers 5's
    ``AutoTokenizer`` would build a generic one with other ids (InternLM2's sentencepiece tokenizer)."""
    tokenizer, _fixes = load_tokenizer(model_cfg.path, trust_remote_code=True)
    return tokenizer


def chat_format(processor) -> sv.ChatFormat:
    """The layout of ``processor.template`` for this tokenizer (internvl2_5: ``<s>`` iff it adds one)."""
    fmt = TEMPLATES[processor.template]
    if processor.template in BOS_FROM_TOKENIZER:
        tok = processor.tokenizer
        fmt = replace(fmt, bos=bool(getattr(tok, "add_bos_token", False)) and tok.bos_token is not None)
    return fmt


def load(model_cfg):
    template = model_cfg.template
    if template is not None and template not in TEMPLATES:  # before the weights load
        raise ValueError(f"model.template: '{template}' is not one of {', '.join(TEMPLATES)}")
    model = load_remote(model_cfg, "internvl_remote")
    tokenizer = load_remote_tokenizer(model_cfg)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    config = model.config
    template = template or config.template
    if template not in TEMPLATES:
        raise ValueError(f"{Path(model_cfg.path) / 'config.json'}: template '{template}' is not one of "
                         f"{', '.join(TEMPLATES)}; set model.template to the one this checkpoint was trained with")
    default_system = SYSTEM_MESSAGES.get(template, SYSTEM_MESSAGE)
    processor = RemoteProcessor(
        tokenizer=tokenizer, image_size=int(config.force_image_size or config.vision_config.image_size),
        num_image_token=int(model.num_image_token), template=template,
        system_message=default_system if model_cfg.system_message is None else model_cfg.system_message,
        max_tiles=int(model_cfg.max_dynamic_patch), use_thumbnail=bool(getattr(config, "use_thumbnail", True)),
    )
    return model, processor


def tile_grid(width: int, height: int, max_num: int, image_size: int, min_num: int = 1) -> tuple[int, int]:
    """InternVL's ``dynamic_preprocess`` grid: the (cols, rows) whose aspect ratio is closest to the image's."""
    ratios = sorted({(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                     if min_num <= i * j <= max_num}, key=lambda r: r[0] * r[1])
    aspect, best, best_diff = width / height, (1, 1), float("inf")
    for ratio in ratios:
        diff = abs(aspect - ratio[0] / ratio[1])
        if diff < best_diff:
            best, best_diff = ratio, diff
        elif diff == best_diff and width * height > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
            best = ratio
    return best


def tile_count(size, max_num: int, image_size: int, use_thumbnail: bool) -> int:
    cols, rows = tile_grid(size[0], size[1], max_num, image_size)
    return cols * rows + (1 if use_thumbnail and cols * rows != 1 else 0)


def dynamic_tiles(image, max_num: int, image_size: int, use_thumbnail: bool) -> list:
    """Cut ``image`` into ``cols x rows`` tiles of ``image_size`` (+ a whole-image thumbnail)."""
    cols, rows = tile_grid(*image.size, max_num, image_size)
    resized = image.resize((cols * image_size, rows * image_size))
    tiles = [resized.crop((c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size))
             for r in range(rows) for c in range(cols)]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles


def _tiles_per_image(processor, n_images: int, max_patches: int | None = None) -> int:
    budget = processor.max_tiles if max_patches is None else max_patches
    return max(1, budget // max(1, n_images))


def _image_pixels(processor, images, max_num: int) -> tuple[list[int], torch.Tensor]:
    tiles = [dynamic_tiles(im.convert("RGB"), max_num, processor.image_size, processor.use_thumbnail) for im in images]
    pixels = torch.stack([processor.pixels(t) for group in tiles for t in group])
    return [len(group) for group in tiles], pixels


def _span_ids(processor, tiles: int) -> list[int]:
    tok = processor.tokenizer
    start, context, end = tok.convert_tokens_to_ids([IMG_START, IMG_CONTEXT, IMG_END])
    return sv.image_span(start, context, end, processor.num_image_token * tiles)


def _bos(processor, fmt) -> int | None:
    return processor.tokenizer.bos_token_id if fmt.bos else None


def _pixels_and_flags(processor, images) -> tuple[list[int], dict]:
    if not images:  # one blank tile, flagged 0 (encode_for_training's docstring)
        blank = torch.zeros(1, 3, processor.image_size, processor.image_size)
        return [], {"pixel_values": blank, "image_flags": torch.tensor([0], dtype=torch.long)}
    tiles, pixels = _image_pixels(processor, images, _tiles_per_image(processor, len(images)))
    return tiles, {"pixel_values": pixels, "image_flags": torch.ones(sum(tiles), dtype=torch.long)}


def pixels_for_training(processor, images, *, model_cfg=None) -> dict:
    """The image tensors of ``encode_for_training`` alone: ids need no pixels here."""
    return _pixels_and_flags(processor, images)[1]


def encode_for_training(processor, record, images, max_length: int, *, model_cfg=None, too_long: str = "truncate") -> dict:
    """Ids, labels (answers only), ``pixel_values`` (tiles, 3, S, S) and ``image_flags`` (tiles,).

    A text-only record gets one blank tile with ``image_flags`` 0, as InternVL's own fine-tuning does,
    because ``InternVLChatModel.forward`` always runs the vision tower.
    """
    turns = sv.conversation_turns(record)
    max_num = _tiles_per_image(processor, len(images))
    if images and not sv.has_pixels(images):  # (width, height) sizes: the length pass
        tiles = [tile_count(size, max_num, processor.image_size, processor.use_thumbnail) for size in sv.image_sizes(images)]
        out = {}
    else:
        tiles, out = _pixels_and_flags(processor, images)
    fmt = chat_format(processor)
    pieces = sv.conversation_pieces(turns, fmt, [_span_ids(processor, n) for n in tiles], processor.system_message)
    ids, labels, truncated = sv.tokenize_pieces(processor.tokenizer, pieces, max_length, too_long, _bos(processor, fmt))
    out.update(input_ids=ids, labels=labels, truncated=truncated)
    return out


def generation_prompt(processor, question: str, n_images: int = 1) -> str:
    """System + user turn (``<image>`` placeholders, expanded by ``encode``) + the assistant's opening."""
    fmt = chat_format(processor)
    system = fmt.system.format(processor.system_message) if processor.system_message else ""
    user = fmt.user.format("<image>\n" * n_images + question)
    return (processor.tokenizer.bos_token if fmt.bos else "") + system + user + fmt.assistant_prefix


def encode(processor, prompts: Sequence[str], images: Sequence[Sequence] | None = None, max_patches: int | None = None):
    """Left-padded batch (``input_ids``, ``attention_mask``, ``pixel_values``) for ``generate``.

    Note: ``forward`` also needs ``image_flags``; ``generate`` does not take them.
    """
    from transformers import BatchFeature

    tok = processor.tokenizer
    rows, pixels = [], []
    for i, prompt in enumerate(prompts):
        sample_images = list(images[i]) if images else []
        max_num = _tiles_per_image(processor, len(sample_images), max_patches)
        tiles, pix = _image_pixels(processor, sample_images, max_num) if sample_images else ([], None)
        if pix is not None:
            pixels.append(pix)
        parts = prompt.split("<image>")
        ids = tok(parts[0], add_special_tokens=False)["input_ids"]
        for n, part in zip(tiles, parts[1:], strict=True):
            ids += _span_ids(processor, n) + tok(part, add_special_tokens=False)["input_ids"]
        rows.append(ids)
    longest = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batch = {"input_ids": torch.tensor([[pad] * (longest - len(r)) + r for r in rows]),
             "attention_mask": torch.tensor([[0] * (longest - len(r)) + [1] * len(r) for r in rows])}
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
    return BatchFeature(batch)


def stop_token_ids(processor, fmt: sv.ChatFormat, eos_token_id) -> list[int]:
    """``eos_token_id`` (an id or a list) and the template's end-of-turn token.

    The original ``chat`` stops at the end of turn: InternLM2's EOS is ``</s>``, not ``<|im_end|>``,
    so without it an answer runs on into a made-up next turn.
    """
    ids = list(eos_token_id) if isinstance(eos_token_id, (list, tuple)) else [eos_token_id]
    ids.append(processor.tokenizer.convert_tokens_to_ids(fmt.assistant_end))
    return [i for i in dict.fromkeys(ids) if i is not None]


def generate(model, processor, batch, **gen_kwargs) -> torch.Tensor:
    """``InternVLChatModel.generate`` on an ``encode`` batch: it returns only the new tokens (the LM
    generates from ``inputs_embeds``), stopping at the end of turn."""
    fmt = chat_format(processor)
    gen_kwargs["eos_token_id"] = stop_token_ids(processor, fmt, gen_kwargs.get("eos_token_id"))
    return model.generate(**batch, **gen_kwargs)


def image_token_id(model) -> int:
    return int(model.img_context_token_id)


def template_tokens(processor) -> list[str]:
    """The special tokens of this template and of the image spans (and ``<s>`` where it comes first)."""
    fmt = chat_format(processor)
    bos = [processor.tokenizer.bos_token] if fmt.bos else []
    return [*bos, *sv.format_special_tokens(fmt), IMG_START, IMG_CONTEXT, IMG_END]


def model_parts(model) -> dict:
    """Module-name prefixes of the vision tower, projector and language model."""
    return PARTS


def lora_targets(model, lora_cfg, train_llm: bool = True) -> list[str]:
    from finetune.lora import LLM_TARGETS, VISION_TARGETS, llm_family, resolve_lora_targets

    llm = model.config.llm_config
    family = llm_family((llm.architectures or [llm.model_type])[0])
    return resolve_lora_targets(model, PARTS, LLM_TARGETS[family], VISION_TARGETS["intern_vit"], lora_cfg, train_llm)


def apply_freeze(model, train_cfg) -> None:
    from finetune.lora import apply_freeze as freeze

    freeze(model, PARTS, train_cfg)
