"""Shared setup of the selection benchmarks: a tiny InternVL and the SynthRS instruct pool."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_model_and_pool(work: Path, n: int | None = None):
    """``(model_cfg, data, records)``: tiny InternVL (64-px tiles) and SynthRS small's instruct records."""
    from finetune.data.loader import load_training_data
    from finetune.models.tiny import build_tiny_internvl
    from geotune.config import load_recipe
    from geotune.synth import write_synthrs

    model = work / "tiny-internvl"
    if not (model / "config.json").exists():
        build_tiny_internvl(model, seed=0)
    synth = work / "synthrs"
    if not (synth / "instruct" / "geochat_style.json").exists():
        write_synthrs(synth, seed=0, size="small")
    cfg = load_recipe("demo", [f"model.path={model}"])
    cfg.data.datasets[0].path = str(synth / "instruct" / "geochat_style.json")
    cfg.data.datasets[0].image_root = str(synth / "instruct")
    data = load_training_data(cfg, cache_dir=str(work / "data-cache"))
    records = data.records[:n] if n else data.records
    model_cfg = SimpleNamespace(path=str(model), adapter="internvl_hf", trust_remote_code=False, dtype="float32")
    return model_cfg, data, records


def parse_setup(description: str, n: int, batch_size: int, prefix: str):
    """Parse the benchmarks' shared arguments, set torch threads, build the model and pool.

    Returns ``(args, model_cfg, data, records)``.
    """
    import argparse
    import tempfile

    import torch

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=n, help="records of the pool used")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared 2-core machine, 2 threads oversubscribe and time 10x noisier)")
    parser.add_argument("--work", default=None, help="folder for the tiny model and SynthRS (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix=prefix))
    return (args, *tiny_model_and_pool(work, args.n))
