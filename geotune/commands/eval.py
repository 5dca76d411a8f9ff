"""``geotune eval``: score a checkpoint, or rescore a predictions file.

    geotune eval recipe=rs_third checkpoint=runs/rs_third/final [eval.limit=200 ...]
    geotune eval score --bench lrben --predictions answers.jsonl --answers LR_split_test_answers.json

``checkpoint=DIR`` is shorthand for the recipe key ``eval.checkpoint`` (taken out of the overrides
before the recipe loads); without either, ``<run_dir>/final`` is scored. ``score`` is the first word
of the positional arguments rather than an argparse sub-parser so that ``recipe=...`` stays positional.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SCORE_HELP = "rescore a predictions jsonl in GeoChat's output format (question_id, answer, ground_truth / category)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Score a checkpoint on UCMerced / AID / LRBEN (`geotune eval recipe=NAME checkpoint=DIR key=value ...`), "
        f"or `geotune eval score ...`: {SCORE_HELP}."
    )
    parser.add_argument("overrides", nargs="*", metavar="score | recipe=NAME checkpoint=DIR key=value",
                        help="`score`, or the recipe and overrides")
    score = parser.add_argument_group("score (`geotune eval score`)")
    score.add_argument("--bench", choices=["ucmerced", "aid", "lrben"], help="benchmark the predictions are for")
    score.add_argument("--predictions", type=Path, help="predictions jsonl (GeoChat output format or geotune's)")
    score.add_argument("--answers", type=Path,
                       help="lrben: RSVQA answers JSON (LR_split_test_answers.json or all_answers.json) for rows without ground_truth")
    score.add_argument("--questions", type=Path, help="lrben: RSVQA questions JSON for rows without a category (default: beside --answers)")
    score.add_argument("--normalize", choices=["geochat", "strict"], default="geochat", help="headline answer matching")
    score.add_argument("--out", type=Path, help="write the metrics JSON here (default: print only)")


def run(args: argparse.Namespace) -> int:
    if args.overrides[:1] == ["score"]:
        return _run_score(args)
    return _run_eval(args)


def split_checkpoint(overrides: list[str]) -> tuple[str | None, list[str]]:
    """Take ``checkpoint=DIR`` out of the overrides (it is ``eval.checkpoint``, not a top-level key)."""
    checkpoint, rest = None, []
    for item in overrides:
        if item.startswith("checkpoint="):
            checkpoint = item.split("=", 1)[1]
        else:
            rest.append(item)
    return checkpoint, rest


def _run_eval(args: argparse.Namespace) -> int:
    if args.bench or args.predictions or args.answers or args.questions or args.out:
        print("geotune eval: --bench/--predictions/--answers/--questions/--out belong to `geotune eval score ...`",
              file=sys.stderr)
        return 2
    from eval.api import evaluate_checkpoint
    from geotune.config import load_recipe, parse_overrides

    checkpoint, overrides = split_checkpoint(list(args.overrides))
    recipe, overrides = parse_overrides(overrides)
    cfg = load_recipe(recipe, overrides)
    checkpoint = checkpoint or cfg.eval.checkpoint or str(Path(cfg.run_dir) / "final")
    if not cfg.eval.benchmarks:
        print("geotune eval: eval.benchmarks is empty; set e.g. eval.benchmarks=[ucmerced,aid,lrben]", file=sys.stderr)
        return 2
    results = evaluate_checkpoint(cfg, checkpoint, shard=True)  # every process of `accelerate launch` answers a share
    from finetune.distributed import process_state

    if process_state().is_main_process:
        print(format_results(results))
        print(f"results: {Path(checkpoint) / 'eval'}")
    return 0


def _run_score(args: argparse.Namespace) -> int:
    from eval.scoring import score_predictions_file

    if len(args.overrides) > 1 or not args.bench or not args.predictions:
        print("geotune eval score: usage: geotune eval score --bench ucmerced|aid|lrben --predictions FILE "
              "[--answers RSVQA_ANSWERS_JSON]", file=sys.stderr)
        return 2
    result = score_predictions_file(args.bench, args.predictions, answers=args.answers, questions=args.questions,
                                    normalize=args.normalize)
    print(format_results({args.bench: result}))
    for reason, n in sorted(result["repairs"].items()):
        print(f"  {reason}: {n}")
    if args.out:
        from finetune.files import write_json_atomic

        write_json_atomic(args.out, result)
    return 0


def format_results(results: dict[str, dict]) -> str:
    lines = []
    for name, r in results.items():
        line = f"{name}: {r['score']:.2f}  (n={r['count']}"
        if "per_type" in r:
            types = ", ".join(f"{t} {v['accuracy']:.2f} (n={v['count']})" for t, v in r["per_type"].items())
            line += f"; {types}"
        lines.append(line + ")")
    return "\n".join(lines) if lines else json.dumps(results)
