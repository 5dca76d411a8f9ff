"""COINCIDE at LLaVA-665k scale: 665k x 20,480 fp16 features on disk (27 GB > 24 GB RAM), streamed.

    .venv/bin/python benchmarks/coincide_stream.py --stage write     # ~27 GB .npy, in chunks
    .venv/bin/python benchmarks/coincide_stream.py --stage select    # select_coincide on the memmap
    .venv/bin/python benchmarks/coincide_stream.py --stage gather    # one per-cluster read of every row
    .venv/bin/python benchmarks/coincide_stream.py --stage clean     # delete the file
    (--stage all runs the four; --n/--dim scale it down for a smoke run)

Honest but bounded on 2 shared CPU cores:
- the feature file is full size (N x 5 layers x [v, l] x 2,048 = 20,480-d unit rows, fp16), written
  in chunks; rows are random-but-clustered (2,000 true centres, unequal sizes, per-row noise drawn
  from a 2,048-row noise bank with a random per-row scale, so no two rows are equal);
- ``select`` runs the real ``select_coincide`` on the memmap in a fresh child process (peak RSS is the
  selection's alone), but with K scaled down from 10,000 (default 100), faiss niter from 50 (default
  10) and ``max_rows`` 256, because k-means cost is O(N K D) per pass: at K = 10,000 one assignment
  pass alone is 2.7e14 flop (hours on 2 cores). Every stage's time is reported and extrapolated to
  K = 10,000 / niter 50 explicitly (k-means compute linear in K and niter; the faiss training sample
  is capped by bytes, so it does not grow with K);
- ``gather`` reads every row once cluster by cluster (random 40 KB reads of the whole file): the I/O
  of one density or MMD pass at real K, where clusters hold ~66 rows and nothing is sub-sampled.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FILE = "coincide_features.npy"


def write_features(path: Path, n: int, dim: int, seed: int, chunk: int = 4096) -> float:
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    true_k = 2000
    centres = rng.standard_normal((true_k, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bank = rng.standard_normal((2048, dim), dtype=np.float32) / np.sqrt(dim)
    p = rng.dirichlet(np.full(true_k, 2.0))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        x = centres[rng.choice(true_k, size=hi - lo, p=p)]
        x += bank[rng.integers(0, len(bank), hi - lo)] * rng.uniform(0.4, 0.8, (hi - lo, 1)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[lo:hi] = x
        if lo % (chunk * 16) == 0:
            out.flush()  # bound dirty pages
    out.flush()
    del out
    return time.perf_counter() - start


def peak_rss_gb() -> float:
    """This process's own peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries that across fork + exec, so a
    child started by a parent that had just written the 27 GB file through a memmap would report the
    parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def child_select(path: Path, k: int, niter: int, max_rows: int, keep: float) -> dict:
    from selection.budget import SelectionInputs
    from selection.coincide import select_coincide

    x = np.load(path, mmap_mode="r")
    start = time.perf_counter()
    sel = select_coincide(SelectionInputs(n=len(x), budget=keep, features=x, clusters=k, cluster_method="faiss",
                                          options={"n_layers": 5, "max_rows": max_rows, "niter": niter}))
    total = time.perf_counter() - start
    a = np.random.default_rng(0).standard_normal((2048, x.shape[1]), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((k, x.shape[1]), dtype=np.float32)
    t0 = time.perf_counter()
    a @ b.T  # the k-means kernel: states the flop rate this run got, for the extrapolation
    gflops = 2 * 2048 * x.shape[1] * k / (time.perf_counter() - t0) / 1e9
    # the labels let `gather` read rows in the same cluster order
    np.save(path.with_name("labels.npy"), sel.all_clusters)
    return {"n": len(x), "dim": x.shape[1], "k": k, "niter": niter, "kept": len(sel), "total_s": total,
            "timings": sel.timings, "gflops": gflops, "peak_rss_gb": peak_rss_gb()}


def child_gather(path: Path) -> dict:
    from selection.cluster import members_by_cluster, read_rows

    x = np.load(path, mmap_mode="r")
    labels = np.load(path.with_name("labels.npy"))
    members = members_by_cluster(labels, int(labels.max()) + 1)
    start, rows, checksum = time.perf_counter(), 0, 0.0
    for idx in members:
        for i in range(0, len(idx), 66):  # clusters of ~66 rows, as at K = 10,000
            block = read_rows(x, idx[i : i + 66])
            rows += len(block)
            checksum += float(block[:, 0].sum())
    return {"rows": rows, "gather_s": time.perf_counter() - start,
            "peak_rss_gb": peak_rss_gb()}


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report_select(r: dict, train_rows: int, k_full: int = 10_000, niter_full: int = 50) -> None:
    """Measured stage times, and each extrapolated to K=10,000 / niter 50 from flop counts.

    k-means stages = measured time minus their compute at this K (I/O, conversion, overhead: does not
    grow with K) plus the compute at full K at the matmul rate measured in the same run.
    """
    t, n, d, k, rate = r["timings"], r["n"], r["dim"], r["k"], r["gflops"] * 1e9
    train_flop = lambda kk, it: 2 * it * train_rows * kk * d  # noqa: E731
    assign_flop = lambda kk: 2 * n * kk * d  # noqa: E731
    train, assign = t.get("cluster.train", 0), t.get("cluster.assign", 0)
    rows = [
        ("faiss train (streamed sample)", train,
         max(train - train_flop(k, r["niter"]) / rate, 0) + train_flop(k_full, niter_full) / rate),
        ("assignment pass (27 GB read + N K D)", assign, max(assign - assign_flop(k) / rate, 0) + assign_flop(k_full) / rate),
        ("transferability (K x K cosines)", t.get("transferability", 0), 2 * k_full**2 * d / 2 / rate),
        ("density pass", t.get("density", 0), None),
        ("allocation", t.get("allocate", 0), t.get("allocate", 0) * k_full / k),
        ("MMD pass", t.get("mmd", 0), None),
    ]
    print(f"select_coincide on {n} x {d} fp16, K={k}, niter={r['niter']}: kept {r['kept']}; "
          f"matmul rate {r['gflops']:.0f} GFLOP/s")
    print("| stage | measured s | extrapolated s at K=10,000, niter=50 |")
    print("|---|---|---|")
    for name, s, e in rows:
        print(f"| {name} | {s:.1f} | {'gather I/O + ' + f'{2 * n * 66 * d / rate:.0f}' + ' compute' if e is None else f'{e:.0f}'} |")
    print(f"| **total** | **{r['total_s']:.1f}** | |")
    print(f"peak RSS of the selection process: {r['peak_rss_gb']:.2f} GB (goal < 8 GB)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["write", "select", "gather", "clean", "all"], default="all")
    parser.add_argument("--n", type=int, default=665_000)
    parser.add_argument("--dim", type=int, default=20_480)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--niter", type=int, default=10)
    parser.add_argument("--max-rows", type=int, default=256)
    parser.add_argument("--keep", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default="/tmp/geotune_bench_coincide")
    parser.add_argument("--child", choices=["select", "gather"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    path = Path(args.dir) / FILE
    if args.child == "select":
        print(json.dumps(child_select(path, args.clusters, args.niter, args.max_rows, args.keep)))
        return 0
    if args.child == "gather":
        print(json.dumps(child_gather(path)))
        return 0

    stages = ["write", "select", "gather", "clean"] if args.stage == "all" else [args.stage]
    if "write" in stages:
        need = args.n * args.dim * 2
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
        if free < need + (5 << 30):
            raise SystemExit(f"{path.parent}: {free / 1e9:.1f} GB free, need {need / 1e9:.1f} GB + 5 GB headroom")
        seconds = write_features(path, args.n, args.dim, args.seed)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.1f} GB) in {seconds:.0f} s "
              f"({path.stat().st_size / 1e6 / seconds:.0f} MB/s incl. generation)")
    if "select" in stages:
        train_rows = min(args.n, max(args.clusters, (2 << 30) // (4 * args.dim)))  # cluster_features' cap
        report_select(train_rows=train_rows, r=run_child("--child", "select", "--dir", args.dir, "--clusters", str(args.clusters),
                                "--niter", str(args.niter), "--max-rows", str(args.max_rows), "--keep", str(args.keep)))
    if "gather" in stages:
        r = run_child("--child", "gather", "--dir", args.dir)
        print(f"per-cluster gather of all {r['rows']} rows (random reads, ~66-row clusters): {r['gather_s']:.0f} s, "
              f"peak RSS {r['peak_rss_gb']:.2f} GB; one density or MMD pass at K=10,000 costs this I/O plus "
              f"~{args.n * 66 * args.dim * 2 / 1e12:.1f} Tflop of kernel compute")
    if "clean" in stages:
        shutil.rmtree(path.parent, ignore_errors=True)
        print(f"deleted {path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
