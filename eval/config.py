"""Recipe section owned by eval/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from finetune.config import config_field as _help


@dataclass
class EvalConfig:
    benchmarks: list[str] = _help("Benchmarks run after training: ucmerced, aid, lrben.", factory=list)
    ucmerced_root: Optional[str] = _help("Folder holding UCMerced_LandUse/.", None)
    aid_root: Optional[str] = _help("Folder holding AID/.", None)
    lrben_root: Optional[str] = _help("Folder holding RSVQA_LR/.", None)
    geochat_bench_dir: Optional[str] = _help("Folder with GeoChat-Bench UCmerced.jsonl / aid.jsonl / lrben.jsonl.", None)
    limit: Optional[int] = _help("Score at most this many questions per benchmark.", None)
    batch_size: int = _help("Generation batch size.", 8)
    max_new_tokens: int = _help("Most generated tokens per answer.", 16)
    seed: int = _help("Seed for subsets (AID 30% per class).", 0)
