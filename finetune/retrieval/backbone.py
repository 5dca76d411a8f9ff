"""Load a local CLIP checkpoint with its tokenizer and pixel statistics, tokenise captions, and embed
an evaluation split (used by the training loop's validation and by ``eval/retrieval.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from finetune.retrieval.data import CLIP_MEAN, CLIP_STD, EvalSplit, ImageDataset, image_transform

CONTEXT_LENGTH = 77  # open_clip's context; HarMA pads every caption to it


@dataclass
class Backbone:
    clip: torch.nn.Module
    tokenizer: object
    image_size: int
    mean: tuple
    std: tuple
    context_length: int


def vit_b32_clip_config():
    """The public ViT-B/32 CLIP (OpenAI weights, GeoRSCLIP) as a ``CLIPConfig``, to build it without weights.

    Image 224, patch 32, width 768, 12 layers, 12 heads; text width 512, 12 layers, 8 heads, 77 tokens;
    QuickGELU; 512-d embeddings (HARMA.md section 1.1). Token ids keep transformers' defaults (end of text
    49407, the highest id, as in open_clip).
    """
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=CONTEXT_LENGTH, hidden_act="quick_gelu"),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32, hidden_act="quick_gelu"),
        projection_dim=512)


def load_backbone(path: str | Path, dtype: str = "auto") -> Backbone:
    """A ``CLIPModel`` from a local folder (never downloaded), its tokenizer and image statistics."""
    from transformers import AutoTokenizer, CLIPModel

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model.path '{folder}' holds no config.json: convert a checkpoint first "
                                "(`geotune convert-clip`) or build a tiny one (`geotune tiny-model --family clip`)")
    torch_dtype = {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16,
                   "float16": torch.float16}[dtype]  # HarMA trains in fp32
    clip = CLIPModel.from_pretrained(str(folder), dtype=torch_dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    mean, std = CLIP_MEAN, CLIP_STD
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        stats = json.loads(pre.read_text())
        mean, std = tuple(stats.get("image_mean", mean)), tuple(stats.get("image_std", std))
    context = min(CONTEXT_LENGTH, int(clip.config.text_config.max_position_embeddings))
    return Backbone(clip, tokenizer, int(clip.config.vision_config.image_size), mean, std, context)


def tokenize(tokenizer, captions: list[str], context_length: int) -> torch.Tensor:
    """Token ids padded to ``context_length`` (as open_clip does), longer captions cut."""
    return tokenizer(list(captions), padding="max_length", truncation=True, max_length=context_length,
                     return_tensors="pt")["input_ids"]


@torch.no_grad()
def embed_split(model, backbone: Backbone, split: EvalSplit, batch_size: int = 64,
                device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised embeddings of every image and every caption of ``split`` (fp32, on CPU)."""
    was_training = model.training
    model.eval()
    transform = image_transform(backbone.image_size, backbone.mean, backbone.std, train=False)
    images = ImageDataset(split, transform)
    image_feats, text_feats = [], []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([images[i] for i in range(start, min(start + batch_size, len(images)))])
        image_feats.append(model.encode_images(pixels.to(device)).float().cpu())
    for start in range(0, len(split.captions), batch_size):
        ids = tokenize(backbone.tokenizer, split.captions[start:start + batch_size], backbone.context_length)
        text_feats.append(model.encode_texts(ids.to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(image_feats), torch.cat(text_feats)
