"""Stand-in remote-code checkpoints shared by the compat and doctor tests (built once per session)."""

from __future__ import annotations

import pytest
from remote_failures import build_standin, build_tiny_clip, remove_cached_modules


@pytest.fixture(scope="session")
def standins(tmp_path_factory):
    """``{"root", "clip", "internlm2", "internvl_chat", "xcomposer2", "internvl_chat_sp", "xcomposer2_sp"}``;
    ``*_sp`` carry InternLM2's sentencepiece-only tokenizer as on the Hub. Tests copy before changing one."""
    root = tmp_path_factory.mktemp("standins")
    clip = build_tiny_clip(root / "clip-vit-tiny")
    built = {kind: build_standin(kind, root, vision_tower_path=str(clip)) for kind in ("internlm2", "internvl_chat", "xcomposer2")}
    for kind in ("internvl_chat", "xcomposer2"):
        built[f"{kind}_sp"] = build_standin(kind, root, vision_tower_path=str(clip), tokenizer="sentencepiece")
    yield {"root": root, "clip": str(clip), **built}
    # transformers copies each stand-in folder's code into its modules cache: remove ours afterwards.
    remove_cached_modules()
