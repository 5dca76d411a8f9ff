"""Image-text retrieval scores (HARMA.md section 4): R@1/5/10 both ways and their mean, mR.

``recall_at_k`` is a pure function of a similarity matrix; ``run_retrieval`` embeds a split with a
retrieval model; ``evaluate_retrieval_checkpoint`` scores ``<run_dir>/final`` on ``harma.test_file`` and
writes ``<checkpoint>/eval/retrieval.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from finetune.files import write_json_atomic
from finetune.retrieval.backbone import Backbone, embed_split, load_backbone
from finetune.retrieval.data import EvalSplit, read_eval_split
from finetune.retrieval.model import RetrievalModel, build_retrieval_model, load_trainable, read_meta

KS = (1, 5, 10)
KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "mR")


def recall_at_k(sims: np.ndarray, img2txt: Sequence[Sequence[int]], txt2img: Sequence[int],
                ks: Sequence[int] = KS, queries: Sequence[int] | None = None) -> dict[str, float]:
    """Recall in percent from an ``[images, captions]`` similarity matrix.

    Image-to-text: an image's rank is the best rank among its ground-truth captions (best of 5).
    Text-to-image: a caption's rank is the rank of its one image. ``R@K`` = share of queries with
    rank < K; ``mR`` = mean of the six values. Ties count against the query (stable sort, as argsort).
    ``queries``: only these images and their captions are scored as queries, against the whole
    gallery (the recall of one group of a split, e.g. one class).
    """
    sims = np.asarray(sims, dtype=np.float64)
    n_img, n_txt = sims.shape
    if len(img2txt) != n_img or len(txt2img) != n_txt:
        raise ValueError(f"similarity matrix is {n_img}x{n_txt} but there are {len(img2txt)} images and "
                         f"{len(txt2img)} captions")
    i2t_rank = np.empty(n_img)
    for i in range(n_img):
        order = np.argsort(-sims[i], kind="stable")
        positions = np.empty(n_txt, dtype=np.int64)
        positions[order] = np.arange(n_txt)
        i2t_rank[i] = positions[list(img2txt[i])].min()
    t2i_rank = np.empty(n_txt)
    for t in range(n_txt):
        order = np.argsort(-sims[:, t], kind="stable")
        t2i_rank[t] = int(np.where(order == txt2img[t])[0][0])
    if queries is not None:
        i2t_rank = i2t_rank[list(queries)]
        t2i_rank = t2i_rank[np.isin(np.asarray(txt2img), list(queries))]
    out = {}
    for k in ks:
        out[f"i2t_r{k}"] = 100.0 * float((i2t_rank < k).mean())
    for k in ks:
        out[f"t2i_r{k}"] = 100.0 * float((t2i_rank < k).mean())
    out["mR"] = float(np.mean([out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks]))
    return out


def run_retrieval(model: RetrievalModel, backbone: Backbone, split: EvalSplit, batch_size: int = 64,
                  device: str | torch.device | None = None) -> dict[str, float]:
    """Embed every image and caption of ``split`` and score them with ``recall_at_k`` (cosine similarity)."""
    device = device or next(model.parameters()).device
    images, texts = embed_split(model, backbone, split, batch_size, device)
    scores = recall_at_k((images @ texts.t()).numpy(), split.img2txt, split.txt2img)
    return {**scores, "images": len(split.images), "captions": len(split.captions)}


def load_retrieval_checkpoint(cfg, checkpoint_dir: str | Path) -> tuple[RetrievalModel, Backbone]:
    """The base at ``model.path`` with the method of the checkpoint and its trained weights loaded."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint '{checkpoint_dir}' does not exist; pass checkpoint=DIR (e.g. runs/NAME/final)")
    meta = read_meta(checkpoint_dir)
    h = cfg.harma
    backbone = load_backbone(cfg.model.path, cfg.model.dtype)
    model = build_retrieval_model(backbone.clip, meta.get("method", h.method), meta.get("share", h.share),
                                  int(meta.get("bottleneck", h.bottleneck)), int(meta.get("heads", h.heads)),
                                  float(h.temperature), cfg.train.lora, tuple(meta.get("sites", h.sites)))
    load_trainable(model, checkpoint_dir)
    return model.eval(), backbone


def evaluate_retrieval_checkpoint(cfg, checkpoint_dir: str | Path, split_file: str | None = None) -> dict:
    """Score a retrieval checkpoint on ``harma.test_file``; writes ``<checkpoint>/eval/retrieval.json``."""
    h = cfg.harma
    split_file = split_file or h.test_file
    if not split_file:
        raise ValueError("harma.test_file is not set: point it at the test annotations (e.g. "
                         "runs/synthrs/SynthRS-RSITMD/test.json)")
    split = read_eval_split(split_file, h.image_root, int(h.max_words))  # fail on bad data before the model loads
    model, backbone = load_retrieval_checkpoint(cfg, checkpoint_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    scores = run_retrieval(model, backbone, split, int(h.eval_batch_size), device)
    # score/count: what `geotune eval` prints for every benchmark
    result = {**scores, "score": scores["mR"], "count": scores["images"], "split": str(split_file)}
    write_json_atomic(Path(checkpoint_dir) / "eval" / "retrieval.json", result)
    return result
