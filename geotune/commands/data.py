"""``geotune data validate | convert | mix | stats``: annotation files on the command line.

    geotune data validate FILE [--format F] [--image-root DIR] [--check-images]
    geotune data convert IN OUT --to FORMAT [--from FORMAT]
    geotune data mix --domain F [--domain F2] --general G --general-ratio 0.25 --seed 0 --out MIX.json
    geotune data stats FILE [--json]

``validate`` prints every problem as ``file:line: message`` and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

from finetune.data import formats

FORMAT_CHOICES = ("auto",) + formats.FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = sub.add_parser("validate", help="report every problem of an annotation file (exit 1 if any)")
    p.add_argument("file")
    p.add_argument("--format", default="auto", choices=FORMAT_CHOICES)
    p.add_argument("--image-root", help="folder image paths are relative to (default: the file's folder)")
    p.add_argument("--check-images", action="store_true", help="also open every image")
    p = sub.add_parser("convert", help="rewrite an annotation file in another format")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--to", required=True, choices=tuple(formats.CONVERTERS))
    p.add_argument("--from", dest="from_format", default="auto", choices=FORMAT_CHOICES)
    p.add_argument("--skip-bad", action="store_true", help="drop invalid records (counted by reason) instead of copying them")
    p = sub.add_parser("mix", help="all domain records plus general ones making up --general-ratio of the mix")
    p.add_argument("--domain", action="append", required=True, help="domain annotation file (repeatable)")
    p.add_argument("--general", action="append", required=True, help="general annotation file (repeatable)")
    p.add_argument("--general-ratio", type=float, required=True, help="fraction of general records in the output, in [0, 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--to", choices=tuple(formats.CONVERTERS), help="output format (default: the first domain file's)")
    p.add_argument("--skip-bad", action="store_true", help="drop invalid records (counted by reason)")
    p = sub.add_parser("stats", help="counts by task, turns, images and answer lengths")
    p.add_argument("file")
    p.add_argument("--format", default="auto", choices=FORMAT_CHOICES)
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--skip-bad", action="store_true", help="count only valid records (the others by reason)")


def run(args: argparse.Namespace) -> int:
    try:
        return {"validate": _validate, "convert": _convert, "mix": _mix, "stats": _stats}[args.verb](args)
    except (formats.DataFormatError, ValueError, FileNotFoundError) as err:
        print(f"geotune data {args.verb}: {err}", file=sys.stderr)
        return 2


def _validate(args) -> int:
    from finetune.data.validate import validate_file

    if not Path(args.file).is_file():
        raise FileNotFoundError(f"{args.file}: no such file")
    problems = validate_file(args.file, args.format, args.image_root, args.check_images)
    for problem in problems:
        print(problem)
    if problems:
        reasons = Counter(p.reason for p in problems)
        summary = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        print(f"{args.file}: {len(problems)} problem(s): {summary}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK", file=sys.stderr)
    return 0


def read_file(path: str, fmt: str = "auto", skip_bad: bool = False, source: str = "") -> tuple[list, dict]:
    """Records of one file and, with ``skip_bad``, the invalid ones dropped and counted by reason."""
    if not skip_bad or formats.resolve_format(path, fmt) == "internvl_meta":
        return formats.read_records(path, fmt, source=source or None), {}
    from finetune.data.index import load_indexed
    from finetune.data.loader import keep_valid

    skipped: Counter = Counter()
    records = keep_valid(load_indexed(path, fmt, source), True, skipped)
    if skipped:
        print(f"{path}: skipped " + ", ".join(f"{n} {reason}" for reason, n in skipped.most_common()), file=sys.stderr)
    return records, dict(skipped)


def _convert(args) -> int:
    records, _ = read_file(args.input, args.from_format, args.skip_bad)
    formats.write_records(records, args.output, args.to)
    print(f"wrote {len(records)} records to {args.output} ({args.to})", file=sys.stderr)
    return 0


def _read_all(paths: list[str], skip_bad: bool) -> list:
    from finetune.data.loader import make_ids_unique

    records = []
    for path in paths:
        records += read_file(path, "auto", skip_bad, source=Path(path).stem)[0]
    return make_ids_unique(records)


def _mix(args) -> int:
    from finetune.data.loader import make_ids_unique
    from finetune.data.mix import mix_general

    domain, general = _read_all(args.domain, args.skip_bad), _read_all(args.general, args.skip_bad)
    mixed = make_ids_unique(mix_general(domain, general, args.general_ratio, args.seed))
    out_format = args.to or formats.resolve_format(args.domain[0])
    formats.write_records(mixed, args.out, "internvl" if out_format == "internvl_meta" else out_format)
    print(f"wrote {len(mixed)} records ({len(domain)} domain + {len(mixed) - len(domain)} general) to {args.out}", file=sys.stderr)
    return 0


def file_stats(records: list) -> dict:
    """Counts by task, turn and image numbers, and answer lengths in words."""
    from finetune.data.tasks import infer_task

    answers = [len(t["value"].split()) for r in records for t in r.conversations if t.get("from") == "gpt" and isinstance(t.get("value"), str)]
    lengths = {"min": min(answers), "median": statistics.median(answers), "mean": round(statistics.fmean(answers), 2), "max": max(answers)} if answers else {}
    return {
        "records": len(records),
        "tasks": dict(Counter(r.task or infer_task(r) for r in records).most_common()),
        "turns": dict(sorted(Counter(len(r.conversations) for r in records).items())),
        "images": dict(sorted(Counter(len(r.images) for r in records).items())),
        "answers": len(answers),
        "answer_words": lengths,
    }


def _stats(args) -> int:
    records, skipped = read_file(args.file, args.format, args.skip_bad)
    stats = {**file_stats(records), "skipped": skipped}
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"{args.file}: {stats['records']} records, {stats['answers']} answers")
    for title, key in (("task", "tasks"), ("turns per record", "turns"), ("images per record", "images")):
        print(f"\n{title:<20}{'records':>10}")
        for value, n in stats[key].items():
            print(f"{value!s:<20}{n:>10}")
    if stats["answer_words"]:
        print("\nanswer length (words): " + ", ".join(f"{k} {v}" for k, v in stats["answer_words"].items()))
    if skipped:
        print("skipped: " + ", ".join(f"{n} {reason}" for reason, n in skipped.items()))
    return 0
