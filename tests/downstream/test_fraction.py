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


def _labels(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 7)) < np.array([0.3, 0.1, 0.15, 0.05, 0.1, 0.08, 0.02])).astype(float)
    labels[:2, 6] = 1  # the rarest class has at least two positives in the pool
    return labels


@pytest.mark.parametrize("seed", range(6))
def test_stratified_subsets_hold_min_positives_and_nest(seed: int) -> None:
    import numpy as np

    from sista_kit.downstream.fractions import MIN_POSITIVES, subset_counts

    n = 450
    ids = [f"s{i:04d}" for i in range(n)]
    labels = _labels(n)
    index = {s: i for i, s in enumerate(ids)}
    previous: set[str] = set()
    for fraction in (0.01, 0.1, 1.0):
        chosen = select_fraction(ids, fraction, seed, labels=labels)
        counts = subset_counts(labels[[index[s] for s in chosen]])
        assert counts["n_pos"] >= MIN_POSITIVES, (fraction, counts)
        assert counts["n_train"] >= max(1, round(fraction * n))
        assert previous <= set(chosen)  # nested
        assert chosen == select_fraction(ids, fraction, seed, labels=labels)  # deterministic
        previous = set(chosen)
    small = select_fraction(ids, 0.01, seed, labels=labels)
    assert len(small) <= 7 * MIN_POSITIVES  # the guarantee costs at most two studies per class
    assert np.all(labels[[index[s] for s in small]].sum(0) >= MIN_POSITIVES)


def test_stratified_subset_follows_label_shares() -> None:
    import numpy as np

    ids = [f"s{i}" for i in range(2000)]
    labels = _labels(2000, seed=1)
    chosen = select_fraction(ids, 0.1, 0, labels=labels)
    share = labels[[int(s[1:]) for s in chosen]].mean(0)
    assert np.allclose(share, labels.mean(0), atol=0.03)


def test_a_class_with_too_few_positives_contributes_all_it_has() -> None:
    import numpy as np

    labels = np.zeros((50, 2))
    labels[:10, 0] = 1
    labels[7, 1] = 1
    chosen = select_fraction([str(i) for i in range(50)], 0.02, 0, labels=labels)
    assert "7" in chosen and labels[[int(i) for i in chosen], 0].sum() >= 2
