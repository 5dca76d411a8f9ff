"""report.html: built from a real small selection run; bounded samples; escaped text; pages paths stay inside."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from explorer_pool import EVIL_ANSWER, synthetic_header, synthetic_records, synthetic_selection
from omegaconf import OmegaConf

from finetune.data.records import Record
from selection.budget import Selection
from selection.config import SelectionConfig, check_values
from selection.explorer import explorer_data, record_class, write_explorer
from selection.manifest import read_manifest


def page_data(page: Path) -> dict:
    """The JSON a page embeds (``\\u003c``... are JSON escapes, so json.loads reads it as the page does)."""
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', text, re.S).group(1))


def test_report_html_of_a_real_run_is_complete_escaped_and_self_contained(explorer_run):
    run_dir, data = explorer_run
    out = run_dir / "selection"
    page = out / "report.html"
    header, rows = read_manifest(out / "manifest.jsonl")
    embedded = page_data(page)
    overview = embedded["overview"]
    assert (overview["method"], overview["n_total"], overview["n_kept"]) == ("self_sup", 40, 20) == (
        header["method"], header["n_total"], header["n_kept"])
    assert overview["clustered"] and overview["n_clusters"] == len(embedded["clusters"]) <= 4
    assert sum(c["size"] for c in embedded["clusters"]) == 40 and sum(c["kept"] for c in embedded["clusters"]) == 20
    assert set(overview["plots"].values()) <= {p.name for p in out.glob("*.png")} and overview["plots"]
    assert "report.html" in (out / "report.md").read_text()
    # 40 records in 4 clusters, at most 24 kept + 24 dropped each: every record is shown once
    assert sorted(s["id"] for s in embedded["samples"]) == sorted(r.id for r in data.records)
    kept_ids = {r["id"] for r in rows}
    assert all(s["kept"] == (s["id"] in kept_ids) for s in embedded["samples"])
    assert embedded["tasks"] == ["caption", "classification", "vqa"]
    assert embedded["classes"] == ["beach", "farmland", "forest", "river"]  # from the classification answers

    # thumbnails: downscaled copies inside report_assets/, named by position, never pointing outside
    thumbs = [s["thumb"] for s in embedded["samples"]]
    assert all(thumbs) and overview["thumbnails"] == {"written": 40, "unreadable": 0, "without_image": 0}
    for thumb in thumbs:
        assert not PurePosixPath(thumb).is_absolute() and ".." not in PurePosixPath(thumb).parts
        assert (out / thumb).resolve().is_relative_to(out.resolve()) and (out / thumb).stat().st_size > 0

    # every sample names its annotation file:line, and that line starts the record
    pool = Path(data.origin(next(r for r in data.records if r.id == "pool_008")).rsplit(":", 1)[0])
    lines = pool.read_text().splitlines()
    for sample in embedded["samples"]:
        path, location = sample["origin"].rsplit(":", 1)
        line, index = re.fullmatch(r"(\d+) \(index (\d+)\)", location).groups()
        assert path == str(pool) and lines[int(line) - 1].strip() == "{"
        assert f'"id": "{sample["id"]}"' in lines[int(line)] and int(index) == int(sample["id"][5:])

    # the HTML answer is data, not markup: no raw tag in the page, and the template saw no placeholder in it
    evil = next(s for s in embedded["samples"] if s["id"] == "pool_008")
    assert evil["answer"] == EVIL_ANSWER
    text = page.read_text(encoding="utf-8")
    assert "window.__pwned" in text and "<script>window.__pwned" not in text and "<img src=x" not in text


def test_samples_are_bounded_per_cluster_and_in_all():
    n, k = 2000, 10
    selection = synthetic_selection(n, k, keep_every=2)
    records = synthetic_records(n)
    data, shown = explorer_data(selection, synthetic_header(selection, n), {}, records, per_cluster=5, max_samples=1000)
    assert data["limits"]["per_side"] == 5 and len(shown) == len(data["samples"]) == 2 * 5 * k
    for c in data["clusters"]:
        mine = [s for s in data["samples"] if s["cluster"] == c["id"]]
        kept_scores = [s["score"] for s in mine if s["kept"]]
        assert len(kept_scores) == 5 and kept_scores == sorted(kept_scores, reverse=True)
    # many clusters: one kept + one dropped each for the largest max_samples // 2 clusters only
    data, shown = explorer_data(selection, synthetic_header(selection, n), {}, records, per_cluster=24, max_samples=8)
    assert data["limits"] == {"per_side": 1, "sampled_clusters": 4, "max_samples": 8, "per_cluster": 24}
    sampled = [c for c in data["clusters"] if c["sampled"]]
    assert len(sampled) == 4 and min(c["size"] for c in sampled) >= max(c["size"] for c in data["clusters"] if not c["sampled"])
    assert len(shown) == 8 and {s["cluster"] for s in data["samples"]} == {c["id"] for c in sampled}
    # same seed, same page
    assert explorer_data(selection, synthetic_header(selection, n), {}, records, per_cluster=24, max_samples=8)[1] == shown


def test_selector_without_clusters_is_one_group_and_kept_scores_only():
    n = 30
    kept = np.arange(0, n, 3)
    selection = Selection(kept, np.full(len(kept), -1), np.linspace(1, 0, len(kept)), np.arange(len(kept)))
    data, _ = explorer_data(selection, synthetic_header(selection, n), {"select": 0.1}, synthetic_records(n), per_cluster=4)
    assert [(c["id"], c["size"], c["kept"]) for c in data["clusters"]] == [(-1, 30, 10)]
    assert not data["overview"]["clustered"]
    assert all(s["score"] is None for s in data["samples"] if not s["kept"])
    shown = [s["score"] for s in data["samples"] if s["kept"]]  # a seeded 4 of the 10 kept, best first
    assert len(shown) == 4 and shown == sorted(shown, reverse=True)
    assert set(shown) <= {round(float(x), 6) for x in np.linspace(1, 0, 10)}


def test_record_class_reads_the_annotation_then_the_classification_answer():
    turns = [{"from": "human", "value": "Classify the given image. Classes: a, b"}, {"from": "gpt", "value": "Dense Residential."}]
    assert record_class(Record("a", [], turns, task="classification")) == "dense residential"
    assert record_class(Record("b", [], turns, task="vqa")) is None
    assert record_class(Record("c", [], turns, task="vqa", extra={"label": "River"})) == "River"


def _python_steps(fn, *args, **kwargs) -> int:
    """Python lines ``fn`` executes, every loop turn counted (``sys.settrace`` line events): a measure of
    work that machine load cannot change, unlike a clock."""
    steps = 0

    def trace(frame, event, arg):
        nonlocal steps
        steps += 1
        return trace

    sys.settrace(trace)
    try:
        fn(*args, **kwargs)
    finally:
        sys.settrace(None)
    return steps


def test_explorer_work_grows_linearly_with_the_pool():
    """Twice the records in twice the clusters (`selection.clusters=0` gives one per ~66) costs about twice
    the Python steps; a step per record per cluster (quadratic: 318k x 4,818 at GeoChat scale) costs four
    times. Counted, not timed (speed is measured in benchmarks/, never asserted in a test)."""
    work = {}
    for n in (3300, 6600):
        selection = synthetic_selection(n, n // 66, keep_every=3)
        work[n] = _python_steps(explorer_data, selection, synthetic_header(selection, n), {}, synthetic_records(n),
                                origin=lambda r: r.source, max_samples=200)
    assert 1.5 < work[6600] / work[3300] < 2.6, work


@pytest.mark.slow
def test_report_of_a_318k_record_pool_stays_small(tmp_path):
    """GeoChat-sized pool (318k records, 4,818 clusters as `selection.clusters=0` gives): the page embeds
    cluster summaries and a bounded sample, not the records."""
    n, k = 318_000, 4818
    selection = synthetic_selection(n, k, keep_every=3)
    records = synthetic_records(n)
    page = write_explorer(tmp_path, selection, synthetic_header(selection, n), {"select": 1.0}, records)
    embedded = page_data(page)
    assert len(embedded["clusters"]) == k and len(embedded["samples"]) <= 6000
    assert page.stat().st_size < 6 * 2**20, page.stat().st_size


def test_bad_report_bounds_are_refused_by_the_section_check():
    """selection's own value check (run when the recipe loads, before any data is read) names each bound."""
    sel = OmegaConf.structured(SelectionConfig)
    assert check_values(sel) == []
    sel.report_per_cluster, sel.report_max_samples = 0, 1
    problems = check_values(sel)
    assert [p.split(":")[0] for p in problems] == ["selection.report_per_cluster", "selection.report_max_samples"]
    assert all("selection.report=false" in p for p in problems)
    sel.report = False  # they bound only the page
    assert check_values(sel) == []
