"""Where a training run's resident memory goes: RSS after each stage of ``build_trainer`` + ``train()``.

A thread samples ``VmRSS`` every 10 ms; the stages (imports, data loading, model loading, the length
pass, the Trainer, training) are marked by wrapping the functions ``build_trainer`` calls, so the
numbers are those of the real code path, not a re-enactment. Prints per stage the RSS when it ends,
what it added, and the peak while it ran; ``VmHWM`` (the kernel's peak, what ``/usr/bin/time`` reports)
at the end.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/train_memory.py --mode full --epochs 2

Same setting as the peer comparison (benchmarks/peers/): tiny InternVL, SynthRS small instruction
pool, batch 8, lr 1e-3, fp32. ``--set key=value`` adds recipe overrides (e.g. ``train.num_workers=1``).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import threading
import time
from pathlib import Path


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """``VmRSS`` every ``period`` seconds, tagged with the stage running then (``mark``)."""

    def __init__(self, period: float = 0.01):
        super().__init__(daemon=True)
        self.period, self.stage, self.samples, self.ends = period, "startup", [], []
        self.running = True

    def run(self):
        while self.running:
            self.samples.append((self.stage, _status_mib("VmRSS")))
            time.sleep(self.period)

    def mark(self, stage: str) -> None:
        self.ends.append((self.stage, _status_mib("VmRSS")))
        self.stage = stage

    def table(self) -> list[tuple[str, float, float, float]]:
        """``[(stage, RSS at its end, added, peak during)]`` in order."""
        rows, before = [], None
        for stage, end in self.ends:
            peak = max([rss for s, rss in self.samples if s == stage] + [end])
            rows.append((stage, end, end - (before if before is not None else end), peak))
            before = end
        return rows


def wrap(owner, name: str, sampler: RssSampler, stage: str, after: str) -> None:
    """Mark ``stage`` while ``owner.name`` runs and ``after`` once it returns."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def marked(*args, **kwargs):
        sampler.mark(stage)
        try:
            return original(*args, **kwargs)
        finally:
            sampler.mark(after)

    setattr(owner, name, marked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("full", "lora"), default="full")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--set", action="append", default=[], help="extra recipe override key=value")
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    sampler = RssSampler()
    sampler.start()
    sampler.mark("import torch")
    import torch  # noqa: F401

    sampler.mark("import transformers.Trainer")
    from transformers import Trainer  # noqa: F401

    sampler.mark("import geotune")
    import finetune.collator
    import finetune.data.loader
    import finetune.models.adapters
    import finetune.trainer
    import finetune.training
    from geotune.config import load_recipe

    work = Path(args.work or tempfile.mkdtemp(prefix="geotune-mem-"))
    sampler.mark("setup (SynthRS, model files)")
    from finetune.models.tiny import build_tiny_internvl
    from geotune.synth import write_synthrs

    if not (work / "tiny" / "config.json").exists():
        build_tiny_internvl(work / "tiny")
    write_synthrs(work / "synthrs", seed=0, size="small")
    pool = work / "synthrs" / "instruct"
    cfg = load_recipe(None, [
        f"model.path={work / 'tiny'}", f"run_dir={work / 'run'}", f"cache_dir={work / 'cache'}", "train.resume=false",
        f"data.datasets=[{{name: instruct, path: '{pool / 'geochat_style.json'}', format: llava, image_root: '{pool}'}}]",
        f"train.mode={args.mode}", f"train.epochs={args.epochs}", f"train.max_steps={args.max_steps}",
        "train.per_device_batch_size=8", "train.learning_rate=1e-3", "train.report_to=[none]", "train.save_steps=100000",
        *args.set])
    sampler.mark("training arguments")
    wrap(finetune.data.loader, "load_training_data", sampler, "load data", "records")
    adapters = finetune.models.adapters
    get_adapter = adapters.get_adapter

    def get_marked_adapter(name):
        adapter = get_adapter(name)
        wrap(adapter, "load", sampler, "load model", "after model")
        return adapter

    adapters.get_adapter = get_marked_adapter
    wrap(finetune.collator.SupervisedDataset, "__init__", sampler, "length pass", "prepare model")
    wrap(finetune.trainer.GeoTrainer, "__init__", sampler, "Trainer", "built")
    trainer = finetune.training.build_trainer(cfg, finetune.data.loader.load_training_data(cfg))
    sampler.mark("train()")
    trainer.train()
    sampler.mark("save_model")
    trainer.save_model(str(work / "run" / "final"))
    sampler.mark("end")
    sampler.running = False
    hwm = _status_mib("VmHWM")
    print(f"\n{args.mode}, {trainer.state.global_step} steps; peak RSS (VmHWM) {hwm:.0f} MiB")
    print(f"{'stage':<30} {'RSS at end':>11} {'added':>8} {'peak during':>12}")
    for stage, end, added, peak in sampler.table():
        print(f"{stage:<30} {end:>11.0f} {added:>+8.0f} {peak:>12.0f}")
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"deepspeed", "sklearn", "faiss", "pandas", "pyarrow",
                                                               "datasets", "scipy", "matplotlib", "tensorboard", "wandb"})
    print("heavy modules imported:", ", ".join(heavy))


if __name__ == "__main__":
    main()
