"""Batched vs per-sample generation for eval, on the tiny model over a UCMerced-format test set.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_generation.py [--per-class 2] [--repeats 3]

Runs ``eval.runners.run_benchmark("ucmerced", ...)`` (in memory, no files) with batch size 1 (per-sample, the
baseline) and with larger batches, on the same questions; prints the median seconds over repeats,
questions per second (timed: image decoding + generation, from ``generation_seconds``), the speed-up against batch 1 in the same run, and how many answers agree with
the per-sample answers (left padding should not change greedy answers). The test set is SynthRS's
UCMerced layout (``geotune.synth``), or random images in the same layout if SynthRS is unavailable.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def write_test_set(root: Path, per_class: int) -> Path:
    """A UCMerced_LandUse layout under ``root`` (21 classes x ``per_class``)."""
    try:
        from geotune.synth.layouts import write_ucmerced

        write_ucmerced(root, seed=0, per_class=per_class, image_size=64)  # SynthRS scenes
    except ImportError:
        import numpy as np
        from PIL import Image

        from eval.readers import UCMERCED_CLASSES

        for c, name in enumerate(UCMERCED_CLASSES):
            folder = root / "UCMerced_LandUse" / "Images" / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = np.random.default_rng(100 * c + i).integers(0, 255, (64, 64, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}{i:02d}.tif")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=2, help="images per UCMerced class (21 classes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,8,16,42", help="comma list; 1 is the per-sample baseline")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from omegaconf import OmegaConf

    from eval.predictions import read_predictions
    from eval.readers import read_ucmerced
    from eval.runners import run_benchmark
    from finetune.models.adapters import get_adapter
    from finetune.models.tiny import build_tiny_internvl

    work = Path(tempfile.mkdtemp(prefix="eval_bench_"))
    model_dir = build_tiny_internvl(work / "tiny", seed=0)
    adapter = get_adapter("internvl_hf")
    model, processor = adapter.load(OmegaConf.create({"path": str(model_dir), "trust_remote_code": False, "dtype": "float32"}))
    model.to(args.device).eval()
    bench = read_ucmerced(write_test_set(work / "data", args.per_class))
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if 1 not in sizes:
        sizes = [1] + sizes

    def run(batch_size):
        out = Path(tempfile.mkdtemp(dir=work))  # fresh: nothing to resume from
        result = run_benchmark("ucmerced", model, processor, bench, adapter=adapter, batch_size=batch_size, out_dir=out,
                              max_new_tokens=args.max_new_tokens, progress=False)
        elapsed = result["generation_seconds"]  # image decoding + generation, not scoring/plotting
        rows, _ = read_predictions(out / "ucmerced.predictions.jsonl")
        return elapsed, {r["question_id"]: r["answer"] for r in rows}, result

    run(sizes[-1])  # warm-up (first-call allocations, lazy imports)
    seconds, answers, results = {}, {}, {}
    for _ in range(args.repeats):
        for size in sizes:  # interleaved, so load changes on a shared machine hit every size alike
            elapsed, answers[size], results[size] = run(size)
            seconds.setdefault(size, []).append(elapsed)
    base = statistics.median(seconds[1])
    n = len(bench)
    print(f"eval generation: tiny InternVL, {n} UCMerced-format questions, max_new_tokens={args.max_new_tokens}, "
          f"device={args.device}, torch threads={_threads()}, medians over {args.repeats} repeats")
    print(f"{'batch':>5} | {'median s':>8} | {'min s':>6} | {'q/s':>6} | {'speed-up':>8} | {'score':>6} | same answers as batch 1")
    print("-" * 82)
    for size in sizes:
        med = statistics.median(seconds[size])
        print(f"{size:>5} | {med:8.2f} | {min(seconds[size]):6.2f} | {n / med:6.1f} | {base / med:7.2f}x | "
              f"{results[size]['score']:6.2f} | {sum(answers[size][q] == a for q, a in answers[1].items())}/{n}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
