"""`geotune` command line: one explicit table of subcommands.

Each subcommand is one module under ``geotune/commands/`` with ``add_arguments(parser)`` and
``run(args) -> int``; the work it starts lives in the library packages. Modules are imported only when their command runs, so ``geotune --help`` stays
fast (no torch import); ``tests/geotune/test_cli.py`` imports every one so a broken module fails in CI.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Optional

from finetune.config import RecipeError
from finetune.fast_start import collector_paused_then_frozen
from finetune.run_dir import RunDirError

# name -> (module, one-line help). Greppable; a bad name fails at once with the list.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("geotune.commands.data", "validate | convert | mix | stats annotation files"),
    "tiny-model": ("geotune.commands.tiny_model", "write a tiny random-init checkpoint (offline)"),
    "convert-clip": ("geotune.commands.convert_clip", "open_clip ViT checkpoint (GeoRSCLIP) -> transformers CLIP"),
    "synth": ("geotune.commands.synth", "write SynthRS: synthetic RS benchmarks in the real layouts"),
    "select": ("geotune.commands.select", "choose the training subset: manifest + report"),
    "train": ("geotune.commands.train", "run one experiment (same as train.py)"),
    "eval": ("geotune.commands.eval", "score a checkpoint on UCMerced / AID / LRBEN, or rescore predictions"),
    "compare": ("geotune.commands.compare", "compare run directories: table + plots"),
    "plan": ("geotune.commands.plan", "per-GPU memory estimate and a verdict for 2 x 24 GB"),
    "export": ("geotune.commands.export", "export a trained run (merge LoRA where the maths allows)"),
    "sweep": ("geotune.commands.sweep", "one run per value of a key, with a summary table and plots"),
    "doctor": ("geotune.commands.doctor", "check that a checkpoint loads, trains a step and generates"),
    "demo": ("geotune.commands.demo", "the embedded default: tiny model + SynthRS, end to end on CPU"),
}


def load_command(name: str):
    """Import the module behind a subcommand."""
    module, _ = COMMANDS[name]
    return importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geotune",
        description="Fine-tune multimodal LLMs on remote-sensing data, with the right data.",
        epilog="Recipe commands take recipe=NAME and key=value overrides, e.g. `geotune select recipe=rs_third selection.keep=0.2`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Optional[Sequence[str]] = None, *, entry_point: bool = False) -> int:
    """Run one subcommand; ``entry_point`` (the process's own command, not a caller's) loads the command's
    modules with the collector paused, then frozen (``finetune.fast_start``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] in ("-V", "--version"):
        from geotune import __version__

        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        parser.error(f"unknown command '{name}'; choose from: {', '.join(COMMANDS)}")
    if entry_point:
        with collector_paused_then_frozen():
            module = load_command(name)
    else:
        module = load_command(name)
    sub = argparse.ArgumentParser(prog=f"geotune {name}", description=COMMANDS[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (RecipeError, RunDirError) as err:
        print(f"geotune {name}: {err}", file=sys.stderr)
        return 2


def console_main() -> None:
    """The ``geotune`` console script: ``main`` without interpreter teardown at the end (finetune.fast_exit)."""
    from finetune.fast_exit import exit_now

    exit_now(main(entry_point=True))


if __name__ == "__main__":
    console_main()
