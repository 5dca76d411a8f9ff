"""compare.html: two runs' real eval outputs (predictions + scored results) side by side, in headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import pytest
from eval_layouts import UCM_CLASSES
from selenium.webdriver.common.by import By

from eval.compare import compare_runs
from eval.compare_html import disagreements
from eval.readers import spaced_name
from eval.scoring import score_rows
from finetune.files import write_json_atomic, write_jsonl_atomic

EVIL = '<script>window.__pwned = 1</script><b onmouseover="x()">yes</b>'
BROKEN_IMAGES = "return Array.from(document.images).filter(img => !(img.naturalWidth > 0)).map(img => img.src)"


def _write_eval(run: Path, bench: str, task: str, rows: list[dict], classes: list[str]) -> None:
    """What ``eval.runners.run_benchmark`` leaves in ``<run>/final/eval``: predictions and the scored result."""
    out = run / "final" / "eval"
    write_jsonl_atomic(out / f"{bench}.predictions.jsonl", rows)
    write_json_atomic(out / f"{bench}.json", {"benchmark": bench, **score_rows(task, rows, classes)})


def _ucm_rows(bench_root: Path, wrong: dict[int, str]) -> list[dict]:
    rows = []
    for c, cls in enumerate(UCM_CLASSES):
        for n in range(3):
            qid = 3 * c + n
            image = bench_root / "UCMerced_LandUse" / "Images" / cls / f"{cls}{n:02d}.tif"
            rows.append({"question_id": qid, "image": str(image), "question": "Classify the given image.",
                         "answer": wrong.get(qid, spaced_name(cls).title() + "."), "ground_truth": spaced_name(cls)})
    return rows


@pytest.fixture
def two_runs(tmp_path, bench_root):
    classes = [spaced_name(c) for c in UCM_CLASSES]
    lrben = [{"question_id": q, "image": str(bench_root / "RSVQA_LR" / "Images_LR" / "0.tif"), "question": "Is there a road?",
              "answer": a, "ground_truth": "yes", "category": "presence"} for q, a in ((0, "yes"), (1, "no"))]
    runs = []
    for name, wrong, vqa in (("baseline", {0: "river", 4: "river"}, lrben),
                             ("adaptive", {0: "river", 5: "agricultural", 7: "dense residential"},
                              [dict(lrben[0], answer=EVIL), lrben[1]])):
        run = tmp_path / name
        _write_eval(run, "ucmerced", "classification", _ucm_rows(bench_root, wrong), classes)
        _write_eval(run, "lrben", "vqa", vqa, [])
        (run / "train_summary.json").write_text(json.dumps({"train_seconds": 120.0 if name == "baseline" else 60.0,
                                                            "samples_seen": 900 if name == "baseline" else 450}))
        runs.append(run)
    return runs


def _embedded(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="compare-data">(.*?)</script>', text, re.S).group(1))


def test_compare_html_holds_confusions_and_exact_disagreements(two_runs, tmp_path):
    out = tmp_path / "compare"
    compare_runs(two_runs, out)
    page = out / "compare.html"
    data = _embedded(page)
    assert data["runs"] == ["baseline", "adaptive"]
    ucm = data["benches"]["ucmerced"]
    # both wrong on 0 with the same answer: they agree; 4, 5 and 7 differ (7 is a river image that only
    # adaptive calls dense residential)
    assert [d["question_id"] for d in ucm["disagreements"]] == ["4", "5", "7"] and ucm["disagreements_total"] == 3
    item = ucm["disagreements"][0]
    assert item["answers"] == ["river", "Dense Residential."] and item["correct"] == [False, True]
    assert ucm["scores"] == [pytest.approx(700 / 9), pytest.approx(600 / 9)]
    assert [c["matrix"][2][2] for c in ucm["confusion"]] == [3, 2]  # rivers answered right: 3 and 2 times
    assert data["benches"]["lrben"]["confusion"] == [None, None]
    assert data["benches"]["lrben"]["disagreements"][0]["answers"] == ["yes", EVIL]
    for d in ucm["disagreements"] + data["benches"]["lrben"]["disagreements"]:
        thumb = PurePosixPath(d["thumb"])
        assert not thumb.is_absolute() and ".." not in thumb.parts and (out / thumb).stat().st_size > 0
    text = page.read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in text and "<b onmouseover" not in text


def test_disagreements_are_bounded_and_counted():
    runs = [{str(q): {"answer": str(q % 2 + i)} for q in range(100)} for i in range(2)]
    items, total = disagreements(runs, limit=5)
    assert total == 100 and [d["question_id"] for d in items] == ["0", "1", "2", "3", "4"]
    assert disagreements([runs[0], {"0": {"answer": "0"}}], limit=5) == ([], 0)  # only question 0 shared, same answer


def test_compare_html_in_chromium(chromium, two_runs, tmp_path):
    out = tmp_path / "compare"
    compare_runs(two_runs, out)
    driver = chromium.driver
    assert chromium.open(out / "compare.html") == []
    assert chromium.run(BROKEN_IMAGES) == [] and chromium.run("return document.images.length") == 4
    assert chromium.run("return window.__pwned") is None
    rows = driver.find_elements(By.CSS_SELECTOR, "#metrics-table tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "td").text for r in rows] == ["baseline", "adaptive"]
    matrices = driver.find_elements(By.CSS_SELECTOR, "#confusion-list .matrix")
    assert len(matrices) == 2 and matrices[0].location["y"] == matrices[1].location["y"]  # side by side
    assert matrices[0].location["x"] < matrices[1].location["x"]
    bars = driver.find_elements(By.CSS_SELECTOR, "#score-bars .bar-group")
    assert [b.find_element(By.TAG_NAME, "h3").text for b in bars] == ["UCMerced", "LRBEN"]
    items = driver.find_elements(By.CSS_SELECTOR, "#disagree-list .item")
    assert len(items) == 4 and EVIL in items[3].text
    shot = tmp_path / "compare.png"
    assert chromium.screenshot(shot).stat().st_size > 10_000
