"""Selection as a run step: compute what the selector needs, select, write manifest + report.

``run_selection(cfg, data)`` writes ``<run_dir>/selection/{manifest.jsonl, timings.json, report.md,
*.png, report.html, report_assets/}`` and returns the manifest path. A manifest whose header ``config_hash`` equals the hash of the
relevant config (selection section, feature config and model when used) and of the data (ids and
content of every record) is reused without recomputing anything.

Under ``torchrun`` / ``accelerate launch`` every rank calls it (collectively): each rank extracts its
shards of the features and signals (``selection.features.store``: shard k belongs to global rank
``k % world_size``, global rank 0 merges), then global rank 0 alone selects and writes the manifest
while the others wait for that file. The manifest is byte-identical to a one-process
``geotune select`` of the same recipe. ``<run_dir>`` must be on a filesystem every rank sees.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from finetune.cache import recipe_cache_dir
from finetune.distributed import process_state
from finetune.files import write_json_atomic, write_text_atomic
from selection import get_selector
from selection.budget import SelectionError, SelectionInputs, check_options, resolve_budget
from selection.config import check_task
from selection.explorer import write_explorer
from selection.features.store import data_fingerprint, model_fingerprint
from selection.manifest import (
    ManifestError,
    build_header,
    manifest_rows,
    read_manifest,
    write_manifest,
)
from selection.report import write_plots, write_report

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


def selection_config_hash(cfg: DictConfig, records, needs: frozenset[str], data=None) -> str:
    """Hash of everything the selection result depends on (16 hex digits)."""
    return hash_parts(selection_config_parts(cfg, records, needs, data))


def hash_parts(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def selection_config_parts(cfg: DictConfig, records, needs: frozenset[str], data=None) -> dict[str, Any]:
    """What ``selection_config_hash`` hashes (written as ``selection/config_hash_parts.json``, to see
    why a manifest was or was not reused)."""
    sel = cfg.selection
    parts: dict[str, Any] = {
        "method": sel.method,
        "keep": float(sel.keep),
        "seed": int(sel.seed),
        "clusters": int(sel.clusters),
        "cluster_method": sel.cluster_method,
        # where signals are cached does not change them (a shared and a private cache give one manifest)
        "options": {k: v for k, v in (_plain(sel.options) or {}).items() if k != "cache_dir"},
        "data": data_digest(records),
        "data_files": data_fingerprint(records, data),  # images regenerated in place: a new hash
    }
    if "features" in needs:
        parts["features"] = {k: v for k, v in _plain(sel.features).items() if k not in ("batch_size", "cache_dir")}
    if needs & set(SIGNAL_NEEDS) or ("features" in needs and sel.features.backend != "text"):
        parts["model"] = {k: _plain(cfg.model[k]) for k in ("path", "adapter", "dtype", "max_dynamic_patch")}
        parts["model_files"] = model_fingerprint(cfg.model.path)  # new weights at the same path: a new hash
    return parts


def record_lengths(records) -> np.ndarray:
    """Words in every record's conversation (the ``length`` baseline and reports)."""
    return np.array([len(r.text().split()) for r in records], dtype=np.int64)


