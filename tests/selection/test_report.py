"""The report writes its PNGs and markdown."""

from __future__ import annotations

import numpy as np

from selection import SELECTORS, SelectionInputs
from selection.manifest import build_header
from selection.report import write_report


def test_report_writes_pngs(tmp_path, clustered, records):
    x, _ = clustered(80, 4, 8)
    recs = records(80)
    tasks, sources = [r.task for r in recs], [r.source for r in recs]
    sel = SELECTORS["adaptive_shift"](SelectionInputs(n=80, budget=0.3, features=x, clusters=4,
                                                      signals={"shift": np.random.default_rng(0).random(80)}))
    header = build_header(sel, n_total=80, method="adaptive_shift", seed=0, budget=0.3, config_hash="h",
                          tasks=tasks, sources=sources)
    path = write_report(tmp_path, sel, header, {"select": 0.5}, features=x, tasks=tasks, sources=sources, sample=50)
    text = path.read_text()
    for png in ("cluster_sizes.png", "kept_share.png", "scores.png", "projection.png"):
        assert (tmp_path / png).stat().st_size > 1000
        assert f"]({png})" in text
    assert "| classification |" in text and "kept **24** of 80" in text


def test_report_without_clusters_or_features(tmp_path):
    sel = SELECTORS["random"](SelectionInputs(n=10, budget=0.5))
    header = build_header(sel, n_total=10, method="random", seed=0, budget=0.5, config_hash="h")
    text = write_report(tmp_path, sel, header, {}).read_text()
    assert "_not available for this selector_" in text
    assert (tmp_path / "scores.png").exists() and not (tmp_path / "projection.png").exists()
