"""The HTML page helpers: safe JSON embedding, one-pass templates, thumbnails that stay inside the page folder."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from finetune.html_page import embed_json, fill_template, page_relative, write_thumbnails


def test_embed_json_cannot_end_its_script_block_and_round_trips():
    data = {"answer": "</script><script>alert(1)</script> & <!-- \u2028", "score": float("nan"), "n": [1, float("inf")]}
    text = embed_json(data)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"answer": data["answer"], "score": None, "n": [1, None]}


def test_fill_template_is_one_pass_and_strict():
    page = fill_template("<title>{{title}}</title><style>{{css}}</style>", title="{{css}}", css="b{}")
    assert page == "<title>{{css}}</title><style>b{}</style>"  # a value that reads like a placeholder stays text
    with pytest.raises(KeyError, match="css"):
        fill_template("{{title}} {{css}}", title="x")
    with pytest.raises(KeyError, match="js"):
        fill_template("{{title}}", title="x", js="y")


@pytest.mark.parametrize("path", ["../x.jpg", "/etc/passwd", "a/../../b", "C:\\x.jpg", "file:x"])
def test_page_paths_outside_the_folder_are_refused(path):
    with pytest.raises(ValueError, match="outside"):
        page_relative(path)


def test_thumbnails_are_downscaled_copies_named_by_position(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (640, 320), (200, 10, 10)).save(src / "big.png")
    (src / "broken.png").write_bytes(b"not an image")
    page_dir = tmp_path / "page"
    stale = page_dir / "assets" / "thumbs" / "999999.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    paths, unreadable = write_thumbnails([src / "big.png", None, src / "broken.png", src / "missing.png", src / "big.png"],
                                         page_dir, "assets", size=64)
    assert paths == ["assets/thumbs/000000.jpg", None, None, None, "assets/thumbs/000003.jpg"] and unreadable == 2
    with Image.open(page_dir / paths[0]) as thumb:
        assert thumb.size == (64, 32) and thumb.format == "JPEG"
    assert not stale.exists()  # an earlier run's thumbnails are gone
