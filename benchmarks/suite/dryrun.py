"""The benchmark's dry run (``run.py --dry-run``): check, build and step every stage on CPU, then plan.

1. Inputs, all checked before anything runs (every missing one is listed): the dataset folder, and each
   local weight or model folder the profile names (vision trunk weights, a pretrained text tower, a
   tokenizer, the sentence encoder of an ``encoder`` similarity provider or diagnostic).
2. Build: every method's pretraining config, the model at the profile's size and every loss; every
   task's transfer options per label fraction and, for seg / det, the mmengine config of each.
3. Step, on CPU at reduced size: one pretraining step of every method (batch ``DRY_BATCH``, fp32, read
   from webdataset shards of the pretraining split), one transfer iteration of every task and the
   diagnostics on ``DRY_DIAGNOSTICS`` studies, each timed, with its FLOPs counted by
   ``torch.utils.flop_counter``.
4. Plan: per stage, the FLOPs per sample of step 3 times the samples the full profile processes, over an
   assumed sustained GPU rate. This is an extrapolation (printed as one): GPU throughput is not
   measured here.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .pipeline import (
    image_size_of,
    prepare_data,
    pretrain_config,
    random_arch,
    subset_info,
    task_data_problems,
    transfer_options,
    transfer_unit,
)
from .profiles import METHODS

#: Sustained GPU rate the plan assumes (dense bf16 / tf32 training at about a third of an A100's peak).
ASSUMED_GPU_TFLOPS = 100.0
#: Samples per pretraining step and per transfer iteration in the dry run.
DRY_BATCH = 2
#: Reports and test studies the dry run's diagnostics step reads.
DRY_DIAGNOSTICS = 16
#: Studies of the reduced synthetic folder a dry run on ``--data synthetic`` writes (at full image size).
DRY_STUDIES = 64


@dataclass
class Step:
    """One measured CPU step: what ran, its wall time, counted FLOPs and the samples it processed."""

    stage: str
    name: str
    wall_s: float
    flops: float
    samples: int


class _NoModules:
    """Stands in for FlopCounterMode's module tracker: every count goes to the total only (the tracker's
    hooks fail on no-grad calls inside a training step, e.g. the attention maps of the towers)."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _NoModules:
        return self

    def __exit__(self, *args: Any) -> None:
        return None


def _flop_counter() -> Any:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModules()
    return counter


def _measure(stage: str, name: str, samples: int, fn: Callable[[], Any]) -> tuple[Step, Any]:
    start = time.perf_counter()
    with _flop_counter() as counter:
        result = fn()
    return Step(stage, name, time.perf_counter() - start, float(counter.get_total_flops()), samples), result


# --- 1. inputs --------------------------------------------------------------------------------------------


def required_inputs(data: str, profile: dict, methods: list[str], diagnostics: bool) -> list[tuple[str, str]]:
    """(what, path) of every folder or file the profile's run reads; ``path`` may be an error text."""
    from sista_kit.models.configs import model_config

    needs: list[tuple[str, str]] = []
    if data not in ("synthetic", "iu"):
        needs.append(("data", data))
    pre = profile["pretrain"]
    model = model_config(pre["model"])
    if model["vision_cfg"].get("pretrained_path"):
        needs.append(("vision weights", str(model["vision_cfg"]["pretrained_path"])))
    if model["text_cfg"].get("hf_model_name"):
        needs.append(("text tower", str(model["text_cfg"]["hf_model_name"])))
    if pre.get("tokenizer"):
        needs.append(("tokenizer", str(pre["tokenizer"])))
    encoders = {
        str((METHODS[m]["loss_kwargs"].get("similarity_kwargs") or {}).get("path") or "")
        for m in methods
        if METHODS[m] is not None and METHODS[m]["loss_kwargs"].get("similarity") == "encoder"
    }
    if diagnostics and "encoder" in profile["diagnostics"]["providers"]:
        encoders.add("")
    for path in sorted(encoders):
        needs.append(("sentence encoder", path or _default_encoder()))
    return needs


def _default_encoder() -> str:
    from sista_kit.similarity import default_encoder_path

    try:
        return str(default_encoder_path())
    except ImportError as err:
        return f"(missing: {err})"


