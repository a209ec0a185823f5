"""The sista_kit benchmark: pretrain every method, transfer to cls / seg / det / loc at 1 / 10 / 100 % labels.

    python benchmarks/run.py --tasks cls,seg,det,loc                  # default profile, embedded data
    python benchmarks/run.py --tasks cls --profile smoke --out /tmp/b # CI-sized
    python benchmarks/run.py --resume --out DIR                       # continue an interrupted run

Every pretrained method runs with several pretraining seeds (model init and data order vary, the dataset
does not); each checkpoint is transferred with its own transfer seed (label subset and head init).
Writes to ``--out``: results.json / results.csv (one record per method, task, dataset, fraction,
pretraining seed, transfer seed, metric; schema in benchmarks/README.md), results.md (mean ± 95 % interval
over pretraining seeds, and SISTA minus every other method paired by seed with its interval),
pretrain_curves.png (loss and held-out R@1 against step), fraction_curves.png, head_curves.png (the seg /
det heads' training loss against iteration), alignment_maps.png,
run_info.json (versions, device, settings, wall times, command) and splits/ (split and label-subset files).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from suite.lock import RunLock
from suite.pipeline import (
    HEADLINE,
    Ledger,
    prepare_data,
    pretrain_config,
    pretrain_dir,
    pretrain_unit,
    random_arch,
    run_units,
    subset_info,
    task_data_problems,
    transfer_dir,
    transfer_options,
    transfer_unit,
)
from suite.profiles import METHODS, PROFILES, TASKS, get_profile

METRIC_NOTE = (
    "cls: macro AUROC (%, linear probe on the frozen encoder); seg: Dice of the target finding (%, frozen "
    "encoder); det: mAP of the target finding in [0, 1] (MGCA: IoU 0.40:0.05:0.75; COCO: 0.50:0.95; frozen "
    "encoder); loc: patch-level average precision over the findings (%, a logistic regression per finding "
    "on each cell of the frozen encoder's patch grid); diagnostics as fractions. Mean ± 95 % t-interval "
    "over pretraining seeds (a plain mean with one seed); best mean in bold."
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="cls,seg,det,loc", help="comma list of cls, seg, det, loc")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--data", default="synthetic", help="synthetic | iu | a written dataset folder")
    p.add_argument(
        "--fractions", default=None, help="label fractions, e.g. 0.01,0.1,1 (profile's by default)"
    )
    p.add_argument(
        "--seeds", type=int, default=None, help="pretraining seeds per method (profile's by default; >= 1)"
    )
    p.add_argument(
        "--jobs", type=int, default=None, help="parallel worker processes (default: CPU cores, <= 2)"
    )
    p.add_argument("--profile", default="default", choices=tuple(PROFILES))
    p.add_argument("--out", default="outputs/benchmark", help="output folder")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--resume", action="store_true", help="keep finished work in --out (re-runs reuse it)")
    p.add_argument("--no-diagnostics", action="store_true", help="skip retrieval / grounding / FN detection")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check inputs, build every model and config, run one step of each stage on CPU and print "
        "the extrapolated GPU time per stage (into OUT/dry-run)",
    )
    return p


def _split_list(text: str, allowed) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise SystemExit(f"unknown choice(s) {bad or text!r}; expected some of {', '.join(allowed)}")
    return items


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in (
        "torch",
        "triton",
        "open-clip-torch",
        "timm",
        "transformers",
        "mmcv",
        "mmdet",
        "mmsegmentation",
        "mmengine",
        "sista-kit",
    ):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _write_splits(
    data_root: Path, out: Path, profile: dict, tasks: list[str], fractions: list[float], seeds: int
) -> None:
    """Copy the split files and write every label subset used (per task, fraction and seed)."""
    from suite.pipeline import target_classes

    from sista_kit.downstream.fractions import manifest_labels, select_fraction

    target = out / "splits"
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted((data_root / "splits").glob("*.txt")):
        shutil.copy(path, target / path.name)
    train_ids = (data_root / "splits" / "train.txt").read_text().split()
    for task in tasks:
        labels = manifest_labels(data_root, train_ids, target_classes(task, profile, data_root))
        for fraction in fractions:
            for seed in range(seeds):
                ids = select_fraction(train_ids, fraction, seed, labels=labels)
                (target / f"{task}_train_f{fraction:g}_s{seed}.txt").write_text("\n".join(ids) + "\n")


def _parse_fractions(text: str | None, default) -> list[float]:
    if text is None:
        return list(default)
    try:
        fractions = [float(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise SystemExit(f"--fractions {text!r}: expected numbers in (0, 1], e.g. 0.01,0.1,1") from None
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise SystemExit(f"--fractions {text!r}: every fraction must lie in (0, 1]")
    return fractions


def _check_args(args: argparse.Namespace) -> None:
    import torch

    if args.seeds is not None and args.seeds < 1:
        raise SystemExit(f"--seeds {args.seeds}: at least one pretraining seed is needed")
    if args.jobs is not None and args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: at least one worker is needed")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out} is a file, not a folder")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available (use --device cpu)")


def _pretrain_stage(methods, seeds, profile, data_root, out, device, jobs, ledger):
    """Pretrain every (method, seed), reusing finished units; {(method, seed): record}."""
    done, pending = {}, []
    for method in [m for m in methods if METHODS[m] is not None]:
        for seed in range(seeds):
            cfg = pretrain_config(method, seed, profile, data_root, device)
            run_dir = pretrain_dir(out, method, seed, cfg)
            cached = ledger.cached(run_dir / "result.json", f"pretrain/{method}/s{seed}")
            if cached is not None:
                done[(method, seed)] = cached
            else:
                pending.append((method, seed, cfg, str(run_dir)))
    for job, payload in run_units(pretrain_unit, pending, jobs, "pretraining"):
        done[(job[0], job[1])] = ledger.ran_unit(f"pretrain/{job[0]}/s{job[1]}", payload)
    return done


def _transfer_stage(
    methods, tasks, fractions, seeds, pretrained, profile, data_root, out, device, jobs, ledger
):
    """Transfer every checkpoint (random init included) to every task and fraction; the records."""
    arch = random_arch(profile, data_root)
    counts = {
        (t, f, s): subset_info(t, f, s, profile, data_root)
        for t in tasks
        for f in fractions
        for s in range(seeds)
    }
    results, pending = [], []
    for task in tasks:
        for method in methods:
            for fraction in fractions:
                for seed in range(seeds):
                    c = counts[(task, fraction, seed)]
                    ckpt = (
                        pretrained[(method, seed)]["checkpoint"] if (method, seed) in pretrained else "random"
                    )
                    options = transfer_options(task, profile, c["n_train"], data_root)
                    unit = transfer_dir(out, method, task, fraction, seed, ckpt, arch, options, data_root)
                    name = f"transfer/{method}/{task}/{fraction:g}/s{seed}"
                    cached = ledger.cached(unit / "result.json", name)
                    if cached is not None:
                        results.append(cached)
                        continue
                    job = (
                        method,
                        task,
                        fraction,
                        seed,
                        seed,
                        ckpt,
                        arch,
                        options,
                        c,
                        str(data_root),
                        str(unit),
                    )
                    pending.append((*job, device))
    for job, payload in run_units(transfer_unit, pending, jobs, "transfer"):
        results.append(ledger.ran_unit(f"transfer/{job[0]}/{job[1]}/{job[2]:g}/s{job[3]}", payload))
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    _check_args(args)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tasks = _split_list(args.tasks, TASKS)
    methods = _split_list(args.methods, METHODS)
    profile = get_profile(args.profile)
    fractions = _parse_fractions(args.fractions, profile["fractions"])
    seeds = args.seeds or profile["pretrain_seeds"]
    jobs = args.jobs or max(1, min(2, os.cpu_count() or 1))
    out = Path(args.out)
    if args.dry_run:
        from suite.dryrun import dry_run

        return dry_run(args.data, profile, tasks, methods, fractions, seeds, out, not args.no_diagnostics)
    if out.exists() and any(p.name != ".lock" for p in out.iterdir()) and not args.resume:
        raise SystemExit(f"{out} is not empty: pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        return _run(args, out, tasks, methods, profile, fractions, seeds, jobs, argv)


def _run(args, out, tasks, methods, profile, fractions, seeds, jobs, argv) -> int:
    import torch
    from suite.diagnose import fn_records, method_records
    from suite.report import (
        chance_notes,
        markdown_report,
        plot_fraction_curves,
        plot_head_curves,
        plot_pretrain_curves,
        reported,
    )
    from suite.results import make_record, write_records

    ledger, started, t0 = Ledger(), datetime.now(timezone.utc), time.perf_counter()
    stage = time.perf_counter()
    data_root = prepare_data(args.data, profile, out)
    problems = task_data_problems(data_root, tasks)
    if problems:
        raise SystemExit("nothing was run:\n" + "\n".join(f"  - {p}" for p in problems))
    dataset = data_root.name
    ledger.wall_s["data"] = round(time.perf_counter() - stage, 1)

    stage = time.perf_counter()
    pretrained = _pretrain_stage(methods, seeds, profile, data_root, out, args.device, jobs, ledger)
    ledger.wall_s["pretrain"] = round(time.perf_counter() - stage, 1)

    stage = time.perf_counter()
    transfers = _transfer_stage(
        methods, tasks, fractions, seeds, pretrained, profile, data_root, out, args.device, jobs, ledger
    )
    ledger.wall_s["transfer"] = round(time.perf_counter() - stage, 1)
    _write_splits(data_root, out, profile, tasks, fractions, seeds)
    records = [
        make_record(
            method=r["method"],
            task=r["task"],
            dataset=dataset,
            fraction=r["fraction"],
            seed=r["seed"],
            pretrain_seed=r["pretrain_seed"],
            n_train=r["n_train"],
            n_pos=r["n_pos"],
            metric=k,
            value=float(v),
        )
        for r in transfers
        for k, v in r["metrics"].items()
    ]

    figure = None
    if not args.no_diagnostics and pretrained:
        stage = time.perf_counter()
        from sista_kit.models.checkpoint import read_checkpoint_config
        from sista_kit.models.clip import build_model

        any_ckpt = pretrained[min(pretrained)]["checkpoint"]

        def random_model(seed: int):
            torch.manual_seed(seed)
            return build_model(read_checkpoint_config(any_ckpt))

        records += fn_records(data_root, profile, ledger, out)
        checkpoints = {key: Path(r["checkpoint"]) for key, r in pretrained.items()}
        found, figure = method_records(
            checkpoints, random_model if "random" in methods else None, seeds, data_root, profile, ledger, out
        )
        records += found
        ledger.wall_s["diagnostics"] = round(time.perf_counter() - stage, 1)

    write_records(records, out)
    headline = reported(records, HEADLINE)
    curves = plot_fraction_curves(headline, methods, out / "fraction_curves.png")
    heads = plot_head_curves(out, out / "head_curves.png", methods, results=transfers)
    learning = plot_pretrain_curves(
        {key: Path(r["run_dir"]) for key, r in pretrained.items()}, methods, out / "pretrain_curves.png"
    )
    ledger.wall_s["total"] = round(time.perf_counter() - t0, 1)
    info = {
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "profile": args.profile,
        "profile_settings": profile,
        "methods_settings": {m: METHODS[m] for m in methods},
        "data": args.data,
        "dataset_folder": str(data_root),
        "tasks": tasks,
        "methods": methods,
        "fractions": fractions,
        "pretrain_seeds": seeds,
        "jobs": jobs,
        "device": args.device,
        "device_name": _device_name(args.device),
        "versions": _versions(),
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "wall_s": ledger.wall_s,
        "units_run": len(ledger.ran),
        "units_reused": len(ledger.reused),
        "unit_wall_s": round(ledger.unit_wall_s, 1),
        "ran": ledger.ran,
    }
    (out / "run_info.json").write_text(json.dumps(info, indent=1, default=str))
    header = (
        f"# sista_kit benchmark ({args.profile} profile)\n\n`{info['command']}` on {info['device_name']} "
        f"({jobs} worker processes), {started:%Y-%m-%d}: {ledger.wall_s['total'] / 60:.1f} min in this "
        f"invocation ({len(ledger.ran)} units run, {len(ledger.reused)} reused from earlier invocations; "
        f"{ledger.unit_wall_s / 60:.1f} min of unit work). {seeds} pretraining seed(s) per method.\n\n"
        f"{METRIC_NOTE}\n\n"
    )
    figures = "".join(
        f"![{p.stem}]({p.name})\n\n" for p in (learning, curves, heads, figure) if p is not None
    )
    tables = markdown_report(headline, methods, chance_notes(records))
    (out / "results.md").write_text(header + figures + tables)
    print(
        f"\nwrote {out}/results.md ({len(ledger.ran)} units run, {len(ledger.reused)} reused, "
        f"{ledger.wall_s['total'] / 60:.1f} min)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
