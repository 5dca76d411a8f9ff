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
                        "pretrain_classes": 4, **kw})


def test_the_base_is_built_once_per_setting_from_the_corpus(tmp_path, monkeypatch):
    calls = []

    def fake_child(overrides, flag="--one"):
        calls.append((flag, overrides))
        if flag == "--export":  # what export_pretrained writes: a CLIP folder
            Path(overrides[2]).mkdir(parents=True)
            (Path(overrides[2]) / "config.json").write_text("{}")
            return {}
        return {"seconds_per_epoch": 1.0, "val": [{"mR": 10.0}, {"mR": 20.0}]}

    monkeypatch.setattr(harma_baselines, "run_child", fake_child)
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
