"""Bad annotation files a new user meets: each reported by file:line, or skipped and counted, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from recipe_sections import library_recipe

from finetune.data.loader import load_training_data
from finetune.data.validate import BadRecordError, validate_file


def _row(i: int, question: str = "<image>\nDescribe the image.", answer: str = "A field.") -> dict:
    return {"id": f"r{i}", "image": "img/a.png", "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}


def _pool(folder: Path) -> Path:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 200, 30)).save(folder / "img" / "a.png")
    return folder


def _cfg(tmp_path: Path, path: Path, *overrides: str):
    return library_recipe(f"data.datasets=[{{name: d, path: '{path}'}}]", f"data.cache_dir={tmp_path / 'cache'}", *overrides)


def test_turn_without_from_is_a_bad_record_not_a_key_error(tmp_path):
    rows = [_row(0), {"id": "r1", "image": "img/a.png", "conversations": [{"value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}]}]
    path = _pool(tmp_path) / "a.json"
    path.write_text(json.dumps(rows, indent=2))
    with pytest.raises(BadRecordError, match=r"a\.json:\d+ \(index 1\): record 'r1': turn 0 needs string 'from' and 'value'"):
        load_training_data(_cfg(tmp_path, path))
    data = load_training_data(_cfg(tmp_path, path, "data.skip_bad=true"))
    assert [r.id for r in data.records] == ["r0"] and data.skipped == {"bad_turn": 1}


def test_lone_surrogate_is_reported_and_the_cache_still_writes(tmp_path):
    path = _pool(tmp_path) / "s.jsonl"
    good = json.dumps(_row(0))
    bad = json.dumps(_row(1, answer="broken \ud800 text"))  # json.dumps escapes it as \ud800: valid JSON, not Unicode
    assert "\\ud800" in bad
    path.write_text(good + "\n" + bad + "\n")
    problems = validate_file(path)
    assert [(p.location, p.reason) for p in problems] == [("2", "bad_unicode")]
    assert "turn 1 contains a lone surrogate ('\\ud800')" in str(problems[0])
    with pytest.raises(BadRecordError, match=r"s\.jsonl:2: record 'r1': turn 1 contains a lone surrogate"):
        load_training_data(_cfg(tmp_path, path))
    for _ in range(2):  # the second load reads the Arrow cache the first one wrote
        data = load_training_data(_cfg(tmp_path, path, "data.skip_bad=true"))
        assert [r.id for r in data.records] == ["r0"] and data.skipped == {"bad_unicode": 1}
    assert list((tmp_path / "cache").iterdir())


def test_non_utf8_bytes_name_file_and_line(tmp_path):
    _pool(tmp_path)
    lines = [json.dumps(_row(i)) for i in range(4)]
    lines[2] = lines[2].replace("A field.", "Caf\u00e9 field.")
    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes("\n".join(lines).encode("latin-1") + b"\n")  # 0xe9 on line 3: not UTF-8
    problems = validate_file(jsonl)
    assert [(p.location, p.reason) for p in problems] == [("3", "bad_encoding")]
    assert "byte 0xe9 cannot be decoded" in problems[0].message
    data = load_training_data(_cfg(tmp_path, jsonl, "data.skip_bad=true"))  # one bad line, not a dead file
    assert [r.id for r in data.records] == ["r0", "r1", "r3"] and data.skipped == {"bad_encoding": 1}
    with pytest.raises(BadRecordError, match=r"latin1\.jsonl:3: not UTF-8: byte 0xe9"):
        load_training_data(_cfg(tmp_path, jsonl))
    listed = tmp_path / "latin1.json"
    listed.write_bytes(("[\n" + ",\n".join(lines) + "\n]\n").encode("latin-1"))
    problems = validate_file(listed)
    assert [(p.location, p.reason) for p in problems] == [("4", "malformed_json")] and "not UTF-8" in problems[0].message
    with pytest.raises(BadRecordError, match=r"latin1\.json:4: not UTF-8: byte 0xe9"):
        load_training_data(_cfg(tmp_path, listed))


def test_json_nested_100k_deep_is_reported_not_a_recursion_error(tmp_path):
    _pool(tmp_path)
    deep = '{"id": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    jsonl = tmp_path / "deep.jsonl"
    jsonl.write_text(json.dumps(_row(0)) + "\n" + deep + "\n")
    problems = validate_file(jsonl)
    assert [(p.location, p.reason) for p in problems] == [("2", "malformed_json")] and "nested too deep" in problems[0].message
    data = load_training_data(_cfg(tmp_path, jsonl, "data.skip_bad=true"))
    assert [r.id for r in data.records] == ["r0"] and data.skipped == {"malformed_json": 1}
    listed = tmp_path / "deep.json"
    listed.write_text("[\n" + json.dumps(_row(0)) + ",\n" + deep + "\n]\n")
    problems = validate_file(listed)
    assert [(p.location, p.reason) for p in problems] == [("3", "malformed_json")] and "nested too deep" in problems[0].message
    with pytest.raises(BadRecordError, match=r"deep\.json:3: element 1 is nested too deep"):
        load_training_data(_cfg(tmp_path, listed))
    first = tmp_path / "deep_first.json"
    first.write_text("[\n" + deep + "\n]\n")
    assert "nested too deep" in validate_file(first)[0].message


def test_validate_check_images_decodes_truncated_jpeg(tmp_path):
    _pool(tmp_path)
    Image.effect_noise((64, 64), 60).convert("RGB").save(tmp_path / "img" / "full.jpg", quality=95)
    data = (tmp_path / "img" / "full.jpg").read_bytes()
    (tmp_path / "img" / "cut.jpg").write_bytes(data[: len(data) // 2])
    rows = [dict(_row(0), image="img/full.jpg"), dict(_row(1), image="img/cut.jpg")]
    (tmp_path / "a.json").write_text(json.dumps(rows, indent=2))
    assert validate_file(tmp_path / "a.json") == []  # the header of the cut file reads fine
    problems = validate_file(tmp_path / "a.json", check_images=True)
    assert len(problems) == 1 and str(problems[0]).startswith(f"{tmp_path / 'a.json'}:")  # file:line as printed
    assert problems[0].record_id == "r1" and "image 'img/cut.jpg'" in problems[0].message
    assert "cannot be decoded" in problems[0].message
