"""`geotune data validate | convert | mix | stats` through geotune.cli.main: exit codes and messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from geotune.cli import main

DATA = Path(__file__).resolve().parents[2] / "data"


def test_validate_clean_file_exits_zero(capsys):
    assert main(["data", "validate", str(DATA / "formats" / "llava.json")]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err.strip().endswith("llava.json: OK")


def test_validate_prints_every_problem_and_exits_one(capsys):
    path = DATA / "bad" / "bad.jsonl"
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 10
    assert lines[0] == f"{path}:2: malformed JSON line: Expecting value (column 1)"
    assert lines[1] == f"{path}:3: missing 'conversations'"
    assert lines[6] == f"{path}:8: record 'absolute': image path '/etc/hosts' escapes the image root (absolute or '..'); refused"
    assert "10 problem(s): 2 turn_order, 2 path_escape" in out.err


def test_validate_check_images_and_image_root(tmp_path, capsys):
    shutil.copytree(DATA / "formats", tmp_path / "f")
    args = ["data", "validate", str(tmp_path / "f" / "llava.json"), "--check-images"]
    assert main(args) == 1
    assert "image 'images/P0003.png' not found" in capsys.readouterr().out
    (tmp_path / "root" / "images").mkdir(parents=True)
    from PIL import Image

    for name in ("P0003", "P0004"):
        Image.new("RGB", (4, 4)).save(tmp_path / "root" / "images" / f"{name}.png")
    assert main(args + ["--image-root", str(tmp_path / "root")]) == 0


def test_validate_missing_file_and_explicit_format(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path / "none.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    # an XComposer2 file read as LLaVA: roles user/assistant break the turn order
    assert main(["data", "validate", str(DATA / "formats" / "xcomposer2.json"), "--format", "llava"]) == 1
    assert "turn 0 is from 'user', expected 'human'" in capsys.readouterr().out


def test_convert_round_trip(tmp_path, capsys):
    source = DATA / "formats" / "xcomposer2.json"
    assert main(["data", "convert", str(source), str(tmp_path / "x.jsonl"), "--to", "internvl"]) == 0
    assert main(["data", "convert", str(tmp_path / "x.jsonl"), str(tmp_path / "back.json"), "--to", "xcomposer2"]) == 0
    assert (tmp_path / "back.json").read_bytes() == source.read_bytes()
    first = json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])
    assert first["image"] == "images/P0003.png" and first["conversations"][0]["value"].startswith("<image> Please")


def test_mix_writes_exact_counts(tmp_path, capsys):
    domain, general = tmp_path / "d.json", tmp_path / "g.json"
    rows = lambda p: [{"id": str(i), "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": p}]} for i in range(12)]  # noqa: E731
    domain.write_text(json.dumps(rows("d")))
    general.write_text(json.dumps(rows("g")))
    out = tmp_path / "mix.json"
    args = ["data", "mix", "--domain", str(domain), "--general", str(general), "--general-ratio", "0.25", "--seed", "1", "--out", str(out)]
    assert main(args) == 0
    mixed = json.loads(out.read_text())
    assert len(mixed) == 16 and sum(r["conversations"][1]["value"] == "g" for r in mixed) == 4
    assert len({r["id"] for r in mixed}) == 16
    first = out.read_bytes()
    assert main(args) == 0 and out.read_bytes() == first
    assert main(args[:-4] + ["--general-ratio", "1.5", "--out", str(out)]) == 2
    assert "general_ratio must be in [0, 1)" in capsys.readouterr().err


def test_stats(capsys):
    assert main(["data", "stats", str(DATA / "formats" / "llava.json"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["records"] == 3 and stats["answers"] == 4
    assert stats["tasks"] == {"classification": 1, "grounding": 1, "general": 1}
    assert stats["turns"] == {"2": 2, "4": 1} and stats["images"] == {"0": 1, "1": 2}
    assert stats["answer_words"] == {"min": 1, "median": 1.0, "mean": 3.75, "max": 12}
    assert main(["data", "stats", str(DATA / "formats" / "llava.json")]) == 0
    assert "classification" in capsys.readouterr().out


def test_skip_bad_in_convert_and_stats(tmp_path, capsys):
    bad = DATA / "bad" / "bad.jsonl"
    assert main(["data", "convert", str(bad), str(tmp_path / "clean.json"), "--to", "llava"]) == 2
    assert "bad.jsonl:2: malformed JSON line" in capsys.readouterr().err
    assert main(["data", "convert", str(bad), str(tmp_path / "clean.json"), "--to", "llava", "--skip-bad"]) == 0
    assert "skipped 2 turn_order, 2 path_escape" in capsys.readouterr().err
    assert [r["id"] for r in json.loads((tmp_path / "clean.json").read_text())] == ["ok_1", "missing_file"]
    assert main(["data", "stats", str(bad), "--skip-bad", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["records"] == 2 and stats["skipped"]["malformed_json"] == 1 and sum(stats["skipped"].values()) == 10
