"""Load a recipe's training data: every dataset, validated, sampled, mixed, with unique ids.

Order of work, per dataset in ``data.datasets`` (an InternVL meta file expands into one source per
entry, named ``<dataset name>/<entry name>``, its ``repeat_time`` applied as a seeded sample):
load through the Arrow cache (``index``) -> drop or refuse bad records -> ``sample`` -> fill ``task``.
Then domain and general records are mixed by ``mix.general_ratio`` (``mix.mix_general``) or simply
concatenated when it is None, and ids are made unique.

Bad records: without ``data.skip_bad`` the first one raises ``BadRecordError`` naming file:line; with
it, each bad record is dropped and counted once, under its first problem's reason, in
``TrainingData.skipped``. Image paths that escape the image root are refused either way.

Unique ids: the first record keeps its id. A later record whose id is taken gets ``<source>/<id>``
when the id belongs to another source, and ``#2``, ``#3``... appended if that is taken too (also for
duplicate ids inside one file).

Seeds: every sampling step is seeded by ``mix.seed`` and the source name, so adding a dataset does not
change what another dataset samples.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.cache import recipe_cache_dir
from finetune.data import formats, jsonio
from finetune.data.images import ImageError, check_bands, check_image, confined_path, read_image
from finetune.data.index import IndexedFile, load_indexed
from finetune.data.internvl_meta import meta_entry_paths, read_internvl_meta_entries
from finetune.data.mix import mix_general, sample_records
from finetune.data.records import Record
from finetune.data.tasks import fill_tasks
from finetune.data.validate import BadRecordError, Problem, check_record_images

SKIP_HINT = "fix the record, or set data.skip_bad=true to drop bad records (they are counted by reason)"


@dataclass
class TrainingData:
    """What every later stage reads: records plus where their images are.

    Attributes:
        records: all records, ids unique across sources.
        image_roots: source name -> folder its image paths are relative to.
        skipped: reason -> number of records dropped (``data.skip_bad``).
        counts: source name -> records kept (after sampling and mixing).
        bands: ``data.bands``, the 1-based image bands shown as RGB (None: the first three, or grey).
    """

    records: list[Record]
    image_roots: dict[str, Path]
    skipped: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    bands: list[int] | None = None

    def origin(self, record: Record) -> str | None:
        """``"<annotation file>:<line>"`` of ``record`` (``Record.location``, kept by renamed and sampled
        copies), or None when it was not read from a file."""
        return record.location or None

    def image_path(self, record: Record, i: int = 0) -> Path:
        """Path of the i-th image of ``record``, confined to its image root (symlinks resolved).

        Raises:
            ImageError: reason ``path_escape``.
        """
        return confined_path(self.image_roots[record.source], record.images[i])

    def image_size(self, record: Record, i: int = 0) -> tuple[int, int]:
        """(width, height) of the i-th image, after the cheap checks of ``images.check_image``."""
        return check_image(self.image_path(record, i), self.bands)

    def load_image(self, record: Record, i: int = 0):
        """The i-th image of ``record`` as an 8-bit RGB ``PIL.Image`` (``images.read_image``, ``data.bands``).

        Raises:
            BadRecordError: the image cannot be used, naming the record's file:line and the image.
        """
        try:
            return read_image(self.image_path(record, i), self.bands)
        except ImageError as err:
            raise BadRecordError(f"{record.where}: {err}") from err


def _seed(seed: int, source: str) -> int:
    return int(hashlib.sha256(f"{seed}:{source}".encode()).hexdigest()[:8], 16)


def keep_valid(indexed: IndexedFile, skip_bad: bool, skipped: Counter) -> list[Record]:
    """Records of ``indexed`` without structural problems; raises on the first one unless skip_bad."""
    if not indexed.problems:
        return indexed.records
    if not skip_bad:
        raise BadRecordError(f"{indexed.problems[0]}\n  -> {SKIP_HINT}")
    bad: set[int] = set()
    for problem, position in zip(indexed.problems, indexed.problem_positions, strict=True):
        if position is None:
            skipped[problem.reason] += 1
        elif position not in bad:
            bad.add(position)
            skipped[problem.reason] += 1
    return [r for i, r in enumerate(indexed.records) if i not in bad]


def _drop_bad_images(indexed: IndexedFile, records: list[Record], root: Path, skip_bad: bool, skipped: Counter,
                     bands=None) -> list[Record]:
    locations = {id(r): loc for r, loc in zip(indexed.records, indexed.locations, strict=True)}
    kept = []
    for record in records:
        found = check_record_images(record, root, bands)
        if not found:
            kept.append(record)
        elif skip_bad:
            skipped[found[0][0]] += 1
        else:
            problem = Problem(str(indexed.path), locations.get(id(record), "?"), found[0][1], found[0][0], record.id)
            raise BadRecordError(f"{problem}\n  -> {SKIP_HINT}")
    return kept


def _sources(spec: Any, index: int) -> list[tuple[str, Path, str, Path, float]]:
    """(source, annotation, format, image root, repeat) for one ``data.datasets`` entry."""
    where = f"data.datasets[{index}]"
    path = Path(spec.path)
    if not spec.path or not path.is_file():
        raise FileNotFoundError(f"{where}.path: annotation file '{spec.path}' not found")
    if spec.kind not in ("domain", "general"):
        raise ValueError(f"{where}.kind must be 'domain' or 'general', got '{spec.kind}'")
    name = spec.name or path.stem
    fmt = formats.resolve_format(path, spec.format)
    if fmt != "internvl_meta":
        return [(name, path, fmt, Path(spec.image_root) if spec.image_root else path.parent, 1.0)]
    out = []
    for entry_name, entry in read_internvl_meta_entries(path).items():
        annotation, root = meta_entry_paths(path, entry)
        out.append((f"{name}/{entry_name}", annotation, "internvl", root, float(entry.get("repeat_time", 1))))
    return out


def make_ids_unique(records: list[Record]) -> list[Record]:
    """Rename colliding ids in place as the module docstring says; returns ``records``."""
    owner: dict[str, str] = {}
    for record in records:
        if record.id in owner:
            base = f"{record.source}/{record.id}" if owner[record.id] != record.source else record.id
            new, n = base, 1
            while new in owner:
                n += 1
                new = f"{base}#{n}"
            record.id = new
        owner[record.id] = record.source
    return records


def load_training_data(cfg: Any, cache_dir: str | None = None) -> TrainingData:
    """Load ``cfg.data.datasets`` as the module docstring says.

    Args:
        cfg: the recipe (``geotune.config.load_recipe``); reads ``data`` and ``mix``.
        cache_dir: override ``data.cache_dir`` (default: ``<cache root>/data``, ``finetune.cache``).

    Raises:
        BadRecordError: a bad record without ``data.skip_bad`` (names file:line and what to do).
        FileNotFoundError / ValueError: a dataset entry that is wrong, naming its recipe key.
    """
    data_cfg, seed = cfg.data, int(cfg.mix.seed)
    if not data_cfg.datasets:
        raise ValueError("data.datasets is empty: list at least one annotation file in the recipe")
    cache = cache_dir or recipe_cache_dir(cfg, "data", data_cfg.cache_dir)
    bands = check_bands(data_cfg.get("bands"))
    skipped: Counter = Counter()
    roots: dict[str, Path] = {}
    by_kind: dict[str, list[Record]] = {"domain": [], "general": []}
    for k, spec in enumerate(data_cfg.datasets):
        for source, annotation, fmt, root, repeat in _sources(spec, k):
            if source in roots:
                raise ValueError(f"data.datasets[{k}]: source name '{source}' is used twice; give each dataset its own name")
            try:
                indexed = load_indexed(annotation, fmt, source, cache)
            except jsonio.JSONFileError as err:
                raise BadRecordError(f"{err}; a JSON list cannot be read past a syntax error, so data.skip_bad cannot help: fix the file") from None
            records = keep_valid(indexed, data_cfg.skip_bad, skipped)
            if data_cfg.get("check_images", False):
                records = _drop_bad_images(indexed, records, root, data_cfg.skip_bad, skipped, bands)
            if repeat != 1:
                records = sample_records(records, repeat, _seed(seed, source + "#repeat_time"))
            records = sample_records(records, float(spec.sample), _seed(seed, source))
            roots[source] = root
            by_kind[spec.kind].extend(fill_tasks(records))
    if cfg.mix.general_ratio is not None:
        records = mix_general(by_kind["domain"], by_kind["general"], float(cfg.mix.general_ratio), _seed(seed, "mix"))
    else:
        records = by_kind["domain"] + by_kind["general"]
    make_ids_unique(records)
    return TrainingData(records, roots, dict(skipped), dict(Counter(r.source for r in records)), bands=bands)
