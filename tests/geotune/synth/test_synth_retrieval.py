"""`geotune synth` writes SynthRS-RSITMD in the RSITMD layout, learnable from pixels, deterministic."""

import hashlib
import json
import re

import numpy as np
import pytest
from PIL import Image

from finetune.retrieval.data import read_eval_split, read_train_pairs
from geotune.synth import SIZES
from geotune.synth.retrieval import (
    CLASSES,
    MARKERS,
    PRETRAIN_CLASS_WORDS,
    PRETRAIN_FOLDER,
    PRETRAIN_QUADRANTS,
    write_synthrs_rsitmd,
    write_synthrs_rsitmd_pretrain,
)


def test_synthrs_writes_the_rsitmd_layout(synthrs_tiny):
    root = synthrs_tiny / "SynthRS-RSITMD"
    n_train, n_val, n_test = SIZES["tiny"].retrieval
    train = json.loads((root / "train.json").read_text())
    assert len(train) == 5 * n_train
    assert set(train[0]) == {"caption", "image", "image_id", "label_name", "label"}
    assert [r["image_id"] for r in train[:5]] == [0] * 5 and train[0]["image"] == "train/img_00000.png"
    for split, n in (("val", n_val), ("test", n_test)):
        entries = json.loads((root / f"{split}.json").read_text())
        assert len(entries) == n and all(len(e["caption"]) == 5 for e in entries)
        assert all((root / e["image"]).is_file() for e in entries)
    assert "label" not in json.loads((root / "test.json").read_text())[0]
    counts = json.loads((synthrs_tiny / "synthrs.json").read_text())["counts"]["retrieval_images"]
    assert counts == {"train": n_train, "val": n_val, "test": n_test}


def test_captions_name_what_the_pixels_show(tmp_path):
    write_synthrs_rsitmd(tmp_path, seed=3, split_sizes={"val": 12}, image_size=32)
    root = tmp_path / "SynthRS-RSITMD"
    for entry in json.loads((root / "val.json").read_text()):
        pixels = np.asarray(Image.open(root / entry["image"]))
        colour = next(c for c in MARKERS if f" {c} " in f" {entry['caption'][0]} ")
        assert entry["label_name"] in entry["caption"][0] and entry["label_name"] in CLASSES
        assert (np.abs(pixels.astype(int) - MARKERS[colour]).sum(-1) == 0).sum() >= 8 * 8  # the marker square


def test_same_seed_same_bytes(tmp_path):
    for name in ("a", "b"):
        write_synthrs_rsitmd(tmp_path / name, seed=5, split_sizes={"train": 4, "test": 3}, image_size=32)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


def test_synthrs_rsitmd_reads_in_both_layouts(synth_rsitmd):
    """finetune's RSITMD readers take SynthRS-RSITMD as written (the app's data, so this test is the app's)."""
    pairs = read_train_pairs(synth_rsitmd / "train.json", str(synth_rsitmd))
    assert len(pairs) == 5 * 48 and sorted(set(pairs.image_ids)) == list(range(48))
    assert pairs.images[0].startswith("train/") and pairs.image_ids[:5] == [0] * 5
    test = read_eval_split(synth_rsitmd / "test.json", str(synth_rsitmd))
    assert len(test.images) == 16 and len(test.captions) == 80
    assert test.img2txt[3] == [15, 16, 17, 18, 19] and test.txt2img[17] == 3
    raw = json.loads((synth_rsitmd / "val.json").read_text())
    assert any(len(set(e["caption"])) < 5 for e in raw)  # exact duplicates, as RSICD has
    assert {"image", "caption", "label_name", "label"} == set(raw[0])


def _pixel_hashes(root, split_files):
    out = set()
    for name in split_files:
        entries = json.loads((root / name).read_text())
        out |= {hashlib.sha256((root / e["image"]).read_bytes()).hexdigest() for e in entries}
    return out


