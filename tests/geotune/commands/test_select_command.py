"""`geotune select`: a recipe's data selected on the command line; a budget the data cannot meet exits 2
(run_selection itself: tests/selection/test_pipeline.py)."""

from __future__ import annotations

import argparse

from colours import write_colour_set

from finetune.data.formats import write_records
from geotune.commands import select as cli


def test_select_command_keeps_the_budget_and_refuses_one_too_big(tmp_path, capsys):
    data = write_colour_set(tmp_path / "images", per_class=10)
    ann = write_records(data.records, tmp_path / "pool.json", "llava")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    common = [f"run_dir={tmp_path / 'run'}", "selection.method=length",
              f"data.datasets=[{{name: pool, path: {ann}, format: llava, image_root: {tmp_path / 'images'}}}]",
              f"data.cache_dir={tmp_path / 'cache'}"]
    assert cli.run(parser.parse_args([*common, "selection.keep=0.2"])) == 0
    assert "length: kept 6 of 30 records" in capsys.readouterr().out
    assert cli.run(parser.parse_args([*common, "selection.keep=300"])) == 2
    assert "selection.keep=300" in capsys.readouterr().err
