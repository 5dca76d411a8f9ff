"""Recipe section owned by selection/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from finetune.config import config_field as _help


@dataclass
class FeaturesConfig:
    backend: str = _help("target | reference | text.", "text")
    model_path: Optional[str] = _help("Model for features (default: model.path for target, required for reference/text).", None)
    layers: list[int] = _help("Hidden layers pooled / hooked.", factory=lambda: [3, 7, 11, 15, 19])
    batch_size: int = _help("Samples per forward pass.", 16)
    shard_size: int = _help("Samples per on-disk feature shard.", 4096)
    cache_dir: str = _help("Feature cache root.", ".cache/geotune/features")


@dataclass
class SelectionConfig:
    method: str = _help("Selector name (see selection.SELECTORS).", "full")
    keep: float = _help("Budget: fraction (<=1) or count (>1) of records kept.", 1.0)
    seed: int = _help("Selection seed.", 0)
    clusters: int = _help("Number of clusters (0: automatic rule).", 0)
    features: FeaturesConfig = _help("Feature backend.", factory=FeaturesConfig)
    options: dict[str, Any] = _help("Selector-specific options (checked by the selector).", factory=dict)
    manifest: Optional[str] = _help("Use this manifest instead of selecting.", None)
