"""SynthRS writes the real on-disk layouts: names, keys, counts and `active` flags, and GeoChat-Bench."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from geotune.synth.build import SIZES
from geotune.synth.layouts import AID_PROMPT, UCM_PROMPT, aid_class_sizes
from geotune.synth.scenes import UCM_CLASSES
from geotune.synth.scenes_aid import AID_DIRS

UCM_NAMES = ["agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential",
             "forest", "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark",
             "overpass", "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt"]
AID_LOWER = ["airport", "bareland", "baseballfield", "beach", "bridge", "center", "church", "commercial",
             "denseresidential", "desert", "farmland", "forest", "industrial", "meadow", "mediumresidential",
             "mountain", "park", "parking", "playground", "pond", "port", "railwaystation", "resort", "river",
             "school", "sparseresidential", "square", "stadium", "storagetanks", "viaduct"]


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_ucmerced_layout_names_and_counts(synthrs_tiny):
    images = synthrs_tiny / "UCMerced_LandUse" / "Images"
    assert sorted(p.name for p in images.iterdir()) == UCM_NAMES == list(UCM_CLASSES)
    per_class = SIZES["tiny"].ucmerced_per_class
    for name in UCM_NAMES:
        files = sorted(p.name for p in (images / name).iterdir())
        assert files == [f"{name}{i:02d}.tif" for i in range(per_class)]
    with Image.open(images / "storagetanks" / "storagetanks00.tif") as img:
        assert (img.format, img.mode, img.size) == ("TIFF", "RGB", (64, 64))


def test_aid_layout_camelcase_dirs_and_unequal_classes(synthrs_tiny):
    root = synthrs_tiny / "AID"
    assert sorted(p.name for p in root.iterdir()) == sorted(AID_DIRS)
    assert {"BareLand", "BaseballField", "DenseResidential", "RailwayStation", "StorageTanks"} <= set(AID_DIRS)
    assert [d.lower() for d in AID_DIRS] == AID_LOWER
    sizes = aid_class_sizes(SIZES["tiny"].aid_scale)
    for camel, lower in zip(AID_DIRS, AID_LOWER, strict=True):
        names = {p.name for p in (root / camel).iterdir()}
        assert names == {f"{lower}_{n}.jpg" for n in range(1, sizes[camel] + 1)}
    assert len(set(sizes.values())) > 1  # unequal, like the real set
    assert sizes["Pond"] > sizes["BaseballField"]  # the real set's largest vs smallest class
    with Image.open(root / "Airport" / "airport_1.jpg") as img:
        assert (img.format, img.mode) == ("JPEG", "RGB")


def test_rsvqa_lr_files_keys_and_active_flags(synthrs_tiny):
    base = synthrs_tiny / "RSVQA_LR"
    all_image_ids, inactive_questions = set(), 0
    for split in ("train", "val", "test"):
        questions = json.loads((base / f"LR_split_{split}_questions.json").read_text())
        answers = json.loads((base / f"LR_split_{split}_answers.json").read_text())
        images = json.loads((base / f"LR_split_{split}_images.json").read_text())
        assert list(questions) == ["questions"] and list(answers) == ["answers"] and list(images) == ["images"]
        by_id = {a["id"]: a for a in answers["answers"]}
        for q in questions["questions"]:
            assert set(q) == {"id", "img_id", "type", "question", "answers_ids", "active"}
            assert q["type"] in {"presence", "comp", "count", "rural_urban"}
            (answer,) = (by_id[i] for i in q["answers_ids"])
            assert set(answer) == {"id", "question_id", "answer", "active"}
            assert answer["question_id"] == q["id"] and answer["active"] == q["active"]
            inactive_questions += not q["active"]
        for image in images["images"]:
            assert (base / "Images_LR" / f"{image['id']}.tif").is_file()
            assert image["original_name"] == f"{image['id']}.tif"
            all_image_ids.add(image["id"])
        if split == "train":
            assert images["images"][0]["active"] is False  # readers must honour `active`
    assert inactive_questions > 0
    assert all_image_ids == set(range(sum(SIZES["tiny"].lr_images)))


def test_geochat_bench_clean(synthrs_tiny):
    bench = synthrs_tiny / "GeoChat-Bench"
    ucm = _jsonl(bench / "UCmerced.jsonl")
    assert len(ucm) == 21 * SIZES["tiny"].ucmerced_per_class
    assert ucm[0] == {"question_id": "agricultural00", "image": "agricultural/agricultural00.tif",
                      "text": UCM_PROMPT, "ground_truth": "agricultural"}
    assert {r["ground_truth"] for r in ucm} >= {"dense residential", "mobile home park", "tennis court"}
    aid = _jsonl(bench / "aid.jsonl")
    sizes = aid_class_sizes(SIZES["tiny"].aid_scale)
    for camel in AID_DIRS:
        rows = [r for r in aid if r["image"].startswith(camel + "/")]
        assert len(rows) == max(1, round(0.3 * sizes[camel]))
    for r in aid:
        assert set(r) == {"question_id", "image", "text", "ground_truth"} and r["text"] == AID_PROMPT
        assert (synthrs_tiny / "AID" / r["image"]).is_file()
    assert {r["ground_truth"] for r in aid if r["image"].startswith("RailwayStation/")} == {"railway station"}
    lrben = _jsonl(bench / "lrben.jsonl")
    questions = json.loads((synthrs_tiny / "RSVQA_LR" / "LR_split_test_questions.json").read_text())["questions"]
    answers = {a["question_id"]: a["answer"] for a in json.loads(
        (synthrs_tiny / "RSVQA_LR" / "LR_split_test_answers.json").read_text())["answers"]}
    active = [q for q in questions if q["active"]]
    assert [r["question_id"] for r in lrben] == [q["id"] for q in active]
    for r, q in zip(lrben, active, strict=True):
        assert r == {"question_id": q["id"], "image": f"{q['img_id']}.tif", "text": q["question"],
                     "category": q["type"], "ground_truth": answers[q["id"]]}


def test_published_defects(synthrs_tiny, synthrs_defects):
    clean = _jsonl(synthrs_tiny / "GeoChat-Bench" / "aid.jsonl")
    broken = _jsonl(synthrs_defects / "GeoChat-Bench" / "aid.jsonl")
    assert len(clean) == len(broken)
    for good, bad in zip(clean, broken, strict=True):
        assert bad["image"] == good["image"][: -len(".jpg")] + ".png"
        assert not (synthrs_defects / "AID" / bad["image"]).exists()
        assert (synthrs_defects / "AID" / good["image"]).is_file()
        camel = bad["ground_truth"][:-2]
        assert camel == good["image"].split("/")[0] and re.fullmatch(r"([A-Z][a-z]+)+", camel)
        # the published fix (drop 2 characters, split CamelCase) recovers the clean label
        assert re.sub(r"([A-Z])", r" \1", camel).strip().lower() == good["ground_truth"]
    lrben = _jsonl(synthrs_defects / "GeoChat-Bench" / "lrben.jsonl")
    assert lrben and all("ground_truth" not in r for r in lrben)
    assert _jsonl(synthrs_defects / "GeoChat-Bench" / "UCmerced.jsonl") == _jsonl(
        synthrs_tiny / "GeoChat-Bench" / "UCmerced.jsonl")


@pytest.mark.parametrize("fixture", ["synthrs_tiny", "synthrs_defects"])
def test_eval_readers_take_synthrs_as_is(fixture, request):
    """The eval side reads both variants; the defects are found and repaired, nothing is skipped."""
    geochat_bench = pytest.importorskip("eval.geochat_bench")
    root = request.getfixturevalue(fixture)
    expected = {"ucmerced": 63, "aid": sum(max(1, round(0.3 * n)) for n in aid_class_sizes(SIZES["tiny"].aid_scale).values()),
                "lrben": len(_jsonl(root / "GeoChat-Bench" / "lrben.jsonl"))}
    for bench, name in (("ucmerced", "UCmerced"), ("aid", "aid"), ("lrben", "lrben")):
        read = geochat_bench.read_geochat_bench(root / "GeoChat-Bench" / f"{name}.jsonl", bench, root,
                                                rsvqa_root=root / "RSVQA_LR")
        assert len(read.items) == expected[bench]
        assert not any(k.startswith("skipped") for k in read.repairs)
        if fixture == "synthrs_defects" and bench == "aid":
            assert read.repairs["image_png_to_jpg"] == read.repairs["aid_ground_truth_stray_chars"] == expected["aid"]
        if fixture == "synthrs_defects" and bench == "lrben":
            assert read.repairs["ground_truth_from_rsvqa"] == expected["lrben"]
