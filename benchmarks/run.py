"""The sista_kit benchmark: pretrain every method, transfer to cls / seg / det with 1 / 10 / 100 % labels.

    python benchmarks/run.py --tasks cls,seg,det                      # default profile, embedded data
    python benchmarks/run.py --tasks cls --profile smoke --out /tmp/b # CI-sized
    python benchmarks/run.py --resume --out DIR                       # continue an interrupted run

Writes to ``--out``: results.json / results.csv (one record per method, task, dataset, fraction, seed,
metric; schema in benchmarks/README.md), results.md (tables, mean +- std over seeds, best in bold),
fraction_curves.png, alignment_maps.png, run_info.json (versions, device, wall times, command) and
splits/ (the split and label-fraction files used).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite.pipeline import HEADLINE, Ledger, prepare_data, pretrain_method, random_arch, transfer  # noqa: E402
from suite.profiles import METHODS, TASKS, get_profile  # noqa: E402

METRIC_NOTE = (
    "cls: macro AUROC (%, linear probe on the frozen encoder); seg: Dice of the target finding (%, frozen "
    "encoder); det: mAP of the target finding in [0, 1] (MGCA: IoU 0.40:0.05:0.75; COCO: 0.50:0.95; frozen "
    "encoder); diagnostics as fractions. Mean ± std over seeds; best in bold."
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="cls,seg,det", help="comma list of cls, seg, det")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--data", default="synthetic", help="synthetic | iu | a written dataset folder")
    p.add_argument(
        "--fractions", default=None, help="label fractions, e.g. 0.01,0.1,1 (profile's by default)"
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per transfer (profile's by default)")
    p.add_argument("--profile", default="default", choices=("smoke", "default", "paper"))
    p.add_argument("--out", default="outputs/benchmark", help="output folder")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--resume", action="store_true", help="keep finished work in --out (re-runs reuse it)")
    p.add_argument("--no-diagnostics", action="store_true", help="skip retrieval / grounding / FN detection")
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


def _write_splits(data_root: Path, out: Path, fractions: list[float], seeds: int) -> None:
    from sista_kit.downstream import select_fraction

    target = out / "splits"
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted((data_root / "splits").glob("*.txt")):
        shutil.copy(path, target / path.name)
    train_ids = (data_root / "splits" / "train.txt").read_text().split()
    for fraction in fractions:
        for seed in range(seeds):
            ids = select_fraction(train_ids, fraction, seed)
            (target / f"train_f{fraction:g}_s{seed}.txt").write_text("\n".join(ids) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch
    from suite.diagnose import fn_records, method_records
    from suite.report import markdown_tables, plot_fraction_curves
    from suite.results import write_records
    from tqdm.auto import tqdm

    torch.set_num_threads(max(1, torch.get_num_threads()))
    tasks = _split_list(args.tasks, TASKS)
    methods = _split_list(args.methods, METHODS)
    profile = get_profile(args.profile)
    fractions = (
        [float(f) for f in args.fractions.split(",")] if args.fractions else list(profile["fractions"])
    )
    if any(not 0 < f <= 1 for f in fractions):
        raise SystemExit(f"fractions must lie in (0, 1], got {fractions}")
    seeds = {t: args.seeds or profile["seeds"][t] for t in TASKS}
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise SystemExit(f"{out} is not empty: pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    ledger, started, t0 = Ledger(), datetime.now(timezone.utc), time.perf_counter()

    stage = time.perf_counter()
    data_root = prepare_data(args.data, profile, out)
    dataset = data_root.name
    ledger.wall_s["data"] = round(time.perf_counter() - stage, 1)

    stage = time.perf_counter()
    checkpoints = {}
    for method in [m for m in methods if METHODS[m] is not None]:
        print(f"== pretraining {method}", flush=True)
        checkpoints[method] = pretrain_method(method, profile, data_root, out, args.device, ledger)
    ledger.wall_s["pretrain"] = round(time.perf_counter() - stage, 1)

    stage = time.perf_counter()
    arch = random_arch(profile, data_root)
    units = [(m, t, f, s) for t in tasks for m in methods for f in fractions for s in range(seeds[t])]
    records = []
    for method, task, fraction, seed in tqdm(units, desc="transfer", unit="run"):
        checkpoint = str(checkpoints[method]) if method in checkpoints else "random"
        metrics = transfer(
            method, task, fraction, seed, checkpoint, arch, profile, data_root, out, args.device, ledger
        )
        records += [
            dict(
                method=method,
                task=task,
                dataset=dataset,
                fraction=fraction,
                seed=seed,
                metric=k,
                value=float(v),
            )
            for k, v in metrics.items()
        ]
    ledger.wall_s["transfer"] = round(time.perf_counter() - stage, 1)
    _write_splits(data_root, out, fractions, max(seeds[t] for t in tasks))

    figure = None
    if not args.no_diagnostics and checkpoints:
        stage = time.perf_counter()
        from sista_kit.models.checkpoint import read_checkpoint_config
        from sista_kit.models.clip import build_model

        any_ckpt = next(iter(checkpoints.values()))

        def random_model():
            torch.manual_seed(0)
            return build_model(read_checkpoint_config(any_ckpt))

        records += fn_records(data_root, profile, ledger, out)
        found, figure = method_records(
            checkpoints, random_model if "random" in methods else None, data_root, profile, ledger, out
        )
        records += found
        ledger.wall_s["diagnostics"] = round(time.perf_counter() - stage, 1)

    write_records(records, out)
    headline = [r for r in records if r["metric"] in HEADLINE.get(r["task"], ()) or r["task"] not in HEADLINE]
    curves = plot_fraction_curves(headline, methods, out / "fraction_curves.png")
    ledger.wall_s["total"] = round(time.perf_counter() - t0, 1)
    info = {
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "profile": args.profile,
        "profile_settings": profile,
        "data": args.data,
        "dataset_folder": str(data_root),
        "tasks": tasks,
        "methods": methods,
        "fractions": fractions,
        "seeds": seeds,
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
        f"# sista_kit benchmark ({args.profile} profile)\n\n`{info['command']}` on {info['device_name']}, "
        f"{started:%Y-%m-%d}: {ledger.unit_wall_s / 60:.1f} min of pretraining and transfer work "
        f"({len(ledger.reused)} units reused from earlier invocations), "
        f"{ledger.wall_s['total'] / 60:.1f} min in this invocation.\n\n{METRIC_NOTE}\n\n"
    )
    figures = "".join(f"![{p.stem}]({p.name})\n\n" for p in (curves, figure) if p is not None)
    (out / "results.md").write_text(header + figures + markdown_tables(headline, methods))
    print(
        f"\nwrote {out}/results.md ({len(ledger.ran)} units run, {len(ledger.reused)} reused, "
        f"{ledger.wall_s['total'] / 60:.1f} min)"
    )
    print(markdown_tables([r for r in headline if r["task"] in tasks], methods))
    return 0


if __name__ == "__main__":
    sys.exit(main())
