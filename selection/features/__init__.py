"""Per-sample feature vectors for selection, computed in cached, resumable shards.

``extract_features(records, data, features_cfg, model_cfg, cache_root)`` returns an (N, D) fp16
memmap whose row i is ``records[i]``. Backends (``selection.features.backend``):

- ``target``: pooled hidden states of chosen layers of the model (:mod:`selection.features.target`);
- ``reference``: COINCIDE o_proj-input features of a reference VLM (:mod:`selection.features.reference`);
- ``text``: a sentence-transformers encoder (:mod:`selection.features.text`);
- ``clip``: a CLIP dual encoder's image and caption embeddings of retrieval pairs (:mod:`selection.features.clip`).

Cache entry ``<cache_root>/<backend>-<key>/`` where key = hash of (record ids + image paths, the
backend's model fingerprint and config, shard size); see :mod:`selection.features.store` for the
shard layout, resume and multi-process behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from finetune.cache import cache_dir
from selection.features.clip import ClipBackend
from selection.features.reference import ReferenceBackend
from selection.features.store import cache_key, data_fingerprint, load_report, run_sharded
from selection.features.target import TargetBackend
from selection.features.text import TextBackend

log = logging.getLogger(__name__)

BACKENDS = {
    "target": TargetBackend,
    "reference": ReferenceBackend,
    "text": TextBackend,
    "clip": ClipBackend,
}


def make_backend(features_cfg, model_cfg):
    """The backend object for ``selection.features.backend`` (unknown names fail with the choices)."""
    try:
        backend = BACKENDS[features_cfg.backend]
    except KeyError:
        raise ValueError(
            f"selection.features.backend: unknown backend '{features_cfg.backend}'; choose from {', '.join(BACKENDS)}"
        ) from None
    if features_cfg.backend == "reference" and not features_cfg.model_path:
        log.info("selection.features.model_path unset: using model.path (%s) as the COINCIDE reference model", model_cfg.path)
    return backend(features_cfg, model_cfg)


def feature_cache_entry(records, data, features_cfg, model_cfg, cache_root=None) -> Path:
    """The cache folder that holds (or will hold) these features."""
    backend = make_backend(features_cfg, model_cfg)
    return _entry(backend, records, data, features_cfg, cache_root)


def _entry(backend, records, data, features_cfg, cache_root) -> Path:
    key = cache_key(
        {"data": data_fingerprint(records, data), "backend": backend.identity(), "shard_size": features_cfg.shard_size}
    )
    return cache_dir("features", override=cache_root or features_cfg.cache_dir) / f"{features_cfg.backend}-{key}"


def extract_features(
    records,
    data,
    features_cfg,
    model_cfg,
    cache_root=None,
    *,
    on_shard_done: Callable[[int], None] | None = None,
) -> np.memmap:
    """Features of ``records`` as an (N, D) fp16 memmap; row i = ``records[i]``.

    Args:
        records: the records to featurise (order defines the rows).
        data: a ``TrainingData`` (``load_image(record, i)``, ``image_path(record, i)``).
        features_cfg: ``selection.features`` recipe section.
        model_cfg: ``model`` recipe section (the target backend's model, reference fallback).
        cache_root: cache folder (default ``features_cfg.cache_dir``, else ``<cache root>/features``).
        on_shard_done: called with each shard index this call computed (for tests and progress hooks).

    Returns:
        Read-only memmap of ``values.npy`` in the cache entry; its ``report.json`` (``load_report``)
        counts ``nan_rows`` (set to 0) and, for ``reference``, ``no_image_rows``/``no_text_rows``.

    Raises:
        ValueError: unknown backend, bad layers (naming ``selection.features.layers``), no records.
    """
    backend = make_backend(features_cfg, model_cfg)
    entry = _entry(backend, records, data, features_cfg, cache_root)

    def compute(lo: int, hi: int):
        return backend.encode(records[lo:hi], data, features_cfg.batch_size)

    values = run_sharded(
        entry,
        len(records),
        features_cfg.shard_size,
        compute,
        dtype=backend.dtype,
        desc=f"features ({features_cfg.backend})",
        on_shard_done=on_shard_done,
        meta={"backend": features_cfg.backend, "records": len(records)},
    )
    report = load_report(values)
    if report.get("nan_rows"):
        log.warning("%s: %d feature rows had NaN/inf values, set to 0", entry, report["nan_rows"])
    return values


__all__ = ["BACKENDS", "extract_features", "feature_cache_entry", "load_report", "make_backend"]