def image_key(record) -> str:
    """What identifies a record's picture for ``spread_images``: its source and image paths ("" for none)."""
    return f"{record.source}:{'|'.join(record.images)}" if record.images else ""


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
        if sel.features.backend not in ("reference", "clip"):
            raise SelectionError(
                "selection.method=coincide reads [v, l] features (COINCIDE reference features per hooked layer, "
                "or a retrieval pair's [image, caption] embedding); set selection.features.backend=reference "
                f"(train.task=retrieval: clip) (it is '{sel.features.backend}')"
            )
        if "n_layers" not in (sel.options or {}):  # a clip row is one [image, caption] part
            options["n_layers"] = 1 if sel.features.backend == "clip" else len(sel.features.layers)
    inputs = SelectionInputs(
        n=len(records), budget=float(sel.keep), seed=int(sel.seed), clusters=int(sel.clusters),
        cluster_method=sel.cluster_method, options=options,
        tasks=[r.task for r in records], sources=[r.source for r in records],
        images=[image_key(r) for r in records] if options.get("spread_images") else None,
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
        # Sharded like the features (several shards per rank under torchrun), cached under the cache root.
        scores = loss_scores(records, data, cfg.model, shard_size=int(sel.features.shard_size),
                             cache_root=recipe_cache_dir(cfg, "signals"))
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


def write_reports(out_dir: Path, cfg: DictConfig, data, selection, header: dict, timings: dict[str, float],
                  inputs: SelectionInputs) -> None:
    """report.md with its PNGs, then the report.html explorer beside it (thumbnails when ``data`` can
    locate images, annotation file:line when it knows where records came from)."""
    sel = cfg.selection
    start = time.perf_counter()
    plots = write_plots(out_dir, selection, len(data.records), features=inputs.features, tasks=inputs.tasks,
                        sources=inputs.sources, sample=int(sel.report_sample), seed=int(sel.seed))
    write_report(out_dir, selection, header, timings, plots=plots)
    timings["report"] = time.perf_counter() - start
    start = time.perf_counter()
    image_path = getattr(data, "image_path", None)
    write_explorer(out_dir, selection, header, timings, data.records,
                   image_path=(lambda record: image_path(record, 0)) if image_path else None,
                   origin=getattr(data, "origin", None), plots=plots, per_cluster=int(sel.report_per_cluster),
                   max_samples=int(sel.report_max_samples), seed=int(sel.seed))
    timings["report.html"] = time.perf_counter() - start


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
    task_problems = check_task(sel, cfg.train.task if "train" in cfg else "vlm")
    if task_problems:  # load_recipe says the same; this is for callers that build a config in code
        raise SelectionError("; ".join(task_problems))
    records = data.records
    if not records:
        raise SelectionError("no training records to select from (check data.datasets)")
    out_dir = Path(cfg.run_dir) / "selection"
    path = out_dir / "manifest.jsonl"
    parts = selection_config_parts(cfg, records, selector.needs, data)
    config_hash = hash_parts(parts)
    state = process_state()
    reuse = not force and cached_manifest(path, config_hash)
    if state.num_processes > 1:
        if state.is_main_process:
            (out_dir / FAILED).unlink(missing_ok=True)
        state.wait_for_everyone()  # every rank has decided before any rank can write a manifest
    if reuse:
        log.info("selection: reusing %s (config hash %s)", path, config_hash)
        return path

    if resolve_budget(float(sel.keep), len(records)) == 0:  # before features: an empty selection is no result
        raise SelectionError(f"selection.keep={sel.keep} keeps 0 of {len(records)} records; raise selection.keep")
    timings: dict[str, float] = {}
    inputs = compute_inputs(cfg, data, selector, timings)  # collective: every rank computes its shards
    if not state.is_main_process:
        wait_for_manifest(path, config_hash)
        return path
    try:
        write_json_atomic(out_dir / "config_hash_parts.json", parts, indent=1, sort_keys=True)
        return _select_and_write(cfg, selector, inputs, timings, path, config_hash, data)
    except BaseException as err:
        if state.num_processes > 1:  # tell the ranks waiting for the manifest
            write_text_atomic(out_dir / FAILED, f"{type(err).__name__}: {err}\n")
        raise


def training_records(cfg, data) -> list:
    """The records to train on: all of them, or those the selection manifest keeps (in its order).

    Runs selection when the recipe asks for a method and names no ready manifest.

    Raises:
        ValueError: a manifest id is not in ``data`` (the manifest was made for other data).
    """
    manifest = cfg.selection.manifest
    if not manifest and cfg.selection.method != "full":
        manifest = run_selection(cfg, data)
    if not manifest:
        return list(data.records)
    _, rows = read_manifest(manifest)
    by_id = {record.id: record for record in data.records}
    missing = [row["id"] for row in rows if row["id"] not in by_id]
    if missing:
        raise ValueError(
            f"{manifest}: {len(missing)} manifest ids are not in the training data (first: '{missing[0]}'); "
            "the manifest was made for other data: delete it to select again, or fix selection.manifest"
        )
    return [by_id[row["id"]] for row in rows]


# Written by global rank 0 when selection fails, so the ranks waiting for the manifest stop too.
FAILED = "selection_failed.txt"
# How often the other ranks look for the manifest. They poll the file instead of waiting in a
# collective barrier: selection on 665k records (k-means with K = 10,000) can outlast any distributed
# timeout, and a rank killed on the way is noticed by the launcher, which stops the others.
POLL_SECONDS = float(os.environ.get("GEOTUNE_SELECTION_POLL_SECONDS", "2"))


def wait_for_manifest(path: Path, config_hash: str) -> None:
    """Block until global rank 0 has written the manifest for ``config_hash`` (or said it failed)."""
    failed = path.parent / FAILED
    while True:
        if failed.exists():
            raise SelectionError(f"selection failed on global rank 0: {failed.read_text().strip()} (see its log)")
        if cached_manifest(path, config_hash):
            return
        time.sleep(POLL_SECONDS)


def _select_and_write(cfg, selector, inputs: SelectionInputs, timings: dict[str, float], path: Path,
                      config_hash: str, data) -> Path:
    """Run the selector on the computed inputs; write manifest, report and timings (one process)."""
    sel = cfg.selection
    ids = [r.id for r in data.records]
    out_dir, n_total = path.parent, len(ids)
    start = time.perf_counter()
    selection = selector(inputs)
    timings["select"] = time.perf_counter() - start
    timings.update({f"select.{stage}": seconds for stage, seconds in selection.timings.items()})

    start = time.perf_counter()
    header = build_header(
        selection, n_total=n_total, method=sel.method, seed=int(sel.seed), budget=float(sel.keep),
        config_hash=config_hash, tasks=inputs.tasks, sources=inputs.sources,
        options={k: v for k, v in inputs.options.items() if k != "cache_dir"},  # a location, not a setting
    )
    write_manifest(path, header, manifest_rows(selection, ids))
    timings["manifest"] = time.perf_counter() - start
    if sel.report:
        write_reports(out_dir, cfg, data, selection, header, timings, inputs)
    write_json_atomic(out_dir / "timings.json", timings, sort_keys=True)
    log.info("selection: kept %d of %d records -> %s", len(selection), n_total, path)
    return path
