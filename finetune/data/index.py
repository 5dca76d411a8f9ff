"""Parse an annotation file once; later loads memory-map an Arrow cache (Hugging Face ``datasets``).

The cache lives in ``<cache_dir>/<key>/`` with ``key`` = hash of (absolute path, size, mtime_ns,
format, cache version): editing or replacing the file changes the key, so a stale cache is never
read. Each entry holds ``records.arrow`` (an Arrow stream that ``datasets.Dataset.from_file``
memory-maps: one row per record, turns as ``{from, value}`` structs, or as JSON strings when some turn
has other keys, ``extra`` as JSON; the inferred ``task`` is stored too) and ``index.json`` (format, counts and every
structural problem found while parsing, see ``validate``). Entries are written to a temporary folder
and renamed into place, so a killed first load leaves no half cache.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from finetune.data import formats
from finetune.data.records import Record
from finetune.data.tasks import infer_task
from finetune.data.validate import Problem, check_record

CACHE_VERSION = 3  # 3: lone surrogates checked, records carry file:line
# How many times a file was actually parsed in this process (tests assert the cache is reused).
PARSE_COUNT = {"parses": 0}
PROGRESS_BYTES = 32 << 20  # files this big show a progress bar while they are parsed


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
    problem_positions: list[int | None] = field(default_factory=list)
    cache_hit: bool = False
    cache_path: Path | None = None


@contextlib.contextmanager
def _no_gc():
    """Pause the cyclic GC while building millions of small dicts and lists (none form cycles):
    with it on, Python re-scans them at every collection and a 318k-record load takes 5x longer."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def cache_key(path: Path, fmt: str) -> str:
    stat = path.stat()
    ident = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, fmt, CACHE_VERSION])
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def parse_file(path: Path, fmt: str, source: str = "") -> IndexedFile:
    """Parse and check every element (no cache). Raises ``jsonio.JSONFileError`` on a broken JSON list."""
    from tqdm.auto import tqdm

    PARSE_COUNT["parses"] += 1
    records, locations, problems, positions = [], [], [], []
    quiet = Path(path).stat().st_size < PROGRESS_BYTES
    parsed = tqdm(formats.iter_parsed(path, fmt, source), desc=f"indexing {Path(path).name}", unit=" records",
                  disable=quiet, mininterval=1.0)
    for item, record, error in parsed:
        if error is not None:
            problems.append(Problem(str(path), item.location, str(error), error.reason))
            positions.append(None)
            continue
        found = check_record(record)
        for reason, message in found:
            problems.append(Problem(str(path), item.location, message, reason, record.id))
            positions.append(len(records))
        if not found:  # task rules read turns, which only a clean record is sure to have
            record.task = record.task or infer_task(record)
        record.location = f"{path}:{item.location}"
        records.append(record)
        locations.append(item.location)
    return IndexedFile(Path(path), fmt, records, locations, problems, positions)


def _arrow_schema(turns_as_structs: bool):
    import pyarrow as pa

    turn = pa.struct([("from", pa.string()), ("value", pa.string())])
    return pa.schema([
        ("id", pa.string()), ("images", pa.list_(pa.string())),
        ("conversations", pa.list_(turn) if turns_as_structs else pa.string()),
        ("task", pa.string()), ("extra", pa.string()), ("location", pa.string()),
    ])


def _plain_turns(records: list[Record]) -> bool:
    """True when every turn is exactly ``{from: str, value: str}`` (stored as Arrow structs)."""
    return all(
        len(t) == 2 and type(t.get("from")) is str and type(t.get("value")) is str
        for r in records for t in r.conversations
    )


