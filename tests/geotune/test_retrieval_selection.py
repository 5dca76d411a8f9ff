"""Selection on retrieval pairs (``train.task: retrieval``): the same selectors and manifest as for the VLMs,
features from the dual encoder, and training on exactly the kept rows."""

import json

import pytest

import train
from finetune.retrieval.data import pairs_training_data, read_train_pairs
from geotune.cli import main
from geotune.config import RecipeError, load_recipe
from geotune.retrieval_experiment import run_retrieval_experiment, selected_pairs
from selection.manifest import read_manifest
from selection.pipeline import run_selection


def _overrides(data, model, run_dir, *extra):
    files = [f"harma.{k}_file={data / (k + '.json')}" for k in ("train", "val", "test")]
    return [*files, f"harma.image_root={data}", f"model.path={model}", f"run_dir={run_dir}",
            f"cache_dir={run_dir.parent / 'cache'}", "train.per_device_batch_size=16", "train.report_to=[]",
            "eval.benchmarks=[]", "selection.report=false", *extra]


def _kept_ids(cfg):
    data = pairs_training_data(read_train_pairs(cfg.harma.train_file, cfg.harma.image_root))
    header, rows = read_manifest(run_selection(cfg, data))
    return header, [row["id"] for row in rows]


@pytest.mark.parametrize("method", ["random", "semdedup", "coincide", "self_sup"])
def test_selectors_keep_the_stated_count_deterministically(method, synth_rsitmd, tiny_clip, tmp_path):
    picks = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = load_recipe("harma_demo", _overrides(synth_rsitmd, tiny_clip, tmp_path / name, f"selection.method={method}",
                                                   "selection.keep=0.25", f"selection.seed={seed}", "selection.clusters=8"))
        header, ids = _kept_ids(cfg)
        assert header["n_total"] == 240 and header["n_kept"] == 60 == len(set(ids))
        picks.append(ids)
    assert picks[0] == picks[1]  # same seed, another run directory: the same rows
    if method in ("random", "semdedup"):
        assert picks[0] != picks[2]  # the seed is used
    features = list((tmp_path / "cache" / "features").glob("clip-*"))
    assert len(features) == 1 or method == "random"  # one cached entry, reused by every run of the recipe


def test_the_run_trains_on_exactly_the_kept_rows_and_records_them(synth_rsitmd, tiny_clip, tmp_path):
    cfg = load_recipe("harma_demo", _overrides(synth_rsitmd, tiny_clip, tmp_path / "run", "selection.method=coincide",
                                               "selection.keep=100", "selection.clusters=8", "train.epochs=1"))
    pairs = read_train_pairs(cfg.harma.train_file, cfg.harma.image_root)
    kept, info = selected_pairs(cfg, pairs)
    _, rows = read_manifest(tmp_path / "run" / "selection" / "manifest.jsonl")
    records = {r.id: (r.images[0], r.answer) for r in pairs_training_data(pairs).records}
    assert list(zip(kept.images, kept.captions, strict=True)) == [records[row["id"]] for row in rows]
    assert info["kept_rows"] == 100 and info["total_rows"] == 240

    summary = run_retrieval_experiment(cfg, progress=False)  # reuses the manifest (same config hash)
    assert summary["train_rows"] == 100 and summary["steps"] == 100 // 16  # drop_last: 6 batches, not 15
    assert summary["selection"]["manifest"].endswith("selection/manifest.jsonl")
    saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert saved["selection"]["kept_rows"] == 100 and saved["train_rows"] == 100


def test_train_py_and_geotune_select_on_harma_demo(synth_rsitmd, tiny_clip, tmp_path, capsys):
    args = _overrides(synth_rsitmd, tiny_clip, tmp_path / "run", "selection.method=random", "selection.keep=64",
                      "train.epochs=2")
    assert main(["select", "recipe=harma_demo", *args]) == 0
    assert "random: kept 64 of 240 records" in capsys.readouterr().out
    manifest = tmp_path / "run" / "selection" / "manifest.jsonl"
    before = manifest.stat().st_mtime_ns
    assert train.main(["recipe=harma_demo", *args]) == 0
    assert manifest.stat().st_mtime_ns == before  # the selected manifest is what training read
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["train_rows"] == 64 and summary["steps"] == 2 * (64 // 16)


@pytest.mark.parametrize("override, message", [
    ("selection.method=adaptive_shift", "selection.method: 'adaptive_shift' needs the shift of a VLM"),
    ("selection.method=perplexity", "selection.method: 'perplexity' needs a language model's loss"),
    ("selection.features.backend=target", "selection.features.backend: 'target' runs a generative VLM"),
])
def test_selectors_that_need_a_vlm_are_refused_at_load(override, message, tmp_path):
    with pytest.raises(RecipeError, match=message):  # load_recipe: before data, model or features
        load_recipe("harma_demo", [f"run_dir={tmp_path}", override, "selection.keep=0.5"])


def test_the_clip_backend_is_refused_for_vlm_recipes(tmp_path):
    with pytest.raises(RecipeError, match="selection.features.backend: 'clip' embeds image-caption pairs"):
        load_recipe("demo", [f"run_dir={tmp_path}", "selection.features.backend=clip"])
