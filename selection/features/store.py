"""On-disk sharded arrays: cache keys, atomic shards with done-markers, resume, merge into one memmap.

Layout of one cache entry (``<cache_root>/<name>-<key>/``)::

    shards/shard-00000.npy    rows [0, shard_size) — written to a tmp file, then ``os.replace``d
    shards/shard-00000.done   JSON stats of that shard; written after the .npy, so it marks it complete
    values.npy                all rows merged (memory-mappable ``.npy``); its presence = entry complete
    report.json               summed shard stats + timings

A killed run leaves complete shards behind (a shard without its ``.done`` is recomputed), so the next
call computes only the missing ones. Under ``accelerate launch`` process ``p`` computes shards
``k % num_processes == p``; after a barrier the main process merges, then everyone opens the result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from finetune.distributed import process_state
from finetune.files import atomic_path, save_npy_atomic, write_json_atomic
from finetune.run_dir import exclusive

log = logging.getLogger(__name__)

# Weight files whose size and mtime identify a checkpoint's content without hashing gigabytes.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def cache_key(parts: dict[str, Any]) -> str:
    """A short stable hash of JSON-serialisable parts (sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def file_identity(path) -> list:
    """``[size, mtime_ns]`` of a file (``["missing"]`` when it cannot be read): regenerating or editing an
    image changes it, without hashing every image of a 318k-record pool on every run."""
    try:
        stat = os.stat(path)
    except OSError:
        return ["missing"]
    return [stat.st_size, stat.st_mtime_ns]


def data_fingerprint(records, data) -> str:
    """Hash of what decides each row, in order (row i = records[i]): the record's id, its conversation
    text, and each image's resolved path and content identity (``file_identity``)."""
    digest = hashlib.sha256()
    image_path = getattr(data, "image_path", None)
    for record in records:
        digest.update(record.id.encode() + b"\0")
        digest.update(json.dumps(record.conversations, sort_keys=True, ensure_ascii=False).encode() + b"\0")
        for i, rel in enumerate(record.images):
            path = image_path(record, i) if image_path is not None else rel
            digest.update(json.dumps([str(path), *file_identity(path)]).encode() + b"\1")
        digest.update(b"\2")
    return digest.hexdigest()


def model_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Resolved path plus size/mtime of config.json and the weight files (a changed checkpoint = new key)."""
    root = Path(path).resolve()
    files = {}
    for item in sorted(root.rglob("*")) if root.is_dir() else []:
        if item.name == "config.json" or item.suffix in _WEIGHT_SUFFIXES:
            stat = item.stat()
            files[str(item.relative_to(root))] = [stat.st_size, int(stat.st_mtime_ns)]
    return {"path": str(root), "files": files}


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]`` covering ``range(n)`` in shards of ``shard_size`` rows."""
    if shard_size < 1:
        raise ValueError(f"selection.features.shard_size must be >= 1, got {shard_size}")
    return [(lo, min(lo + shard_size, n)) for lo in range(0, n, shard_size)]


def run_sharded(
    entry: Path,
    n: int,
    shard_size: int,
    compute: Callable[[int, int], tuple[np.ndarray, dict[str, int]]],
    *,
    dtype: str = "float16",
    desc: str = "shards",
    on_shard_done: Callable[[int], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> np.memmap:
    """Compute the missing shards of a cache entry, merge them, and memory-map the result.

    Args:
        entry: the cache entry folder (its name should carry the cache key).
        n: number of rows.
        shard_size: rows per shard.
        compute: ``compute(lo, hi) -> (rows (hi-lo, D), stats)``; stats are integer counters
            (e.g. ``{"nan_rows": 2}``) summed into ``report.json``.
        dtype: on-disk dtype of the rows.
        desc: progress-bar label.
        on_shard_done: called with the shard index after each shard this call computed and stored
            (tests raise from it to simulate a kill).
        meta: extra fields for ``report.json``.

    Returns:
        ``values.npy`` opened read-only as a memmap of shape (n, D).
    """
    final = entry / "values.npy"
    if final.exists():
        return np.load(final, mmap_mode="r")
    if n == 0:
        raise ValueError("no records to compute features for (the record list is empty)")
    state = process_state()
    # One job per entry: another selection computing the same features merges and deletes the shards
    # under us. The main process waits for it (then reuses its result); the other ranks wait for the main.
    with exclusive(entry, "feature cache entry", wait=True) if state.is_main_process else contextlib.nullcontext():
        state.wait_for_everyone()
        if not final.exists():
            _compute_and_merge(entry, n, shard_size, compute, state, dtype, desc, on_shard_done, meta)
        state.wait_for_everyone()
    return np.load(final, mmap_mode="r")


def _compute_and_merge(entry, n, shard_size, compute, state, dtype, desc, on_shard_done, meta) -> None:
    from tqdm.auto import tqdm

    final = entry / "values.npy"
    shards = entry / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    ranges = shard_ranges(n, shard_size)
    mine = [k for k in range(len(ranges)) if k % state.num_processes == state.process_index]
    todo = [k for k in mine if not (shards / f"shard-{k:05d}.done").exists()]
    if len(todo) < len(mine):
        log.info("%s: resuming, %d of %d shards already done", entry.name, len(mine) - len(todo), len(mine))
    start = time.perf_counter()
    for k in tqdm(todo, desc=desc, unit="shard", disable=not state.is_local_main_process or not todo):
        lo, hi = ranges[k]
        rows, stats = compute(lo, hi)
        if rows.shape[0] != hi - lo:
            raise RuntimeError(f"shard {k}: computed {rows.shape[0]} rows for records [{lo}, {hi})")
        save_npy_atomic(shards / f"shard-{k:05d}.npy", np.ascontiguousarray(rows, dtype=dtype))
        write_json_atomic(shards / f"shard-{k:05d}.done", {"rows": hi - lo, **stats, "seconds": time.perf_counter() - start}, indent=1, sort_keys=True)
        if on_shard_done is not None:
            on_shard_done(k)
    state.wait_for_everyone()
    if state.is_main_process and not final.exists():
        _merge(entry, ranges, dtype, {"computed_shards_main": len(todo), **(meta or {})})


def _merge(entry: Path, ranges: list[tuple[int, int]], dtype: str, meta: dict[str, Any]) -> None:
    shards = entry / "shards"
    first = np.load(shards / "shard-00000.npy", mmap_mode="r")
    n = ranges[-1][1]
    totals: dict[str, float] = {}
    with atomic_path(entry / "values.npy", suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n, *first.shape[1:]))
        for k, (lo, hi) in enumerate(ranges):
            done = shards / f"shard-{k:05d}.done"
            if not done.exists():
                raise RuntimeError(f"{entry}: shard {k} is missing after all processes finished; rerun to resume")
            out[lo:hi] = np.load(shards / f"shard-{k:05d}.npy", mmap_mode="r")
            for key, value in json.loads(done.read_text()).items():
                if key != "seconds":
                    totals[key] = totals.get(key, 0) + value
        out.flush()
        del out
        write_json_atomic(entry / "report.json", {**meta, **totals, "shards": len(ranges), "dim": list(first.shape[1:])},
                          indent=1, sort_keys=True)
    # The merged file now holds every row; the shards are only needed to resume an unfinished run.
    shutil.rmtree(shards, ignore_errors=True)


def load_report(values: np.memmap) -> dict[str, Any]:
    """The ``report.json`` beside a merged array returned by :func:`run_sharded`."""
    return json.loads((Path(values.filename).parent / "report.json").read_text())
