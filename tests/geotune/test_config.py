from pathlib import Path

import pytest
from omegaconf import OmegaConf

from geotune.config import RECIPES_DIR, RecipeError, load_recipe, parse_overrides, save_resolved

ALL_RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_every_recipe_loads_and_opens_with_its_command(name):
    cfg = load_recipe(name)
    assert cfg.name == name and cfg.run_dir == f"runs/{name}"
    first = (RECIPES_DIR / f"{name}.yaml").read_text().splitlines()[0]
    assert first.startswith("#") and f"recipe={name}" in first


def test_overrides_change_any_key_with_types():
    cfg = load_recipe("demo", ["train.epochs=3", "selection.keep=0.2", "eval.benchmarks=[aid]", "run_dir=/tmp/x"])
    assert cfg.train.epochs == 3.0 and cfg.selection.keep == 0.2
    assert list(cfg.eval.benchmarks) == ["aid"] and cfg.run_dir == "/tmp/x"


def test_unknown_key_names_key_file_and_closest(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("# geotune train recipe=bad\ntrain:\n  learning_rte: 1e-4\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(str(bad))
    msg = str(err.value)
    assert "train.learning_rte" in msg and str(bad) in msg and "train.learning_rate" in msg


def test_unknown_override_suggests_leaf_match():
    with pytest.raises(RecipeError, match=r"override 'epochs=2'.*'train.epochs'"):
        load_recipe("demo", ["epochs=2"])


def test_wrong_type_names_key():
    with pytest.raises(RecipeError, match=r"wrong type for 'train.epochs'"):
        load_recipe("demo", ["train.epochs=many"])


def test_unknown_recipe_lists_close_name():
    with pytest.raises(RecipeError, match="Did you mean 'demo'"):
        load_recipe("dem")


def test_parse_overrides_rejects_bare_words():
    assert parse_overrides(["recipe=demo", "a.b=1"]) == ("demo", ["a.b=1"])
    with pytest.raises(RecipeError, match="key=value"):
        parse_overrides(["demo"])


def test_resolved_config_written_to_run_dir(tmp_path):
    cfg = load_recipe("demo", [f"run_dir={tmp_path / 'run'}"])
    path = save_resolved(cfg)
    assert path == Path(tmp_path / "run" / "config.yaml")
    assert OmegaConf.load(path).train.mode == cfg.train.mode


def test_list_items_are_overridden_by_index():
    cfg = load_recipe("demo", ["data.datasets.0.path=/data/x.json", "data.datasets.0.sample=0.5"])
    assert cfg.data.datasets[0].path == "/data/x.json" and cfg.data.datasets[0].sample == 0.5


def test_list_item_errors_name_index_and_field():
    with pytest.raises(RecipeError, match=r"index 3 is out of range for 'data.datasets' \(1 items\)"):
        load_recipe("demo", ["data.datasets.3.path=/x"])
    with pytest.raises(RecipeError, match=r"unknown key 'data.datasets.0.pth'.*'data.datasets.N.path'"):
        load_recipe("demo", ["data.datasets.0.pth=/x"])


def test_free_form_option_dicts_take_new_keys():
    cfg = load_recipe("demo", ["selection.options.prefer=low", "train.trainer_args.max_grad_norm=0.5"])
    assert cfg.selection.options.prefer == "low" and cfg.train.trainer_args.max_grad_norm == 0.5
    with pytest.raises(RecipeError, match="unknown key 'selection.optons.prefer'"):
        load_recipe("demo", ["selection.optons.prefer=low"])


def test_recipe_check_knows_every_adapter_and_loads_no_torch():
    """The adapter names the recipe check accepts are the adapters that exist, and loading a recipe stays light."""
    import subprocess
    import sys

    from finetune.config import VLM_ADAPTERS
    from finetune.models.adapters import ADAPTERS

    assert set(VLM_ADAPTERS) == set(ADAPTERS)
    code = "import sys; from geotune.config import load_recipe; load_recipe('demo'); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