def check_inputs(needs: list[tuple[str, str]], pretraining: bool, tasks: list[str]) -> list[str]:
    """Every problem with the inputs, one line each (empty when all are present)."""
    from sista_kit.data.folder import read_manifest, require_dataset_folder

    problems = []
    for what, path in needs:
        p = Path(path)
        if path.startswith("(missing"):
            problems.append(f"{what}: {path}")
        elif what == "data":
            try:
                require_dataset_folder(p, what="--data")
            except FileNotFoundError as err:
                problems.append(str(err))
                continue
            missing = [
                s
                for s in (["pretrain"] if pretraining else []) + ["train", "test"]
                if not (p / "splits" / f"{s}.txt").is_file()
            ]
            if missing:
                problems.append(f"--data {p}: no split file(s) {', '.join(missing)} under splits/")
            elif pretraining and not any(
                str(r.get("report") or "").strip() for r in read_manifest(p, "pretrain")
            ):
                problems.append(f"--data {p}: the pretraining split has no report to pretrain on")
            else:
                problems.extend(task_data_problems(p, tasks))
        elif what == "vision weights" and not p.is_file():
            problems.append(f"{what}: no file {p}")
        elif (
            what != "vision weights"
            and not (p / ("tokenizer.json" if what == "tokenizer" else "config.json")).is_file()
        ):
            problems.append(f"{what}: {p} is not a local model folder (no config.json / tokenizer.json)")
    return problems


# --- 2. data and build ------------------------------------------------------------------------------------


def _dry_data(data: str, profile: dict, work: Path) -> Path:
    """The folder the steps read: the given one, or a reduced synthetic / IU folder at full image size."""
    if data != "synthetic":
        return prepare_data(data, profile, work)
    small = dict(profile, data=dict(profile["data"], num_samples=DRY_STUDIES))
    return prepare_data("synthetic", small, work)


def _counts(data: str, profile: dict, root: Path) -> dict[str, int]:
    """Studies per split that the full run reads (the profile's synthetic size, else the folder's)."""
    from sista_kit.data.folder import DEFAULT_SPLIT_FRACTIONS

    if data == "synthetic":
        n = profile["data"]["num_samples"]
        fractions = profile["data"].get("split_fractions") or DEFAULT_SPLIT_FRACTIONS
        return {s: int(round(f * n)) for s, f in fractions.items()}
    return {s: len((root / "splits" / f"{s}.txt").read_text().split()) for s in ("pretrain", "train", "test")}


def build_everything(
    methods: list[str], tasks: list[str], fractions: list[float], profile: dict, root: Path, work: Path
) -> list[str]:
    """Build every pretraining config, model and loss and every transfer config; one line per kind."""
    from sista_kit.data.folder import read_manifest
    from sista_kit.models.clip import build_model
    from sista_kit.models.configs import model_config
    from sista_kit.train import PretrainConfig
    from sista_kit.train.pretrain import build_training_loss

    lines = []
    pretrained = [m for m in methods if METHODS[m] is not None]
    if pretrained:
        corpus = [r["report"] for r in read_manifest(root, "pretrain") if str(r.get("report") or "").strip()]
        cfgs = [PretrainConfig.from_dict(pretrain_config(m, 0, profile, root, "cpu")) for m in pretrained]
        mcfg = model_config(cfgs[0].model, vision_cfg={"image_size": cfgs[0].image_size})
        model = build_model(mcfg)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        del model
        losses = [
            build_training_loss(c.loss, c.loss_kwargs, int(mcfg["embed_dim"]), corpus[:2000]) for c in cfgs
        ]
        lines.append(
            f"{len(cfgs)} pretraining configs and losses ({', '.join(type(x).__name__ for x in losses)})"
        )
        lines.append(f"model {cfgs[0].model}: {params:.1f} M parameters at {cfgs[0].image_size} px")
    arch = random_arch(profile, root)
    built = 0
    for task in tasks:
        for fraction in fractions:
            options = transfer_options(
                task, profile, subset_info(task, fraction, 0, profile, root)["n_train"], root
            )
            if task in ("seg", "det"):
                from sista_kit.downstream.mmrun import prepare_config

                prepare_config(
                    task,
                    checkpoint="random",
                    arch=arch,
                    data_root=root,
                    out=work / "configs",
                    fraction=fraction,
                    progress=False,
                    **options,
                )
            built += 1
    lines.append(
        f"{built} transfer configs ({', '.join(tasks)} x {len(fractions)} label fractions; backbone {arch})"
    )
    return lines


