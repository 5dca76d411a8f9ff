"""The compat layer's plumbing: what a fix is, what it sees, how fixes are applied and logged.

A fix is one small, named repair for one failure of remote modeling code (written for transformers
4.3x-4.4x) under transformers 5. It runs at one *stage* of loading:

- ``files``: before anything is imported (the checkpoint's ``*.py`` files are only read);
- ``config``: on the loaded config object, before the model class is instantiated;
- ``class``: on the dynamically imported module/classes, before instantiation (failures that happen
  during construction or in methods);
- ``model``: on the loaded model (failures that are about values, e.g. buffers);
- ``tokenizer``: on the tokenizer ``AutoTokenizer`` returned (``load_tokenizer``).

Each fix first *detects* its precondition and returns the targets where the failure would occur; it is
applied only to those, and each application is logged. Files on disk are never modified.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

logger = logging.getLogger("finetune.models.compat")

STAGES = ("files", "config", "class", "model", "tokenizer")


class RemoteCodeError(RuntimeError):
    """Remote code that cannot be made to load here; the message says why and what to do."""


@dataclass
class CompatContext:
    """What the fixes look at while one checkpoint loads.

    Attributes:
        path: the checkpoint folder.
        family: model family (adapter name) the caller loads it as; only used in messages.
        raw_config: ``config.json`` as written on disk.
        config: the loaded config object (stage ``config`` on).
        modules: the checkpoint's dynamically imported modules (stage ``class`` on).
        model: the loaded model (stage ``model``).
        vision_tower_path: local folder for a nested vision-tower download (``model.vision_tower_path``).
        tokenizer_loader: returns the checkpoint's tokenizer, or None when it has none.
        exclude: fix names not to apply (tests use it to see each failure).
    """

    path: Path
    family: str = "remote"
    raw_config: dict = field(default_factory=dict)
    config: Any = None
    modules: list[ModuleType] = field(default_factory=list)
    model: Any = None
    vision_tower_path: str | None = None
    tokenizer_loader: Callable[[], Any] | None = None
    exclude: tuple[str, ...] = ()
    _tokenizer: Any = None

    @property
    def tokenizer(self):
        if self._tokenizer is None and self.tokenizer_loader is not None:
            self._tokenizer = self.tokenizer_loader()
        return self._tokenizer

    def classes(self) -> list[type]:
        """Classes defined in the checkpoint's own modules (not the ones they import)."""
        found = []
        for module in self.modules:
            for value in vars(module).values():
                if inspect.isclass(value) and value.__module__ == module.__name__:
                    found.append(value)
        return found


@dataclass(frozen=True)
class Fix:
    """One named repair. ``detect(ctx)`` returns the targets showing the failure; ``apply(ctx, target)``."""

    name: str
    stage: str
    affects: str
    detect: Callable[[CompatContext], list]
    apply: Callable[[CompatContext, Any], None]

    @property
    def summary(self) -> str:
        """The failure this fix addresses: the first line of its docstring."""
        return (inspect.getdoc(self.apply) or self.name).splitlines()[0].replace("``", "`")


def apply_fixes(ctx: CompatContext, stage: str, fixes: Iterable[Fix]) -> list[str]:
    """Apply every fix of ``stage`` whose precondition ``ctx`` shows; return the names applied, logged."""
    if stage not in STAGES:
        raise ValueError(f"unknown compat stage '{stage}'; choose from {', '.join(STAGES)}")
    applied = []
    for fix in fixes:
        if fix.stage != stage or fix.name in ctx.exclude:
            continue
        targets = fix.detect(ctx)
        for target in targets:
            fix.apply(ctx, target)
        if targets:
            names = ", ".join(sorted({_describe(t) for t in targets}))
            logger.info("compat fix %s (%s) applied to %s: %s", fix.name, fix.affects, names, fix.summary)
            applied.append(fix.name)
    return applied


def _describe(target: Any) -> str:
    if isinstance(target, str):  # a class reference ("tokenization_internlm2.InternLM2Tokenizer")
        return target
    if isinstance(target, tuple):
        return _describe(target[0])
    if isinstance(target, ModuleType):
        return target.__name__.rsplit(".", 1)[-1]
    return getattr(target, "__name__", None) or getattr(target, "__qualname__", None) or type(target).__name__


# ---------------------------------------------------------------------------------------------- helpers


def source_of(obj: Any) -> str:
    """Source text of a function/class/module, or '' when Python cannot find it."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def own_methods(cls: type, pattern: str) -> list[tuple[str, Callable]]:
    """The functions defined on ``cls`` itself whose source matches the regex ``pattern``."""
    regex = re.compile(pattern)
    found = []
    for name, value in vars(cls).items():
        func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if inspect.isfunction(func) and regex.search(source_of(func)):
            found.append((name, value))
    return found


def wrap_method(cls: type, name: str, fix_name: str, make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace ``cls.name`` by ``make_wrapper(original)``, once: a second call is a no-op."""
    original = vars(cls)[name]
    if fix_name in getattr(original, "__geotune_fixes__", ()):
        return
    wrapper = functools.wraps(original)(make_wrapper(original))
    wrapper.__geotune_fixes__ = (*getattr(original, "__geotune_fixes__", ()), fix_name)
    setattr(cls, name, wrapper)


def is_patched(func: Any, fix_name: str) -> bool:
    return fix_name in getattr(func, "__geotune_fixes__", ())


def sibling_modules(module_name: str) -> list[ModuleType]:
    """All loaded modules of the dynamic package that ``module_name`` belongs to (its relative imports)."""
    package = module_name.rsplit(".", 1)[0] + "."
    return [m for n, m in sorted(sys.modules.items()) if n.startswith(package) and isinstance(m, ModuleType)]
