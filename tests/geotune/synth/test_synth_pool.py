"""SynthRS content: determinism, answers true to the pixels, train/test disjointness, valid pool records."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from finetune.data.records import Record
from finetune.data.tasks import infer_task
from finetune.data.validate import validate_file
from geotune.cli import main
from geotune.synth import PoolOptions, SynthError, scenes_aid, vqa, write_synthrs
from geotune.synth.general import draw_shapes
from geotune.synth.layouts import stream_rng


def tree_hash(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def pixel_hashes(paths) -> set[str]:
    return {hashlib.sha256(np.asarray(Image.open(p).convert("RGB")).tobytes()).hexdigest() for p in paths}


def test_same_seed_same_bytes_other_seed_other_bytes(synthrs_tiny, tmp_path):
    write_synthrs(tmp_path / "again", seed=0, size="tiny")
    assert tree_hash(tmp_path / "again") == tree_hash(synthrs_tiny)
    summary = write_synthrs(tmp_path / "again", seed=1, size="tiny")  # other options: the tree is replaced
    assert summary["options"]["seed"] == 1
    assert tree_hash(tmp_path / "again") != tree_hash(synthrs_tiny)
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # no partial folder left behind


def test_existing_tree_is_reused_and_foreign_folder_refused(synthrs_tiny, tmp_path, capsys):
    before = (synthrs_tiny / "synthrs.json").stat().st_mtime_ns
    assert main(["synth", "--out", str(synthrs_tiny), "--size", "tiny"]) == 0
    assert (synthrs_tiny / "synthrs.json").stat().st_mtime_ns == before  # nothing redrawn
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["synth", "--out", str(tmp_path), "--size", "tiny"]) == 2
    assert "--force" in capsys.readouterr().err
    with pytest.raises(SynthError, match="unknown size"):
        write_synthrs(tmp_path / "x", size="huge")


def test_rsvqa_answers_match_the_scene_drawn(synthrs_tiny):
    base = synthrs_tiny / "RSVQA_LR"
    questions = json.loads((base / "LR_split_test_questions.json").read_text())["questions"]
    answers = {a["id"]: a["answer"] for a in json.loads((base / "LR_split_test_answers.json").read_text())["answers"]}
    first_test_id = min(q["img_id"] for q in questions)
    for k in range(3):
        scene = vqa.draw_lr_scene(stream_rng(0, "lr_test", k), 64)
        drawn = {cat: sum(o.category == cat for o in scene.objects) for cat in vqa.PRESENCE}
        assert drawn == scene.counts
        asked = {q["question"]: answers[q["answers_ids"][0]] for q in questions if q["img_id"] == first_test_id + k}
        for plural, cat in (("buildings", "building"), ("roads", "road"), ("water areas", "water area")):
            assert asked[f"How many {plural} are there?"] == str(drawn[cat])
        for cat in vqa.PRESENCE:
            said = asked.get(f"Is there a {cat} in the image?", asked.get(f"Is a {cat} present?"))
            assert said == ("yes" if drawn[cat] else "no")
        assert asked["Is it a rural or an urban area?"] == ("urban" if scene.urban else "rural")


def test_water_areas_counted_in_the_pixels(monkeypatch):
    # Without sensor noise, water is the only dark blue-dominant cover; each water area is one blob.
    monkeypatch.setattr(vqa, "NOISE", 0.0)
    monkeypatch.setattr(vqa, "GAIN", 0.0)
    for k in range(8):
        scene = vqa.draw_lr_scene(np.random.default_rng(k), 64)
        px = scene.pixels.astype(int)
        _, blobs = ndimage.label((px[..., 0] < 60) & (px[..., 2] - px[..., 0] > 25))
        assert blobs == scene.counts["water area"]


def test_storage_tanks_are_round_white_objects(monkeypatch):
    monkeypatch.setattr(scenes_aid, "NOISE", 0.0)
    scene = scenes_aid.draw_scene("ucmerced", "storagetanks", np.random.default_rng(3), 64)
    tanks = [o for o in scene.objects if o.category == "storage tank"]
    assert 3 <= len(tanks) <= 12
    for tank in tanks:
        x, y = (int(v) for v in tank.center)
        assert scene.pixels[y, x].min() > 150  # white roof at the centre of every recorded tank


def test_general_shape_counts_match_the_pixels():
    for k in range(10):
        pixels, drawn = draw_shapes(np.random.default_rng(k), 64)
        background = pixels[0, 0]
        _, blobs = ndimage.label(np.any(pixels != background, axis=-1))
        assert blobs == len(drawn)


def test_no_test_image_in_the_pools(synthrs_tiny):
    tests = pixel_hashes([*synthrs_tiny.glob("UCMerced_LandUse/Images/*/*.tif"), *synthrs_tiny.glob("AID/*/*.jpg")])
    lr = json.loads((synthrs_tiny / "RSVQA_LR" / "LR_split_test_images.json").read_text())["images"]
    tests |= pixel_hashes(synthrs_tiny / "RSVQA_LR" / "Images_LR" / f"{i['id']}.tif" for i in lr)
    pool = pixel_hashes(synthrs_tiny.glob("instruct/images/*.png"))
    assert len(tests) > 150 and len(pool) > 50
    assert not tests & pool
    general = json.loads((synthrs_tiny / "general" / "train.json").read_text())
    held_out = json.loads((synthrs_tiny / "general" / "test.json").read_text())
    text_prompts = {r["conversations"][0]["value"] for r in general if "image" not in r}
    assert not text_prompts & {r["conversations"][0]["value"] for r in held_out if "image" not in r}
    assert not pixel_hashes(synthrs_tiny.glob("general/images/general_test_*.png")) & pixel_hashes(
        synthrs_tiny.glob("general/images/general_train_*.png"))


def test_pool_and_general_records_validate(synthrs_tiny):
    for path in ("instruct/geochat_style.json", "general/train.json", "general/test.json"):
        problems = validate_file(synthrs_tiny / path, format="llava", check_images=True)
        assert problems == [], [str(p) for p in problems[:5]]
        assert main(["data", "validate", str(synthrs_tiny / path), "--check-images"]) == 0


def test_pool_composition_tasks_duplicates_noise(synthrs_tiny):
    records = json.loads((synthrs_tiny / "instruct" / "geochat_style.json").read_text())
    meta = [json.loads(line) for line in (synthrs_tiny / "instruct" / "geochat_style_meta.jsonl").open()]
    assert [m["id"] for m in meta] == [r["id"] for r in records]
    for r, m in zip(records, meta, strict=True):
        record = Record(r["id"], [r["image"]], r["conversations"])
        assert infer_task(record) == m["task"]
        answer = record.answer
        if m["task"] == "grounding":
            assert re.fullmatch(r"<p>[^<]+</p> \{<\d+><\d+><\d+><\d+>\|-?\d+\}", answer)
    assert {m["task"] for m in meta} == {"classification", "vqa", "caption", "grounding", "region"}
    noisy = {m["id"] for m in meta if m["noise"]}
    dups = [m for m in meta if m["duplicate_of"] and not {m["id"], m["duplicate_of"]} & noisy]
    assert len(dups) > 5
    def small(record):  # 16x16 thumbnails: a near-duplicate is the nearest image to its source
        with Image.open(synthrs_tiny / "instruct" / record["image"]) as img:
            return np.asarray(img.resize((16, 16), Image.BILINEAR), float).ravel()

    thumbs = np.stack([small(r) for r in records])
    index = {r["id"]: i for i, r in enumerate(records)}
    family = {m["id"]: m["duplicate_of"] or m["id"] for m in meta}
    for m in dups:
        i = index[m["id"]]
        dist = np.abs(thumbs - thumbs[i]).mean(axis=1)
        dist[i] = np.inf
        assert family[records[int(dist.argmin())]["id"]] == m["duplicate_of"]
    assert any(m["noise"] for m in meta)


def test_pool_options_are_checked():
    with pytest.raises(ValueError, match="duplicate_share"):
        PoolOptions(duplicate_share=1.5)
    with pytest.raises(ValueError, match="task_shares"):
        PoolOptions(task_shares={"chitchat": 1.0})
