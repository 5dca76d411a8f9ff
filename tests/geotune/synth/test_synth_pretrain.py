"""The proxy base's pretraining corpus and the GeoChat-structured pool: disjoint from pool and benchmarks."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from geotune.synth import PoolOptions, write_synthrs
from geotune.synth.pretrain import LAND_COVER_SHARE
from geotune.synth.scenes import UCM_CLASSES, spaced_ucm
from geotune.synth.scenes_aid import AID_CLASSES, spaced_aid


@pytest.fixture(scope="module")
def proxy_tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("proxy") / "synthrs"
    write_synthrs(root, seed=0, size="tiny", pool=PoolOptions(records=120, instructions_per_image=3),
                  pretrain_records=160)
    return root


def pixel_hashes(paths) -> set[str]:
    return {hashlib.sha256(np.asarray(Image.open(p).convert("RGB")).tobytes()).hexdigest() for p in paths}


def prompts(records) -> set[str]:
    return {r["conversations"][0]["value"].replace("<image>\n", "") for r in records}


def test_corpus_images_are_disjoint_from_pool_and_benchmarks(proxy_tiny):
    corpus = pixel_hashes((proxy_tiny / "pretrain" / "images").glob("*.png"))
    assert len(corpus) == 160  # every corpus scene is its own
    pool = pixel_hashes((proxy_tiny / "instruct" / "images").glob("*.png"))
    bench = pixel_hashes([*(proxy_tiny / "UCMerced_LandUse").rglob("*.tif"), *(proxy_tiny / "AID").rglob("*.jpg"),
                          *(proxy_tiny / "RSVQA_LR").rglob("*.tif")])
    assert not corpus & pool and not corpus & bench


def test_corpus_prompts_are_not_pool_or_benchmark_prompts(proxy_tiny):
    corpus = prompts(json.loads((proxy_tiny / "pretrain" / "corpus.json").read_text()))
    pool = prompts(json.loads((proxy_tiny / "instruct" / "geochat_style.json").read_text()))
    bench = set()
    for name in ("UCmerced", "aid", "lrben"):
        for line in (proxy_tiny / "GeoChat-Bench" / f"{name}.jsonl").read_text().splitlines():
            bench.add(json.loads(line)["text"])
    lr_questions = json.loads((proxy_tiny / "RSVQA_LR" / "LR_split_train_questions.json").read_text())["questions"]
    bench |= {q["question"] for q in lr_questions}
    assert corpus and not corpus & pool and not corpus & bench
    assert not any(p.startswith(("Classify", "[refer]", "[identify]", "[caption]")) for p in corpus)


def test_corpus_teaches_instruction_following_in_its_own_words(proxy_tiny):
    """Multiple-choice class questions whose options hold the answer, and answers in the benchmarks' vocabulary."""
    records = json.loads((proxy_tiny / "pretrain" / "corpus.json").read_text())
    qa = [(r["conversations"][0]["value"].replace("<image>\n", ""), r["conversations"][1]["value"]) for r in records]
    choices = [(q, a) for q, a in qa if ": " in q and ", " in q.split(": ", 1)[1] and "yes or no" not in q.lower()]
    assert len(choices) > 10
    for question, answer in choices:
        assert answer in question  # the true class is among the options
    answers = {a for _, a in qa}
    assert {"yes", "no"} <= answers and answers & {"urban", "rural"} and any(a.isdigit() for a in answers)
    assert len({q.split(":")[0] for q, _ in qa}) >= 12  # many phrasings, not one template per kind


def test_corpus_covers_every_class_and_land_cover(proxy_tiny):
    summary = json.loads((proxy_tiny / "synthrs.json").read_text())
    counts = summary["counts"]["pretrain"]
    assert counts["records"] == 160 and counts["class_scene"] >= len(UCM_CLASSES) + len(AID_CLASSES)
    assert abs(counts["land_cover"] / 160 - LAND_COVER_SHARE) < 0.12
    meta = [json.loads(line) for line in (proxy_tiny / "pretrain" / "corpus_meta.jsonl").read_text().splitlines()]
    drawn = {(m["dataset"], m["name"]) for m in meta}
    assert drawn >= {("ucmerced", c) for c in UCM_CLASSES} | {("aid", c) for c in AID_CLASSES}
    # The class is named in the answers too (category and caption questions), not only drawn.
    text = " ".join(r["conversations"][1]["value"]
                    for r in json.loads((proxy_tiny / "pretrain" / "corpus.json").read_text()))
    named = [label for label in [spaced_ucm(c) for c in UCM_CLASSES] + [spaced_aid(c) for c in AID_CLASSES]
             if label in text]
    assert len(named) > 0.6 * (len(UCM_CLASSES) + len(AID_CLASSES))


def test_pool_has_several_instructions_per_image(proxy_tiny):
    records = json.loads((proxy_tiny / "instruct" / "geochat_style.json").read_text())
    meta = [json.loads(line) for line in (proxy_tiny / "instruct" / "geochat_style_meta.jsonl").read_text().splitlines()]
    assert len(records) == len(meta) == 120
    by_image: dict[str, list[str]] = {}
    for record, m in zip(records, meta, strict=True):
        assert record["id"] == m["id"]
        by_image.setdefault(record["image"], []).append(m["task"])
    shared = [tasks for tasks in by_image.values() if len(tasks) > 1]
    assert len(shared) > 20
    # A class scene is asked other tasks, not the same one again.
    assert any(len(set(tasks)) == len(tasks) >= 3 for tasks in shared)
    for m in meta:
        if "image_of" in m:
            assert m["duplicate_of"] is None and (proxy_tiny / "instruct" / "images" / f"{m['image_of']}.png").exists()


def test_default_pool_and_options_are_unchanged_without_the_new_options(tmp_path):
    summary = write_synthrs(tmp_path / "plain", seed=0, size="tiny")
    assert "pretrain_records" not in summary["options"] and "instructions_per_image" not in summary["options"]["pool"]
    assert not (tmp_path / "plain" / "pretrain").exists()
    meta = (tmp_path / "plain" / "instruct" / "geochat_style_meta.jsonl").read_text()
    assert "image_of" not in meta
