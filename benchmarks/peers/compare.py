"""geotune vs ms-swift vs LLaMA-Factory: the same model, pool and settings, in paired rounds.

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/peers/compare.py --work /tmp/peers/r3 --rounds 3 --modes full,lora

1. Creates a venv per system under ``--venvs`` (default ``<cache root>/peers``), geotune's too, all
   built the same way (``benchmarks/peers/venvs.py``: torch from the same wheels, then the system with
   its runtime dependencies only), so peak RSS counts the same kind of library pages for all three.
   geotune runs the working tree's code from the repository with that venv's interpreter
   (``--geotune-python`` overrides it). Nothing of the peers is in this repository.
2. Builds the tiny InternVL and SynthRS (small), converts the instruction pool with
   ``geotune data convert --to sharegpt`` (image paths made absolute, so every system reads the same
   file from any folder).
3. Runs each system on it with the settings in ``benchmarks/peers/systems.py`` (their silent defaults
   written out), one round = every system once in rotating order, under ``/usr/bin/time``: wall time,
   CPU time (user + sys), peak RSS; training time = the HF Trainer's own ``train_runtime`` (all three
   train with it); the loss of every step as each system logs it, stamped on arrival.
4. Scores each saved model with ``geotune eval`` (UCMerced / AID / LRBEN, ``--eval-limit`` questions).
5. Prints the table (medians over rounds) and writes ``results.jsonl`` and ``table.md`` in ``--work``.

On a GPU (``--device cuda --bf16``): every system sees one GPU (``CUDA_VISIBLE_DEVICES``), trains with
bf16 autocast (the peers' flags in ``systems.py``, "Precision"), and the table adds each run's peak GPU
memory (``nvidia-smi``, summed over the run's processes, polled every 0.5 s). ``--device cpu`` hides
the GPUs from all three (``CUDA_VISIBLE_DEVICES=``), as on a machine without one.

Time to target loss: seconds from the process start to the first step whose mean loss over the last
``--smooth`` steps is at most ``--target-loss`` (default: the highest final smoothed loss of all runs of
that mode, so every system reaches it). Loss curves are comparable only roughly: the peers' templates
also supervise the "\\n" after the end-of-turn token, one more (easy) label per answer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from systems import Setting, geotune_command, swift_command, write_llamafactory  # noqa: E402
from venvs import GEOTUNE, console_script, ensure_venv  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SYSTEMS = ("geotune", "ms-swift", "llamafactory")
LOSS = re.compile(r"""[{,]\s*['"]loss['"]:\s*['"]?([0-9.eE+-]+)""")
RUNTIME = re.compile(r"""['"]train_runtime['"]:\s*['"]?([0-9.]+)""")


def prepare(work: Path, python: str) -> tuple[Path, Path, Path]:
    """The tiny model, the pool as ShareGPT (image paths relative to the pool, for geotune, which
    refuses absolute ones) and the same file with absolute paths (for the peers)."""
    model, synthrs = work / "tiny", work / "synthrs"
    setup = ("from pathlib import Path; from finetune.models.tiny import build_tiny_internvl; "
             "from geotune.synth import write_synthrs; "
             f"p = Path('{model}'); (p / 'config.json').exists() or build_tiny_internvl(p); "
             f"write_synthrs(Path('{synthrs}'), seed=0, size='small')")
    subprocess.run([python, "-c", setup], check=True, cwd=REPO)
    pool = synthrs / "instruct"
    converted = work / "data" / "pool_sharegpt.json"
    converted.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "geotune", "data", "convert", str(pool / "geochat_style.json"), str(converted),
                    "--to", "sharegpt"], check=True, cwd=REPO)
    rows = json.loads(converted.read_text())
    for row in rows:
        row["images"] = [str(pool / image) for image in row.get("images", [])]
    absolute = converted.with_name("pool_sharegpt_abs.json")
    absolute.write_text(json.dumps(rows))
    return model, converted, absolute


def run_environment(device: str, environ: dict | None = None) -> dict:
    """The environment every system runs in: one GPU visible (``cuda``; a ``CUDA_VISIBLE_DEVICES`` the
    user set is kept) or none (``cpu``)."""
    env = dict(os.environ if environ is None else environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif device == "cuda":
        env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES") or "0"
    else:
        raise ValueError(f"--device: '{device}' is not one of cpu, cuda")
    return env


def check_device_settings(device: str, bf16: bool, systems: list[str]) -> None:
    """Refuse settings a system would silently change (``systems.py``, "Precision")."""
    if device == "cuda" and not bf16 and "llamafactory" in systems:
        raise ValueError("--device cuda without --bf16: LLaMA-Factory 0.9.5 has no fp32 training on a GPU (it loads "
                         "an fp32 checkpoint in fp16, infer_optim_dtype); add --bf16, or leave llamafactory out "
                         "of --systems")
    if bf16 and device != "cuda":
        raise ValueError("--bf16 needs --device cuda: geotune ignores train.bf16 on a CPU and the peers would not")


def gpu_memory_mib(query: str, pids: set[int]) -> int:
    """MiB of GPU memory used by ``pids``, from ``nvidia-smi --query-compute-apps=pid,used_memory
    --format=csv,noheader,nounits`` output."""
    used = 0
    for line in query.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit() and int(fields[0]) in pids:
            used += int(fields[1])
    return used


def tree_pids(root: int) -> set[int]:
    """Process ``root`` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def tree_memory(root: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in kB summed over process ``root`` and its descendants (Linux /proc)."""
    rss = anon = 0
    for pid in tree_pids(root):
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
            rss += int(status.get("VmRSS", "0 kB").split()[0])
            anon += int(status.get("RssAnon", "0 kB").split()[0])
        except (OSError, ValueError):
            continue
    return rss, anon


class PeakMemory(threading.Thread):
    """Peak of (VmRSS, RssAnon) over a process tree, polled every 0.1 s. RssAnon leaves out the mapped
    library pages, whose resident share depends on what the page cache holds (a venv other processes
    use keeps its libraries cached, and a fault then maps more of them), not on the program."""

    def __init__(self, pid: int, gpu: bool = False):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running, self.gpu, self.peak_gpu_mib = pid, (0, 0), True, gpu, 0

    def run(self):
        polls = 0
        while self.running:
            rss, anon = tree_memory(self.pid)
            self.peak = (max(self.peak[0], rss), max(self.peak[1], anon))
            if self.gpu and polls % 5 == 0:
                try:
                    query = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                            "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout
                except OSError:  # no nvidia-smi: RSS polling goes on, the GPU column stays 0
                    self.gpu, query = False, ""
                self.peak_gpu_mib = max(self.peak_gpu_mib, gpu_memory_mib(query, tree_pids(self.pid)))
            polls += 1
            time.sleep(0.1)


def timed_run(command: list[str], log: Path, cwd: Path, env: dict | None = None) -> dict:
    """Run under ``/usr/bin/time``; every output line stamped; losses and train_runtime parsed."""
    stats = log.with_suffix(".time")
    start = time.perf_counter()
    losses, runtime = [], None
    gpu = bool(env and env.get("CUDA_VISIBLE_DEVICES"))
    with subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(stats), *command], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as proc, \
            log.open("w") as out:
        memory = PeakMemory(proc.pid, gpu=gpu)
        memory.start()
        for line in proc.stdout:
            now = time.perf_counter() - start
            out.write(line)
            for chunk in line.split("\r"):
                if (m := LOSS.search(chunk)) and "train_runtime" not in chunk:
                    losses.append((round(now, 2), float(m.group(1))))
                if m := RUNTIME.search(chunk):
                    runtime = float(m.group(1))
    memory.running = False
    if proc.returncode:
        raise RuntimeError(f"{command[0]} failed (exit {proc.returncode}); see {log}")
    wall, user, system, rss_kib = stats.read_text().split()[-4:]
    return {"wall_s": float(wall), "cpu_s": float(user) + float(system), "peak_rss_gb": int(rss_kib) * 1024 / 1e9,
            "peak_tree_rss_gb": memory.peak[0] * 1024 / 1e9, "peak_anon_gb": memory.peak[1] * 1024 / 1e9,
            "train_s": runtime, "losses": losses, **({"peak_gpu_gb": memory.peak_gpu_mib * 2**20 / 1e9} if gpu else {})}


def saved_model(system: str, out: Path) -> Path:
    if system == "geotune":
        return out / "final"
    if system == "llamafactory":
        return out
    found = sorted(out.rglob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))  # ms-swift
    return found[-1] if found else out


def complete_processor_files(checkpoint: Path, base: Path) -> list[str]:
    """Copy tokenizer/processor files a system did not save from the base model (never weights)."""
    copied = []
    for f in base.iterdir():
        if f.is_file() and not f.name.endswith((".safetensors", ".bin")) and f.name != "config.json" \
                and not (checkpoint / f.name).exists() and not (checkpoint / "adapter_config.json").exists():
            shutil.copy2(f, checkpoint / f.name)
            copied.append(f.name)
    return copied


def evaluate(python: str, model: Path, checkpoint: Path, synthrs: Path, limit: int, env: dict | None = None) -> dict:
    subprocess.run([python, "-m", "geotune", "eval", f"model.path={model}", f"checkpoint={checkpoint}",
                    "eval.benchmarks=[ucmerced,aid,lrben]", f"eval.ucmerced_root={synthrs}", f"eval.aid_root={synthrs}",
                    f"eval.lrben_root={synthrs}", f"eval.limit={limit}"], check=True, cwd=REPO, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((checkpoint / "eval" / "summary.json").read_text())


def geotune_python(args, venvs: dict) -> str:
    """geotune's training interpreter: ``--geotune-python``, else its own fresh venv's (``venvs.py``)."""
    return args.geotune_python or str(venvs[GEOTUNE] / "bin" / "python")


def system_command(system: str, setting: Setting, args, model: Path, data: list[Path], venvs: dict, out: Path) -> list[str]:
    """The command line of one run (``systems.py`` holds each system's flags)."""
    if system == "geotune":
        return geotune_command(geotune_python(args, venvs), model, data[0], args.work / "synthrs" / "instruct", out,
                               args.work / "cache", setting)
    if system == "ms-swift":
        return swift_command(console_script(venvs[system], system), model, data[1], out, setting)
    out.parent.mkdir(parents=True, exist_ok=True)
    return [str(console_script(venvs[system], system)), "train", str(write_llamafactory(model, data[1], out, setting))]


def run_system(system: str, mode: str, round_: int, args, model: Path, data: list[Path], venvs: dict) -> dict:
    out = args.work / "runs" / f"{system}-{mode}-{round_}"
    shutil.rmtree(out, ignore_errors=True)
    command = system_command(system, Setting(mode=mode, epochs=args.epochs, bf16=args.bf16), args, model, data, venvs, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = run_environment(args.device)
    result = {"system": system, "mode": mode, "round": round_, "device": args.device, "bf16": args.bf16,
              **timed_run(command, out.with_suffix(".log"), REPO if system == "geotune" else args.work, env)}
    if system == "geotune":
        summary = json.loads((out / "train_summary.json").read_text())
        result["padding"] = summary["padding_share"]
    checkpoint = saved_model(system, out)
    result["copied_processor_files"] = complete_processor_files(checkpoint, model)
    if args.eval_limit:
        result["accuracy"] = evaluate(args.python, model, checkpoint, args.work / "synthrs", args.eval_limit, env)
    return result


def smoothed(losses: list[tuple[float, float]], k: int) -> list[tuple[float, float]]:
    return [(t, statistics.fmean(v for _, v in losses[max(0, i - k + 1): i + 1])) for i, (t, _) in enumerate(losses)]


def phases(run: dict) -> tuple[float, float]:
    """(start s, end s) of one run: process start to the training loop (imports, data preparation, model
    load: the last loss's time less ``train_runtime``), and last logged step to exit (save, teardown)."""
    last = run["losses"][-1][0]
    return last - run["train_s"], run["wall_s"] - last


RATIOS = {"wall": "wall_s", "train": "train_s", "CPU": "cpu_s", "start": "start_s", "peak RSS": "peak_rss_gb"}
BENCHMARKS = ("ucmerced", "aid", "lrben")


def paired_ratios(results: list[dict], mode: str, peer: str, key: str) -> list[float]:
    """geotune / ``peer`` of ``key`` in every round where both ran ``mode``: pairs share the machine's load."""
    by = {(r["system"], r["round"]): r | {"start_s": phases(r)[0]} for r in results if r["mode"] == mode}
    return [by[("geotune", k)][key] / by[(peer, k)][key] for (system, k) in sorted(by, key=lambda x: x[1])
            if system == peer and ("geotune", k) in by]


def accuracy_reached(results: list[dict], mode: str, peer: str) -> str:
    """Rounds where geotune's accuracy is at least the peer's on every benchmark, e.g. "3/3"."""
    by = {(r["system"], r["round"]): r.get("accuracy") for r in results if r["mode"] == mode}
    pairs = [(by[("geotune", k)], acc) for (system, k), acc in by.items() if system == peer and ("geotune", k) in by]
    if not pairs or any(g is None or p is None for g, p in pairs):
        return "not scored"
    return f"{sum(all(g[b] >= p[b] for b in BENCHMARKS) for g, p in pairs)}/{len(pairs)}"


def goal_table(results: list[dict]) -> str:
    """The issue's goal per mode and peer: medians of the paired ratios (each round's in brackets)."""
    names = {**RATIOS, **({"peak GPU": "peak_gpu_gb"} if all("peak_gpu_gb" in r for r in results) else {})}
    lines = ["\ngeotune / peer, median of paired ratios (per round); goal: wall <= 0.6, peak RSS <= 1, "
             "accuracy reached", f"| mode | peer | {' | '.join(names)} | accuracy reached | time goal | RSS goal |",
             "|---" * (len(names) + 5) + "|"]
    for mode in sorted({r["mode"] for r in results}):
        for peer in SYSTEMS[1:]:
            ratios = {name: paired_ratios(results, mode, peer, key) for name, key in names.items()}
            if not ratios["wall"]:
                continue
            median = {name: statistics.median(v) for name, v in ratios.items()}
            cells = [f"{median[n]:.2f} ({', '.join(f'{x:.2f}' for x in ratios[n])})" for n in names]
            reached = accuracy_reached(results, mode, peer)
            met = reached.split("/")[0] == reached.split("/")[-1] if "/" in reached else False
            lines.append(f"| {mode} | {peer} | {' | '.join(cells)} | {reached} | "
                         f"{'met' if median['wall'] <= 0.6 and met else 'not met'} | "
                         f"{'met' if median['peak RSS'] <= 1 else 'not met'} |")
    return "\n".join(lines)


def table(results: list[dict], smooth: int, target: float | None) -> str:
    lines = []
    for mode in sorted({r["mode"] for r in results}):
        runs = [r for r in results if r["mode"] == mode]
        finals = {id(r): smoothed(r["losses"], smooth)[-1][1] for r in runs}
        goal = target if target is not None else max(finals.values())
        gpu = all("peak_gpu_gb" in r for r in runs)
        lines += [f"\n{mode}: medians over rounds; target loss {goal:.3f} (mean of {smooth} steps)",
                  "| system | rounds | wall s | start s | train s | end s | CPU s | peak RSS GB | tree RSS GB | tree anon GB | padding | "
                  f"final loss | s to target | UCMerced | AID | LRBEN |{' peak GPU GB |' if gpu else ''}",
                  "|---" * (17 if gpu else 16) + "|"]
        for system in SYSTEMS:
            mine = [r for r in runs if r["system"] == system]
            if not mine:
                continue

            def med(key, rows=mine):
                values = [r[key] for r in rows if r.get(key) is not None]
                return statistics.median(values) if values else float("nan")

            reach = [next((t for t, v in smoothed(r["losses"], smooth) if v <= goal), None) for r in mine]
            acc = {b: statistics.median(r["accuracy"][b] for r in mine) if "accuracy" in mine[0] else float("nan")
                   for b in ("ucmerced", "aid", "lrben")}
            padding = f"{med('padding'):.1%}" if system == "geotune" else "random order"
            start, end = (statistics.median(phases(r)[i] for r in mine) for i in (0, 1))
            gpu_cell = f" {med('peak_gpu_gb'):.2f} |" if gpu else ""
            reached = f"{statistics.median(reach):.1f}" if all(reach) else "not all"
            lines.append(f"| {system} | {len(mine)} | {med('wall_s'):.1f} | {start:.1f} | {med('train_s'):.1f} | "
                         f"{end:.1f} | {med('cpu_s'):.1f} | "
                         f"{med('peak_rss_gb'):.2f} | {med('peak_tree_rss_gb'):.2f} | {med('peak_anon_gb'):.2f} | {padding} | {statistics.median(finals[id(r)] for r in mine):.3f} | "
                         f"{reached} | "
                         f"{acc['ucmerced']:.3f} | {acc['aid']:.3f} | {acc['lrben']:.3f} |"
                         f"{gpu_cell}")
    return "\n".join(lines) + "\n" + goal_table(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--venvs", type=Path, default=None, help="peer venvs (default: <cache root>/peers)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--modes", default="full,lora")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--eval-limit", type=int, default=300, help="questions per benchmark (0: no eval)")
    parser.add_argument("--smooth", type=int, default=20)
    parser.add_argument("--target-loss", type=float, default=None)
    parser.add_argument("--python", default=sys.executable, help="interpreter that prepares the data and scores")
    parser.add_argument("--geotune-python", default=None,
                        help="interpreter geotune trains with (default: its own venv under --venvs, as the peers')")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cpu: GPUs hidden from every system; cuda: one GPU each (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in all three (GPU only; systems.py)")
    parser.add_argument("--report-only", action="store_true", help="print the table of --work/results.jsonl")
    args = parser.parse_args()
    try:
        check_device_settings(args.device, args.bf16, args.systems.split(","))
    except ValueError as err:
        parser.error(str(err))
    if args.report_only:
        rows = [json.loads(line) for line in (args.work / "results.jsonl").read_text().splitlines()]
        print(table(rows, args.smooth, args.target_loss))
        return
    sys.path.insert(0, str(REPO))
    from finetune.cache import cache_root  # the peers' venvs go beside geotune's caches

    venv_root = args.venvs or cache_root() / "peers"
    systems = args.systems.split(",")
    venvs = {s: ensure_venv(venv_root, s) for s in systems if s != GEOTUNE or not args.geotune_python}
    args.work.mkdir(parents=True, exist_ok=True)
    model, *data = prepare(args.work, args.python)
    results, log = [], args.work / "results.jsonl"
    for round_ in range(args.rounds):
        for mode in args.modes.split(","):
            order = systems[round_ % len(systems):] + systems[: round_ % len(systems)]
            for system in order:
                result = run_system(system, mode, round_, args, model, data, venvs)
                results.append(result)
                with log.open("a") as f:
                    f.write(json.dumps(result) + "\n")
                print(f"round {round_} {mode} {system}: wall {result['wall_s']:.1f} s, train {result['train_s']} s, "
                      f"RSS {result['peak_rss_gb']:.2f} GB, accuracy {result.get('accuracy')}", flush=True)
    text = table(results, args.smooth, args.target_loss)
    (args.work / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
