"""``write_synthrs``: the whole SynthRS tree, written into a temporary folder and moved into place."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from finetune.files import atomic_folder
from geotune.synth.general import write_general
from geotune.synth.layouts import write_aid, write_geochat_bench, write_json, write_rsvqa_lr, write_ucmerced
from geotune.synth.pool import PoolOptions, write_pool
from geotune.synth.pretrain import write_pretrain
from geotune.synth.retrieval import write_synthrs_rsitmd

FORMAT_VERSION = 2  # bump when drawing or layouts change, so cached trees are redrawn
DEFAULT_IMAGE_SIZE = 64  # the tiny model's tile size; real UCMerced is 256, AID 600


@dataclass(frozen=True)
class SizePreset:
    ucmerced_per_class: int
    aid_scale: float  # AID images per class = real count x scale (at least 2)
    lr_images: tuple[int, int, int]  # train, val, test
    pool_records: int
    general: tuple[int, int]  # train, test
    retrieval: tuple[int, int, int]  # SynthRS-RSITMD images: train, val, test


SIZES = {
    "tiny": SizePreset(3, 0.01, (6, 2, 4), 120, (40, 20), (48, 16, 16)),
    "small": SizePreset(15, 0.04, (40, 10, 20), 1500, (300, 100), (400, 80, 100)),
    "medium": SizePreset(50, 0.12, (200, 50, 100), 6000, (1500, 300), (1600, 200, 400)),
}


class SynthError(ValueError):
    """Bad options or an output folder that holds something else."""


def _options(seed, size, image_size, published_defects, pool: PoolOptions, pretrain_records: int) -> dict:
    options = {"format_version": FORMAT_VERSION, "seed": seed, "size": size, "image_size": image_size,
               "published_defects": published_defects, "pool": asdict(pool)}
    if pool.instructions_per_image == 1:  # trees written before the option existed stay valid
        del options["pool"]["instructions_per_image"]
    if pretrain_records:
        options["pretrain_records"] = pretrain_records
    return options


def write_synthrs(out_dir: str | os.PathLike, seed: int = 0, size: str = "small",
                  image_size: int = DEFAULT_IMAGE_SIZE, published_defects: bool = False,
                  pool: PoolOptions | None = None, force: bool = False, progress: bool = False,
                  pretrain_records: int = 0) -> dict:
    """Write SynthRS under ``out_dir`` and return its summary (also saved as ``synthrs.json``).

    Args:
        out_dir: target folder. If it already holds SynthRS written with the same options, nothing is
            redrawn and its summary is returned; SynthRS written with other options is replaced.
        seed: master seed; the same seed and options give byte-identical files.
        size: ``tiny`` (tests), ``small`` (the demo) or ``medium`` (measurements); see ``SIZES``.
        image_size: side of every image in pixels.
        published_defects: write GeoChat-Bench with the published defects (see docs/synthrs.md).
        pool: composition of the instruction pool (records default to the size preset's).
        force: replace an ``out_dir`` that holds anything else.
        progress: show a progress bar (stderr).
        pretrain_records: records of the proxy base's pretraining corpus (``pretrain/``; 0: none).

    Raises:
        SynthError: unknown size, image size out of range, or ``out_dir`` in use without ``force``.
    """
    if size not in SIZES:
        raise SynthError(f"unknown size '{size}'; choose from {', '.join(SIZES)}")
    if not 32 <= image_size <= 1024:
        raise SynthError(f"--image-size must be between 32 and 1024 pixels, got {image_size}")
    preset = SIZES[size]
    pool = pool or PoolOptions(records=preset.pool_records)
    if pretrain_records < 0:
        raise SynthError(f"--pretrain-records must be >= 0, got {pretrain_records}")
    options = _options(seed, size, image_size, published_defects, pool, pretrain_records)
    out = Path(out_dir)
    existing = out / "synthrs.json"
    if existing.is_file():
        summary = json.loads(existing.read_text(encoding="utf-8"))
        if summary.get("options") == options:
            return summary
    # Another SynthRS (other options) is replaced; anything else only with force.
    if out.exists() and any(out.iterdir()) and not existing.is_file() and not force:
        raise SynthError(f"{out} is not empty and is not a SynthRS folder; pass --force to replace it, "
                         "or choose another --out")
    with atomic_folder(out) as tmp:  # a killed draw never leaves half a tree where a finished one was
        counts = _write_tree(tmp, seed, preset, image_size, published_defects, pool, progress)
        if pretrain_records:
            counts["pretrain"] = write_pretrain(tmp, seed, pretrain_records, image_size)
        summary = {"options": options, "counts": counts}
        write_json(tmp / "synthrs.json", summary, indent=2)
    return summary


def _write_tree(root: Path, seed: int, preset: SizePreset, image_size: int, defects: bool, pool: PoolOptions,
                progress: bool) -> dict:
    train, val, test = preset.lr_images
    with tqdm(total=7, desc="SynthRS", unit="part", disable=not progress) as bar:
        bar.set_postfix_str("UCMerced")
        ucm = write_ucmerced(root, seed, preset.ucmerced_per_class, image_size)
        bar.update()
        bar.set_postfix_str("AID")
        aid = write_aid(root, seed, preset.aid_scale, image_size)
        bar.update()
        bar.set_postfix_str("RSVQA-LR")
        lr = write_rsvqa_lr(root, seed, {"train": train, "val": val, "test": test}, image_size)
        bar.update()
        write_geochat_bench(root, seed, ucm, aid, lr["test"], defects)
        bar.update()
        bar.set_postfix_str("instruction pool")
        pool_counts = write_pool(root, seed, image_size, pool)
        bar.update()
        bar.set_postfix_str("general pool")
        general = write_general(root, seed, *preset.general, image_size)
        bar.update()
        bar.set_postfix_str("SynthRS-RSITMD")
        retrieval = write_synthrs_rsitmd(root, seed, dict(zip(("train", "val", "test"), preset.retrieval, strict=True)), image_size)
        bar.update()
    return {
        "ucmerced_images": len(ucm),
        "aid_images": len(aid),
        "rsvqa_lr_images": train + val + test,
        "lrben_test_questions": len(lr["test"]),
        "pool": pool_counts,
        "general": general,
        "retrieval_images": retrieval,
    }
