"""Manifest: header + rows, atomic, byte-identical for identical inputs, clear read errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selection import SELECTORS, SelectionInputs
from selection.manifest import ManifestError, build_header, manifest_rows, read_manifest, write_manifest


def _write(path, sel, recs):
    header = build_header(sel, n_total=len(recs), method="adaptive_shift", seed=0, budget=0.25, config_hash="abc",
                          tasks=[r.task for r in recs], sources=[r.source for r in recs])
    return write_manifest(path, header, manifest_rows(sel, [r.id for r in recs]))


def _select(x, shift):
    return SELECTORS["adaptive_shift"](SelectionInputs(n=len(x), budget=0.25, features=x, signals={"shift": shift}, clusters=4))


def test_roundtrip_and_counts(tmp_path, clustered, records):
    x, _ = clustered(40, 4, 8)
    recs = records(40)
    sel = _select(x, np.linspace(0, 1, 40))
    path = _write(tmp_path / "selection" / "manifest.jsonl", sel, recs)
    header, rows = read_manifest(path)
    assert header["n_total"] == 40 and header["n_kept"] == 10 == len(rows)
    assert [r["id"] for r in rows] == [recs[i].id for i in sel.indices]
    assert set(rows[0]) == {"id", "cluster", "score", "rank_in_cluster"}
    assert sum(v["kept"] for v in header["counts"]["cluster"].values()) == 10
    assert sum(v["total"] for v in header["counts"]["task"].values()) == 40
    assert set(header["counts"]["source"]) == {"synth_a", "synth_b"}
    assert not list(path.parent.glob("*.tmp"))


def test_same_inputs_same_bytes(tmp_path, clustered, records):
    x, _ = clustered(40, 4, 8)
    recs = records(40)
    shift = np.random.default_rng(1).random(40)
    a = _write(tmp_path / "a.jsonl", _select(x, shift), recs).read_bytes()
    b = _write(tmp_path / "b.jsonl", _select(x, shift), recs).read_bytes()
    assert a == b


def test_read_errors_name_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(path)
    path.write_text('{"format": "geotune.selection.manifest/1", "n_kept": 2}\n{"id": "a", "cluster": 0, "score": 1, "rank_in_cluster": 0}\n{"id": "a"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:3: row lacks cluster"):
        read_manifest(path)
    path.write_text('{"format": "geotune.selection.manifest/1", "n_kept": 3}\n' + "\n".join(
        json.dumps({"id": i, "cluster": 0, "score": 0, "rank_in_cluster": 0}) for i in "ab") + "\n")
    with pytest.raises(ManifestError, match="n_kept=3.*2 rows"):
        read_manifest(path)
    path.write_text("{not json\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:1: header is not JSON"):
        read_manifest(path)
