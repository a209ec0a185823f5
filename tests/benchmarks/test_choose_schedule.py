"""The schedule rule: the shortest head length whose mean lies within the best length's interval."""

from __future__ import annotations

import math

from suite.stats import Estimate


def test_choose_takes_the_shortest_length_noise_cannot_tell_from_the_best():
    from choose_schedule import choose, table

    est = {
        ("seg", 0.1, 30): Estimate(60.0, 5.0, 3),
        ("seg", 0.1, 120): Estimate(85.5, 1.0, 3),  # inside the best's interval [85, 87]
        ("seg", 0.1, 480): Estimate(86.0, 1.0, 3),
        ("seg", 1.0, 120): Estimate(80.0, 0.5, 3),
        ("seg", 1.0, 480): Estimate(86.0, 0.5, 3),  # 120 is outside [85.5, 86.5]
        ("det", 0.01, 30): Estimate(0.40, math.nan, 1),  # one value: no interval, the best itself
        ("det", 0.01, 60): Estimate(0.45, math.nan, 1),
    }
    assert choose(est) == {("seg", 0.1): (480, 120), ("seg", 1.0): (480, 480), ("det", 0.01): (60, 60)}
    text = table(est)
    assert "| 10% | 60 ± 5 | 85.5 ± 1 | **86 ± 1** | 480 | 120 |" in text
    assert "| 1% | 0.4 | **0.45** | 60 | 60 |" in text
