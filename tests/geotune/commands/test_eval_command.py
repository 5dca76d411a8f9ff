"""`geotune eval`: a checkpoint given on the command line, scored on GeoChat-Bench (the library: tests/eval/test_api.py)."""

import json

from geotune.commands import eval as cli


def test_geotune_eval_cli_with_checkpoint_and_geochat_bench(tiny_internvl, tiny_lora, bench_root, capsys):
    overrides = [f"checkpoint={tiny_lora}", f"model.path={tiny_internvl}", "model.dtype=float32", "eval.benchmarks=[aid]",
                 f"eval.aid_root={bench_root}", f"eval.geochat_bench_dir={bench_root / 'GeoChat-Bench'}",
                 "eval.max_new_tokens=1", "eval.batch_size=6"]
    parser = __import__("argparse").ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(overrides)) == 0
    result = json.loads((tiny_lora / "eval" / "aid.json").read_text())
    assert result["count"] == 6 and result["repairs"]["image_png_to_jpg"] == 6
    assert "aid:" in capsys.readouterr().out


def test_checkpoint_is_taken_out_of_the_overrides():
    assert cli.split_checkpoint(["recipe=demo", "checkpoint=runs/x/final", "eval.limit=5"]) == (
        "runs/x/final", ["recipe=demo", "eval.limit=5"])
