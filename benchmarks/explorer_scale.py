"""report.html at GeoChat scale: seconds to write the explorer page (no thumbnails) at n/4, n/2 and n records.

    .venv/bin/python benchmarks/explorer_scale.py                  # 318k records, one cluster per 66 (4,818)
    .venv/bin/python benchmarks/explorer_scale.py --n 80000 --rounds 3

The explorer's tests count its Python steps at two sizes (tests/selection/test_explorer.py) instead of
timing it: a clock in a test fails under machine load. This measures time, so work inside numpy (a
per-cluster scan of every record, which the step count does not see) shows too: the seconds per 100k
records stay about flat from n/4 to n when the page is linear; a quadratic step doubles them at every
doubling. Each round writes every size once, so machine load falls on all sizes alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from finetune.data.records import Record  # noqa: E402
from selection.budget import Selection  # noqa: E402
from selection.explorer import write_explorer  # noqa: E402


def synthetic_pool(n: int, seed: int = 0) -> tuple[Selection, dict, list[Record]]:
    """``n`` classification records in ``n // 66`` random clusters (as ``selection.clusters=0`` gives), a third kept."""
    rng = np.random.default_rng(seed)
    k = max(1, n // 66)
    clusters, scores = rng.integers(0, k, n), rng.random(n)
    kept = np.arange(0, n, 3)
    selection = Selection(kept, clusters[kept], scores[kept], np.zeros(len(kept), dtype=np.int64), clusters, scores,
                          {"clusters": k})
    turns = [{"from": "human", "value": "<image>\nClassify the given image in one of the following classes: a, b."},
             {"from": "gpt", "value": "a"}]
    records = [Record(f"r{i}", [f"{i}.png"], turns, "synthetic", "classification") for i in range(n)]
    header = {"method": "synthetic", "n_total": n, "n_kept": len(kept), "budget": 1 / 3, "seed": seed,
              "config_hash": "0" * 16, "options": {}, "info": selection.info}
    return selection, header, records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=318_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = [args.n // 4, args.n // 2, args.n]
    pools = {n: synthetic_pool(n) for n in sizes}
    seconds: dict[int, list[float]] = {n: [] for n in sizes}
    page_mb: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for n in sizes:
                start = time.perf_counter()
                page = write_explorer(Path(tmp) / str(n), *pools[n][:2], {}, pools[n][2])
                seconds[n].append(time.perf_counter() - start)
                page_mb[n] = page.stat().st_size / 2**20
    print(f"| records | clusters | page MB | median s of {args.rounds} | s per 100k records | x n/4 |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(seconds[sizes[0]]) / sizes[0]
    for n in sizes:
        median = statistics.median(seconds[n])
        print(f"| {n:,} | {n // 66:,} | {page_mb[n]:.1f} | {median:.2f} | "
              f"{median / n * 1e5:.2f} | {median / n / base:.2f} |")
    print(f"load average {open('/proc/loadavg').read().split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
