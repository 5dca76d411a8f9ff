"""Atomic writes: a failed writer leaves the old file and no temporary behind."""

import json

import numpy as np
import pytest

from finetune.files import (
    atomic_folder,
    atomic_path,
    save_npy_atomic,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "a.txt", "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_writers_produce_the_expected_bytes(tmp_path):
    write_json_atomic(tmp_path / "d" / "x.json", {"b": 1, "a": "é"}, indent=None, sort_keys=True)
    assert (tmp_path / "d" / "x.json").read_text(encoding="utf-8") == '{"a": "é", "b": 1}\n'
    write_jsonl_atomic(tmp_path / "x.jsonl", ({"i": i} for i in range(3)))
    assert [json.loads(line)["i"] for line in (tmp_path / "x.jsonl").read_text().splitlines()] == [0, 1, 2]
    save_npy_atomic(tmp_path / "x.npy", np.arange(4))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "x.jsonl", "x.npy"]


def test_atomic_folder_replaces_only_on_success(tmp_path):
    out = tmp_path / "ckpt"
    with atomic_folder(out) as tmp:
        (tmp / "w").write_text("1")
    with pytest.raises(ValueError), atomic_folder(out) as tmp:
        (tmp / "w").write_text("2")
        raise ValueError("crash mid-save")
    assert (out / "w").read_text() == "1"
    with atomic_folder(out) as tmp:
        (tmp / "w").write_text("3")
    assert (out / "w").read_text() == "3"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
