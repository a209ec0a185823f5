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
    grouped: dict[tuple, dict[str, dict[Any, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        grouped[(r["task"], r["dataset"], r["metric"])][r["method"]][r["fraction"]].append(float(r["value"]))
    return {
        key: {m: {f: (*_summary(v), len(v)) for f, v in by_f.items()} for m, by_f in by_method.items()}
        for key, by_method in grouped.items()
    }


def _fraction_label(fraction: Any) -> str:
    return "-" if fraction is None else f"{100 * fraction:g}%"


def markdown_tables(records: list[dict[str, Any]], method_order: list[str]) -> str:
    """One table per (task, dataset, metric): methods x label fractions, mean +- std, best in bold."""
    lines: list[str] = []
    for (task, dataset, metric), by_method in sorted(aggregate(records).items()):
        fractions = sorted({f for cells in by_method.values() for f in cells}, key=lambda f: -1 if f is None else f)
        lines += [f"### {task} / {dataset} / {metric}", ""]
        lines.append("| method | " + " | ".join(_fraction_label(f) for f in fractions) + " |")
        lines.append("|---|" + "---|" * len(fractions))
        best: dict[Any, float] = {}
        for f in fractions:
            means = [cells[f][0] for cells in by_method.values() if f in cells]
            best[f] = min(means) if metric in LOWER_IS_BETTER else max(means)
        methods = [m for m in method_order if m in by_method] + sorted(set(by_method) - set(method_order))
        for method in methods:
            row = []
            for f in fractions:
                if f not in by_method[method]:
                    row.append("")
                    continue
                mean, std, n = by_method[method][f]
                cell = f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"
                row.append(f"**{cell}**" if mean == best[f] and len(by_method) > 1 else cell)
            lines.append(f"| {method} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_fraction_curves(records: list[dict[str, Any]], method_order: list[str], out_path: Path) -> Path | None:
    """Metric vs label fraction, one panel per (task, dataset, metric), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, v) for k, v in sorted(aggregate(records).items()) if any(f is not None for c in v.values() for f in c)]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    colors = dict(zip(method_order, plt.get_cmap("tab10").colors))
    for ax, ((task, dataset, metric), by_method) in zip(axes.flat, panels):
        for method in [m for m in method_order if m in by_method] + sorted(set(by_method) - set(method_order)):
            points = sorted((f, *s) for f, s in by_method[method].items() if f is not None)
            if not points:
                continue
            xs, means, stds = [100 * p[0] for p in points], [p[1] for p in points], [p[2] for p in points]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method, color=colors.get(method),
                        linewidth=2.2 if method == "sista" else 1.3)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training data (%)")
        ax.set_ylabel(metric)
        ax.set_title(f"{task} / {dataset}")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
