"""`geotune tiny-model`: the clip family's `--width`, and a clear refusal for a family without one."""

import json

import pytest
from transformers import CLIPConfig

from geotune.cli import main


def test_width_builds_a_wide_clip(tmp_path, capsys):
    assert main(["tiny-model", "--family", "clip", "--width", "64", "--out", str(tmp_path / "clip")]) == 0
    config = CLIPConfig.from_pretrained(tmp_path / "clip")
    assert config.text_config.hidden_size == config.vision_config.hidden_size == 64
    assert json.loads((tmp_path / "clip" / "geotune_tiny.json").read_text()) == {"family": "clip", "seed": 0, "width": 64}
    assert "wrote tiny clip checkpoint" in capsys.readouterr().out


def test_width_is_refused_for_internvl(tmp_path):
    with pytest.raises(SystemExit, match="--width is for --family clip"):
        main(["tiny-model", "--family", "internvl-hf", "--width", "64", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
