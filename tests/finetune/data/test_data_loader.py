"""load_training_data: skip_bad counts, clear errors, path escapes, sampling, mixing, unique ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from recipe_sections import library_recipe

from finetune.data.loader import load_training_data
from finetune.data.validate import BadRecordError

TESTS_DATA = Path(__file__).resolve().parents[2] / "data"


def _turns(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def _write_pool(folder: Path, prefix: str, n: int) -> Path:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 200, 30)).save(folder / "img" / "a.png")
    rows = [{"id": f"{i}", "image": "img/a.png", "conversations": _turns("<image>\nDescribe the image.", f"{prefix} {i}")} for i in range(n)]
    path = folder / f"{prefix}.json"
    path.write_text(json.dumps(rows, indent=2))
    return path


def _cfg(tmp_path: Path, datasets: list[dict], *overrides: str):
    specs = "[" + ", ".join("{" + ", ".join(f"{k}: '{v}'" for k, v in d.items()) + "}" for d in datasets) + "]"
    return library_recipe(f"data.datasets={specs}", f"data.cache_dir={tmp_path / 'cache'}", *overrides)


def test_loads_records_with_roots_tasks_and_images(tmp_path):
    path = _write_pool(tmp_path / "dom", "dom", 4)
    data = load_training_data(_cfg(tmp_path, [{"name": "rs", "path": path}]))
    assert [r.id for r in data.records] == ["0", "1", "2", "3"]
    assert data.image_roots == {"rs": tmp_path / "dom"} and data.skipped == {} and data.counts == {"rs": 4}
    assert {r.task for r in data.records} == {"caption"} and {r.source for r in data.records} == {"rs"}
    assert data.image_path(data.records[0]) == tmp_path / "dom" / "img" / "a.png"
    image = data.load_image(data.records[0])
    assert image.mode == "RGB" and image.size == (8, 8) and image.getpixel((0, 0)) == (10, 200, 30)


def test_skip_bad_counts_by_reason(tmp_path):
    bad = tmp_path / "bad.jsonl"
    shutil.copy(TESTS_DATA / "bad" / "bad.jsonl", bad)
    data = load_training_data(_cfg(tmp_path, [{"name": "b", "path": bad}], "data.skip_bad=true"))
    assert [r.id for r in data.records] == ["ok_1", "missing_file"]
    assert data.skipped == {"malformed_json": 1, "missing_conversations": 1, "turn_order": 2, "image_count": 1,
                            "empty_answer": 1, "path_escape": 2, "not_an_object": 1, "bad_turn": 1}


def test_skip_bad_with_check_images(tmp_path):
    bad = tmp_path / "bad.jsonl"
    shutil.copy(TESTS_DATA / "bad" / "bad.jsonl", bad)
    (tmp_path / "img").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "img" / "ok.png")
    data = load_training_data(_cfg(tmp_path, [{"name": "b", "path": bad}], "data.skip_bad=true", "data.check_images=true"))
    assert [r.id for r in data.records] == ["ok_1"] and data.skipped["missing_image"] == 1
    only_images_bad = _only_missing(tmp_path, bad)
    with pytest.raises(BadRecordError, match=r"bad_images\.jsonl:12: record 'missing_file': image 'img/missing.png' not found"):
        load_training_data(_cfg(tmp_path, [{"name": "b", "path": only_images_bad}], "data.check_images=true"))


def _only_missing(tmp_path: Path, bad: Path) -> Path:
    lines = bad.read_text().splitlines(keepends=True)
    keep = tmp_path / "bad_images.jsonl"
    keep.write_text("".join(lines[:1]) + "\n" * 10 + lines[11])  # ok_1 on line 1, missing_file on line 12
    return keep


def test_without_skip_bad_the_first_bad_record_raises_with_file_line_and_hint(tmp_path):
    bad = tmp_path / "bad.jsonl"
    shutil.copy(TESTS_DATA / "bad" / "bad.jsonl", bad)
    with pytest.raises(BadRecordError) as err:
        load_training_data(_cfg(tmp_path, [{"name": "b", "path": bad}]))
    assert str(err.value).startswith(f"{bad}:2: malformed JSON line")
    assert "data.skip_bad=true" in str(err.value)


def test_path_escape_is_refused_even_when_asked_directly(tmp_path):
    escape = tmp_path / "escape.jsonl"
    escape.write_text('{"id": "e", "image": "../outside.png", "conversations": [{"from": "human", "value": "<image>\\nQ"}, {"from": "gpt", "value": "A"}]}\n')
    with pytest.raises(BadRecordError, match=r"escape\.jsonl:1: record 'e': image path '\.\./outside\.png' escapes"):
        load_training_data(_cfg(tmp_path, [{"name": "e", "path": escape}]))
    data = load_training_data(_cfg(tmp_path, [{"name": "e", "path": escape}], "data.skip_bad=true"))
    assert data.records == [] and data.skipped == {"path_escape": 1}
    ok = load_training_data(_cfg(tmp_path, [{"name": "ok", "path": _write_pool(tmp_path / "p", "p", 1)}]))
    ok.records[0].images = ["../../etc/passwd"]
    with pytest.raises(ValueError, match="escapes the image root; refused"):
        ok.image_path(ok.records[0])


def test_sampling_mixing_and_unique_ids(tmp_path):
    domain = _write_pool(tmp_path / "d", "dom", 30)
    general = _write_pool(tmp_path / "g", "gen", 50)
    datasets = [{"name": "dom", "path": domain, "sample": 0.5}, {"name": "gen", "path": general, "kind": "general"}]
    data = load_training_data(_cfg(tmp_path, datasets, "mix.general_ratio=0.25", "mix.seed=3"))
    assert data.counts == {"dom": 15, "gen": 5}  # 15 * 0.25 / 0.75 = 5
    ids = [r.id for r in data.records]
    assert len(set(ids)) == 20
    domain_ids = set(ids[:15])
    for record in data.records[15:]:  # both files use ids 0..n: a general id taken by domain gets a prefix
        original = record.answer.split()[-1]
        assert record.id == (f"gen/{original}" if original in domain_ids else original)
    assert any(i.startswith("gen/") for i in ids[15:])
    again = load_training_data(_cfg(tmp_path, datasets, "mix.general_ratio=0.25", "mix.seed=3"))
    assert [r.id for r in again.records] == ids
    other = load_training_data(_cfg(tmp_path, datasets, "mix.general_ratio=0.25", "mix.seed=4"))
    assert [r.id for r in other.records] != ids
    repeated = load_training_data(_cfg(tmp_path, [{"name": "dom", "path": domain, "sample": 2}]))
    assert len(repeated.records) == 60 and len({r.id for r in repeated.records}) == 60
    together = load_training_data(_cfg(tmp_path, datasets))  # no general_ratio: all of both
    assert together.counts == {"dom": 15, "gen": 50}


def test_internvl_meta_expands_into_sources(tmp_path):
    folder = tmp_path / "meta"
    shutil.copytree(TESTS_DATA / "formats", folder)
    data = load_training_data(_cfg(tmp_path, [{"name": "iv", "path": folder / "internvl_meta.json"}]))
    assert data.counts == {"iv/rs_scenes": 3, "iv/rs_scenes_half": 2}
    assert data.image_roots["iv/rs_scenes"] == folder / "./"
    assert len({r.id for r in data.records}) == 5


def test_recipe_errors_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.datasets\[0\]\.path: annotation file '.*nope.json' not found"):
        load_training_data(_cfg(tmp_path, [{"name": "x", "path": tmp_path / "nope.json"}]))
    path = _write_pool(tmp_path / "k", "k", 1)
    with pytest.raises(ValueError, match=r"data\.datasets\[0\]\.kind"):
        load_training_data(_cfg(tmp_path, [{"name": "x", "path": path, "kind": "other"}]))
    with pytest.raises(ValueError, match="data.datasets is empty"):
        load_training_data(library_recipe())


def test_origins_give_each_record_its_file_and_line(tmp_path):
    """Reports point at the annotation line a record came from, also for renamed ids and sampled copies."""
    dom = tmp_path / "dom.jsonl"
    dom.write_text("".join(json.dumps({"id": f"{i}", "image": "a.png", "conversations": _turns("<image>\\nDescribe.", f"d {i}")}) + "\n"
                           for i in range(3)))
    gen = _write_pool(tmp_path / "g", "gen", 2)  # a JSON list, indent 2: each element starts on a "{" line
    lines = gen.read_text().splitlines()
    starts = [n for n, line in enumerate(lines, 1) if line == "  {"]
    assert len(starts) == 2 and '"id": "1"' in lines[starts[1]]
    datasets = [{"name": "dom", "path": dom, "sample": 2}, {"name": "gen", "path": gen}]
    data = load_training_data(_cfg(tmp_path, datasets))
    origins = {r.id: data.origin(r) for r in data.records}
    assert origins == {
        "0": f"{dom}:1", "1": f"{dom}:2", "2": f"{dom}:3", "0#1": f"{dom}:1", "1#1": f"{dom}:2", "2#1": f"{dom}:3",
        "gen/0": f"{gen}:{starts[0]} (index 0)", "gen/1": f"{gen}:{starts[1]} (index 1)",
    }
    cached = load_training_data(_cfg(tmp_path, datasets))  # the second load reads the Arrow cache
    assert {r.id: cached.origin(r) for r in cached.records} == origins
