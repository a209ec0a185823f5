"""Choose the seg / det heads' training length on the validation split, from a benchmark run's checkpoints.

    python benchmarks/choose_schedule.py --run outputs/bench_run4 --tasks seg,det \
        --methods random,clip --iters 30,60,120,240 --out docs/benchmark/schedule

Every (task, method, pretraining seed, label fraction, iteration count) trains the run profile's head on
the label subset the benchmark trains it on, and scores it on the validation split (never test).
Writes to ``--out``: records.json (one record per run), schedule.md (the validation metric per fraction
and length, mean ± 95 % interval over the methods' pretraining seeds, and the best length per fraction)
and schedule.png (the same against iterations). Finished runs are reused (their ``result.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from suite.pipeline import HEADLINE, random_arch, run_units, subset_info, transfer_options, transfer_unit
from suite.profiles import get_profile
from suite.stats import Estimate, mean_interval

from sista_kit.io import write_json_atomic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a benchmark --out folder (run_info.json, pretrain/)")
    p.add_argument("--out", required=True, help="folder for records.json, schedule.md, schedule.png")
    p.add_argument("--tasks", default="seg,det", help="comma list of seg, det")
    p.add_argument("--methods", default="random,clip", help="methods of the run (random: random init)")
    p.add_argument("--fractions", default=None, help="label fractions (default: the run's)")
    p.add_argument("--iters", default="30,60,120,240", help="head training lengths to compare")
    p.add_argument("--seeds", default=None, help="pretraining seeds (default: the run's)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (one thread each)")
    return p


def _csv(text: str, kind=str) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def checkpoints(run: Path) -> dict[tuple[str, int], str]:
    """{(method, pretraining seed): checkpoint} of a benchmark run's finished pretraining units."""
    found = {}
    for path in sorted(run.glob("pretrain/*/result.json")):
        rec = json.loads(path.read_text())
        found[(rec["method"], int(rec["pretrain_seed"]))] = rec["checkpoint"]
    return found


def _jobs(args, run: Path, info: dict) -> list[tuple]:
    profile = get_profile(info["profile"])
    data_root = Path(info["dataset_folder"])
    ckpts, arch = checkpoints(run), random_arch(profile, data_root)
    fractions = _csv(args.fractions, float) if args.fractions else info["fractions"]
    seeds = _csv(args.seeds, int) if args.seeds else list(range(info["pretrain_seeds"]))
    lengths = _csv(args.iters, int)
    jobs = []
    for task in _csv(args.tasks):
        if task not in ("seg", "det"):
            raise SystemExit(f"--tasks: {task!r} has no head schedule (seg, det)")
        for method in _csv(args.methods):
            for fraction in fractions:
                for seed in seeds:
                    ckpt = "random" if method == "random" else ckpts.get((method, seed))
                    if ckpt is None:
                        raise SystemExit(f"{run} has no finished pretraining of {method} seed {seed}")
                    counts = subset_info(task, fraction, seed, profile, data_root)
                    base = transfer_options(task, profile, counts["n_train"], data_root)
                    for iters in lengths:
                        options = dict(base, iters=iters, eval_split="val")
                        unit = Path(args.out) / "units" / task / method / f"f{fraction:g}-s{seed}-i{iters}"
                        job = (method, task, fraction, seed, seed, ckpt, arch, options, counts)
                        jobs.append((*job, str(data_root), str(unit), info.get("device", "cpu")))
    return jobs


def summarise(records: list[dict]) -> dict[tuple[str, float, int], Estimate]:
    """Mean ± interval of the task's headline metric per (task, fraction, iters), over methods x seeds."""
    values = defaultdict(list)
    for r in records:
        values[(r["task"], r["fraction"], r["iters"])].append(r["metrics"][HEADLINE[r["task"]][0]])
    return {k: mean_interval(v) for k, v in sorted(values.items())}


