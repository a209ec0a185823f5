"""Split rules of the prepare command (MGCA's protocol): official splits kept, the rest drawn per patient."""

from __future__ import annotations

import numpy as np

from ..synthetic.export import SPLITS, split_assignment
from .study import Study


def _full(fractions: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise ValueError(f"split fractions name unknown splits {unknown}; expected some of {SPLITS}")
    return {s: float(fractions.get(s, 0.0)) for s in SPLITS}


def draw_by_fractions(groups: list[str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Split of each distinct group: a seeded shuffle of the sorted groups cut by ``fractions``."""
    uniq = sorted(set(groups))
    assign = split_assignment(len(uniq), seed, _full(fractions))
    return {g: SPLITS[a] for g, a in zip(uniq, assign, strict=True)}


def draw_by_count(groups: list[str], count: int, split: str, rest: str, seed: int) -> dict[str, str]:
    """Whole groups, in a seeded shuffle, go to ``split`` until it holds ``count`` images; others ``rest``."""
    uniq = sorted(set(groups))
    sizes = dict.fromkeys(uniq, 0)
    for g in groups:
        sizes[g] += 1
    order = np.random.default_rng([seed, 0x5B2]).permutation(len(uniq))
    out, taken = {}, 0
    for i in order:
        g = uniq[i]
        if taken < count:
            out[g], taken = split, taken + sizes[g]
        else:
            out[g] = rest
    return out


def assign_splits(studies: list[Study], rule: dict, seed: int) -> list[str]:
    """The split of every study: its fixed ``split``, or drawn by group under ``rule``.

    ``rule`` is ``{"fractions": {split: share}}`` or ``{"count": {"split", "n", "rest"}}`` (``n`` capped at
    ``cap_share`` of the drawn images, so that a small dataset keeps a training split).
    """
    free = [s for s in studies if s.split is None]
    fixed_bad = sorted({s.split for s in studies if s.split is not None and s.split not in SPLITS})
    if fixed_bad:
        raise ValueError(f"unknown split name(s) {fixed_bad}; expected some of {SPLITS}")
    drawn: dict[str, str] = {}
    if free:
        groups = [s.group for s in free]
        if "fractions" in rule:
            drawn = draw_by_fractions(groups, rule["fractions"], seed)
        elif "count" in rule:
            c = rule["count"]
            n = min(int(c["n"]), int(round(float(c.get("cap_share", 0.2)) * len(free))))
            drawn = draw_by_count(groups, max(n, 1), c["split"], c["rest"], seed)
        else:
            raise ValueError(f"split rule {rule} has neither 'fractions' nor 'count'")
    return [s.split if s.split is not None else drawn[s.group] for s in studies]
