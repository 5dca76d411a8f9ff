"""benchmarks/proxy_selection.py: every variant of the study is a valid recipe; the report's paired
differences and its forest plot."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import proxy_selection  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from geotune.config import load_recipe  # noqa: E402
from geotune.proxy import lora_overrides  # noqa: E402
from selection import get_selector  # noqa: E402
from selection.budget import check_options  # noqa: E402


@pytest.mark.parametrize("variant", list(proxy_selection.STUDY_BASE))
def test_every_study_variant_loads(tmp_path, variant):
    cfg = load_recipe("proxy_lora", lora_overrides(tmp_path) + proxy_selection.STUDY_BASE[variant]
                      + [f"run_dir={tmp_path / variant}"])
    assert cfg.train.mode == "lora"
    selector = get_selector(cfg.selection.method)  # a misspelt option fails here, not an hour into the study
    check_options(cfg.selection.method, OmegaConf.to_container(cfg.selection.options), selector.defaults)


def _rows():
    def run(avg):
        return {"UCM": avg, "AID": avg, "LRBEN": avg, "avg": avg, "train s": 10.0, "select s": 1.0, "steps": 5.0}

    return {"same_epochs": {
        "full": {0: run(70.0), 1: run(72.0), 2: run(71.0)},
        "random_third": {0: run(65.0), 1: run(66.0), 2: run(64.0)},
        "cluster_random": {0: run(66.0), 1: run(66.5), 2: run(65.0)},
        "el2n": {0: run(40.0)},  # one seed: no interval, left out of the plot
    }}


def test_report_pairs_each_seed_with_random_third():
    text = proxy_selection.report(_rows(), [0, 1, 2], epochs=3.0)
    line = next(row for row in text.splitlines() if row.startswith("| cluster_random |"))
    assert "+0.8 [" in line  # (1 + 0.5 + 1) / 3
    assert "| full | 3 |" in text and "+6.0 [" in text


def test_forest_plot_draws_the_variants_with_an_interval(tmp_path):
    import matplotlib.image

    path = proxy_selection.forest_plot(_rows(), tmp_path / "study.png")
    assert path == tmp_path / "study.png"
    assert matplotlib.image.imread(path).shape[0] > 100
    assert proxy_selection.forest_plot({"same_epochs": {"random_third": {}}}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
