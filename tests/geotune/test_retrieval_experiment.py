"""``train.py recipe=harma_demo`` end to end on SynthRS-RSITMD: learns, resumes, and `geotune eval`
writes final/eval/retrieval.json."""

import json

import pytest

from eval.retrieval import KEYS
from geotune.config import RecipeError, load_recipe
from geotune.retrieval_experiment import run_retrieval_experiment


def _recipe(data, model, run_dir, *extra):
    files = [f"harma.{k}_file={data / (k + '.json')}" for k in ("train", "val", "test")]
    return load_recipe("harma_demo", [*files, f"harma.image_root={data}", f"model.path={model}", f"run_dir={run_dir}",
                                      "train.per_device_batch_size=16", "train.report_to=[]", *extra])


def test_a_short_harma_run_beats_zero_shot_and_resumes(synth_rsitmd, tiny_clip, tmp_path):
    zero = run_retrieval_experiment(_recipe(synth_rsitmd, tiny_clip, tmp_path / "zero", "harma.method=zeroshot"),
                                    progress=False)
    assert zero["trainable_params"] == 0 and zero["steps"] == 0
    short = _recipe(synth_rsitmd, tiny_clip, tmp_path / "harma", "train.epochs=2", "train.learning_rate=5e-3",
                    "train.save_total_limit=3", "train.report_to=[tensorboard]")
    first = run_retrieval_experiment(short, progress=False)
    assert first["steps"] == 2 * (240 // 16) and len(first["val"]) == 2
    run = tmp_path / "harma"
    assert (run / "config.yaml").is_file() and (run / "checkpoint-epoch-2" / "training_state.pt").is_file()
    assert list((run / "runs").glob("events.out.tfevents.*"))
    resumed = run_retrieval_experiment(_recipe(synth_rsitmd, tiny_clip, run, "train.epochs=6",
                                               "train.learning_rate=5e-3"), progress=False)
    assert resumed["resumed_from"].endswith("checkpoint-epoch-2") and resumed["steps"] == 6 * 15
    assert resumed["val"][:2] == first["val"]  # epochs 1-2 are not redone
    best_val = max(v["mR"] for v in resumed["val"])
    assert best_val > zero["val"][0]["mR"] + 5, (resumed["val"], zero["val"])
    assert resumed["best_epoch"] == 1 + [v["mR"] for v in resumed["val"]].index(best_val)
    test = json.loads((run / "final" / "eval" / "retrieval.json").read_text())
    assert set(KEYS) <= set(test) and test["images"] == 16
    assert test["mR"] > zero["eval"]["retrieval"]["mR"]


def test_train_entry_dispatches_and_geotune_eval_scores_the_run(synth_rsitmd, tiny_clip, tmp_path, capsys):
    from geotune.cli import main
    from geotune.experiment import run_experiment

    cfg = _recipe(synth_rsitmd, tiny_clip, tmp_path / "run", "train.max_steps=2", "eval.benchmarks=[]")
    assert run_experiment(cfg)["steps"] == 2  # train.py / geotune train: train.task=retrieval goes to HarMA
    assert not (tmp_path / "run" / "final" / "eval").exists()
    files = [f"harma.{k}_file={synth_rsitmd / (k + '.json')}" for k in ("train", "val", "test")]
    assert main(["eval", "recipe=harma_demo", *files, f"harma.image_root={synth_rsitmd}", f"model.path={tiny_clip}",
                 f"run_dir={tmp_path / 'run'}"]) == 0
    scores = json.loads((tmp_path / "run" / "final" / "eval" / "retrieval.json").read_text())
    assert set(KEYS) <= set(scores) and 0 <= scores["mR"] <= 100
    assert "retrieval:" in capsys.readouterr().out


def test_unknown_task_is_refused(tmp_path):

    with pytest.raises(RecipeError, match="train.task: 'retrival' is not one of vlm, retrieval"):
        load_recipe("harma_demo", [f"run_dir={tmp_path}", "train.task=retrival"])  # at load, before any work


def test_missing_data_fails_before_the_model_loads(tmp_path):
    cfg = load_recipe("harma_demo", [f"run_dir={tmp_path}", f"harma.train_file={tmp_path / 'nope.json'}"])
    with pytest.raises(FileNotFoundError, match="harma.train_file.*geotune synth"):
        run_retrieval_experiment(cfg)


def test_attention_site_run_records_its_sites_and_reloads_from_them(synth_rsitmd, tiny_clip, tmp_path):
    """harma.sites=[mlp,attn] (an ablation, not HarMA) is in final/'s metadata, so a checkpoint loads onto a
    recipe that does not name the sites and scores what the run scored."""
    from eval.retrieval import evaluate_retrieval_checkpoint

    run = tmp_path / "attn"
    summary = run_retrieval_experiment(_recipe(synth_rsitmd, tiny_clip, run, "train.max_steps=2", "harma.share=both",
                                               "harma.sites=[mlp,attn]"), progress=False)
    meta = json.loads((run / "final" / "retrieval_model.json").read_text())
    assert meta["sites"] == ["mlp", "attn"]
    plain = _recipe(synth_rsitmd, tiny_clip, tmp_path / "other", "harma.share=both")  # sites: the default [mlp]
    assert evaluate_retrieval_checkpoint(plain, run / "final")["mR"] == summary["eval"]["retrieval"]["mR"]
