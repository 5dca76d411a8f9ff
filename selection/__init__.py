"""Data selection: features in, kept indices out; the manifest is what training reads.

``SELECTORS`` is the one registry of selection strategies (``selection.method`` in a recipe). Each is
a pure function ``SelectionInputs -> Selection`` with ``.needs`` (inputs the pipeline must compute)
and ``.defaults`` (accepted ``selection.options`` and their defaults).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from selection.adaptive_shift import select_adaptive_shift, select_cluster_random
from selection.baselines import (
    select_el2n,
    select_full,
    select_length,
    select_perplexity,
    select_random,
    select_self_sup,
    select_semdedup,
)
from selection.budget import Selection, SelectionError, SelectionInputs
from selection.coincide import select_coincide

SELECTORS: dict[str, Callable[[SelectionInputs], Selection]] = {
    "adaptive_shift": select_adaptive_shift,
    "cluster_random": select_cluster_random,
    "coincide": select_coincide,
    "random": select_random,
    "length": select_length,
    "perplexity": select_perplexity,
    "el2n": select_el2n,
    "semdedup": select_semdedup,
    "self_sup": select_self_sup,
    "full": select_full,
}


def get_selector(name: str) -> Callable[[SelectionInputs], Selection]:
    """The selector registered as ``name``, or a SelectionError naming ``selection.method``."""
    if name not in SELECTORS:
        close = difflib.get_close_matches(name, list(SELECTORS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise SelectionError(f"selection.method: unknown selector '{name}'.{hint} Known: {', '.join(SELECTORS)}")
    return SELECTORS[name]


__all__ = ["SELECTORS", "Selection", "SelectionError", "SelectionInputs", "get_selector"]
