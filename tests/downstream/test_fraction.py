"""The label-fraction option: documented count, deterministic per seed, nested across fractions."""

from __future__ import annotations

import pytest

from sista_kit.downstream.fractions import select_fraction


@pytest.mark.parametrize("n", [1, 7, 100, 1234])
@pytest.mark.parametrize("fraction", [0.01, 0.1, 1.0])
def test_count_and_determinism(n: int, fraction: float) -> None:
    ids = [f"s{i:05d}" for i in range(n)]
    a = select_fraction(ids, fraction, seed=3)
    assert len(a) == max(1, round(fraction * n))  # the documented number
    assert a == select_fraction(ids, fraction, seed=3)
    assert set(a) <= set(ids) and len(set(a)) == len(a)
    assert a == [i for i in ids if i in set(a)]  # order kept


def test_seeds_differ_and_fractions_nest() -> None:
    ids = [f"s{i}" for i in range(1000)]
    assert select_fraction(ids, 0.1, 0) != select_fraction(ids, 0.1, 1)
    assert set(select_fraction(ids, 0.01, 5)) <= set(select_fraction(ids, 0.1, 5))


def test_bad_fraction() -> None:
    with pytest.raises(ValueError, match="fraction"):
        select_fraction(["a"], 0.0, 0)
    with pytest.raises(ValueError, match="fraction"):
        select_fraction(["a"], 1.5, 0)
    with pytest.raises(ValueError, match="no training samples"):
        select_fraction([], 0.5, 0)
