import pytest
from omegaconf import OmegaConf

from finetune.run_dir import RunDirError
from geotune.variants import is_finished, run_variants


def test_finished_runs_are_reused_and_the_others_run_in_order(tmp_path):
    done = tmp_path / "a"
    done.mkdir()
    (done / "train_summary.json").write_text("{}")
    planned = [(n, OmegaConf.create({"run_dir": str(tmp_path / n)})) for n in ("a", "b", "c")]
    ran = []
    dirs = run_variants(planned, run_one=lambda cfg: ran.append(cfg.run_dir))
    assert ran == [str(tmp_path / "b"), str(tmp_path / "c")]
    assert dirs == [tmp_path / "a", tmp_path / "b", tmp_path / "c"]


def test_a_finished_run_of_another_recipe_is_refused_not_silently_reused(tmp_path):
    """An old demo's runs/demo/full (full fine-tune of a random-init model) must not stand in for a LoRA run."""
    done = tmp_path / "full"
    done.mkdir()
    (done / "train_summary.json").write_text("{}")
    (done / "config.yaml").write_text(OmegaConf.to_yaml({"run_dir": str(done), "train": {"mode": "full"}}))
    planned = [("full", OmegaConf.create({"run_dir": str(done), "train": {"mode": "lora"}}))]
    with pytest.raises(RunDirError, match=r"train.mode: 'full' -> 'lora'.*delete"):
        run_variants(planned, run_one=lambda cfg: None)
    assert is_finished(done)  # without a recipe to compare, the marker alone still counts
    same = [("full", OmegaConf.create({"run_dir": str(done), "train": {"mode": "full"}}))]
    assert run_variants(same, run_one=lambda cfg: pytest.fail("a finished run of the same recipe is reused")) == [done]
