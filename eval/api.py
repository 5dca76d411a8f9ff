"""Score a checkpoint on the recipe's benchmarks: ``evaluate_checkpoint(cfg, checkpoint_dir)``.

Results go beside the checkpoint: ``<checkpoint_dir>/eval/<bench>.json``, ``<bench>.predictions.jsonl``
and, for classification, ``<bench>.confusion.png``. train.py calls this after training; ``geotune eval
recipe=NAME checkpoint=DIR`` calls it alone.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from eval.geochat_bench import default_bench_file, read_geochat_bench
from eval.readers import Benchmark, read_aid, read_lrben, read_ucmerced
from eval.retrieval import evaluate_retrieval_checkpoint
from eval.runners import run_benchmark
from finetune.distributed import process_state
from finetune.files import write_json_atomic

log = logging.getLogger(__name__)
_ROOT_KEYS = {"ucmerced": "ucmerced_root", "aid": "aid_root", "lrben": "lrben_root"}


def load_benchmark(name: str, eval_cfg) -> Benchmark:
    """The benchmark ``name`` from the recipe's ``eval`` section.

    With ``eval.geochat_bench_dir`` holding the benchmark's jsonl, its questions are used (repaired);
    otherwise the raw layout under ``eval.<bench>_root`` is read (AID: ``eval.aid_fraction`` per class;
    LRBEN: ``eval.lrben_split``). ``eval.limit`` draws a seeded subset.
    """
    if name not in _ROOT_KEYS:
        raise ValueError(f"eval.benchmarks: unknown benchmark '{name}'; choose from {', '.join(_ROOT_KEYS)}")
    key = _ROOT_KEYS[name]
    root = eval_cfg.get(key)
    if not root:
        raise ValueError(f"eval.{key} is not set: point it at the folder holding the {name} data (e.g. runs/synthrs)")
    limit, seed = eval_cfg.limit, eval_cfg.seed
    bench_dir = eval_cfg.get("geochat_bench_dir")
    if bench_dir and default_bench_file(bench_dir, name).exists():
        return read_geochat_bench(default_bench_file(bench_dir, name), name, root,
                                  rsvqa_root=root if name == "lrben" else None, split=eval_cfg.lrben_split,
                                  limit=limit, seed=seed)
    if name == "ucmerced":
        return read_ucmerced(root, limit=limit, seed=seed)
    if name == "aid":
        return read_aid(root, limit=limit, seed=seed, fraction=eval_cfg.aid_fraction)
    return read_lrben(root, split=eval_cfg.lrben_split, limit=limit, seed=seed)


def load_checkpoint(cfg, checkpoint_dir: str | Path):
    """``(model, processor, adapter)`` for a checkpoint written by training.

    A folder with ``adapter_config.json`` is a peft (LoRA) adapter: the base model comes from
    ``cfg.model.path`` and the adapter is applied with ``PeftModel.from_pretrained`` and merged (exact
    for LoRA, and generation runs at the base model's speed). Any other folder is a full checkpoint.
    """
    from finetune.models.adapters import get_adapter

    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint '{checkpoint_dir}' does not exist; pass checkpoint=DIR (e.g. runs/NAME/final)")
    adapter = get_adapter(cfg.model.adapter)
    if (checkpoint_dir / "adapter_config.json").exists():
        from peft import PeftModel

        model, processor = adapter.load(cfg.model)
        model = PeftModel.from_pretrained(model, str(checkpoint_dir)).merge_and_unload()
    else:
        model_cfg = OmegaConf.merge(cfg.model, {"path": str(checkpoint_dir)})
        model, processor = adapter.load(model_cfg)
    model.eval()
    return model, processor, adapter


def checkpoint_fingerprint(checkpoint_dir: str | Path, cfg) -> str:
    """A short hash of the weight files (name, size, mtime) of the checkpoint, and of the base for a
    LoRA adapter, so predictions left by other weights are never resumed."""
    checkpoint_dir = Path(checkpoint_dir)
    folders = [checkpoint_dir]
    if (checkpoint_dir / "adapter_config.json").exists():
        folders.append(Path(cfg.model.path))
    facts = []
    for folder in folders:
        for file in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
            stat = file.stat()
            facts.append(f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


def evaluate_checkpoint(cfg, checkpoint_dir: str | Path, benchmarks: Sequence[str] | None = None,
                        shard: bool = False) -> dict[str, dict]:
    """Run ``cfg.eval.benchmarks`` (or ``benchmarks``) on a checkpoint; returns ``{bench: metrics}``.

    Writes ``<checkpoint_dir>/eval/<bench>.json`` per benchmark and ``eval/summary.json`` (headline
    scores). Re-running resumes from the predictions files already there.

    Args:
        shard: every process of an ``accelerate launch`` calls this and the questions are split
            between them (``geotune eval`` does so). False (default): the caller is one process
            (e.g. the main rank after training) and answers everything.
    """
    names = list(benchmarks if benchmarks is not None else cfg.eval.benchmarks)
    if cfg.train.task == "retrieval":  # a CLIP retrieval run: R@K / mR on harma.test_file
        return {"retrieval": evaluate_retrieval_checkpoint(cfg, checkpoint_dir)}
    if not names:
        log.info("eval.benchmarks is empty: nothing to evaluate")
        return {}
    datasets = {name: load_benchmark(name, cfg.eval) for name in names}  # fail on a bad root before loading a model
    state = process_state()
    model, processor, adapter = load_checkpoint(cfg, checkpoint_dir)
    model.to(state.device)
    out_dir = Path(checkpoint_dir) / "eval"
    fingerprint = checkpoint_fingerprint(checkpoint_dir, cfg)
    results = {}
    for name in names:
        results[name] = run_benchmark(
            name, model, processor, datasets[name], adapter=adapter, limit=None, batch_size=cfg.eval.batch_size,
            out_dir=out_dir, max_new_tokens=cfg.eval.max_new_tokens, classification_prompt=cfg.eval.classification_prompt,
            vqa_prompt=cfg.eval.vqa_prompt, normalize=cfg.eval.normalize, max_patches=cfg.eval.max_patches, seed=cfg.eval.seed, shard=shard,
            model_fingerprint=fingerprint,
        )
    if state.is_main_process:
        write_json_atomic(out_dir / "summary.json", {name: r["score"] for name, r in results.items()})
    return results
