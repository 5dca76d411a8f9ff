"""One recipe loader for train.py and every `geotune` subcommand.

A recipe is ``recipes/NAME.yaml`` merged over the typed schema ``RecipeConfig``; ``a.b=value`` arguments
override any key. Unknown keys and wrong types fail at once, naming the key, the file and the closest
valid key, instead of hours into a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from eval.config import EvalConfig
from eval.config import check_values as eval_problems
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
from finetune.files import write_text_atomic
from selection.config import SelectionConfig
from selection.config import check_task as selection_task_problems
from selection.config import check_values as selection_problems

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


@dataclass
class RecipeConfig:
    name: str = config_field("Recipe name (the YAML file's stem unless set).", "")
    run_dir: str = config_field("Where the run writes everything (default runs/<name>).", "")
    seed: int = config_field("Global seed.", 42)
    cache_dir: str = config_field(
        "Root of every cache (data/, features/, signals/ under it); '' = $GEOTUNE_CACHE, else ~/.cache/geotune "
        "(finetune.cache). Never the current directory unless given relative.", "")
    model: ModelConfig = config_field("Model to fine-tune.", factory=ModelConfig)
    data: DataConfig = config_field("Training data.", factory=DataConfig)
    mix: MixConfig = config_field("General/domain mix.", factory=MixConfig)
    selection: SelectionConfig = config_field("Data selection.", factory=SelectionConfig)
    train: TrainConfig = config_field("Training.", factory=TrainConfig)
    eval: EvalConfig = config_field("Evaluation.", factory=EvalConfig)
    harma: HarmaConfig = config_field("Image-text retrieval (train.task=retrieval): HarMA and baselines.",
                                      factory=HarmaConfig)


def recipe_path(name_or_path: str) -> Path:
    """Resolve ``rs_third`` or ``path/to/x.yaml`` to a recipe file, or raise with the known names."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    for root in (Path.cwd() / "recipes", RECIPES_DIR):
        path = root / f"{name_or_path}.yaml"
        if path.exists():
            return path
    known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise RecipeError(f"recipe '{name_or_path}' not found in recipes/.{hint} Known recipes: {', '.join(known)}")


def _valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every settable key of a schema dataclass; list items appear as ``<list>.N.<field>``."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        full = f"{prefix}{f.name}"
        keys.append(full)
        hint = hints[f.name]
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is list and typing.get_args(hint) else None
        if dataclasses.is_dataclass(hint):
            keys.extend(_valid_keys(hint, full + "."))
        elif item is not None and dataclasses.is_dataclass(item):
            keys.extend(_valid_keys(item, full + ".N."))
    return keys


def _closest_key(key: str) -> str:
    valid = _valid_keys(RecipeConfig)
    key = re.sub(r"\[(\d+)\]", r".\1", key)  # OmegaConf writes list items as datasets[0]
    key = ".".join("N" if part.isdigit() else part for part in key.split("."))
    leaf_matches = [k for k in valid if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
    close = leaf_matches[:1] or difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not close:  # a bare leaf (OmegaConf drops the path inside list items): match on leaves
        leaves = {k.rsplit(".", 1)[-1]: k for k in valid}
        close = [leaves[m] for m in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(leaves), n=1, cutoff=0.6)]
    return f" Closest valid key: '{close[0]}'." if close else ""


def _explain(err: OmegaConfBaseException, where: str) -> RecipeError:
    key = getattr(err, "full_key", None) or ""
    msg = str(err).splitlines()[0]
    if isinstance(err, ConfigKeyError) or "not in" in msg:
        return RecipeError(f"{where}: unknown key '{key}'.{_closest_key(key)}")
    if isinstance(err, ValidationError):
        return RecipeError(f"{where}: wrong type for '{key}': {msg}")
    return RecipeError(f"{where}: {msg} (key '{key}')")


def parse_overrides(args: Sequence[str]) -> tuple[Optional[str], list[str]]:
    """Split ``recipe=NAME`` from ``a.b=value`` overrides; anything else is an error."""
    recipe, overrides = None, []
    for arg in args:
        if "=" not in arg:
            raise RecipeError(f"argument '{arg}' is not of the form key=value (e.g. recipe=rs_third train.epochs=2)")
        key, value = arg.split("=", 1)
        if key == "recipe":
            recipe = value
        else:
            overrides.append(arg)
    return recipe, overrides


