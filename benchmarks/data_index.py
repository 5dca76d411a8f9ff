"""Benchmark: load a GeoChat_Instruct-sized annotation file, first time (parse + validate + Arrow
cache) and again (memory-mapped cache).

    .venv/bin/python benchmarks/data_index.py                 # 318k records, ~260 MB
    .venv/bin/python benchmarks/data_index.py --records 20000 --repeats 3

Every measurement runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own; times
are medians over ``--repeats``. Baseline in the same run: a bare ``json.load`` of the file.
Goals (issue 2): first load < 60 s, cached load < 5 s, peak RSS < 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from finetune.files import write_text_atomic

CLASSES = ["agricultural", "airplane", "baseball diamond", "beach", "buildings", "chaparral", "dense residential",
           "forest", "freeway", "golf course", "harbor", "intersection", "medium residential", "mobile home park",
           "overpass", "parking lot", "river", "runway", "sparse residential", "storage tanks", "tennis court"]
WORDS = ("the image shows a large area with several buildings roads trees vehicles parked near river bank "
         "small medium white gray green field runway ships harbor bridge center left right top bottom").split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def make_record(i: int, rng: random.Random) -> dict:
    """One GeoChat-like record: classification, multi-turn VQA, grounding or a detailed description."""
    kind = i % 4
    image = f"images/P{i // 7:05d}_{i % 7}.png"
    if kind == 0:
        prompt = f"<image>\nClassify the given image in one of the following classes. Classes: {', '.join(CLASSES)}. \nAnswer in one word or a short phrase."
        turns = [prompt, rng.choice(CLASSES)]
    elif kind == 1:
        turns = []
        for t in range(rng.randint(2, 4)):
            q = f"Is there a {rng.choice(WORDS)} in the {rng.choice(['left', 'right', 'center'])} of the image?"
            turns += [("<image>\n" if t == 0 else "") + q + " Answer the question using a single word or phrase.", rng.choice(["Yes", "No"])]
    elif kind == 2:
        box = "".join(f"{{<{rng.randint(0, 50)}><{rng.randint(0, 50)}><{rng.randint(50, 100)}><{rng.randint(50, 100)}>|{rng.choice([0, 0, 45])}}}" for _ in range(rng.randint(1, 3)))
        turns = ["<image>\n[grounding] " + _sentence(rng, 8), _sentence(rng, 65) + " " + box]
    else:
        turns = ["<image>\n[caption] Describe the image in detail.", " ".join(_sentence(rng, 14) for _ in range(rng.randint(7, 13)))]
    conversations = [{"from": "human" if j % 2 == 0 else "gpt", "value": v} for j, v in enumerate(turns)]
    return {"id": f"P{i:07d}", "image": image, "conversations": conversations}


def write_file(path: Path, n: int, seed: int = 0) -> int:
    from finetune.data import jsonio

    rng = random.Random(seed)
    write_text_atomic(path, jsonio.dumps_list([make_record(i, rng) for i in range(n)]))
    return path.stat().st_size


def measure(step: str, file: str, cache: str) -> dict:
    """Run one step in this process and return its seconds and peak RSS."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    if step != "json_load":  # imports are timed apart: they are the same for every file size
        import datasets  # noqa: F401

        import finetune.data.loader  # noqa: F401
        import geotune.config  # noqa: F401
    imports = time.perf_counter() - started
    started = time.perf_counter()
    if step == "json_load":
        with open(file, encoding="utf-8") as f:
            count = len(json.load(f))
        problems = 0
    elif step == "validate":
        from finetune.data.validate import validate_file

        problems = len(validate_file(file))
        count = -1
    else:  # first / cached: the loader the trainer uses
        from finetune.data.index import PARSE_COUNT
        from finetune.data.loader import load_training_data
        from geotune.config import load_recipe

        cfg = load_recipe(None, [f"data.datasets=[{{name: geochat, path: '{file}', format: llava}}]", f"data.cache_dir={cache}"])
        data = load_training_data(cfg)
        count, problems = len(data.records), PARSE_COUNT["parses"]
        if step == "cached" and problems:
            raise RuntimeError("the cached load parsed the file again")
    seconds = time.perf_counter() - started
    return {"step": step, "seconds": seconds, "imports": imports, "rss_gb": peak_rss_gb(), "records": count, "parses_or_problems": problems}


def peak_rss_gb() -> float:
    """This process's peak RSS. ``VmHWM`` belongs to the process's own memory map; ``ru_maxrss`` would
    carry over the parent's peak across fork + exec on Linux."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_child(step: str, file: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, "--file", str(file), "--cache", str(cache)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=318_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", choices=["json_load", "validate", "first", "cached"])
    parser.add_argument("--file")
    parser.add_argument("--cache")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_file(Path(args.write), args.records)
        return
    if args.child:
        print(json.dumps(measure(args.child, args.file, args.cache)))
        return
    with tempfile.TemporaryDirectory(prefix="geotune-bench-") as tmp:
        file, cache = Path(tmp) / "geochat_instruct.json", Path(tmp) / "cache"
        started = time.perf_counter()
        # written by a child too, so that this parent stays small while it spawns the measurements
        subprocess.run([sys.executable, __file__, "--write", str(file), "--records", str(args.records)], check=True)
        size = file.stat().st_size
        print(f"wrote {args.records} records, {size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s", flush=True)
        rows: dict[str, list[dict]] = {}
        for _ in range(args.repeats):
            shutil.rmtree(cache, ignore_errors=True)
            for step in ("json_load", "validate", "first", "cached"):
                rows.setdefault(step, []).append(run_child(step, file, cache))
        base = statistics.median(r["seconds"] for r in rows["json_load"])
        print(f"\n{'step':<28}{'seconds':>9}{'x json.load':>13}{'peak RSS GB':>13}{'+imports s':>12}")
        names = {"json_load": "json.load (baseline)", "validate": "validate_file (no cache)",
                 "first": "first load (parse+cache)", "cached": "cached load (mmap Arrow)"}
        for step, results in rows.items():
            sec = statistics.median(r["seconds"] for r in results)
            rss = max(r["rss_gb"] for r in results)
            imports = statistics.median(r["imports"] for r in results)
            print(f"{names[step]:<28}{sec:>9.2f}{sec / base:>13.2f}{rss:>13.2f}{imports:>12.2f}")
        print(f"\nmedians over {args.repeats} repeat(s); records loaded: {rows['cached'][0]['records']}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
