"""How learnable is SynthRS? A pixel-level linear probe on the UCMerced-format split.

Trains scikit-learn logistic regression on SynthRS scenes drawn from a *training* stream (disjoint from
the benchmark streams, like the pool) and scores it on the UCMerced_LandUse test images that
``geotune synth`` writes. Features: an 8-bin-per-channel colour histogram, 16x16 downsampled pixels,
and both. Chance is 1/21. The datasheet (docs/synthrs.md) quotes the table this prints.

    .venv/bin/python benchmarks/synthrs_learnability.py                # small, seeds 0 1 2
    .venv/bin/python benchmarks/synthrs_learnability.py --size medium --train-per-class 80
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from geotune.synth.build import SIZES
from geotune.synth.layouts import stream_rng, write_ucmerced
from geotune.synth.scenes import UCM_CLASSES
from geotune.synth.scenes_aid import draw_scene


def histogram(pixels: np.ndarray, bins: int = 8) -> np.ndarray:
    return np.concatenate([np.histogram(pixels[..., c], bins, (0, 256))[0] for c in range(3)]) / pixels[..., 0].size


def downsampled(pixels: np.ndarray, side: int = 16) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((side, side), Image.BILINEAR), np.float32).ravel() / 255.0


FEATURES = {
    "colour histogram": histogram,
    "16x16 pixels": downsampled,
    "both": lambda p: np.concatenate([histogram(p), downsampled(p)]),
}


def training_set(seed: int, per_class: int, image_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    images, labels = [], []
    for c, name in enumerate(UCM_CLASSES):
        for i in range(per_class):
            images.append(draw_scene("ucmerced", name, stream_rng(seed, "learnability", c, i), image_size).pixels)
            labels.append(c)
    return images, np.asarray(labels)


def test_set(root: Path) -> tuple[list[np.ndarray], np.ndarray]:
    images, labels = [], []
    for c, name in enumerate(UCM_CLASSES):
        for path in sorted((root / "UCMerced_LandUse" / "Images" / name).glob("*.tif")):
            images.append(np.asarray(Image.open(path).convert("RGB")))
            labels.append(c)
    return images, np.asarray(labels)


def probe(train, test, feature) -> tuple[float, float]:
    xtr = np.stack([feature(p) for p in train[0]])
    xte = np.stack([feature(p) for p in test[0]])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    model.fit(xtr, train[1])
    return float(model.score(xtr, train[1])), float(model.score(xte, test[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", help="SynthRS size whose UCMerced split is the test set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in FEATURES}
    train_acc: dict[str, list[float]] = {name: [] for name in FEATURES}
    n_test = 0
    start = time.perf_counter()
    # One BLAS thread: these fits are small, and on a shared 2-core machine threads only fight.
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        for seed in args.seeds:
            root = Path(tmp) / f"synthrs-{seed}"
            # Exactly the UCMerced_LandUse files `geotune synth --seed S --size SIZE` writes (same streams).
            write_ucmerced(root, seed, SIZES[args.size].ucmerced_per_class, args.image_size)
            test = test_set(root)
            train = training_set(seed, args.train_per_class, args.image_size)
            n_test = len(test[1])
            for name, feature in FEATURES.items():
                tr, te = probe(train, test, feature)
                train_acc[name].append(tr)
                results[name].append(te)
    print(f"SynthRS learnability: logistic regression, {args.train_per_class} train scenes/class (training stream), "
          f"{n_test} UCMerced test images ({args.size}, {args.image_size} px); seeds {args.seeds}; "
          f"chance {100 / len(UCM_CLASSES):.1f}%")
    print(f"{'features':<18} {'train acc %':>12} {'test acc % (median)':>20} {'min-max':>12}")
    for name in FEATURES:
        te = [100 * v for v in results[name]]
        print(f"{name:<18} {100 * statistics.median(train_acc[name]):>12.1f} {statistics.median(te):>20.1f} "
              f"{min(te):>5.1f}-{max(te):<5.1f}")
    print(f"[{time.perf_counter() - start:.0f} s]")


if __name__ == "__main__":
    main()
