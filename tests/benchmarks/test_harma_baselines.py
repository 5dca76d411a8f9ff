"""benchmarks/harma_baselines.py: the pretrained base is built once per setting and reused; the pretraining
run sees only the pretraining corpus. Training is replaced by a stand-in here (the real runs are measured)."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import harma_baselines  # noqa: E402


def _args(**kw) -> Namespace:
    return Namespace(**{"width": 64, "pretrain_epochs": 2, "pretrain_corpus": "6,2", "pretrain_lr": 1e-3,
                        "pretrain_classes": 4, "pretrain_names": "renamed", **kw})


def test_the_base_is_built_once_per_setting_from_the_corpus(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(harma_baselines, "run_child", _fake_child(calls))
    fixed = ["train.report_to=[]"]
    base = harma_baselines.pretrained_base(_args(), tmp_path, (12, 4, 4), fixed)
    assert base.name.startswith("pretrained-tiny-clip-w64-corpus6x2-") and base.name.endswith("-e2-lr0.001")
    assert (base / "config.json").exists()
    assert json.loads((tmp_path / "tiny-clip-w64" / "config.json").read_text())["text_config"]["hidden_size"] == 64
    (flag, train), (export_flag, _) = calls
    assert flag == "--one" and export_flag == "--export"
    (corpus,) = (p / "SynthRS-RSITMD-pretrain" for p in tmp_path.glob("pretrain-corpus6x2-*"))
    assert f"harma.train_file={corpus / 'train.json'}" in train and f"harma.test_file={corpus / 'val.json'}" in train
    assert {"harma.method=full", "train.learning_rate=0.001", "train.epochs=2", *fixed} <= set(train)
    assert len(json.loads((corpus / "train.json").read_text())) == 5 * 6

    assert harma_baselines.pretrained_base(_args(), tmp_path, (12, 4, 4), fixed) == base  # cached: no new run
    assert len(calls) == 2
    other = harma_baselines.pretrained_base(_args(pretrain_epochs=3), tmp_path, (12, 4, 4), fixed)
    assert other != base and len(calls) == 4
    assert harma_baselines.pretrained_base(_args(pretrain_epochs=0), tmp_path, (12, 4, 4), fixed) == tmp_path / "tiny-clip-w64"


def test_the_renamed_corpus_keeps_its_cached_base_name_and_same_names_get_their_own(tmp_path, monkeypatch):
    """--pretrain-names renamed (the default) names the base as before the option existed (docs/harma.md's
    cached base); same is another corpus and base, whose captions use every class's fine-tuning name."""
    doc = _args(width=128, pretrain_corpus="1000,100", pretrain_epochs=10)
    assert harma_baselines.base_names(doc, (120, 60, 100))[1] == "pretrained-tiny-clip-w128-corpus1000x100-35aa7a-e10-lr0.001"
    same = harma_baselines.base_names(_args(width=128, pretrain_corpus="1000,100", pretrain_epochs=10,
                                            pretrain_names="same"), (120, 60, 100))
    assert same[1].startswith("pretrained-tiny-clip-w128-corpus1000x100-") and "35aa7a" not in same[1]
    assert harma_baselines.build_parser().parse_args([]).pretrain_names == "renamed"  # the default: as before
    with pytest.raises(SystemExit, match="--pretrain-names 'other'"):
        harma_baselines.pretrain_class_words("other")

    monkeypatch.setattr(harma_baselines, "run_child", _fake_child([]))
    harma_baselines.pretrained_base(_args(pretrain_names="same"), tmp_path, (12, 4, 4), [])
    (corpus,) = (p / "SynthRS-RSITMD-pretrain" for p in tmp_path.glob("pretrain-corpus6x2-*"))
    rows = json.loads((corpus / "train.json").read_text())
    assert all(r["label_name"] in r["caption"] for r in rows)
    assert not any(word in r["caption"] for r in rows for word in ("cropland", "woodland", "airfield", "housing"))


def _fake_child(calls):
    def fake_child(overrides, flag="--one"):
        calls.append((flag, overrides))
        if flag == "--export":  # what export_pretrained writes: a CLIP folder
            Path(overrides[2]).mkdir(parents=True)
            (Path(overrides[2]) / "config.json").write_text("{}")
            return {}
        return {"seconds_per_epoch": 1.0, "val": [{"mR": 10.0}, {"mR": 20.0}]}
    return fake_child


def _run(val, test, seed):
    return {"val": [{"mR": val}], "test": {"mR": test}, "seed": seed, "trainable_params": 1, "trainable_share": 0.01,
            "seconds_per_epoch": 1.0, "peak_rss_mb": 900, "best_epoch": 1}


