"""The Arrow cache: parsed once, memory-mapped afterwards, rebuilt when the file changes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from finetune.data import formats
from finetune.data.index import PARSE_COUNT, load_indexed, open_cached_dataset

FIXTURES = Path(__file__).resolve().parents[2] / "data"


def test_second_load_reads_the_cache_without_parsing(tmp_path):
    path = tmp_path / "llava.json"
    shutil.copy(FIXTURES / "formats" / "llava.json", path)
    before = PARSE_COUNT["parses"]
    first = load_indexed(path, "auto", "geo", tmp_path / "cache")
    assert PARSE_COUNT["parses"] == before + 1 and not first.cache_hit
    second = load_indexed(path, "auto", "geo", tmp_path / "cache")
    assert PARSE_COUNT["parses"] == before + 1 and second.cache_hit
    assert second.records == first.records and second.locations == first.locations
    # what comes back from the cache writes the same bytes
    formats.write_llava(second.records, tmp_path / "out.json")
    assert (tmp_path / "out.json").read_bytes() == path.read_bytes()
    dataset = open_cached_dataset(second.cache_path)
    assert dataset.num_rows == 3 and dataset[0]["conversations"][1] == {"from": "gpt", "value": "harbor"}


def test_a_changed_file_is_parsed_again(tmp_path):
    path = tmp_path / "llava.json"
    shutil.copy(FIXTURES / "formats" / "llava.json", path)
    load_indexed(path, "llava", "geo", tmp_path / "cache")
    rows = json.loads(path.read_text())[:1]
    path.write_text(json.dumps(rows, indent=2))
    os.utime(path, ns=(1, 1))  # a different mtime as well as a different size
    before = PARSE_COUNT["parses"]
    again = load_indexed(path, "llava", "geo", tmp_path / "cache")
    assert PARSE_COUNT["parses"] == before + 1 and len(again.records) == 1
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_problems_and_odd_turns_survive_the_cache(tmp_path):
    path = tmp_path / "bad.jsonl"
    shutil.copy(FIXTURES / "bad" / "bad.jsonl", path)
    with open(path, "a") as f:  # a turn with an extra key: turns are then stored as JSON
        f.write('{"id": "weighted", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A", "weight": 0.5}]}\n')
    first = load_indexed(path, "internvl", "b", tmp_path / "cache")
    second = load_indexed(path, "internvl", "b", tmp_path / "cache")
    assert second.cache_hit
    assert [str(p) for p in second.problems] == [str(p) for p in first.problems] and len(first.problems) == 10
    assert second.problem_positions == first.problem_positions
    assert second.records[-1].conversations[1] == {"from": "gpt", "value": "A", "weight": 0.5}


def test_a_damaged_cache_is_rebuilt(tmp_path):
    path = tmp_path / "llava.json"
    shutil.copy(FIXTURES / "formats" / "llava.json", path)
    entry = load_indexed(path, "llava", "g", tmp_path / "cache").cache_path
    (entry / "records.arrow").write_bytes(b"garbage")
    before = PARSE_COUNT["parses"]
    import warnings

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        again = load_indexed(path, "llava", "g", tmp_path / "cache")
    assert PARSE_COUNT["parses"] == before + 1 and len(again.records) == 3
    assert load_indexed(path, "llava", "g", tmp_path / "cache").cache_hit
