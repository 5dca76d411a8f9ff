"""Every registered selector: exact budget, determinism, declared needs, option errors."""

from __future__ import annotations

import numpy as np
import pytest

from selection import SELECTORS, SelectionError, SelectionInputs, get_selector
from selection.budget import KNOWN_NEEDS, resolve_budget

N = 150


@pytest.fixture(scope="module")
def full_inputs():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 20))
    x = centres[np.arange(N) % 5] + 0.3 * rng.normal(size=(N, 20))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    signals = {"shift": rng.random(N), "loss": rng.random(N), "el2n": rng.random(N)}
    signals["shift"][:10] = 0.5  # ties must be broken by index
    return dict(features=x, signals=signals, lengths=rng.integers(1, 30, N))


def _inputs(base, name, budget, seed=0):
    options = {"n_layers": 2} if name == "coincide" else {}  # 20 = 2 layers x [v(5), l(5)]
    return SelectionInputs(n=N, budget=budget, seed=seed, clusters=6, options=options, **base)


def test_registry_is_explicit():
    assert list(SELECTORS) == ["adaptive_shift", "cluster_random", "coincide", "random", "length", "perplexity", "el2n",
                               "semdedup", "self_sup", "full"]
    for fn in SELECTORS.values():
        assert fn.needs <= KNOWN_NEEDS
    assert SELECTORS["adaptive_shift"].needs == {"features", "shift"}
    assert SELECTORS["random"].needs == frozenset()


@pytest.mark.parametrize("name", [n for n in SELECTORS if n != "full"])
@pytest.mark.parametrize("budget", [0.1, 0.333, 0.5, 1.0, 7, 149])
def test_exact_budget(full_inputs, name, budget):
    sel = SELECTORS[name](_inputs(full_inputs, name, budget))
    assert len(sel) == resolve_budget(budget, N)
    assert len(np.unique(sel.indices)) == len(sel) and (np.diff(sel.indices) > 0).all()
    assert len(sel.cluster) == len(sel.score) == len(sel.rank_in_cluster) == len(sel)


@pytest.mark.parametrize("name", list(SELECTORS))
def test_deterministic(full_inputs, name):
    a = SELECTORS[name](_inputs(full_inputs, name, 0.3, seed=3))
    b = SELECTORS[name](_inputs(full_inputs, name, 0.3, seed=3))
    for field in ("indices", "cluster", "score", "rank_in_cluster"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_unknown_selector_names_the_key():
    with pytest.raises(SelectionError, match=r"selection\.method.*'coincid'.*Did you mean 'coincide'"):
        get_selector("coincid")


@pytest.mark.parametrize("name", list(SELECTORS))
def test_unknown_option_names_the_key(full_inputs, name):
    inputs = _inputs(full_inputs, name, 0.3)
    inputs.options = {**inputs.options, "bogus": 1}
    with pytest.raises(SelectionError, match=r"selection\.options\.bogus"):
        SELECTORS[name](inputs)


def test_missing_signal_is_a_clear_error():
    with pytest.raises(SelectionError, match="signal 'el2n'"):
        SELECTORS["el2n"](SelectionInputs(n=3, budget=1))
