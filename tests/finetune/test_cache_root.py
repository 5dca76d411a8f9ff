"""One cache root (recipe ``cache_dir`` > $GEOTUNE_CACHE > ~/.cache/geotune), never the current directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recipe_sections import library_recipe

from finetune.cache import cache_dir, cache_root
from finetune.data.loader import load_training_data


def test_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("GEOTUNE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "geotune"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "geotune"
    monkeypatch.setenv("GEOTUNE_CACHE", str(tmp_path / "env"))
    assert cache_dir("features") == tmp_path / "env" / "features"
    assert cache_dir("signals", root=tmp_path / "recipe") == tmp_path / "recipe" / "signals"
    assert cache_dir("data", root=tmp_path / "recipe", override="~/own") == Path.home() / "own"
    with pytest.raises(ValueError, match="caches are data, features, signals"):
        cache_dir("model")


def _annotation(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows = [{"id": f"r{i}", "conversations": [{"from": "human", "value": f"question {i}?"},
                                              {"from": "gpt", "value": "yes"}]} for i in range(3)]
    path = folder / "train.json"
    path.write_text(json.dumps(rows))
    return path


def test_data_cache_lands_under_the_root_from_any_folder(tmp_path, monkeypatch):
    """Run from a folder of its own: the Arrow cache goes to $GEOTUNE_CACHE/data, the folder stays empty;
    the recipe's cache_dir beats the environment variable."""
    annotation = _annotation(tmp_path / "ann")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("GEOTUNE_CACHE", str(tmp_path / "env-root"))
    datasets = f"data.datasets=[{{name: t, path: '{annotation}', format: llava}}]"

    data = load_training_data(library_recipe(datasets))
    assert len(data.records) == 3
    assert any((tmp_path / "env-root" / "data").iterdir())
    assert list(elsewhere.iterdir()) == []

    load_training_data(library_recipe(datasets, f"cache_dir={tmp_path / 'recipe-root'}"))
    assert any((tmp_path / "recipe-root" / "data").iterdir())
    assert list(elsewhere.iterdir()) == []
