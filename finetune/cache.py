"""Where geotune's caches live: one root for all of them, never the current directory.

Caches (the data Arrow cache, selection features, selection signals) go under one root, each in its
own folder (``data/``, ``features/``, ``signals/``). The root is, first found:

1. the recipe key ``cache_dir`` (``geotune train recipe=X cache_dir=/scratch/geotune``);
2. the environment variable ``GEOTUNE_CACHE``;
3. ``$XDG_CACHE_HOME/geotune``, else ``~/.cache/geotune``.

A per-cache key (``data.cache_dir``, ``selection.features.cache_dir``, ``selection.options.cache_dir``)
still wins for that one cache. Running from another folder therefore reads and writes the same caches
and leaves nothing in the folder the user stands in.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "GEOTUNE_CACHE"
KINDS = ("data", "features", "signals")


def cache_root(configured: str | os.PathLike | None = None) -> Path:
    """The root of every cache: ``configured`` (recipe ``cache_dir``), else ``$GEOTUNE_CACHE``, else the
    user cache folder (``$XDG_CACHE_HOME/geotune`` or ``~/.cache/geotune``). ``~`` is expanded."""
    chosen = configured or os.environ.get(ENV_VAR)
    if not chosen:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        chosen = Path(base) / "geotune"
    return Path(os.path.expanduser(str(chosen)))


def cache_dir(kind: str, root: str | os.PathLike | None = None, override: str | os.PathLike | None = None) -> Path:
    """The folder of one cache: ``override`` when set, else ``cache_root(root) / kind``.

    Raises:
        ValueError: ``kind`` is not one of ``KINDS``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown cache '{kind}'; caches are {', '.join(KINDS)}")
    if override:
        return Path(os.path.expanduser(str(override)))
    return cache_root(root) / kind


def recipe_cache_dir(cfg, kind: str, override: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` for a recipe (a DictConfig or anything with ``.get``): its top-level ``cache_dir``
    key is the root."""
    return cache_dir(kind, cfg.get("cache_dir") if hasattr(cfg, "get") else None, override)
