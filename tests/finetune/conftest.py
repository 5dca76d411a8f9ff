"""Fixtures for training tests: a tiny learnable colour set, stand-in remote-code checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from colours import write_colour_set


@pytest.fixture(autouse=True)
def _one_thread_per_test(one_torch_thread):
    """Every training test runs on one torch thread (``one_torch_thread`` in tests/conftest.py)."""


@pytest.fixture
def colour_data(tmp_path):
    return write_colour_set(tmp_path / "colours")


@pytest.fixture
def colour_recipe(tiny_internvl, colour_data, tmp_path):
    """Writes ``train.py`` recipes that train the tiny InternVL on ``colour_data`` (saved as LLaVA JSON).

    Returns ``write(**sections) -> Path``: a recipe with the ``model`` and ``data`` sections plus one
    top-level section per keyword, in keyword order, each a YAML flow mapping (``train="{max_steps: 2}"``).
    """
    from finetune.data.formats import write_llava

    root = colour_data.image_roots["colours"]
    write_llava(colour_data.records, root / "train.json")
    common = f"""
model: {{path: {tiny_internvl}, adapter: internvl_hf}}
data:
  datasets:
    - {{name: colours, path: {root}/train.json, format: llava, image_root: {root}}}
  cache_dir: {tmp_path}/cache
"""

    def write(**sections: str) -> Path:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(common + "".join(f"{key}: {value}\n" for key, value in sections.items()))
        return recipe

    return write


@pytest.fixture(scope="session")
def standin_internvl(tmp_path_factory):
    """A tiny stand-in ``InternVLChatModel`` checkpoint (remote code + auto_map), Qwen2 / Hermes-2."""
    from finetune.models.standins import build_standin_internvl_chat

    return build_standin_internvl_chat(tmp_path_factory.mktemp("standins") / "internvl-chat", seed=0)


@pytest.fixture(scope="session")
def standin_xcomposer2(tmp_path_factory):
    """A tiny stand-in InternLM-XComposer2-VL checkpoint (remote code + auto_map)."""
    from finetune.models.standins import build_standin_xcomposer2

    return build_standin_xcomposer2(tmp_path_factory.mktemp("standins") / "xcomposer2", seed=0)
