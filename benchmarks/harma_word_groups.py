"""Val mR of a retrieval checkpoint split by class group: the classes the pretraining corpus names
differently (``PRETRAIN_CLASS_WORDS``: "cropland" for farmland...) and the classes it names as the
fine-tuning captions do. It says where a method's gap to full fine-tuning lies (docs/harma.md).

    python benchmarks/harma_word_groups.py --work WORK --base WORK/pretrained-... WORK/runs/3-0.001-0 ...

``WORK`` is ``harma_baselines.py``'s ``--work``; each run is scored at its ``best/`` (val-chosen) checkpoint,
and the base alone as zero-shot. Queries are the group's images and their captions, the gallery the whole split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages


def group_scores(model, backbone, split, labels: list[str], renamed) -> dict[str, float]:
    """mR of the renamed classes' images and of the others, each against the whole gallery (an empty group: absent)."""
    from eval.retrieval import recall_at_k
    from finetune.retrieval.backbone import embed_split

    images, texts = embed_split(model, backbone, split)
    sims = (images @ texts.t()).numpy()
    groups = {"renamed": [i for i, c in enumerate(labels) if c in renamed],
              "same name": [i for i, c in enumerate(labels) if c not in renamed]}
    return {name: recall_at_k(sims, split.img2txt, split.txt2img, queries=rows)["mR"] for name, rows in groups.items() if rows}


def run_labels(runs: list[Path]) -> list[str]:
    """A row label per run folder: its name, or ``<work>/<name>`` where two runs share a name (another
    invocation's ``runs/`` numbers its runs from 0 too)."""
    names = [run.name for run in runs]
    return [f"{run.parent.parent.name}/{run.name}" if names.count(run.name) > 1 else run.name for run in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="harma_baselines.py's --work (holds SynthRS-RSITMD/)")
    parser.add_argument("--base", required=True, help="the pretrained base the runs started from")
    parser.add_argument("runs", nargs="*", help="run folders of harma_baselines.py (scored at best/)")
    args = parser.parse_args()
    from omegaconf import OmegaConf

    from eval.retrieval import load_retrieval_checkpoint
    from finetune.retrieval.backbone import load_backbone
    from finetune.retrieval.data import read_eval_split
    from finetune.retrieval.model import build_retrieval_model
    from geotune.synth.retrieval import PRETRAIN_CLASS_WORDS

    data = Path(args.work) / "SynthRS-RSITMD"
    split = read_eval_split(data / "val.json", str(data))
    labels = [e["label_name"] for e in json.loads((data / "val.json").read_text())]
    backbone = load_backbone(args.base)
    models = {"zero-shot": (build_retrieval_model(backbone.clip, "zeroshot").eval(), backbone)}
    runs = [Path(run) for run in args.runs]
    for label, run in zip(run_labels(runs), runs, strict=True):
        models[label] = load_retrieval_checkpoint(OmegaConf.load(run / "config.yaml"), run / "best")
    print("| run | val mR, renamed classes | val mR, same-name classes |\n|---|---:|---:|")
    for name, (model, bb) in models.items():
        scores = group_scores(model, bb, split, labels, PRETRAIN_CLASS_WORDS)
        print(f"| {name} | {scores.get('renamed', float('nan')):.1f} | {scores.get('same name', float('nan')):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