def _scrub(value):
    """Lone surrogates -> visible ``\\udXXX`` escapes (Arrow, like any UTF-8 writer, refuses them)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def _scrubbed(indexed: IndexedFile) -> list[Record]:
    """The records to cache: those with a ``bad_unicode`` problem scrubbed (they stay marked bad)."""
    bad = {pos for p, pos in zip(indexed.problems, indexed.problem_positions, strict=True) if p.reason == "bad_unicode"}
    if not bad:
        return indexed.records
    return [Record(_scrub(r.id), _scrub(r.images), _scrub(r.conversations), r.source, r.task, _scrub(r.extra), r.location)
            if i in bad else r for i, r in enumerate(indexed.records)]


def _write_cache(indexed: IndexedFile, entry: Path) -> None:
    """Write ``records.arrow`` (Arrow IPC stream, what ``datasets`` memory-maps) and ``index.json``."""
    import pyarrow as pa

    tmp = entry.with_name(f"{entry.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    records = _scrubbed(indexed)
    structs = _plain_turns(records)
    schema = _arrow_schema(structs)
    dumps = json.dumps
    columns = [
        [r.id for r in records], [r.images for r in records],
        [r.conversations if structs else dumps(r.conversations, ensure_ascii=False) for r in records],
        [r.task for r in records], [dumps(r.extra, ensure_ascii=False) if r.extra else "" for r in records],
        indexed.locations,
    ]
    table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)], schema=schema)
    with pa.OSFile(str(tmp / "records.arrow"), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table, max_chunksize=10_000)
    meta = {
        "path": str(indexed.path), "format": indexed.format, "count": len(records), "turns": "struct" if structs else "json",
        "problems": [{**asdict(p), "position": pos} for p, pos in zip(indexed.problems, indexed.problem_positions, strict=True)],
    }
    (tmp / "index.json").write_text(json.dumps(meta))  # ASCII: a problem may quote a lone surrogate
    try:
        os.replace(tmp, entry)
    except OSError:  # another process finished first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)


def open_cached_dataset(entry: str | os.PathLike):
    """The cache entry as a memory-mapped ``datasets.Dataset`` (columns of ``_arrow_schema``)."""
    import datasets

    return datasets.Dataset.from_file(str(Path(entry) / "records.arrow"))


def _read_cache(entry: Path, path: Path, source: str) -> IndexedFile:
    meta = json.loads((entry / "index.json").read_text())
    table = open_cached_dataset(entry).data.table
    column = {name: table.column(name).to_pylist() for name in table.column_names}
    conversations = column["conversations"]
    if meta["turns"] == "json":
        conversations = [json.loads(c) for c in conversations]
    loads = json.loads
    records = [
        Record(i, im, c, source, t, loads(e) if e else {}, f"{path}:{where}")
        for i, im, c, t, e, where in zip(column["id"], column["images"], conversations, column["task"], column["extra"],
                                         column["location"], strict=True)
    ]
    problems, positions = [], []
    for row in meta["problems"]:
        positions.append(row.pop("position"))
        problems.append(Problem(**row))
    return IndexedFile(path, meta["format"], records, column["location"], problems, positions, True, entry)


def load_indexed(path: str | os.PathLike, format: str = "auto", source: str = "",
                 cache_dir: str | os.PathLike | None = None) -> IndexedFile:
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
    if fmt == "internvl_meta":
        raise formats.DataFormatError(f"{path} is an InternVL meta file: load it through the recipe (data.datasets), which expands its entries")
    if cache_dir is None:
        with _no_gc():
            return parse_file(path, fmt, source)
    entry = Path(cache_dir) / cache_key(path, fmt)
    with _no_gc():
        if (entry / "index.json").is_file():
            try:
                return _read_cache(entry, path, source)
            except Exception as err:  # a damaged cache is rebuilt, never trusted
                warnings.warn(f"rebuilding damaged data cache {entry}: {type(err).__name__}: {err}", stacklevel=2)
                shutil.rmtree(entry, ignore_errors=True)
        indexed = parse_file(path, fmt, source)
    entry.parent.mkdir(parents=True, exist_ok=True)
    _write_cache(indexed, entry)
    indexed.cache_path = entry
    return indexed


