from omegaconf import OmegaConf

from geotune.variants import run_variants


def test_finished_runs_are_reused_and_the_others_run_in_order(tmp_path):
    done = tmp_path / "a"
    done.mkdir()
    (done / "train_summary.json").write_text("{}")
    planned = [(n, OmegaConf.create({"run_dir": str(tmp_path / n)})) for n in ("a", "b", "c")]
    ran = []
    dirs = run_variants(planned, run_one=lambda cfg: ran.append(cfg.run_dir))
    assert ran == [str(tmp_path / "b"), str(tmp_path / "c")]
    assert dirs == [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
