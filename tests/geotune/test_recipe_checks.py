"""Whole-recipe value checks at load time: every bad value fails before any data is read, naming its key."""

from __future__ import annotations

import pytest

import train
from geotune.config import RecipeError, load_recipe


@pytest.mark.parametrize(("override", "message"), [
    ("selection.keep=0", r"selection.keep: must be a fraction in \(0, 1\] or a whole count > 1, got 0"),
    ("selection.keep=-0.5", r"selection.keep: must be a fraction"),
    ("selection.keep=nan", r"selection.keep: must be a fraction"),
    ("selection.keep=1.5", r"selection.keep: 1.5 is > 1, so a count of records, and must be a whole number"),
    ("train.mode=qlora", r"train.mode: 'qlora' is not one of lora, full \(4-bit QLoRA is not supported"),
    ("model.adapter=llava", r"model.adapter: unknown adapter 'llava'"),
    ("selection.features.backend=siglip", r"selection.features.backend: 'siglip' is not one of target, reference, text, clip"),
    ("selection.method=adaptive", r"selection.method: unknown selector 'adaptive'"),
    ("data.bands=[0,1,2]", r"data.bands: \[0, 1, 2\] must be one \(grey\) or three"),
    ("data.bands=[4,3]", r"data.bands: \[4, 3\] must be one"),
    ("train.too_long=cut", r"train.too_long: 'cut' is not one of truncate, drop"),
    ("train.lora.dropout_masks=numpy", r"train.lora.dropout_masks: 'numpy' is not one of sparse, torch"),
    ("train.per_device_batch_size=0", r"train.per_device_batch_size: must be >= 1"),
    ("train.pixel_cache_mb=-1", r"train.pixel_cache_mb: must be >= 0 \(0: off\), got -1"),
    ("harma.randaugment=rand", r"harma.randaugment: 'rand' is not one of harma, torchvision"),
    ("harma.sites=[mlp,ffn]", r"harma.sites: \['mlp', 'ffn'\] must be a non-empty list of distinct sites of mlp, attn"),
    ("harma.sites=[]", r"harma.sites: \[\] must be a non-empty list"),
    ("harma.sites=[mlp,mlp]", r"harma.sites: \['mlp', 'mlp'\] must be a non-empty list of distinct"),
    ("eval.benchmarks=[ucm]", r"eval.benchmarks: unknown benchmark\(s\) \['ucm'\]"),
    ("selection.report_per_cluster=0", r"selection.report_per_cluster: must be >= 1, got 0 .*selection.report=false"),
    ("selection.report_max_samples=1", r"selection.report_max_samples: must be >= 2, got 1 .*selection.report=false"),
])
def test_bad_values_fail_at_load_naming_the_key(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("demo", [override])


def test_every_problem_is_reported_at_once_and_good_values_pass():
    with pytest.raises(RecipeError) as err:
        load_recipe("demo", ["selection.keep=1.5", "train.mode=qlora"])
    assert "selection.keep" in str(err.value) and "train.mode" in str(err.value) and "\n" not in str(err.value)
    cfg = load_recipe("demo", ["selection.keep=40", "data.bands=[4,3,2]", "selection.method=adaptive_shift"])
    assert cfg.selection.keep == 40 and list(cfg.data.bands) == [4, 3, 2]
    assert list(load_recipe("harma_demo").harma.sites) == ["mlp"]  # HarMA's default
    assert list(load_recipe("harma_demo", ["harma.sites=[mlp,attn]"]).harma.sites) == ["mlp", "attn"]


def test_bad_report_bounds_stop_train_py_before_any_work(tmp_path, capsys):
    """The explorer's bounds were checked by run_selection, after the data was read and the run_dir made."""
    run_dir = tmp_path / "run"
    assert train.main(["recipe=demo", f"run_dir={run_dir}", "selection.report_max_samples=0"]) == 2
    assert "selection.report_max_samples: must be >= 2, got 0" in capsys.readouterr().err
    assert not run_dir.exists()
    # they bound only the page: without a report they are not used, so not refused
    assert load_recipe("demo", ["selection.report=false", "selection.report_per_cluster=0"]).selection.report is False


def test_run_dir_that_is_a_file_is_refused_at_load(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(RecipeError, match=r"run_dir: '.*run' is a file, not a folder"):
        load_recipe("demo", [f"run_dir={tmp_path / 'run'}"])


def test_train_py_prints_one_clean_line_for_a_bad_key(capsys):
    assert train.main(["recipe=demo", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train.py: ") and "Closest valid key: 'train.epochs'" in err
    assert "Traceback" not in err
    assert train.main(["recipe=demo", "train.mode=qlora"]) == 2
    assert "train.mode: 'qlora'" in capsys.readouterr().err