# --- 3. steps ---------------------------------------------------------------------------------------------


def _text_similarity(cfgs: dict[str, dict]) -> tuple[str | None, dict]:
    """The first text report-similarity provider (name, options) among the methods' configs."""
    from sista_kit.similarity import PROVIDERS, TextReportSimilarity

    for cfg in cfgs.values():
        name = cfg["loss_kwargs"].get("similarity")
        if isinstance(name, str) and issubclass(PROVIDERS.get(name, object), TextReportSimilarity):
            return name, dict(cfg["loss_kwargs"].get("similarity_kwargs") or {})
    return None, {}


def _pretrain_steps(methods: list[str], profile: dict, root: Path, work: Path) -> tuple[list[Step], str]:
    """One pretraining step of every method from shards of the pretraining split (carrying the report
    embeddings of the first text similarity provider, as at scale); (steps, a checkpoint)."""
    from sista_kit.train import PretrainConfig, pretrain
    from sista_kit.train.shards import write_training_shards

    cfgs = {m: pretrain_config(m, 0, profile, root, "cpu") for m in methods if METHODS[m] is not None}
    similarity, options = _text_similarity(cfgs)
    shards = write_training_shards(
        root, work / "shards", max_count=256, similarity=similarity, similarity_kwargs=options, progress=False
    )
    steps, checkpoint = [], "random"
    for i, method in enumerate(cfgs):
        cfg = dict(
            cfgs[method],
            data=str(shards),
            dataset_type="webdataset",
            train_num_samples=DRY_BATCH,
            batch_size=DRY_BATCH,
            epochs=1,
            precision="fp32",
            val_split=None,
            logs=str(work / "pretrain"),
            name=method,
            progress=False,
            save_frequency=1 if i == 0 else 0,
            log_every_n_steps=1,
        )
        step, ckpt = _measure(
            "pretrain", method, DRY_BATCH, lambda c=cfg: pretrain(PretrainConfig.from_dict(c))
        )
        steps.append(step)
        if i == 0:
            checkpoint = str(ckpt)
    return steps, checkpoint


def _transfer_samples(task: str, n_train: int, options: dict, n_test: int) -> int:
    """Samples a transfer unit puts through the encoder: training (cls / loc: one feature pass), testing."""
    if task in ("cls", "loc"):
        return n_train + n_test
    return int(options["iters"]) * int(options.get("batch_size", 8)) + n_test


def _transfer_steps(
    tasks: list[str], fractions: list[float], profile: dict, root: Path, work: Path, checkpoint: str
) -> list[Step]:
    """One transfer iteration of every task (smallest label fraction) from the dry run's checkpoint."""
    arch = random_arch(profile, root)
    n_test = len((root / "splits" / "test.txt").read_text().split())
    steps = []
    fraction = min(fractions)
    for task in tasks:
        counts = subset_info(task, fraction, 0, profile, root)
        options = transfer_options(task, profile, counts["n_train"], root)
        options = dict(options, max_iter=1) if task == "loc" else dict(options, iters=1)
        if task in ("seg", "det"):
            options["batch_size"] = DRY_BATCH
        samples = _transfer_samples(task, counts["n_train"], options, n_test)
        unit = work / "transfer" / task
        args = (
            "dry-run",
            task,
            fraction,
            0,
            0,
            checkpoint,
            arch,
            options,
            counts,
            str(root),
            str(unit),
            "cpu",
        )
        step, _ = _measure("transfer", task, samples, lambda a=args: transfer_unit(*a))
        steps.append(step)
    return steps