def _apply_override(cfg: DictConfig, item: str) -> None:
    """Set one ``a.b=value`` (list items by index: ``data.datasets.0.path=...``) on the typed config."""
    key, _ = item.split("=", 1)
    where = f"override '{item}'"
    try:
        # from_dotlist parses the value with OmegaConf's grammar (numbers, lists, null, ...).
        value = OmegaConf.to_container(OmegaConf.from_dotlist([item]), resolve=False)
        for part in key.split("."):
            value = value[part] if isinstance(value, dict) else value
        if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            _check_new_key(cfg, key, where)
        OmegaConf.update(cfg, key, value, merge=True)
    except OmegaConfBaseException as err:
        raise _explain(err, where) from err


_MISSING = object()


def _check_new_key(cfg: DictConfig, key: str, where: str) -> None:
    """A key not in the config may only be added under a free-form dict (``selection.options``)."""
    parts = key.split(".")
    for depth in range(len(parts) - 1, 0, -1):  # the deepest existing ancestor says why
        node = OmegaConf.select(cfg, ".".join(parts[:depth]), default=None)
        if node is None:
            continue
        if OmegaConf.is_dict(node) and node._metadata.object_type in (None, dict):
            return  # selection.options, train.trainer_args: their owners check the names
        if OmegaConf.is_list(node) and parts[depth].isdigit():
            raise RecipeError(
                f"{where}: index {parts[depth]} is out of range for '{'.'.join(parts[:depth])}' "
                f"({len(node)} items); add the item in the recipe file"
            )
        break
    raise RecipeError(f"{where}: unknown key '{key}'.{_closest_key(key)}")


def load_recipe(name_or_path: Optional[str], overrides: Sequence[str] = ()) -> DictConfig:
    """Load a recipe over the typed schema and apply ``key=value`` overrides.

    Args:
        name_or_path: recipe name under ``recipes/`` or a YAML path; None gives the schema defaults.
        overrides: ``a.b=value`` strings (OmegaConf dotlist syntax; lists as ``[a,b]``).

    Returns:
        A structured (typed, closed) DictConfig with ``name`` and ``run_dir`` filled in.

    Raises:
        RecipeError: unknown key, wrong type or missing recipe, naming the key, file and closest valid key.
    """
    schema = OmegaConf.structured(RecipeConfig)
    name = ""
    if name_or_path:
        path = recipe_path(name_or_path)
        name = path.stem
        try:
            loaded = OmegaConf.load(path)
        except Exception as err:  # yaml.YAMLError carries the line
            raise RecipeError(f"{path}: not valid YAML: {err}") from err
        try:
            schema = OmegaConf.merge(schema, loaded)
        except OmegaConfBaseException as err:
            raise _explain(err, str(path)) from err
    for item in overrides:
        _apply_override(schema, item)
    if not schema.name:
        schema.name = name or "default"
    if not schema.run_dir:
        schema.run_dir = os.path.join("runs", schema.name)
    check_recipe(schema, str(path) if name_or_path else "recipe")
    return schema


def check_recipe(cfg: DictConfig, where: str = "recipe") -> None:
    """Every value problem of the recipe at once, before any data is read or feature computed.

    Raises:
        RecipeError: one line per problem, each naming its key.
    """
    problems = (finetune_problems(cfg) + selection_problems(cfg.selection) + selection_task_problems(cfg.selection, cfg.train.task)
                + eval_problems(cfg.eval))
    if os.path.exists(cfg.run_dir) and not os.path.isdir(cfg.run_dir):
        problems.append(f"run_dir: '{cfg.run_dir}' is a file, not a folder; point run_dir at a folder")
    if problems:
        raise RecipeError(f"{where}: " + "; ".join(problems))


def save_resolved(cfg: DictConfig, run_dir: Optional[str] = None) -> Path:
    """Write the resolved config to ``<run_dir>/config.yaml`` atomically and return its path."""
    return write_text_atomic(Path(run_dir or cfg.run_dir) / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def add_recipe_arguments(parser) -> None:
    """The shared ``recipe=NAME key=value ...`` arguments of recipe-driven subcommands."""
    parser.add_argument("overrides", nargs="*", metavar="recipe=NAME|key=value", help="recipe and overrides")


def recipe_from_args(args) -> DictConfig:
    """Load the recipe named in ``args.overrides`` (see ``add_recipe_arguments``)."""
    recipe, overrides = parse_overrides(args.overrides)
    return load_recipe(recipe, overrides)
