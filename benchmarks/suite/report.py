"""Readable outputs of a benchmark run: paper-style Markdown tables and plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .stats import Estimate, paired_difference, replicate_values, summarise

#: Metrics where lower is better (all others: higher is better).
LOWER_IS_BETTER = {"loss"}

#: Metrics tabled after each task's headline metrics.
EXTRA_METRICS = {"seg": ("mAUPRC_fg",)}

#: Notes printed under the tables of metrics the run's header does not describe.
METRIC_NOTES = {
    "mAUPRC_fg": "Pixel-level average precision of the predicted foreground probabilities (%, mean over "
    "the foreground classes; 1000 probability bins), beside the Dice at the argmax.\n",
    "patch_mAP": "Average precision of every finding over the test split's patch-grid cells (%, macro mean "
    "over the findings; a logistic regression per finding on the frozen cell features, its L2 weight "
    "chosen on the validation split).",
}


def reported(records: list[dict[str, Any]], headline: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """The records the tables and curves show: each task's ``headline`` and :data:`EXTRA_METRICS`
    metrics; every metric of a task without headline metrics (the diagnostics)."""
    return [
        r
        for r in records
        if r["task"] not in headline or r["metric"] in headline[r["task"]] + EXTRA_METRICS.get(r["task"], ())
    ]


def chance_notes(records: list[dict[str, Any]]) -> dict[str, str]:
    """A note per metric that has a ``<metric>_chance`` companion in ``records`` (what a constant score
    reaches on the same test split): its mean over the records."""
    values: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r["metric"].endswith("_chance") and r.get("fraction") is not None:
            values[r["metric"][: -len("_chance")]].append(float(r["value"]))
    return {m: f"Chance (a constant score): {sum(v) / len(v):.2f}." for m, v in values.items() if v}


def _table_order(item: tuple[tuple, Any]) -> tuple:
    (task, dataset, metric), _ = item
    return task, dataset, metric in EXTRA_METRICS.get(task, ()), metric


def _display(method: str) -> str:
    from .profiles import DISPLAY_NAMES

    return DISPLAY_NAMES.get(method, method)


def aggregate(records: list[dict[str, Any]]) -> dict[tuple, dict[str, dict[Any, Estimate]]]:
    """{(task, dataset, metric): {method: {fraction: mean ± 95 % interval over pretraining seeds}}}."""
    return {
        key: {m: {f: summarise(units) for f, units in by_f.items()} for m, by_f in by_method.items()}
        for key, by_method in replicate_values(records).items()
    }


def _fraction_label(fraction: Any) -> str:
    return "-" if fraction is None else f"{100 * fraction:g}%"


def _decimals(values: list[float]) -> int:
    return 3 if values and max(abs(v) for v in values) <= 1.0 else 2


def _cell(e: Estimate, decimals: int, best: bool) -> str:
    text = f"{e.mean:.{decimals}f}" if e.n < 2 else f"{e.mean:.{decimals}f} ± {e.half_width:.{decimals}f}"
    return f"**{text}**" if best else text


def _table(
    title: str, columns: list[str], rows: dict[str, list[Estimate | None]], lower_is_better: list[bool]
) -> list[str]:
    """A Markdown table; per column the best mean is bold unless every row ties."""
    decimals = _decimals([v.mean for cells in rows.values() for v in cells if v is not None])
    lines = [f"### {title}", "", "| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    best = []
    for c, lower in enumerate(lower_is_better):
        means = [round(cells[c].mean, decimals) for cells in rows.values() if cells[c] is not None]
        best.append(None if len(set(means)) <= 1 else (min(means) if lower else max(means)))
    for method, cells in rows.items():
        shown = [
            ""
            if cell is None
            else _cell(cell, decimals, best[c] is not None and round(cell.mean, decimals) == best[c])
            for c, cell in enumerate(cells)
        ]
        lines.append(f"| {_display(method)} | " + " | ".join(shown) + " |")
    return lines + [""]


def _ordered(methods, method_order: list[str]) -> list[str]:
    return [m for m in method_order if m in methods] + sorted(set(methods) - set(method_order))


def _subset_line(records: list[dict[str, Any]], task: str, fractions: list[float]) -> str:
    """Label-subset sizes of a task: n_train and the fewest positives of any target class, per fraction."""
    parts = []
    for f in fractions:
        rows = [
            r for r in records if r["task"] == task and r["fraction"] == f and r.get("n_train") is not None
        ]
        if rows:
            n = sorted({r["n_train"] for r in rows})
            pos = min(r["n_pos"] for r in rows)
            size = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
            parts.append(f"{_fraction_label(f)}: n_train {size}, n_pos >= {pos}")
    return ("Label subsets (" + "; ".join(parts) + ").\n") if parts else ""


def markdown_tables(
    records: list[dict[str, Any]], method_order: list[str], notes: dict[str, str] | None = None
) -> str:
    """Transfer: one table per (task, dataset, metric), methods x label fractions. Diagnostics (no
    fraction): one table per (task, dataset), methods x metrics. Mean ± 95 % interval over pretraining
    seeds (just the mean with one seed), best mean in bold. ``notes``: more text under a metric's table
    (after :data:`METRIC_NOTES`)."""
    agg = aggregate(records)
    lines: list[str] = []
    diagnostics: dict[tuple[str, str], dict[str, dict[str, Estimate]]] = defaultdict(dict)
    for (task, dataset, metric), by_method in sorted(agg.items(), key=_table_order):
        fractions = sorted({f for cells in by_method.values() for f in cells if f is not None})
        if not fractions:
            for method, cells in by_method.items():
                diagnostics[(task, dataset)].setdefault(method, {})[metric] = cells[None]
            continue
        rows = {m: [by_method[m].get(f) for f in fractions] for m in _ordered(by_method, method_order)}
        lower = [metric in LOWER_IS_BETTER] * len(fractions)
        lines += _table(
            f"{task} / {dataset} / {metric}", [_fraction_label(f) for f in fractions], rows, lower
        )
        subsets = _subset_line(records, task, fractions)
        note = " ".join(t for t in (METRIC_NOTES.get(metric), (notes or {}).get(metric)) if t)
        lines += [text for text in (note and note.rstrip("\n") + "\n", subsets) if text]
    for (task, dataset), by_method in sorted(diagnostics.items()):
        metrics = sorted({k for cells in by_method.values() for k in cells})
        rows = {m: [by_method[m].get(k) for k in metrics] for m in _ordered(by_method, method_order)}
        lines += _table(f"{task} / {dataset}", metrics, rows, [k in LOWER_IS_BETTER for k in metrics])
    return "\n".join(lines)


def paired_tables(records: list[dict[str, Any]], method_order: list[str], reference: str = "sista") -> str:
    """For every (task, dataset, metric): ``reference`` minus each other method, paired by pretraining seed
    and label subset, mean [95 % interval]; **bold** where the interval excludes 0."""
    lines: list[str] = []
    for (task, dataset, metric), by_method in sorted(replicate_values(records).items()):
        if reference not in by_method:
            continue
        columns = sorted({f for cells in by_method.values() for f in cells}, key=lambda f: (f is None, f))
        others = [m for m in _ordered(by_method, method_order) if m != reference]
        table = []
        for other in others:
            cells = []
            for f in columns:
                a, b = by_method[reference].get(f), by_method[other].get(f)
                d = paired_difference(a, b) if a and b else None
                cells.append(d)
            table.append((other, cells))
        values = [d.mean for _, cells in table for d in cells if d is not None]
        if not values:
            continue
        dec = _decimals(values)
        lines += [
            f"### {reference} − method: {task} / {dataset} / {metric}",
            "",
            "| method | " + " | ".join(_fraction_label(f) for f in columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for other, cells in table:
            shown = []
            for d in cells:
                if d is None:
                    shown.append("")
                elif d.n < 2:
                    shown.append(f"{d.mean:+.{dec}f}")
                else:
                    text = f"{d.mean:+.{dec}f} [{d.low:+.{dec}f}, {d.high:+.{dec}f}]"
                    shown.append(f"**{text}**" if d.excludes_zero else text)
            lines.append(f"| {_display(other)} | " + " | ".join(shown) + " |")
        lines.append("")
    return "\n".join(lines)


def claims(records: list[dict[str, Any]], reference: str = "sista") -> list[str]:
    """Sentences for every paired difference whose 95 % interval excludes 0 (wins and losses alike)."""
    out = []
    for (task, dataset, metric), by_method in sorted(replicate_values(records).items()):
        if reference not in by_method:
            continue
        for other, cells in by_method.items():
            if other == reference:
                continue
            for f, units in sorted(cells.items(), key=lambda kv: (kv[0] is None, kv[0])):
                ref = by_method[reference].get(f)
                d = paired_difference(ref, units) if ref else None
                if d is not None and d.excludes_zero:
                    word = "above" if d.mean > 0 else "below"
                    out.append(
                        f"{task} {metric} ({dataset}) at {_fraction_label(f)}: {reference} is {word} "
                        f"{_display(other)} by {abs(d.mean):.3g} "
                        f"(95 % interval {d.low:+.3g} to {d.high:+.3g}, {d.n} seeds)"
                    )
    return out


def markdown_report(
    records: list[dict[str, Any]], method_order: list[str], notes: dict[str, str] | None = None
) -> str:
    """The tables of results.md: intervals, paired differences, and the claims they support
    (``notes``: more text under a metric's table, e.g. :func:`chance_notes`)."""
    found = claims(records)
    summary = ["## What is beyond noise", ""]
    summary += [f"- {c}" for c in found] or [
        "- No paired difference of SISTA has an interval that excludes 0."
    ]
    return (
        "\n".join(summary)
        + "\n\n## Results (mean ± 95 % interval over pretraining seeds)\n\n"
        + markdown_tables(records, method_order, notes)
        + "\n## Paired differences (SISTA − method, same pretraining seed and label subset)\n\n"
        + paired_tables(records, method_order)
    )


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
            points = sorted((f, e.mean, e.half_width) for f, e in by_method[method].items() if f is not None)
            if not points:
                continue
            xs, means = [100 * p[0] for p in points], [p[1] for p in points]
            stds = [0.0 if p[2] != p[2] else p[2] for p in points]  # one seed: no interval
            ax.errorbar(
                xs,
                means,
                yerr=stds,
                marker="o",
                capsize=3,
                label=_display(method),
                color=colors.get(method),
                linewidth=2.2 if method == "sista" else 1.3,
            )
        ax.set_xscale("log")
        ax.set_xlabel("labelled training data (%)")
        ax.set_ylabel(f"{metric} (mean, 95 % interval)")
        ax.set_title(f"{task}: {metric} ({dataset})", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path


def _curve(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [
        (r["step"], r[key])
        for r in rows
        if isinstance(r.get(key), float) and isinstance(r.get("step"), float)
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def _band(ax: Any, curves: list[tuple[list[float], list[float]]], color: Any, label: str, lw: float = 1.6):
    """Mean of the curves (cut to the shortest) as a line, their min-max range as a band; the line."""
    import numpy as np

    curves = [c for c in curves if c[0]]
    if not curves:
        return None
    n = min(len(c[0]) for c in curves)
    xs, ys = np.asarray(curves[0][0][:n]), np.asarray([c[1][:n] for c in curves])
    (line,) = ax.plot(xs, ys.mean(0), color=color, lw=lw, label=label)
    if len(curves) > 1:
        ax.fill_between(xs, ys.min(0), ys.max(0), color=color, alpha=0.2)
    return line


def _train_loss(row: dict[str, Any]) -> dict[str, Any]:
    """open_clip logs each loss term and their sum ``loss``; older logs only the terms."""
    if "loss" not in row:
        terms = [v for k, v in row.items() if k.endswith("_loss") and isinstance(v, float)]
        row = dict(row, loss=sum(terms)) if terms else row
    return row


def plot_pretrain_curves(
    run_dirs: dict[tuple[str, int], Path], method_order: list[str], out_path: Path
) -> Path | None:
    """Learning curves, one panel per method: training loss (left axis) and held-out image -> report R@1
    (right axis, with its chance level) against step; lines are means over pretraining seeds, bands
    their range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sista_kit.train.logs import read_csv

    logs: dict[str, list[tuple[list[dict], list[dict]]]] = defaultdict(list)
    for (method, _seed), run_dir in sorted(run_dirs.items()):
        train, held = run_dir / "train.csv", run_dir / "heldout.csv"
        if train.is_file():
            logs[method].append(
                ([_train_loss(r) for r in read_csv(train)], read_csv(held) if held.is_file() else [])
            )
    if not logs:
        return None
    methods = _ordered(logs, method_order)
    cols = min(4, len(methods))
    rows = (len(methods) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)

    for ax, method in zip(axes.flat, methods, strict=False):
        runs = logs[method]
        loss_line = _band(ax, [_curve(r[0], "loss") for r in runs], "tab:blue", "training loss")
        ax.set_title(f"{_display(method)} ({len(runs)} seeds)", fontsize=9)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_ylabel("training loss", color="tab:blue", fontsize=8)
        ax.grid(alpha=0.3)
        right = ax.twinx()
        r1_line = _band(right, [_curve(r[1], "retrieval_r1") for r in runs], "tab:red", "held-out R@1")
        pairs = [row.get("pairs") for r in runs for row in r[1] if isinstance(row.get("pairs"), float)]
        if pairs:
            right.axhline(1.0 / pairs[0], color="tab:red", ls=":", lw=1, label="R@1 chance")
        right.set_ylim(bottom=0)
        right.set_ylabel("held-out R@1 (val)", color="tab:red", fontsize=8)
        if ax is axes.flat[0]:
            handles = [h for h in (loss_line, r1_line) if h is not None]
            ax.legend(handles=handles, fontsize=7, loc="upper right")
    for ax in list(axes.flat)[len(methods) :]:
        ax.axis("off")
    fig.suptitle("pretraining: loss and held-out image -> report R@1 (mean, range over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def head_loss_units(out_dir: Path, results: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The seg / det transfer units of a benchmark folder that kept a head loss curve: their
    ``result.json`` fields and ``head_loss`` (``<unit>/work/head_loss.csv``). With ``results`` (a
    run's transfer results), only the units whose ``result.json`` is one of them: a resumed folder
    also holds the units of earlier settings."""
    import json

    units = []
    for task in ("seg", "det"):
        for result in sorted(Path(out_dir).glob(f"transfer/*/{task}/*/f*-s*/result.json")):
            csv_path, payload = result.parent / "work" / "head_loss.csv", json.loads(result.read_text())
            if csv_path.is_file() and (results is None or payload in results):
                units.append(dict(payload, head_loss=str(csv_path)))
    return units


def plot_head_curves(
    records_or_out_dir: list[dict[str, Any]] | Path | str,
    path: Path | str,
    method_order: list[str] | None = None,
    results: list[dict[str, Any]] | None = None,
) -> Path | None:
    """The heads' training loss against iteration: one panel per (task, label fraction) of seg and det,
    one line per method (mean over the pretraining seeds, band their range).

    ``records_or_out_dir`` is a benchmark folder (its transfer units are read, see
    :func:`head_loss_units`, ``results`` as there) or records with ``method``, ``task``,
    ``fraction`` and ``head_loss`` (a ``head_loss.csv``, as ``metrics.json`` names it). Returns
    ``path``, or None without curves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sista_kit.train.logs import read_csv

    records = (
        head_loss_units(Path(records_or_out_dir), results)
        if isinstance(records_or_out_dir, (str, Path))
        else records_or_out_dir
    )
    curves: dict[tuple[str, float], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("task") in ("seg", "det") and r.get("head_loss") and Path(r["head_loss"]).is_file():
            rows = [row for row in read_csv(r["head_loss"]) if isinstance(row.get("loss"), float)]
            if rows:
                xs, ys = [row["iter"] for row in rows], [row["loss"] for row in rows]
                curves[(r["task"], r["fraction"])][r["method"]].append((xs, ys))
    if not curves:
        return None
    tasks = [t for t in ("seg", "det") if any(k[0] == t for k in curves)]
    fractions = sorted({k[1] for k in curves})
    fig, axes = plt.subplots(
        len(tasks), len(fractions), figsize=(4.6 * len(fractions), 3.4 * len(tasks)), squeeze=False
    )
    methods = _ordered({m for by_method in curves.values() for m in by_method}, method_order or [])
    colors = dict(zip(methods, plt.get_cmap("tab10").colors, strict=False))
    for (row, task), (col, fraction) in [(t, f) for t in enumerate(tasks) for f in enumerate(fractions)]:
        ax, by_method = axes[row][col], curves.get((task, fraction))
        if not by_method:
            ax.axis("off")
            continue
        for method in _ordered(by_method, methods):
            lw = 2.2 if method == "sista" else 1.3
            _band(ax, by_method[method], colors[method], _display(method), lw=lw)
        seeds = sorted({len(runs) for runs in by_method.values()})
        ax.set_title(
            f"{task}: {_fraction_label(fraction)} labels ({'-'.join(map(str, seeds))} seeds)", fontsize=10
        )
        ax.set_xlabel("head training iteration", fontsize=8)
        ax.set_ylabel("head training loss", fontsize=8)
        ax.grid(alpha=0.3)
    next(ax for ax in axes.flat if ax.lines).legend(fontsize=7)
    fig.suptitle("transfer heads: training loss (mean, range over pretraining seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
