"""validate_file: every bad-input case reported with its line (or JSON index) and what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from finetune.data.validate import escapes_root, validate_file

BAD = Path(__file__).resolve().parents[2] / "data" / "bad"
FORMATS = Path(__file__).resolve().parents[2] / "data" / "formats"


def _lines(problems) -> list[tuple[str, str]]:
    return [(p.location, p.reason) for p in problems]


def test_every_jsonl_case_with_its_line():
    problems = validate_file(BAD / "bad.jsonl")
    assert _lines(problems) == [
        ("2", "malformed_json"),
        ("3", "missing_conversations"),
        ("4", "turn_order"),
        ("5", "image_count"),
        ("6", "empty_answer"),
        ("7", "path_escape"),
        ("8", "path_escape"),
        ("9", "turn_order"),
        ("11", "not_an_object"),
        ("13", "bad_turn"),
    ]
    text = [str(p) for p in problems]
    assert text[0].startswith(f"{BAD / 'bad.jsonl'}:2: malformed JSON line")
    assert text[2].endswith("record 'gpt_first': turn 0 is from 'gpt', expected 'human' (turns must alternate human/gpt, starting with human)")
    assert "0 <image> placeholder(s) but 1 image(s)" in text[3]
    assert "'../../secret.png' escapes the image root" in text[5]
    assert "no gpt answer" in text[7]


def test_json_list_reports_line_and_index():
    problems = validate_file(BAD / "bad_llava.json")
    assert _lines(problems) == [("15 (index 1)", "image_count"), ("29 (index 2)", "missing_conversations")]
    assert str(problems[0]).startswith(f"{BAD / 'bad_llava.json'}:15 (index 1): record 'two_placeholders': 2 <image>")


def test_broken_json_list_stops_at_the_syntax_error():
    problems = validate_file(BAD / "broken.json")
    assert _lines(problems) == [("2 (index 0)", "turn_order"), ("9", "malformed_json")]
    assert "Expecting value (column 3)" in problems[1].message


def test_check_images_finds_missing_and_unreadable(tmp_path):
    shutil.copy(BAD / "bad.jsonl", tmp_path / "bad.jsonl")
    (tmp_path / "img").mkdir()
    Image.new("RGB", (4, 4), "red").save(tmp_path / "img" / "ok.png")
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "more.jsonl").write_text(
        '{"id": "b", "image": "img/broken.png", "conversations": [{"from": "human", "value": "<image>\\nQ"}, {"from": "gpt", "value": "A"}]}\n'
    )
    assert [p.reason for p in validate_file(tmp_path / "bad.jsonl", check_images=True) if "image" in p.reason] == ["image_count", "missing_image"]
    missing = [p for p in validate_file(tmp_path / "bad.jsonl", check_images=True) if p.reason == "missing_image"]
    assert missing[0].location == "12" and "img/missing.png" in missing[0].message
    unreadable = validate_file(tmp_path / "more.jsonl", check_images=True)
    assert _lines(unreadable) == [("1", "unreadable_image")]
    # another image root: everything is missing there
    assert validate_file(tmp_path / "more.jsonl", image_root=tmp_path / "nowhere", check_images=True)[0].reason == "missing_image"


def test_clean_fixtures_have_no_problems():
    for name in ("llava.json", "internvl.jsonl", "xcomposer2.json", "sharegpt.json", "internvl_meta.json"):
        assert validate_file(FORMATS / name) == [], name


def test_escape_rules():
    assert not escapes_root("a/b.png") and not escapes_root("a/../b.png") and not escapes_root("./b.png")
    assert escapes_root("../b.png") and escapes_root("a/../../b.png") and escapes_root("/etc/passwd")
    assert escapes_root("C:\\x.png") and escapes_root("..\\x.png") and escapes_root("")
