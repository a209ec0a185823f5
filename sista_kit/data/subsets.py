"""Seeded, stratified orderings of a split: every prefix is a stratified subset, so subsets of growing
size are nested. The one implementation behind label fractions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_order(n: int, seed: int, strata: Sequence[str] | None = None) -> np.ndarray:
    """Indices 0..n-1 in the order subsets take them, deterministic per ``seed``.

    Without ``strata`` a seeded shuffle. With ``strata`` (one string per study, e.g. its finding set)
    studies are ranked by their relative position in a seeded shuffle of their own stratum, so a prefix
    of any length draws from each stratum in proportion to its size.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([seed, 0xF7AC])
    perm = rng.permutation(n)
    if strata is None:
        score = np.empty(n)
        score[perm] = np.arange(n) / max(n, 1)
    else:
        if len(strata) != n:
            raise ValueError(f"strata has {len(strata)} entries for {n} studies")
        _, group = np.unique(np.asarray(strata, dtype=object).astype(str), return_inverse=True)
        g = group[perm]
        order = np.argsort(g, kind="stable")  # within a stratum, shuffled order is kept
        sizes = np.bincount(g)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rank = np.empty(n)
        rank[order] = np.arange(n) - starts[g[order]]
        score = np.empty(n)
        score[perm] = (rank + 0.5) / sizes[g] + rng.random(n) * 1e-9
    return np.argsort(score, kind="stable")
