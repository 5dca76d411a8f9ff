"""One writer per folder, and no silent resume of a changed recipe.

``exclusive(folder)`` holds ``<folder>/.geotune.lock`` (an OS file lock through ``filelock``: released
by the kernel when its holder dies, so a killed run never leaves a stale lock) and writes who holds it
(pid, host, command, start time) to ``<folder>/.geotune.lock.json``. A second process either fails at
once naming the holder (a run directory: two trainings would interleave checkpoints) or waits for it
(a feature-cache entry: the second selection then reuses the first one's result).

``check_resume(cfg)``: when a run would resume from a checkpoint, the recipe saved beside it
(``config.yaml``) is compared with the current one; keys that change what is trained (data, model,
mode, learning rate, seed, schedule...) must be equal, or ``train.resume=force`` accepts the change.
``MAY_CHANGE`` lists what may differ on resume (logging, evaluation, caches, workers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from finetune.files import write_json_atomic

log = logging.getLogger(__name__)

LOCK_NAME = ".geotune.lock"
OWNER_NAME = ".geotune.lock.json"
# Keys that may differ between a run and its resumption (prefixes end in "."): none of them changes
# the weights a step produces.
MAY_CHANGE = (
    "name", "run_dir", "eval.", "train.resume", "train.report_to", "train.logging_steps", "train.save_steps",
    "train.save_total_limit", "train.num_workers", "train.pixel_cache_mb", "data.cache_dir", "selection.features.cache_dir",
    "selection.features.batch_size", "selection.report", "selection.report_sample",
)


class RunDirError(RuntimeError):
    """A run directory or cache the user must free or fix; the message says which and how."""


def _owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def describe_holder(folder: str | os.PathLike) -> str:
    """``pid 123 on host (command) since ...`` from the owner file, or a fallback when it is not there yet."""
    try:
        owner = json.loads((Path(folder) / OWNER_NAME).read_text())
        return f"pid {owner['pid']} on {owner['host']} ({owner['command']}) since {owner['since']}"
    except (OSError, ValueError, KeyError):
        return "another process (it has not written its name yet)"


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str, wait: bool = False) -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block.

    Args:
        folder: created when missing.
        what: how the message names the folder ("run directory", "feature cache entry").
        wait: wait for the holder to finish instead of failing.

    Raises:
        RunDirError: the folder is held by another process (``wait=False``), naming it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_NAME)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = describe_holder(folder)
        if not wait:
            raise RunDirError(f"{what} {folder} is in use by {holder}; wait for it to finish or stop it, "
                              "or give this run another run_dir") from None
        log.warning("%s %s is in use by %s; waiting for it to finish", what, folder, holder)
        lock.acquire()
    owner = folder / OWNER_NAME
    try:
        write_json_atomic(owner, _owner(), indent=None)
        yield
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        lock.release()


def is_main_rank() -> bool:
    """Rank 0 of a torchrun / accelerate / deepspeed launch (read from the environment: the process
    group does not exist yet when the run directory is claimed), or a plain process."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def claim_run_dir(cfg) -> Iterator[None]:
    """The run directory for one training run: locked on rank 0, checked for a changed recipe on resume."""
    if not is_main_rank():
        yield
        return
    with exclusive(cfg.run_dir, "run directory"):
        check_resume(cfg)
        yield


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        out = {f"{prefix}len": len(value)}
        for i, item in enumerate(value):
            out.update(_flat(item, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: value}


def recipe_changes(saved: dict, current: dict) -> list[str]:
    """``key: old -> new`` for every key that differs and is not in ``MAY_CHANGE``.

    A key the saved recipe does not have at all is a field added to the schema since (an upgrade), not
    a change the user made: it is not compared.
    """
    old, new = _flat(saved), _flat(current)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if any(key == p or (p.endswith(".") and key.startswith(p)) for p in MAY_CHANGE):
            continue
        if key not in old:  # (a dataset added to data.datasets shows as data.datasets.len)
            continue
        if old.get(key, "<absent>") != new.get(key, "<absent>"):
            changes.append(f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return changes


def changes_from_saved(cfg) -> list[str]:
    """``recipe_changes`` between ``<cfg.run_dir>/config.yaml`` and ``cfg`` ([] when nothing is saved)."""
    from omegaconf import OmegaConf

    saved_path = Path(cfg.run_dir) / "config.yaml"
    if not saved_path.is_file():
        return []
    saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=True)
    return recipe_changes(saved, OmegaConf.to_container(cfg, resolve=True))


def check_resume(cfg) -> None:
    """Refuse to resume a checkpoint of ``cfg.run_dir`` made by another recipe (see the module docstring).

    Raises:
        RunDirError: the keys that differ, and how to go on.
    """
    from transformers.trainer_utils import get_last_checkpoint

    run_dir = Path(cfg.run_dir)
    saved_path = run_dir / "config.yaml"
    if not cfg.train.resume or not saved_path.is_file() or get_last_checkpoint(str(run_dir)) is None:
        return
    changes = changes_from_saved(cfg)
    if not changes:
        return
    if cfg.train.resume == "force":
        log.warning("train.resume=force: resuming %s with a changed recipe: %s", run_dir, "; ".join(changes))
        return
    raise RunDirError(
        f"{run_dir} holds checkpoints of another recipe ({saved_path}); changed: {'; '.join(changes)}. "
        "Use another run_dir, set train.resume=false to start again, or train.resume=force to resume anyway")
