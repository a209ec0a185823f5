"""Readable outputs of a benchmark run: paper-style Markdown tables and plots."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

#: Metrics where lower is better (all others: higher is better).
LOWER_IS_BETTER = {"loss"}


def _summary(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(records: list[dict[str, Any]]) -> dict[tuple, dict[str, dict[Any, tuple[float, float, int]]]]:
    """{(task, dataset, metric): {method: {fraction: (mean, std, n_seeds)}}}."""
    grouped: dict[tuple, dict[str, dict[Any, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in records:
        grouped[(r["task"], r["dataset"], r["metric"])][r["method"]][r["fraction"]].append(float(r["value"]))
    return {
        key: {m: {f: (*_summary(v), len(v)) for f, v in by_f.items()} for m, by_f in by_method.items()}
        for key, by_method in grouped.items()
    }


def _fraction_label(fraction: Any) -> str:
    return "-" if fraction is None else f"{100 * fraction:g}%"


def _cell(mean: float, std: float, n: int, decimals: int, best: bool) -> str:
    text = f"{mean:.{decimals}f} ± {std:.{decimals}f}" if n > 1 else f"{mean:.{decimals}f}"
    return f"**{text}**" if best else text


def _table(
    title: str,
    columns: list[str],
    rows: dict[str, list[tuple[float, float, int] | None]],
    lower_is_better: list[bool],
) -> list[str]:
    """A Markdown table; per column the best mean is bold unless every row ties."""
    values = [v for cells in rows.values() for v in cells if v is not None]
    decimals = 3 if values and max(abs(v[0]) for v in values) <= 1.0 else 2
    lines = [f"### {title}", "", "| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    best = []
    for c, lower in enumerate(lower_is_better):
        means = [round(cells[c][0], decimals) for cells in rows.values() if cells[c] is not None]
        best.append(None if len(set(means)) <= 1 else (min(means) if lower else max(means)))
    for method, cells in rows.items():
        shown = [
            ""
            if cell is None
            else _cell(*cell, decimals, best[c] is not None and round(cell[0], decimals) == best[c])
            for c, cell in enumerate(cells)
        ]
        lines.append(f"| {method} | " + " | ".join(shown) + " |")
    return lines + [""]


def markdown_tables(records: list[dict[str, Any]], method_order: list[str]) -> str:
    """Transfer: one table per (task, dataset, metric), methods x label fractions. Diagnostics (no
    fraction): one table per (task, dataset), methods x metrics. Mean ± std over seeds, best in bold."""
    agg = aggregate(records)

    def ordered(methods) -> list[str]:
        return [m for m in method_order if m in methods] + sorted(set(methods) - set(method_order))

    lines: list[str] = []
    diagnostics: dict[tuple[str, str], dict[str, dict[str, tuple[float, float, int]]]] = defaultdict(dict)
    for (task, dataset, metric), by_method in sorted(agg.items()):
        fractions = sorted({f for cells in by_method.values() for f in cells if f is not None})
        if not fractions:
            for method, cells in by_method.items():
                diagnostics[(task, dataset)].setdefault(method, {})[metric] = cells[None]
            continue
        rows = {m: [by_method[m].get(f) for f in fractions] for m in ordered(by_method)}
        lower = [metric in LOWER_IS_BETTER] * len(fractions)
        lines += _table(
            f"{task} / {dataset} / {metric}", [_fraction_label(f) for f in fractions], rows, lower
        )
    for (task, dataset), by_method in sorted(diagnostics.items()):
        metrics = sorted({k for cells in by_method.values() for k in cells})
        rows = {m: [by_method[m].get(k) for k in metrics] for m in ordered(by_method)}
        lines += _table(f"{task} / {dataset}", metrics, rows, [k in LOWER_IS_BETTER for k in metrics])
    return "\n".join(lines)


def plot_fraction_curves(
    records: list[dict[str, Any]], method_order: list[str], out_path: Path
) -> Path | None:
    """Metric vs label fraction, one panel per (task, dataset, metric), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (k, v)
        for k, v in sorted(aggregate(records).items())
        if any(f is not None for c in v.values() for f in c)
    ]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    colors = dict(zip(method_order, plt.get_cmap("tab10").colors, strict=False))
    for ax, ((task, dataset, metric), by_method) in zip(axes.flat, panels, strict=False):
        for method in [m for m in method_order if m in by_method] + sorted(
            set(by_method) - set(method_order)
        ):
            points = sorted((f, *s) for f, s in by_method[method].items() if f is not None)
            if not points:
                continue
            xs, means, stds = [100 * p[0] for p in points], [p[1] for p in points], [p[2] for p in points]
            ax.errorbar(
                xs,
                means,
                yerr=stds,
                marker="o",
                capsize=3,
                label=method,
                color=colors.get(method),
                linewidth=2.2 if method == "sista" else 1.3,
            )
        ax.set_xscale("log")
        ax.set_xlabel("labelled training data (%)")
        ax.set_ylabel(metric)
        ax.set_title(f"{task}: {metric} ({dataset})", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
