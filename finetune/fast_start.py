"""Start a command-line process without the collector walking its imports: ``collector_paused_then_frozen``.

Why: importing the ``train`` command (torch, transformers, peft) creates ~430k tracked objects, and
CPython 3.11's cyclic collector runs a full collection each time the long-lived objects have grown
by a quarter: 9 full collections walking 55k to 550k objects, 1.8 s CPU (2.3 s wall on the shared
machine) of a 38 s LoRA run at the peer benchmark's setting, before step 1, and accelerate's
``gc.collect()`` at the start of ``Trainer.train`` walks them all once more (0.5 s). Module objects
live until the process ends anyway, so the collector is paused while a command's modules load and
what exists then is frozen (``gc.freeze``: moved to a generation the collector never walks); garbage
cycles made after that are collected as usual. Only entry points use it (``python -m geotune``, the
``geotune`` script), like ``finetune.fast_exit``, never tests or library code: frozen objects that
later become cyclic garbage are never freed, a price only a process that is about to run one
command should pay.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused_then_frozen() -> Iterator[None]:
    """Inside: no automatic collection; on leaving (an error too): every object so far frozen, and the
    collector on again if it was on before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
