"""Intervals a reviewer accepts: means with 95 % t-intervals over pretraining seeds, and paired
differences (same pretraining seed, same label subset) with their 95 % t-interval."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Estimate:
    """A mean with the half-width of its 95 % interval (``nan`` with one value) over ``n`` values."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)


def mean_interval(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean and Student-t interval half-width of ``values`` (independent replicates)."""
    from scipy import stats

    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_interval needs at least one value")
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return Estimate(mean, math.nan, 1)
    sem = statistics.stdev(values) / math.sqrt(n)
    return Estimate(mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sem, n)


def _unit_key(record: dict[str, Any]) -> tuple:
    """What pairs two methods' records: the same pretraining seed and the same label subset (seed). A
    record without a pretraining seed is its own replicate (its seed stands for both)."""
    replicate = record.get("pretrain_seed")
    return (record["seed"] if replicate is None else replicate, record["seed"])


def replicate_values(records: list[dict[str, Any]]) -> dict[tuple, dict[str, dict[Any, dict[tuple, float]]]]:
    """{(task, dataset, metric): {method: {fraction: {(pretrain_seed, seed): value}}}}; several values of one
    replicate (several transfer seeds per checkpoint) are averaged within the pretraining seed first."""
    grouped: dict[tuple, dict[str, dict[Any, dict[tuple, list[float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    )
    for r in records:
        grouped[(r["task"], r["dataset"], r["metric"])][r["method"]][r["fraction"]][_unit_key(r)].append(
            float(r["value"])
        )
    return {
        key: {
            m: {f: {u: statistics.fmean(v) for u, v in units.items()} for f, units in by_f.items()}
            for m, by_f in by_method.items()
        }
        for key, by_method in grouped.items()
    }


def per_pretrain_seed(units: dict[tuple, float]) -> list[float]:
    """One value per pretraining seed: the mean over that checkpoint's transfer subsets."""
    by_seed: dict[Any, list[float]] = defaultdict(list)
    for (pretrain_seed, _seed), value in units.items():
        by_seed[pretrain_seed].append(value)
    return [statistics.fmean(v) for _, v in sorted(by_seed.items())]


def summarise(units: dict[tuple, float]) -> Estimate:
    """Mean ± 95 % interval over pretraining seeds (the independent replicates)."""
    return mean_interval(per_pretrain_seed(units))


def paired_difference(a: dict[tuple, float], b: dict[tuple, float]) -> Estimate | None:
    """Mean of a - b over the units both have (same pretraining seed and label subset), with a 95 %
    t-interval over pretraining seeds; None when they share no unit."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    return summarise({u: a[u] - b[u] for u in shared})
