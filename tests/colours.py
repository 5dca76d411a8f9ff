"""A tiny learnable colour set and a ``TrainingData`` over it (training tests and ds_worker.py)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from finetune.data.loader import TrainingData
from finetune.data.records import Record

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
QUESTION = "<image>\nWhat colour is the image? Answer in one word."


def write_colour_set(root: Path, per_class: int = 4, extra_words: int = 0) -> TrainingData:
    """Plain-colour images (slightly varied sizes and shades); the answer is the colour's name.

    ``extra_words`` > 0 adds a variable-length text tail to some questions, so lengths differ.
    """
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for c, (name, rgb) in enumerate(COLOURS.items()):
        for k in range(per_class):
            shade = tuple(max(0, v - 8 * k) for v in rgb)
            file = f"{name}_{k}.png"
            Image.new("RGB", (48 + 8 * k, 64 - 4 * k), shade).save(root / file)
            tail = " Describe the image in detail." * ((k * 7 + c) % (extra_words + 1)) if extra_words else ""
            records.append(Record(
                id=f"{name}-{k}", images=[file], source="colours", task="classification",
                conversations=[{"from": "human", "value": QUESTION + tail}, {"from": "gpt", "value": name}],
            ))
    return TrainingData(records, {"colours": Path(root)})


def colour_training(model_path, run_dir, *overrides: str) -> list[str]:
    """Recipe overrides of the colour-set training tests: 20 logged LoRA (r 8) steps of 4 samples, constant LR,
    no checkpoint unless asked; ``overrides`` come last and win."""
    return [
        f"model.path={model_path}", f"run_dir={run_dir}", "seed=0", "train.max_steps=20",
        "train.per_device_batch_size=4", "train.logging_steps=1", "train.report_to=[none]", "train.warmup_ratio=0",
        "train.lr_scheduler=constant", "train.save_steps=1000", "train.lora.r=8", "train.lora.alpha=16",
        "train.lora.dropout=0.0", *overrides,
    ]
