"""Dual-encoder features for image-text retrieval pairs (``backend: clip``, ``train.task: retrieval``).

A pair's feature is ``[f_image, f_text] / sqrt(2)``: the CLIP image embedding
(``get_image_features``) and caption embedding (``get_text_features``), each L2-normalised as the
retrieval losses and metrics see them, concatenated and scaled so the whole row is a unit vector (the
target backend's ``pooling: separate`` layout). Both halves are kept because a selector may weigh them
apart: COINCIDE reads ``[v, l]`` as one layer part (``n_layers: 1``) and takes its transferability from
the caption half.

The model is ``selection.features.model_path`` or ``model.path``: the backbone *before* training, so
every retrieval method (HarMA, LoRA, full, probe) selects from the same features. Images are read
through the one reader (``data.load_image``) and resized as at evaluation (no augmentation); the five
captions of an image share its image half, which is computed once per shard.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from finetune.distributed import process_state
from finetune.retrieval.backbone import load_backbone, tokenize
from finetune.retrieval.data import image_transform
from finetune.retrieval.model import RetrievalModel
from selection.features.inputs import nan_rows
from selection.features.store import model_fingerprint


class ClipBackend:
    """``backend: clip`` -- see the module docstring. Loads the dual encoder on first use."""

    dtype = "float16"

    def __init__(self, features_cfg, model_cfg):
        self.cfg = features_cfg
        self.path = Path(features_cfg.model_path or model_cfg.path)
        self.dtype_name = str(model_cfg.dtype) if model_cfg is not None else "auto"
        if not (self.path / "config.json").is_file():
            key = "selection.features.model_path" if features_cfg.model_path else "model.path"
            raise FileNotFoundError(f"{key}: '{self.path}' holds no config.json; the clip feature backend needs a "
                                    "local CLIP checkpoint (`geotune convert-clip`, or `geotune tiny-model --family clip`)")
        self._loaded = None

    def identity(self) -> dict:
        return {"backend": "clip", "model": model_fingerprint(self.path), "layout": "[image, text] / sqrt(2)"}

    def _load(self):
        if self._loaded is None:
            backbone = load_backbone(self.path, self.dtype_name)
            # The zero-shot wrapper: the same pooling and normalisation as retrieval training and eval.
            model = RetrievalModel(backbone.clip, "zeroshot", None, 0.07).to(process_state().device).eval()
            transform = image_transform(backbone.image_size, backbone.mean, backbone.std, train=False)
            self._loaded = (model, backbone, transform)
        return self._loaded

    @torch.no_grad()
    def encode(self, records, data, batch_size: int) -> tuple[np.ndarray, dict[str, int]]:
        model, backbone, transform = self._load()
        device = process_state().device
        images = {}  # image path -> row of unique_images
        for record in records:
            images.setdefault(str(data.image_path(record, 0)), record)
        image_rows = []
        unique = list(images.values())
        for start in range(0, len(unique), batch_size):
            pixels = torch.stack([transform(data.load_image(r, 0)) for r in unique[start:start + batch_size]])
            image_rows.append(model.encode_images(pixels.to(device)).float().cpu())
        image_emb = torch.cat(image_rows)
        index = {path: i for i, path in enumerate(images)}
        text_rows = []
        for start in range(0, len(records), batch_size):
            ids = tokenize(backbone.tokenizer, [r.answer for r in records[start:start + batch_size]],
                           backbone.context_length)
            text_rows.append(model.encode_texts(ids.to(device)).float().cpu())
        text_emb = torch.cat(text_rows)
        rows = [index[str(data.image_path(r, 0))] for r in records]
        out = (torch.cat([image_emb[rows], text_emb], dim=1) / math.sqrt(2)).numpy()
        bad = nan_rows(out)
        out[bad] = 0.0
        return out, {"nan_rows": int(bad.sum()), "unique_images": len(unique)}