def test_the_pretraining_corpus_is_disjoint_from_the_fine_tuning_set(tmp_path):
    """Images from its own stream, every class, captions in other templates and other words for the quadrant,
    so a CLIP pretrained on it starts fine-tuning as GeoRSCLIP starts on RSITMD: it knows the domain, not the set."""
    sizes = {"train": 60, "val": 20}
    write_synthrs_rsitmd_pretrain(tmp_path / "pre", seed=0, split_sizes=sizes, image_size=32)
    pre = tmp_path / "pre" / PRETRAIN_FOLDER
    train = json.loads((pre / "train.json").read_text())
    assert len(train) == 5 * 60 and {r["label_name"] for r in train} == set(CLASSES)
    pre_captions = {r["caption"] for r in train} | {c for e in json.loads((pre / "val.json").read_text())
                                                    for c in e["caption"]}
    fine_captions, fine_hashes = set(), set()
    for seed in (0, 1):
        write_synthrs_rsitmd(tmp_path / f"ft{seed}", seed=seed, split_sizes={"train": 60, "val": 20, "test": 20},
                             image_size=32)
        ft = tmp_path / f"ft{seed}" / "SynthRS-RSITMD"
        fine_captions |= {r["caption"] for r in json.loads((ft / "train.json").read_text())}
        fine_hashes |= _pixel_hashes(ft, ("train.json", "val.json", "test.json"))
    assert not pre_captions & fine_captions
    assert not any(word in c.split() for c in pre_captions for word in ("top", "bottom", "left", "right"))
    assert all(any(q in c for q in PRETRAIN_QUADRANTS) for c in pre_captions)  # "north-west", never "top left"
    for row in train:  # half the classes by another name, the others by theirs
        assert PRETRAIN_CLASS_WORDS.get(row["label_name"], row["label_name"]) in row["caption"]
        assert row["label_name"] not in PRETRAIN_CLASS_WORDS or row["label_name"] not in row["caption"]
    assert not _pixel_hashes(pre, ("train.json", "val.json")) & fine_hashes
    val = json.loads((pre / "val.json").read_text())
    assert all(len(set(e["caption"])) == 5 for e in val)  # no exact duplicates in the corpus
    for entry in val:  # what the captions say is in the pixels
        pixels = np.asarray(Image.open(pre / entry["image"]))
        colour = next(c for c in MARKERS if f" {c} " in f" {entry['caption'][0]} ")
        assert (np.abs(pixels.astype(int) - MARKERS[colour]).sum(-1) == 0).sum() >= 8 * 8


def test_the_pretraining_corpus_is_deterministic_and_has_train_and_val_only(tmp_path):
    for name in ("a", "b"):
        write_synthrs_rsitmd_pretrain(tmp_path / name, seed=2, split_sizes={"train": 3, "val": 2}, image_size=32)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 7
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    with pytest.raises(ValueError, match=r"train and val, not \['test'\]"):
        write_synthrs_rsitmd_pretrain(tmp_path / "c", seed=2, split_sizes={"test": 2}, image_size=32)


def test_the_pretraining_corpus_can_keep_every_class_name(tmp_path):
    """class_words={}: the same images and captions, except that every class goes by the fine-tuning name
    (only templates and quadrant words differ from the fine-tuning captions); the default renames half."""
    sizes = {"train": 24, "val": 8}
    write_synthrs_rsitmd_pretrain(tmp_path / "renamed", seed=0, split_sizes=sizes, image_size=32)
    write_synthrs_rsitmd_pretrain(tmp_path / "same", seed=0, split_sizes=sizes, image_size=32, class_words={})
    renamed, same = (tmp_path / name / PRETRAIN_FOLDER for name in ("renamed", "same"))
    assert _pixel_hashes(renamed, ("train.json", "val.json")) == _pixel_hashes(same, ("train.json", "val.json"))
    old, new = (json.loads((root / "train.json").read_text()) for root in (renamed, same))
    assert [r["image"] for r in old] == [r["image"] for r in new]
    assert {r["label_name"] for r in new} == set(CLASSES)
    back = {word: cls for cls, word in PRETRAIN_CLASS_WORDS.items()}
    for a, b in zip(old, new, strict=True):
        assert b["label_name"] in b["caption"] and not any(word in b["caption"] for word in back)
        assert re.sub(r"[a-z]+", lambda m: back.get(m.group(), m.group()), a["caption"]) == b["caption"]
    assert any(PRETRAIN_CLASS_WORDS.get(r["label_name"], r["label_name"]) != r["label_name"] for r in new)
    assert any(word in r["caption"] for r in old for word in back)  # the default still renames
