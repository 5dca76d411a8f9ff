"""run_selection: computes only what the selector needs, writes manifest + report, reuses the cache
(`geotune select`: tests/geotune/commands/test_select_command.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from recipe_sections import library_recipe

from finetune.cache import cache_dir
from finetune.config import RecipeError
from selection.budget import SelectionError
from selection.config import SelectionConfig, check_values
from selection.manifest import read_manifest
from selection.pipeline import run_selection


@dataclass
class FakeData:
    records: list


@pytest.fixture
def calls(monkeypatch, clustered):
    """Replace the model-backed features/signals by synthetic ones and count the calls."""
    import selection.features
    import selection.signals

    counts = {"features": 0, "shift": 0, "loss": 0, "shift_options": None}

    def extract_features(records, data, features_cfg, model_cfg, cache_root=None):
        counts["features"] += 1
        width = 2 * len(features_cfg.layers) * 4  # COINCIDE layout: L parts of [v(4), l(4)]
        return clustered(len(records), 3, width, seed=0, noise=0.2)[0]

    def shift_scores(records, data, model_cfg, options=None):
        counts["shift"] += 1
        counts["shift_options"] = options
        return np.linspace(0.0, 1.0, len(records))[::-1].copy()

    def loss_scores(records, data, model_cfg, cache_root=None, **kwargs):
        counts["loss"] += 1
        counts["loss_cache"] = cache_root
        x = np.arange(len(records), dtype=np.float64)
        return {"loss": x / len(records), "el2n": (x % 5) / 5}

    monkeypatch.setattr(selection.features, "extract_features", extract_features)
    monkeypatch.setattr(selection.signals, "shift_scores", shift_scores)
    monkeypatch.setattr(selection.signals, "loss_scores", loss_scores)
    return counts


def _cfg(tmp_path, *overrides, options=None):
    cfg = library_recipe(f"run_dir={tmp_path}", "selection.clusters=3", *overrides,
                         sections={"selection": (SelectionConfig, check_values)})
    if options:
        cfg.selection.options = options  # a free-form dict: set here, not as a key=value override
    return cfg


def test_adaptive_shift_run_writes_everything_and_reuses(tmp_path, calls, records):
    data = FakeData(records(60))
    cfg = _cfg(tmp_path, "selection.method=adaptive_shift", "selection.keep=0.5",
               options={"perturbation": "image:blur"})
    path = run_selection(cfg, data)
    assert path == tmp_path / "selection" / "manifest.jsonl"
    header, rows = read_manifest(path)
    assert header["n_kept"] == 30 == len(rows) and header["method"] == "adaptive_shift"
    assert {r["id"] for r in rows} <= {r.id for r in data.records}
    signals_cache = str(cache_dir("signals"))  # <GEOTUNE_CACHE>/signals: the conftest's root
    assert calls == {"features": 1, "shift": 1, "loss": 0,
                     "shift_options": {"perturbation": "image:blur", "cache_dir": signals_cache}}
    out = tmp_path / "selection"
    timings = json.loads((out / "timings.json").read_text())
    assert {"features", "signals", "select", "select.cluster", "select.keep_per_cluster", "manifest"} <= set(timings)
    for png in ("cluster_sizes.png", "kept_share.png", "scores.png", "projection.png"):
        assert (out / png).exists()
    first = path.read_bytes()

    assert run_selection(cfg, data) == path  # same config and data: reused, nothing recomputed
    assert calls["features"] == 1 and calls["shift"] == 1
    run_selection(cfg, data, force=True)
    assert calls["features"] == 2 and path.read_bytes() == first  # recomputed, byte-identical

    run_selection(_cfg(tmp_path, "selection.method=adaptive_shift", "selection.keep=0.25",
                       options={"perturbation": "image:blur"}), data)
    assert read_manifest(path)[0]["n_kept"] == 15 and calls["features"] == 3

    data.records[0].conversations[1]["value"] = "changed"  # same ids, new content: new hash
    run_selection(_cfg(tmp_path, "selection.method=adaptive_shift", "selection.keep=0.25",
                       options={"perturbation": "image:blur"}), data)
    assert calls["features"] == 4


def test_computes_only_what_is_needed(tmp_path, calls, records):
    data = FakeData(records(40))
    run_selection(_cfg(tmp_path / "r", "selection.method=random", "selection.keep=10"), data)
    assert calls["features"] == calls["shift"] == calls["loss"] == 0
    run_selection(_cfg(tmp_path / "p", "selection.method=perplexity", "selection.keep=10"), data)
    assert calls["loss"] == 1 and calls["features"] == 0
    header, rows = read_manifest(tmp_path / "p" / "selection" / "manifest.jsonl")
    assert len(rows) == 10


def test_coincide_reads_layers_from_the_features_config(tmp_path, calls, records):
    data = FakeData(records(60))
    cfg = _cfg(tmp_path, "selection.method=coincide", "selection.keep=0.2", "selection.features.layers=[1,2]",
               "selection.features.backend=reference")
    header, rows = read_manifest(run_selection(cfg, data))
    assert len(rows) == 12 and header["options"]["n_layers"] == 2 and header["info"]["cluster_method"] == "faiss"


def test_coincide_needs_reference_features(tmp_path, calls, records):
    cfg = _cfg(tmp_path, "selection.method=coincide", "selection.features.backend=text")
    with pytest.raises(SelectionError, match="selection.features.backend=reference"):
        run_selection(cfg, FakeData(records(10)))
    assert calls["features"] == 0


def test_bad_option_fails_before_any_model_work(tmp_path, calls, records):
    cfg = _cfg(tmp_path, "selection.method=adaptive_shift", options={"prefr": "low"})
    with pytest.raises(SelectionError, match=r"selection\.options\.prefr.*prefer"):
        run_selection(cfg, FakeData(records(10)))
    assert calls["features"] == 0
    with pytest.raises(RecipeError, match="selection.method: unknown selector 'bogus'"):  # now at load time
        _cfg(tmp_path, "selection.method=bogus")


def test_given_manifest_is_used(tmp_path, calls, records):
    path = run_selection(_cfg(tmp_path / "a", "selection.method=random", "selection.keep=5"), FakeData(records(20)))
    cfg = _cfg(tmp_path / "b", "selection.method=random", f"selection.manifest={path}")
    assert run_selection(cfg, FakeData(records(20))) == path


def test_coincide_without_faiss_falls_back_to_minibatch_and_says_so(tmp_path, calls, records, monkeypatch, caplog):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "faiss" else real_find_spec(name, *a))
    cfg = _cfg(tmp_path, "selection.method=coincide", "selection.keep=0.2", "selection.features.layers=[1,2]",
               "selection.features.backend=reference")
    header, rows = read_manifest(run_selection(cfg, FakeData(records(60))))
    assert len(rows) == 12 and header["info"]["cluster_method"] == "minibatch"
    assert "faiss is not installed" in caplog.text


def test_a_budget_that_keeps_nothing_fails_before_any_feature(tmp_path, calls, records):
    cfg = _cfg(tmp_path, "selection.method=adaptive_shift", "selection.keep=0.001")
    with pytest.raises(SelectionError, match=r"selection.keep=0.001 keeps 0 of 60 records"):
        run_selection(cfg, FakeData(records(60)))
    with pytest.raises(SelectionError, match=r"selection.keep=61 records but the data has only 60"):
        run_selection(_cfg(tmp_path, "selection.method=adaptive_shift", "selection.keep=61"), FakeData(records(60)))
    assert calls["features"] == 0 and calls["shift"] == 0
    assert not (tmp_path / "selection" / "manifest.jsonl").exists()


def test_nan_shift_scores_are_counted_reported_and_never_kept_first(tmp_path, calls, records, monkeypatch):
    import selection.signals

    def shift_with_nans(records, data, model_cfg, options=None):
        shift = np.linspace(0.0, 1.0, len(records))
        shift[:6] = np.nan  # failed forward passes; as 0 they would be the lowest shifts, kept first
        return shift

    monkeypatch.setattr(selection.signals, "shift_scores", shift_with_nans)
    cfg = _cfg(tmp_path, "selection.method=adaptive_shift", "selection.keep=0.25")
    header, rows = read_manifest(run_selection(cfg, FakeData(records(60))))
    assert header["info"]["nan_scores"] == 6 and header["info"]["nan_kept"] == 0
    assert not {r["id"] for r in rows} & {f"r{i:04d}" for i in range(6)}
    assert "6 records had a NaN/inf score" in (tmp_path / "selection" / "report.md").read_text()


def test_spread_images_reaches_the_selector_through_the_pipeline(tmp_path, calls, records):
    data = FakeData(records(60))
    for i, record in enumerate(data.records):
        record.images = [f"scene{i % 6}.png"]  # 6 scenes, 10 records each
    kept_scenes = {}
    for spread in (False, True):
        cfg = _cfg(tmp_path / str(spread), "selection.method=cluster_random", "selection.keep=6",
                   options={"spread_images": spread})
        header, rows = read_manifest(run_selection(cfg, data))
        assert header["info"]["spread_images"] is spread
        by_id = {r.id: r for r in data.records}
        kept_scenes[spread] = len({by_id[row["id"]].images[0] for row in rows})
    assert kept_scenes[True] == 6 > kept_scenes[False]
