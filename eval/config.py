"""Recipe section owned by eval/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finetune.config import config_field as _help

BENCHMARKS = ("ucmerced", "aid", "lrben")
RETRIEVAL_BENCHMARKS = ("retrieval",)  # R@K / mR on harma.test_file (train.task=retrieval)


@dataclass
class EvalConfig:
    benchmarks: list[str] = _help("Benchmarks run after training: ucmerced, aid, lrben; retrieval for train.task=retrieval "
                                        "(R@K and mR on harma.test_file).", factory=list)
    ucmerced_root: str | None = _help("Folder holding UCMerced_LandUse/.", None)
    aid_root: str | None = _help("Folder holding AID/.", None)
    lrben_root: str | None = _help("Folder holding RSVQA_LR/.", None)
    geochat_bench_dir: str | None = _help("Folder with GeoChat-Bench UCmerced.jsonl / aid.jsonl / lrben.jsonl.", None)
    limit: int | None = _help("Score at most this many questions per benchmark.", None)
    batch_size: int = _help("Generation batch size.", 8)
    max_new_tokens: int = _help("Most generated tokens per answer.", 16)
    seed: int = _help("Seed for subsets (AID 30% per class).", 0)
    checkpoint: str | None = _help(
        "Checkpoint folder `geotune eval` scores (a peft adapter dir holding adapter_config.json, or full weights); "
        "`checkpoint=DIR` on the command line sets it.", None)
    lrben_split: str = _help("RSVQA-LR split scored as LRBEN.", "test")
    aid_fraction: float = _help("Share of each AID class scored (GeoChat-Bench: 0.3), seeded by eval.seed.", 0.3)
    classification_prompt: str | None = _help(
        "Classification prompt with {classes}; None: the GeoChat-Bench text when read from it, else GeoChat's prompt.", None)
    vqa_prompt: str = _help("VQA prompt with {question} (GeoChat's by default).",
                            "{question} Answer the question using a single word or phrase.")
    normalize: str = _help("Headline answer matching: geochat (lowercase, drop spaces and periods) | strict.", "geochat")
    max_patches: int | None = _help("Dynamic tiles per image at eval (None: one tile).", None)


def check_values(ev: Any) -> list[str]:
    """Problems with ``eval`` values, each naming its key (run by ``geotune.config.load_recipe``)."""
    known = BENCHMARKS + RETRIEVAL_BENCHMARKS
    unknown = [b for b in ev.benchmarks if b not in known]
    if unknown:
        return [f"eval.benchmarks: unknown benchmark(s) {unknown}; choose from {', '.join(known)}"]
    return []