def test_merged_results_keep_the_rate_chosen_on_the_common_seeds_and_pair_differences_by_seed():
    """A third seed run only at the chosen rate (another invocation) joins that rate's runs; the choice is
    still made on seeds 0 and 1, where every rate has runs, and test differences pair seed with seed."""
    sweep = {"full fine-tuning": {"0.001": [_run(80, 70, 0), _run(80, 72, 1)], "0.003": [_run(79, 90, 0), _run(79, 90, 1)]},
             "HarMA share=both": {"0.03": [_run(70, 60, 0), _run(72, 61, 1)]}}
    seed2 = {"full fine-tuning": {"0.001": [_run(70, 74, 2)]}, "HarMA share=both": {"0.03": [_run(60, 63, 2)]}}
    merged = harma_baselines.merge_results([sweep, seed2])
    assert [r["seed"] for r in merged["full fine-tuning"]["0.001"]] == [0, 1, 2]
    assert harma_baselines.choose(merged["full fine-tuning"]) == "0.001"  # 70 (3 seeds) would lose to 79: not compared
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in harma_baselines.seed_table(merged).splitlines()[2:]}
    assert rows["full fine-tuning"][3:6] == ["70.00 / 72.00 / 74.00", "72.00", "0"]
    assert rows["HarMA share=both"][2:7] == ["0, 1, 2", "60.00 / 61.00 / 63.00", "61.33", "-10.67", "-10.00 / -11.00 / -11.00"]


def test_lrs_replace_the_sweep_per_method_and_bad_ones_are_named():
    rates = {**harma_baselines.SWEEP, **harma_baselines.parse_lrs(["full=3e-4,1e-3", "harma=1e-2"])}
    assert rates["full fine-tuning"] == [3e-4, 1e-3] and rates["HarMA share=text_only"] == [1e-2]
    assert rates["LoRA r=8 (both towers)"] == harma_baselines.SWEEP["LoRA r=8 (both towers)"]
    runs = harma_baselines.variants("full fine-tuning", True, rates)
    assert [lr for lr, _ in runs] == ["0.0003", "0.001"] and "train.learning_rate=0.001" in runs[1][1]
    with pytest.raises(SystemExit, match="--lrs 'ful=1e-3'.*one of zero-shot"):
        harma_baselines.parse_lrs(["ful=1e-3"])


def test_word_groups_split_the_val_queries_by_class_name(tiny_clip, synth_rsitmd):
    """harma_word_groups: the two groups' query counts add up to the split, and one group holding every
    class scores what the whole split scores."""
    import harma_word_groups

    from eval.retrieval import recall_at_k
    from finetune.retrieval.backbone import embed_split, load_backbone
    from finetune.retrieval.data import read_eval_split
    from finetune.retrieval.model import build_retrieval_model

    split = read_eval_split(synth_rsitmd / "val.json", str(synth_rsitmd))
    labels = [e["label_name"] for e in json.loads((synth_rsitmd / "val.json").read_text())]
    backbone = load_backbone(tiny_clip)
    model = build_retrieval_model(backbone.clip, "zeroshot").eval()
    everything = harma_word_groups.group_scores(model, backbone, split, labels, renamed=set(labels))
    images, texts = embed_split(model, backbone, split)
    assert set(everything) == {"renamed"}
    assert everything["renamed"] == recall_at_k((images @ texts.t()).numpy(), split.img2txt, split.txt2img)["mR"]
    halves = harma_word_groups.group_scores(model, backbone, split, labels, renamed={labels[0]})
    assert 0 <= halves["renamed"] <= 100 and 0 <= halves["same name"] <= 100


def test_word_groups_label_runs_of_the_same_name_apart():
    """Two invocations both name their first run 7-0.03-0 (seed 0 of a sweep, seed 2 of a later one): each keeps
    its own row (the second used to replace the first under one label)."""
    import harma_word_groups

    runs = [Path("w/harma-attn/runs/7-0.03-0"), Path("w/harma-attn/runs/7-0.03-1"), Path("w/harma-attn-seed2/runs/7-0.03-0")]
    assert harma_word_groups.run_labels(runs) == ["harma-attn/7-0.03-0", "7-0.03-1", "harma-attn-seed2/7-0.03-0"]
    assert harma_word_groups.run_labels(runs[:2]) == ["7-0.03-0", "7-0.03-1"]


def test_rates_whose_means_differ_only_by_float_rounding_tie_and_the_first_tried_is_kept():
    """LoRA on the all-names base: 76.11 + 76.28 and 77.00 + 75.39 are the same sum (152.39), but the float
    means differ in the 14th digit; that is a tie, so the first rate tried is kept (the second won before)."""
    runs = {"0.003": [_run(76.1111111111111, 0, 0), _run(76.27777777777779, 0, 1)],
            "0.01": [_run(77.0, 0, 0), _run(75.3888888888889, 0, 1)]}
    assert harma_baselines.choose(runs) == "0.003"
    runs["0.01"][0] = _run(77.01, 0, 0)
    assert harma_baselines.choose(runs) == "0.01"
