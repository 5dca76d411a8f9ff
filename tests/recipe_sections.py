"""Recipes for the library tests, built from the sections the packages own, never by the app's loader.

The library functions take the recipe as one object: its sections (``cfg.model``, ``cfg.train``,
``cfg.selection``...) and a few top-level values (``run_dir``, ``seed``, ``cache_dir``). The app
(``geotune.config``) joins every section into ``RecipeConfig`` and reads recipe files; a test of
``finetune``, ``selection`` or ``eval`` builds the sections of its own layer and the base's only, so
it imports nothing from a layer above it (``tests/geotune/test_architecture.py`` checks).

    cfg = library_recipe("model.path=/x", "train.max_steps=2")                         # finetune's sections
    cfg = library_recipe("selection.keep=0.5", sections={"selection": (SelectionConfig, check_values)})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field, make_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from finetune.config import (
    DataConfig,
    HarmaConfig,
    MixConfig,
    ModelConfig,
    RecipeError,
    TrainConfig,
    config_field,
)
from finetune.config import check_values as finetune_problems

# name -> (section dataclass, its owner's value check on that section)
Sections = dict[str, tuple[type, Callable[[Any], list[str]]]]


def library_recipe(*overrides: str, sections: Sections | None = None) -> DictConfig:
    """A typed, closed recipe: the top-level values, finetune's sections (model, data, mix, train, harma)
    and ``sections``, with ``a.b=value`` overrides (OmegaConf dotlist syntax, as on the command line).

    Raises:
        RecipeError: a value a section's owner refuses (its ``check_values``), as the app's loader would.
    """
    extra = dict(sections or {})
    fields = [
        ("name", str, config_field("Recipe name.", "test")),
        ("run_dir", str, config_field("Run directory.", "runs/default")),
        ("seed", int, config_field("Global seed.", 42)),
        ("cache_dir", str, config_field("Cache root ('': $GEOTUNE_CACHE).", "")),
        *((name, cls, field(default_factory=cls)) for name, cls in
          {"model": ModelConfig, "data": DataConfig, "mix": MixConfig, "train": TrainConfig, "harma": HarmaConfig,
           **{name: cls for name, (cls, _) in extra.items()}}.items()),
    ]
    cfg = OmegaConf.structured(make_dataclass("LibraryRecipe", fields))
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    problems = finetune_problems(cfg) + [p for name, (_, check) in extra.items() for p in check(cfg[name])]
    if problems:
        raise RecipeError("recipe: " + "; ".join(problems))
    return cfg
