"""Readers and writers: exact round trips on hand-written fixtures, detection, cross-format conversion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from finetune.data import formats
from finetune.data.records import GPT, HUMAN, Record

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "formats"

ROUND_TRIPS = [
    ("llava.json", "llava", formats.read_llava, formats.write_llava),
    ("internvl.jsonl", "internvl", formats.read_internvl_jsonl, formats.write_internvl_jsonl),
    ("xcomposer2.json", "xcomposer2", formats.read_xcomposer2, formats.write_xcomposer2),
    ("sharegpt.json", "sharegpt", formats.read_sharegpt, formats.write_sharegpt),
    ("sharegpt.jsonl", "sharegpt", formats.read_sharegpt, formats.write_sharegpt),
]


@pytest.mark.parametrize("name, fmt, read, write", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip_is_byte_identical(tmp_path, name, fmt, read, write):
    source = FIXTURES / name
    out = tmp_path / name
    write(read(source), out)
    assert out.read_bytes() == source.read_bytes()
    # the generic API agrees, with auto-detection
    assert formats.detect_format(source) == fmt
    formats.write_records(formats.read_records(source), tmp_path / ("again" + source.suffix), fmt)
    assert (tmp_path / ("again" + source.suffix)).read_bytes() == source.read_bytes()


def test_llava_fields_and_extras():
    first, second, third = formats.read_llava(FIXTURES / "llava.json", source="geochat")
    assert first.id == "P0003_0001" and first.images == ["images/P0003.png"] and first.source == "geochat"
    assert first.prompt.startswith("<image>\nClassify") and first.answer == "harbor" and first.extra == {}
    assert [t["from"] for t in second.conversations] == [HUMAN, GPT, HUMAN, GPT]
    assert third.id == "17" and third.images == [] and third.extra["model"] == "sharegpt-4"
    assert third.extra["_roundtrip"] == {"order": ["conversations", "id", "model"], "id": 17}


def test_internvl_keeps_width_height_and_image_lists():
    single, multi, text = formats.read_internvl_jsonl(FIXTURES / "internvl.jsonl")
    assert single.images == ["scenes/a.png"] and single.extra == {"width": 256, "height": 256}
    assert multi.images == ["scenes/a.png", "scenes/b.png"] and multi.extra["_roundtrip"] == {"image": "list"}
    assert text.images == [] and text.extra == {}


def test_xcomposer2_placeholders_and_roles_map_to_ours():
    first, second = formats.read_xcomposer2(FIXTURES / "xcomposer2.json")
    assert first.conversations[0] == {"from": HUMAN, "value": "<image> Please describe this image in detail."}
    assert first.conversations[1]["from"] == GPT
    assert second.prompt.count("<image>") == 2 == len(second.images)


def test_sharegpt_system_prompt_and_missing_ids():
    first, second, third = formats.read_sharegpt(FIXTURES / "sharegpt.json", source="sg")
    assert first.extra["system"] == "You are a remote-sensing analyst."
    assert first.conversations == [{"from": HUMAN, "value": "<image>Which land-use class is this?"},
                                   {"from": GPT, "value": "dense residential"}]
    assert (first.id, second.id, third.id) == ("sg-0", "sg-1", "text-only")
    assert third.images == []


def test_convert_llava_to_xcomposer2_and_back(tmp_path):
    records = formats.read_llava(FIXTURES / "llava.json")
    formats.write_xcomposer2(records, tmp_path / "x.json")
    text = (tmp_path / "x.json").read_text()
    assert "<ImageHere>" in text and "<image>" not in text and '"from": "user"' in text
    back = formats.read_xcomposer2(tmp_path / "x.json")
    formats.write_llava(back, tmp_path / "l.json")
    assert (tmp_path / "l.json").read_bytes() == (FIXTURES / "llava.json").read_bytes()


def test_convert_keeps_unknown_keys_across_formats(tmp_path):
    records = formats.read_internvl_jsonl(FIXTURES / "internvl.jsonl")
    formats.write_sharegpt(records, tmp_path / "s.json")
    again = formats.read_sharegpt(tmp_path / "s.json")
    assert [r.id for r in again] == ["rs_0", "rs_1", "rs_2"]
    assert again[0].extra["width"] == 256 and again[1].images == ["scenes/a.png", "scenes/b.png"]


def test_internvl_meta_reads_entries_and_samples_repeat_time(tmp_path):
    meta = formats.read_internvl_meta(FIXTURES / "internvl_meta.json", seed=0)
    assert list(meta) == ["rs_scenes", "rs_scenes_half"]
    full, root = meta["rs_scenes"]
    assert [r.id for r in full] == ["rs_0", "rs_1", "rs_2"] and root == FIXTURES / "./"
    half, _ = meta["rs_scenes_half"]
    assert len(half) == 2  # round_half_up(3 * 0.5) = 2, drawn at random (InternVL would keep the first 1)
    assert all(r.source == "rs_scenes_half" for r in half)
    assert [r.id for r in half] == [r.id for r in formats.read_internvl_meta(FIXTURES / "internvl_meta.json", seed=0)["rs_scenes_half"][0]]
    entries = formats.read_internvl_meta_entries(FIXTURES / "internvl_meta.json")
    formats.write_internvl_meta(entries, tmp_path / "meta.json")
    assert (tmp_path / "meta.json").read_bytes() == (FIXTURES / "internvl_meta.json").read_bytes()
    assert formats.detect_format(FIXTURES / "internvl_meta.json") == "internvl_meta"


def test_read_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    shutil.copy(FIXTURES / "internvl.jsonl", bad)
    with open(bad, "a") as f:
        f.write('{"id": "x", "image": "a.png"}\n')
    with pytest.raises(formats.DataFormatError, match=r"bad\.jsonl:4: missing 'conversations'.*geotune data validate"):
        formats.read_records(bad)


def test_written_files_are_atomic_and_canonical(tmp_path):
    record = Record("a", ["x.png"], [{"from": HUMAN, "value": "<image>\nQ"}, {"from": GPT, "value": "A"}])
    path = formats.write_records([record], tmp_path / "sub" / "out.json", "llava")
    assert path.read_text().startswith('[\n  {\n    "id": "a",\n    "image": "x.png",')
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_xcomposer2_turns_the_mapping_cannot_give_back_survive(tmp_path):
    path = tmp_path / "odd.json"
    rows = [{"id": "0", "image": ["a.png"], "conversations": [
        {"from": "user", "value": "<ImageHere> What does the tag <image> mean?"},
        {"from": "gpt", "value": "An HTML-like placeholder."}]}]
    path.write_text(formats.jsonio.dumps_list(rows))
    record = formats.read_xcomposer2(path)[0]
    assert record.conversations[0]["value"] == "<image> What does the tag <image> mean?"
    formats.write_xcomposer2([record], tmp_path / "back.json")
    assert (tmp_path / "back.json").read_bytes() == path.read_bytes()
    record.conversations[1]["value"] = "Changed."  # an edited turn is written the XComposer2 way
    formats.write_xcomposer2([record], tmp_path / "edited.json")
    assert '"from": "assistant",\n        "value": "Changed."' in (tmp_path / "edited.json").read_text()
