"""Sampling and mixing: exact counts, reproducible by seed, unique ids on repeats."""

from __future__ import annotations

import pytest

from finetune.data.mix import general_count, mix_general, round_half_up, sample_records
from finetune.data.records import Record


def _pool(n: int, prefix: str) -> list[Record]:
    return [Record(f"{prefix}{i}", [], [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], prefix) for i in range(n)]


def test_round_half_up():
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, 2.49)] == [1, 2, 3, 2]


@pytest.mark.parametrize("n, amount, expected", [(10, 0.5, 5), (10, 0.25, 3), (7, 0.5, 4), (10, 1, 10), (10, 2.5, 25), (3, 3, 9), (10, 0, 0)])
def test_sample_gives_exact_counts(n, amount, expected):
    assert len(sample_records(_pool(n, "d"), amount, seed=0)) == expected


def test_fraction_is_without_replacement_in_input_order_and_seeded():
    pool = _pool(100, "d")
    a, b, c = (sample_records(pool, 0.3, seed=s) for s in (1, 1, 2))
    assert [r.id for r in a] == [r.id for r in b] != [r.id for r in c]
    assert len({r.id for r in a}) == 30
    assert [int(r.id[1:]) for r in a] == sorted(int(r.id[1:]) for r in a)


def test_repeats_get_unique_ids():
    out = sample_records(_pool(4, "d"), 2.5, seed=0)
    assert [r.id for r in out[:8]] == ["d0", "d1", "d2", "d3", "d0#1", "d1#1", "d2#1", "d3#1"]
    assert len(out) == 10 and len({r.id for r in out}) == 10
    assert all(r.id.endswith("#2") for r in out[8:])


def test_mix_general_ratio():
    domain, general = _pool(30, "d"), _pool(100, "g")
    mixed = mix_general(domain, general, general_ratio=0.25, seed=0)
    assert len(mixed) == 40 and sum(r.source == "g" for r in mixed) == 10  # 30 * 0.25 / 0.75 = 10
    assert [r.id for r in mixed] == [r.id for r in mix_general(domain, general, 0.25, seed=0)]
    assert [r.id for r in mixed] != [r.id for r in mix_general(domain, general, 0.25, seed=1)]
    # 1:1 with fewer general records than needed: repeated, still exact and unique
    small = mix_general(domain, _pool(8, "g"), general_ratio=0.5, seed=0)
    assert sum(r.source == "g" for r in small) == 30 and len({r.id for r in small}) == 60
    assert general_count(30, 0.0) == 0 and general_count(3, 0.5) == 3 and general_count(1, 0.2) == 0


def test_mix_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        mix_general(_pool(3, "d"), _pool(3, "g"), 1.0, 0)
    with pytest.raises(ValueError, match="kind=general"):
        mix_general(_pool(3, "d"), [], 0.5, 0)
    with pytest.raises(ValueError, match=">= 0"):
        sample_records(_pool(3, "d"), -1, 0)
