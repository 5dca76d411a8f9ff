"""Feature extraction on the tiny InternVL: length-sorted batches vs a per-sample loop.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/feature_extraction.py [--n 256] [--batch-size 16] [--repeats 3]

Times the backends' ``encode`` (image loading + tokenising + forward + pooling; no disk cache) on the
first N SynthRS instruct records, medians over repeats, and checks the two give the same features.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _selection_pool import parse_setup  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    import torch

    from selection.config import FeaturesConfig
    from selection.features import make_backend

    args, model_cfg, data, records = parse_setup(__doc__, n=256, batch_size=32, prefix="bench-features-")
    print(f"{len(records)} records, tiny InternVL, torch threads {torch.get_num_threads()}, device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}, repeats {args.repeats}")
    print(f"| backend | per-sample loop (s) | batched bs={args.batch_size} (s) | speed-up | max |diff| |")
    print("|---|---|---|---|---|")
    for name, layers in (("target", [-1]), ("reference", [0, 1])):
        backend = make_backend(FeaturesConfig(backend=name, layers=layers), model_cfg)
        backend.encode(records[:4], data, 4)  # load the model and warm up outside the timings
        loop_s, loop = timed(lambda b=backend: np.concatenate([b.encode([r], data, 1)[0] for r in records]), args.repeats)
        batch_s, batched = timed(lambda b=backend: b.encode(records, data, args.batch_size)[0], args.repeats)
        diff = float(np.abs(loop - batched).max())
        print(f"| {name} | {loop_s:.2f} | {batch_s:.2f} | {loop_s / batch_s:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