def choose(estimates: dict[tuple[str, float, int], Estimate]) -> dict[tuple[str, float], tuple[int, int]]:
    """{(task, fraction): (best length, chosen length)}: the chosen one is the shortest whose mean lies
    within the best length's 95 % interval (what costs least among the lengths noise cannot tell apart)."""
    out = {}
    for task, fraction in sorted({k[:2] for k in estimates}):
        row = {k[2]: e for k, e in estimates.items() if k[:2] == (task, fraction)}
        best = max(row, key=lambda i: row[i].mean)
        floor = row[best].mean - (0.0 if math.isnan(row[best].half_width) else row[best].half_width)
        out[(task, fraction)] = (best, min(i for i, e in row.items() if e.mean >= floor))
    return out


def _cell(e: Estimate) -> str:
    return f"{e.mean:.3g}" if math.isnan(e.half_width) else f"{e.mean:.3g} ± {e.half_width:.2g}"


def table(estimates: dict[tuple[str, float, int], Estimate]) -> str:
    """A markdown table per task: fractions as rows, lengths as columns, the best mean in bold."""
    chosen, lines = choose(estimates), []
    for task in sorted({k[0] for k in estimates}):
        iters = sorted({k[2] for k in estimates if k[0] == task})
        lines += [f"### {task}: validation {HEADLINE[task][0]}", ""]
        lines += ["| fraction | " + " | ".join(f"{i} iters" for i in iters) + " | best | chosen |"]
        lines += ["|---" * (len(iters) + 3) + "|"]
        for fraction in sorted({k[1] for k in estimates if k[0] == task}):
            best, pick = chosen[(task, fraction)]
            row = {i: estimates[(task, fraction, i)] for i in iters if (task, fraction, i) in estimates}
            cells = [f"**{_cell(e)}**" if i == best else _cell(e) for i, e in row.items()]
            lines += [f"| {fraction:.0%} | " + " | ".join(cells) + f" | {best} | {pick} |"]
        lines += [""]
    lines += ["chosen: the shortest length whose mean lies within the best length's 95 % interval.", ""]
    return "\n".join(lines)


def plot(estimates: dict[tuple[str, float, int], Estimate], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks, chosen = sorted({k[0] for k in estimates}), choose(estimates)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for fraction in sorted({k[1] for k in estimates if k[0] == task}):
            keys = sorted(k for k in estimates if k[:2] == (task, fraction))
            xs, es = [k[2] for k in keys], [estimates[k] for k in keys]
            line = ax.errorbar(
                xs,
                [e.mean for e in es],
                yerr=[e.half_width for e in es],
                marker="o",
                capsize=3,
                label=f"{fraction:.0%} of the labels",
            )
            pick = chosen[(task, fraction)][1]
            y = estimates[(task, fraction, pick)].mean
            ax.plot([pick], [y], marker="*", markersize=15, color=line[0].get_color(), zorder=3)
        ax.set(
            xscale="log",
            xlabel="head training iterations",
            ylabel=f"validation {HEADLINE[task][0]}",
            title=f"{task} (star: the chosen length)",
        )
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    info_path = run / "run_info.json"
    if not info_path.is_file():
        raise SystemExit(f"{info_path} does not exist: --run must be a finished benchmark --out folder")
    info = json.loads(info_path.read_text())
    jobs = _jobs(args, run, info)
    done = [Path(j[-2], "result.json") for j in jobs]
    records = [json.loads(p.read_text()) for p in done if p.is_file()]
    pending = [j for j, p in zip(jobs, done, strict=True) if not p.is_file()]
    records += [rec for _, rec in run_units(transfer_unit, pending, args.jobs, "schedule")]
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "records.json", records, indent=1, default=str)
    estimates = summarise(records)
    command = "python benchmarks/choose_schedule.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = table(estimates)
    (out / "schedule.md").write_text(
        f"`{command}`\n\nHeads trained on the benchmark's label subsets and scored on the validation split; "
        f"mean ± 95 % interval over {', '.join(_csv(args.methods))} x their pretraining seeds.\n\n"
        + text
        + "\n![schedule](schedule.png)\n"
    )
    plot(estimates, out / "schedule.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