def _diagnostics_step(profile: dict, root: Path, work: Path, checkpoint: str, method: str) -> Step:
    """False-negative detection of every provider and retrieval / grounding of the dry run's checkpoint,
    on ``DRY_DIAGNOSTICS`` reports and test studies."""
    from sista_kit.data.folder import read_manifest

    from .diagnose import fn_records, method_records
    from .pipeline import Ledger

    small = dict(profile, diagnostics=dict(profile["diagnostics"], samples=DRY_DIAGNOSTICS))
    small["diagnostics"]["fn_samples"] = DRY_DIAGNOSTICS
    samples = min(DRY_DIAGNOSTICS, len(read_manifest(root, "pretrain"))) + min(
        DRY_DIAGNOSTICS, len(read_manifest(root, "test"))
    )

    def run() -> None:
        fn_records(root, small, Ledger(), work)  # into work/diagnostics/, as a run writes OUT/diagnostics/
        method_records({(method, 0): Path(checkpoint)}, None, 1, root, small, Ledger(), work)

    return _measure("diagnostics", "all", samples, run)[0]


# --- 4. plan ----------------------------------------------------------------------------------------------


def plan_rows(
    steps: list[Step],
    methods: list[str],
    tasks: list[str],
    fractions: list[float],
    seeds: int,
    profile: dict,
    root: Path,
    counts: dict[str, int],
    scaled: bool,
) -> list[dict[str, Any]]:
    """Per stage: units, samples processed, FLOPs and the extrapolated GPU time of the full profile
    (``scaled``: ``counts`` are the profile's synthetic sizes, not those of the folder ``root``)."""
    pre = profile["pretrain"]
    rows = []
    by_name = {(s.stage, s.name): s for s in steps}
    pretrained = [m for m in methods if METHODS[m] is not None]
    if pretrained:
        # the folder loader drops the incomplete global batch (a single GPU's batch here)
        per_unit = pre["epochs"] * (counts["pretrain"] // pre["batch_size"]) * pre["batch_size"]
        step_list = [by_name[("pretrain", m)] for m in pretrained]
        flops = sum(seeds * per_unit * s.flops / s.samples for s in step_list)
        cpu_s = sum(seeds * per_unit * s.wall_s / s.samples for s in step_list)
        rows.append(
            dict(
                stage="pretrain",
                units=len(pretrained) * seeds,
                samples=per_unit * len(step_list) * seeds,
                flops=flops,
                cpu_s=cpu_s,
                batch=pre["batch_size"],
            )
        )
    n_test = counts["test"]
    for task in tasks:
        s = by_name[("transfer", task)]
        samples = 0
        for fraction in fractions:
            if scaled:
                n_train = max(1, round(fraction * counts["train"]))
            else:
                n_train = subset_info(task, fraction, 0, profile, root)["n_train"]
            options = transfer_options(task, profile, n_train, root)
            samples += _transfer_samples(task, n_train, options, n_test) * len(methods) * seeds
        rows.append(
            dict(
                stage=f"transfer {task}",
                units=len(fractions) * len(methods) * seeds,
                samples=samples,
                flops=samples * s.flops / s.samples,
                cpu_s=samples * s.wall_s / s.samples,
            )
        )
    if ("diagnostics", "all") in by_name:
        s = by_name[("diagnostics", "all")]
        spec = profile["diagnostics"]
        evaluated = len(pretrained) * seeds + (seeds if "random" in methods else 0)
        tested = min(spec["samples"], counts["test"])
        samples = tested * evaluated + min(spec.get("fn_samples", spec["samples"]), counts["pretrain"])
        rows.append(
            dict(
                stage="diagnostics",
                units=evaluated + 1,
                samples=samples,
                flops=samples * s.flops / s.samples,
                cpu_s=samples * s.wall_s / s.samples,
            )
        )
    for row in rows:
        row["gpu_s"] = row["flops"] / (ASSUMED_GPU_TFLOPS * 1e12)
    return rows


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def format_report(
    data: str, root: Path, counts: dict, needs, built: list[str], steps: list[Step], rows, wall_s: float
) -> str:
    """The dry run's printed plan."""
    import torch

    out = [
        f"dry run on {data} (steps read {root}; CPU, {torch.get_num_threads()} threads)",
        "",
    ]
    out.append("inputs (all present):")
    out.append(
        f"  data                {data}: pretrain {counts['pretrain']}, train {counts['train']}, "
        f"test {counts['test']} studies"
    )
    for what, path in needs:
        if what != "data":
            out.append(f"  {what:<19} {path}")
    if not any(w in ("vision weights", "text tower") for w, _ in needs):
        out.append("  towers              built from their configs (the profile names no local weights)")
    out += ["", "built:"] + [f"  {line}" for line in built]
    out += ["", "steps (measured on this CPU; wall time includes building the model and the run's setup):"]
    out.append(f"  {'stage':<12} {'unit':<12} {'wall s':>8} {'GFLOP':>10} {'samples':>8}")
    for s in steps:
        out.append(f"  {s.stage:<12} {s.name:<12} {s.wall_s:>8.1f} {s.flops / 1e9:>10.1f} {s.samples:>8d}")
    out += ["", "plan of the full run (EXTRAPOLATION, not a measurement):"]
    out.append(
        f"  {'stage':<14} {'units':>6} {'samples':>12} {'PFLOP':>10} {'GPU (est.)':>12} {'this CPU':>12}"
    )
    for r in rows:
        out.append(
            f"  {r['stage']:<14} {r['units']:>6d} {r['samples']:>12,d} {r['flops'] / 1e15:>10.2f} "
            f"{_hours(r['gpu_s']):>12} {_hours(r['cpu_s']):>12}"
        )
    if rows and rows[0]["stage"] == "pretrain" and rows[0]["samples"] == 0:
        out.append(
            f"  warning: {counts['pretrain']} pretraining studies cannot fill one batch of "
            f"{rows[0]['batch']}: the full run would stop at pretraining on this folder"
        )
    total = sum(r["gpu_s"] for r in rows)
    out.append(
        f"  {'total':<14} {'':>6} {'':>12} {sum(r['flops'] for r in rows) / 1e15:>10.2f} {_hours(total):>12}"
    )
    out += [
        "",
        "How the estimate is made: FLOPs per sample counted (torch.utils.flop_counter) in the CPU steps "
        "above, "
        f"times the samples each stage of the full profile processes, divided by an assumed sustained "
        f"{ASSUMED_GPU_TFLOPS:g} TFLOP/s per GPU; 'this CPU' scales the measured wall time per sample "
        "instead. "
        "GPU throughput has not been measured (this machine has no GPU). Not included: data loading, "
        "held-out retrieval each epoch, and multi-GPU speed-up (divide by the GPUs "
        "that share a stage's units).",
        f"dry run wall time: {wall_s:.0f} s",
    ]
    return "\n".join(out)


def dry_run(
    data: str,
    profile: dict,
    tasks: list[str],
    methods: list[str],
    fractions: list[float],
    seeds: int,
    out: Path,
    diagnostics: bool = True,
) -> int:
    """Run the dry run into ``out/dry-run`` (replaced), print the plan and write ``plan.json``; 0 when every
    check and step passed, 2 when inputs are missing (nothing is run then)."""
    start = time.perf_counter()
    pretraining = any(METHODS[m] is not None for m in methods)
    needs = required_inputs(data, profile, methods, diagnostics)
    problems = check_inputs(needs, pretraining, tasks)
    if problems:
        print("dry run: missing inputs, nothing was run:\n" + "\n".join(f"  - {p}" for p in problems))
        return 2
    work = out / "dry-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = _dry_data(data, profile, work)
    if image_size_of(root) <= 0:
        raise ValueError(f"{root}: meta.json records no image size")
    counts = _counts(data, profile, root)
    built = build_everything(methods, tasks, fractions, profile, root, work)
    steps, checkpoint = _pretrain_steps(methods, profile, root, work) if pretraining else ([], "random")
    steps += _transfer_steps(tasks, fractions, profile, root, work, checkpoint)
    if diagnostics and pretraining:  # as in a run: diagnostics evaluate pretrained checkpoints
        first = next(m for m in methods if METHODS[m] is not None)
        steps.append(_diagnostics_step(profile, root, work, checkpoint, first))
    rows = plan_rows(steps, methods, tasks, fractions, seeds, profile, root, counts, data == "synthetic")
    wall = time.perf_counter() - start
    report = format_report(data, root, counts, needs, built, steps, rows, wall)
    print(report)
    (work / "plan.txt").write_text(report + "\n")
    (work / "plan.json").write_text(
        json.dumps(
            {
                "steps": [vars(s) for s in steps],
                "plan": rows,
                "assumed_gpu_tflops": ASSUMED_GPU_TFLOPS,
                "wall_s": wall,
            },
            indent=1,
        )
    )
    return 0
