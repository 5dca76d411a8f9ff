"""Selection as a run step: compute what the selector needs, select, write manifest + report.

``run_selection(cfg, data)`` writes ``<run_dir>/selection/{manifest.jsonl, timings.json, report.md,
*.png}`` and returns the manifest path. A manifest whose header ``config_hash`` equals the hash of the
relevant config (selection section, feature config and model when used) and of the data (ids and
content of every record) is reused without recomputing anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from finetune.cache import recipe_cache_dir
from selection import get_selector
from selection.budget import SelectionError, SelectionInputs, check_options
from selection.manifest import (
    ManifestError,
    atomic_write_text,
    build_header,
    manifest_rows,
    read_manifest,
    write_manifest,
)

log = logging.getLogger(__name__)

SIGNAL_NEEDS = ("shift", "loss", "el2n")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def data_digest(records) -> str:
    """sha256 over every record's id, images and conversations, in order."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.id, r.images, r.conversations], sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def selection_config_hash(cfg: DictConfig, records, needs: frozenset[str]) -> str:
    """Hash of everything the selection result depends on (16 hex digits)."""
    sel = cfg.selection
    parts: dict[str, Any] = {
        "method": sel.method,
        "keep": float(sel.keep),
        "seed": int(sel.seed),
        "clusters": int(sel.clusters),
        "cluster_method": sel.cluster_method,
        "options": _plain(sel.options),
        "data": data_digest(records),
    }
    if "features" in needs:
        parts["features"] = {k: v for k, v in _plain(sel.features).items() if k not in ("batch_size", "cache_dir")}
    if needs & set(SIGNAL_NEEDS) or ("features" in needs and sel.features.backend != "text"):
        parts["model"] = {k: _plain(cfg.model[k]) for k in ("path", "adapter", "dtype", "max_dynamic_patch")}
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def record_lengths(records) -> np.ndarray:
    """Words in every record's conversation (the ``length`` baseline and reports)."""
    return np.array([len(r.text().split()) for r in records], dtype=np.int64)


def shift_signal_options(options: dict[str, Any]) -> dict[str, Any]:
    """The adaptive-shift options ``selection.signals.shift_scores`` reads (unset ones left out)."""
    from selection.adaptive_shift import SHIFT_OPTION_KEYS

    return {k: v for k, v in options.items() if k in SHIFT_OPTION_KEYS and v is not None}


def compute_inputs(cfg: DictConfig, data, selector, timings: dict[str, float]) -> SelectionInputs:
    """Compute only what ``selector.needs`` (features, signals, lengths) and build its inputs."""
    records = data.records
    sel = cfg.selection
    options = check_options(selector.selector_name, _plain(sel.options) or {}, selector.defaults)
    if selector.selector_name == "coincide":
        if sel.features.backend != "reference":
            raise SelectionError(
                "selection.method=coincide reads COINCIDE reference features ([v, l] per hooked layer); "
                f"set selection.features.backend=reference (it is '{sel.features.backend}')"
            )
        if "n_layers" not in (sel.options or {}):
            options["n_layers"] = len(sel.features.layers)
    inputs = SelectionInputs(
        n=len(records), budget=float(sel.keep), seed=int(sel.seed), clusters=int(sel.clusters),
        cluster_method=sel.cluster_method, options=options,
        tasks=[r.task for r in records], sources=[r.source for r in records],
    )
    needs = selector.needs
    if "features" in needs:
        from selection.features import extract_features

        start = time.perf_counter()
        inputs.features = extract_features(records, data, sel.features, cfg.model,
                                           recipe_cache_dir(cfg, "features", sel.features.cache_dir))
        timings["features"] = time.perf_counter() - start
    if "shift" in needs:
        from selection.signals import shift_scores

        start = time.perf_counter()
        shift_opts = shift_signal_options(options)
        shift_opts["cache_dir"] = str(recipe_cache_dir(cfg, "signals", shift_opts.get("cache_dir")))
        inputs.signals["shift"] = np.asarray(shift_scores(records, data, cfg.model, shift_opts))
        timings["signals"] = time.perf_counter() - start
    if needs & {"loss", "el2n"}:
        from selection.signals import loss_scores

        start = time.perf_counter()
        scores = loss_scores(records, data, cfg.model, cache_root=recipe_cache_dir(cfg, "signals"))
        inputs.signals.update({k: np.asarray(v) for k, v in scores.items()})
        timings["signals"] = timings.get("signals", 0.0) + time.perf_counter() - start
    if "lengths" in needs:
        inputs.lengths = record_lengths(records)
    return inputs


def cached_manifest(path: Path, config_hash: str) -> bool:
    """True when ``path`` is a readable manifest made from the same config and data."""
    if not path.exists():
        return False
    try:
        header, _ = read_manifest(path)
    except ManifestError as err:
        log.warning("ignoring unreadable cached manifest: %s", err)
        return False
    return header.get("config_hash") == config_hash


def run_selection(cfg: DictConfig, data, *, force: bool = False) -> Path:
    """Select from ``data.records`` as ``cfg.selection`` says and return the manifest path.

    Args:
        cfg: the recipe (``selection``, ``model``, ``run_dir``).
        data: a ``TrainingData`` (``records``, ``load_image``...).
        force: recompute even when a manifest with the same config hash exists.

    Raises:
        SelectionError: unknown method / option, bad budget, missing inputs (naming the recipe key).
    """
    sel = cfg.selection
    if sel.manifest:
        path = Path(sel.manifest)
        read_manifest(path)  # fail now, not at training time
        return path
    selector = get_selector(sel.method)
    records = data.records
    if not records:
        raise SelectionError("no training records to select from (check data.datasets)")
    out_dir = Path(cfg.run_dir) / "selection"
    path = out_dir / "manifest.jsonl"
    config_hash = selection_config_hash(cfg, records, selector.needs)
    if not force and cached_manifest(path, config_hash):
        log.info("selection: reusing %s (config hash %s)", path, config_hash)
        return path

    timings: dict[str, float] = {}
    inputs = compute_inputs(cfg, data, selector, timings)
    start = time.perf_counter()
    selection = selector(inputs)
    timings["select"] = time.perf_counter() - start
    timings.update({f"select.{stage}": seconds for stage, seconds in selection.timings.items()})

    start = time.perf_counter()
    header = build_header(
        selection, n_total=len(records), method=sel.method, seed=int(sel.seed), budget=float(sel.keep),
        config_hash=config_hash, tasks=inputs.tasks, sources=inputs.sources, options=inputs.options,
    )
    write_manifest(path, header, manifest_rows(selection, [r.id for r in records]))
    timings["manifest"] = time.perf_counter() - start
    if sel.report:
        from selection.report import write_report

        start = time.perf_counter()
        write_report(out_dir, selection, header, timings, features=inputs.features, tasks=inputs.tasks,
                     sources=inputs.sources, sample=int(sel.report_sample), seed=int(sel.seed))
        timings["report"] = time.perf_counter() - start
    atomic_write_text(out_dir / "timings.json", json.dumps(timings, indent=2, sort_keys=True) + "\n")
    log.info("selection: kept %d of %d records -> %s", len(selection), len(records), path)
    return path
