"""Parse an annotation file once; later loads memory-map an Arrow cache (Hugging Face ``datasets``).

The cache lives in ``<cache_dir>/<key>/`` with ``key`` = hash of (absolute path, size, mtime_ns,
format, cache version): editing or replacing the file changes the key, so a stale cache is never
read. Each entry holds ``dataset/`` (``Dataset.save_to_disk``: one row per record, conversations and
extra as JSON strings so that any turn keys survive) and ``index.json`` (format, counts and every
structural problem found while parsing, see ``validate``). Entries are written to a temporary folder
and renamed into place, so a killed first load leaves no half cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from finetune.data import formats
from finetune.data.records import Record
from finetune.data.validate import Problem, check_record

CACHE_VERSION = 1
# How many times a file was actually parsed in this process (tests assert the cache is reused).
PARSE_COUNT = {"parses": 0}


@dataclass
class IndexedFile:
    """A parsed annotation file: records in file order and the problems found in them.

    ``problem_positions[i]`` is the position in ``records`` of the record ``problems[i]`` is about, or
    None for an element that could not become a record at all (it is not in ``records``).
    """

    path: Path
    format: str
    records: list[Record]
    locations: list[str]
    problems: list[Problem] = field(default_factory=list)
    problem_positions: list[Optional[int]] = field(default_factory=list)
    cache_hit: bool = False
    cache_path: Optional[Path] = None


def cache_key(path: Path, fmt: str) -> str:
    stat = path.stat()
    ident = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, fmt, CACHE_VERSION])
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def parse_file(path: Path, fmt: str, source: str = "") -> IndexedFile:
    """Parse and check every element (no cache). Raises ``jsonio.JSONFileError`` on a broken JSON list."""
    PARSE_COUNT["parses"] += 1
    records, locations, problems, positions = [], [], [], []
    for item, record, error in formats.iter_parsed(path, fmt, source):
        if error is not None:
            problems.append(Problem(str(path), item.location, str(error), error.reason))
            positions.append(None)
            continue
        for reason, message in check_record(record):
            problems.append(Problem(str(path), item.location, message, reason, record.id))
            positions.append(len(records))
        records.append(record)
        locations.append(item.location)
    return IndexedFile(Path(path), fmt, records, locations, problems, positions)


def _write_cache(indexed: IndexedFile, entry: Path) -> None:
    import datasets

    tmp = entry.with_name(f"{entry.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    columns = {
        "id": [r.id for r in indexed.records],
        "images": [r.images for r in indexed.records],
        "conversations": [json.dumps(r.conversations, ensure_ascii=False) for r in indexed.records],
        "task": [r.task for r in indexed.records],
        "extra": [json.dumps(r.extra, ensure_ascii=False) if r.extra else "" for r in indexed.records],
        "location": indexed.locations,
    }
    features = datasets.Features({
        "id": datasets.Value("string"), "images": datasets.Sequence(datasets.Value("string")),
        "conversations": datasets.Value("string"), "task": datasets.Value("string"),
        "extra": datasets.Value("string"), "location": datasets.Value("string"),
    })
    quiet = len(indexed.records) < 50_000 and not datasets.utils.are_progress_bars_disabled()
    if quiet:  # a bar for a second of work is noise; big files keep theirs
        datasets.disable_progress_bars()
    try:
        datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(tmp / "dataset"))
    finally:
        if quiet:
            datasets.enable_progress_bars()
    meta = {
        "path": str(indexed.path), "format": indexed.format, "count": len(indexed.records),
        "problems": [{**asdict(p), "position": pos} for p, pos in zip(indexed.problems, indexed.problem_positions)],
    }
    (tmp / "index.json").write_text(json.dumps(meta, ensure_ascii=False))
    try:
        os.replace(tmp, entry)
    except OSError:  # another process finished first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(entry: Path, path: Path, source: str) -> IndexedFile:
    import datasets

    meta = json.loads((entry / "index.json").read_text())
    table = datasets.load_from_disk(str(entry / "dataset")).data.table  # memory-mapped Arrow
    ids = table.column("id").to_pylist()
    images = table.column("images").to_pylist()
    conversations = table.column("conversations").to_pylist()
    tasks = table.column("task").to_pylist()
    extras = table.column("extra").to_pylist()
    loads = json.loads
    records = [
        Record(i, im, loads(c), source, t, loads(e) if e else {})
        for i, im, c, t, e in zip(ids, images, conversations, tasks, extras)
    ]
    problems, positions = [], []
    for row in meta["problems"]:
        positions.append(row.pop("position"))
        problems.append(Problem(**row))
    locations = table.column("location").to_pylist()
    return IndexedFile(path, meta["format"], records, locations, problems, positions, True, entry)


def load_indexed(path: str | os.PathLike, format: str = "auto", source: str = "",
                 cache_dir: Optional[str | os.PathLike] = None) -> IndexedFile:
    """Records and structural problems of one annotation file, from the cache when it is fresh.

    Args:
        path: annotation file (not an InternVL meta file: the loader expands those per entry).
        format: a name of ``formats.FORMATS`` or ``auto``.
        source: dataset name put on every record.
        cache_dir: where Arrow caches live; None parses without caching.

    Raises:
        finetune.data.jsonio.JSONFileError: a JSON list with a syntax error (nothing after it can be trusted).
    """
    path = Path(path)
    fmt = formats.resolve_format(path, format)
    if cache_dir is None:
        return parse_file(path, fmt, source)
    entry = Path(cache_dir) / cache_key(path, fmt)
    if (entry / "index.json").is_file():
        return _read_cache(entry, path, source)
    indexed = parse_file(path, fmt, source)
    entry.parent.mkdir(parents=True, exist_ok=True)
    _write_cache(indexed, entry)
    indexed.cache_path = entry
    return indexed


