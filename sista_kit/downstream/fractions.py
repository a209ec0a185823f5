"""Label fractions (1% / 10% / 100% protocol): one place that calls the data package's selector."""

from __future__ import annotations

from collections.abc import Sequence


def select_fraction(ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The training ids kept at ``fraction`` for ``seed``: ``max(1, round(fraction * len(ids)))`` of them,
    deterministic per seed, nested across fractions, in the order of ``ids``
    (``sista_kit.data.synthetic.label_fraction``)."""
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"label fraction must lie in (0, 1], got {fraction}")
    if not ids:
        raise ValueError("no training samples to select a label fraction from")
    from sista_kit.data.synthetic import label_fraction

    return [str(i) for i in label_fraction(list(ids), float(fraction), int(seed))]
