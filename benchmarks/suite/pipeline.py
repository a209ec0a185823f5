"""The benchmark's work: data -> pretraining per method and seed -> transfer per task/fraction -> diagnostics.

Every unit of work leaves a ``result.json`` when it finishes; a re-run (``--resume``) skips those, and
pretraining is cached by a hash of its configuration, so added methods or tasks reuse what exists. Units
are independent, so :func:`run_units` runs them in several processes (one thread each) when asked.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sista_kit.data.folder import read_meta
from sista_kit.io import write_json_atomic

from .profiles import METHODS


def config_hash(obj: Any) -> str:
    """Short stable hash of a JSON-able configuration."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class Ledger:
    """What a run did: units executed, units reused, wall time per stage."""

    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    wall_s: dict[str, float] = field(default_factory=dict)
    #: wall time of every unit this run's results come from, reused ones included
    unit_wall_s: float = 0.0

    def cached(self, path: Path, name: str) -> dict[str, Any] | None:
        if path.is_file():
            self.reused.append(name)
            payload = json.loads(path.read_text())
            self.unit_wall_s += float(payload.get("wall_s", 0.0))
            return payload
        return None

    def ran_unit(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.ran.append(name)
        self.unit_wall_s += float(payload.get("wall_s", 0.0))
        return payload

    def record(self, path: Path, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        write_json_atomic(
            path, payload, indent=1, default=str
        )  # a unit counts as done only once its result is complete on disk
        return self.ran_unit(name, payload)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def run_units(
    fn: Callable[..., dict[str, Any]], jobs: list[tuple], workers: int, desc: str
) -> Iterable[tuple[tuple, dict[str, Any]]]:
    """Run ``fn(*job)`` for every job, in ``workers`` processes (inline for 1), yielding (job, result) as
    they finish, with a progress bar."""
    from tqdm.auto import tqdm

    if not jobs:
        return
    bar = tqdm(total=len(jobs), desc=desc, unit="run")
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            yield job, fn(*job)
            bar.update()
        bar.close()
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_worker_init) as pool:
        futures = {pool.submit(fn, *job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except BaseException as err:  # stop at once: the other units are not waited for
                pool.shutdown(wait=False, cancel_futures=True)
                raise RuntimeError(f"{desc} unit {job[:2]} failed: {err}") from err
            yield job, result
            bar.update()
    bar.close()


def prepare_data(data: str, profile: dict[str, Any], out: Path) -> Path:
    """The dataset folder: the embedded synthetic data (written once), the IU track, or a written folder."""
    from sista_kit.data.folder import require_dataset_folder, synthetic_folder_name
    from sista_kit.train.data import prepare_dataset_folder

    spec = profile["data"]
    n, seed, size = spec["num_samples"], spec["seed"], spec["image_size"]
    if data == "synthetic":
        splits = spec.get("split_fractions")
        folder = out / "data" / synthetic_folder_name(n, seed, size, splits)
        return prepare_dataset_folder(
            "synthetic", str(folder), str(out), n, seed, size, is_master=True, split_fractions=splits
        )
    if data == "iu":
        from sista_kit.data.iu import write_iu_dataset

        return Path(write_iu_dataset(out / "data" / f"iu-s{seed}-{size}", seed=seed, image_size=size))
    return require_dataset_folder(data, what="--data")


def image_size_of(data_root: Path) -> int:
    return int(read_meta(data_root)["image_size"])


def is_synthetic(data_root: Path) -> bool:
    """Whether a dataset folder holds the embedded synthetic data (its meta records the generator's
    arguments), whose reports name only the generator's seven findings."""
    return "normal_fraction" in read_meta(data_root)


def task_targets(data_root: Path, task: str) -> list[str]:
    """The classes a prepared real dataset names for ``task`` in ``meta.json`` (empty when it names none)."""
    return list((read_meta(data_root).get("targets") or {}).get(task) or ())


def task_data_problems(data_root: Path, tasks: list[str]) -> list[str]:
    """What a dataset folder lacks for the tasks asked for, one line each (checked before pretraining):
    ``loc`` reads per-finding masks (``findings_mask``) of its train, val and test studies."""
    from sista_kit.data.folder import read_manifest

    problems = []
    if "loc" in tasks:
        manifest = read_manifest(data_root)
        for split in ("train", "val", "test"):
            rows = [r for r in manifest if r["split"] == split]
            without = [str(r.get("id")) for r in rows if not r.get("findings_mask")]
            if without:
                problems.append(
                    f"--tasks loc: {len(without)} of {len(rows)} {split} studies of {data_root} have no "
                    f"per-finding mask ('findings_mask' in manifest.jsonl), e.g. {', '.join(without[:3])}"
                )
    return problems


def pretrain_config(method: str, seed: int, profile: dict[str, Any], data_root: Path, device: str) -> dict:
    """The pretraining configuration of one (method, pretraining seed): model init and data order vary
    with the seed, the dataset does not."""
    spec = METHODS[method]
    loss_kwargs = json.loads(json.dumps(spec["loss_kwargs"]))
    if loss_kwargs.get("similarity") == "findings" and not is_synthetic(data_root):
        loss_kwargs["similarity_kwargs"] = {**loss_kwargs.get("similarity_kwargs", {}), "classes": "all"}
    return dict(
        profile["pretrain"],
        loss=spec["loss"],
        loss_kwargs=loss_kwargs,
        data=str(data_root),
        image_size=image_size_of(data_root),
        device=device,
        seed=int(seed),
        workers=0,
    )


def pretrain_dir(out: Path, method: str, seed: int, cfg: dict[str, Any]) -> Path:
    return out / "pretrain" / f"{method}-s{seed}-{config_hash(cfg)}"


def pretrain_unit(method: str, seed: int, cfg: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Pretrain one (method, seed) into ``run_dir`` (resuming its last checkpoint); returns its record."""
    from sista_kit.train import PretrainConfig, pretrain

    run_dir_p = Path(run_dir)
    ckpts = run_dir_p / "checkpoints"
    resume = "latest" if ckpts.is_dir() and any(ckpts.iterdir()) else None
    start = time.perf_counter()
    checkpoint = pretrain(
        PretrainConfig.from_dict(
            dict(
                cfg,
                logs=str(run_dir_p.parent),
                name=run_dir_p.name,
                resume=resume,
                progress=False,
                save_frequency=1,
                keep_checkpoints=1,
            )
        )
    )
    payload = {
        "method": method,
        "pretrain_seed": seed,
        "checkpoint": str(checkpoint),
        "run_dir": str(run_dir_p),
        "config": cfg,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(run_dir_p / "result.json", payload, indent=1, default=str)
    return payload


def random_arch(profile: dict[str, Any], data_root: Path) -> str:
    """``model_name:image_size:in_chans`` of the profile's vision tower, for the random-init rows."""
    from sista_kit.models.checkpoint import vision_spec
    from sista_kit.models.configs import model_config

    name, _, in_chans = vision_spec(model_config(profile["pretrain"]["model"]))
    return f"{name}:{image_size_of(data_root)}:{in_chans}"


#: The metrics each task reports in the tables (all returned metrics go to results.json).
HEADLINE = {
    "cls": ("auroc",),
    "seg": ("mDice_fg",),
    "det": ("mgca_bbox_mAP", "coco_bbox_mAP"),
    "loc": ("patch_mAP",),
}


def target_classes(task: str, profile: dict[str, Any], data_root: Path) -> list[str]:
    """The classes a task's label subsets must hold positives of: every class for cls and loc, the
    target for seg (background excluded) and det."""
    classes = task_targets(data_root, task)  # a prepared real dataset's own targets
    if task in ("cls", "loc"):
        return classes or list(read_meta(data_root)["class_names"])
    classes = classes or list(profile[task].get("classes") or ())
    return classes[1:] if task == "seg" else classes


def subset_info(task: str, fraction: float, seed: int, profile: dict[str, Any], data_root: Path) -> dict:
    """``n_train`` and ``n_pos`` of the label subset a transfer trains on (the runners select it the same
    way: :func:`sista_kit.downstream.fractions.select_fraction` with the task's labels)."""
    from sista_kit.downstream.fractions import id_positions, manifest_labels, select_fraction, subset_counts

    ids = (data_root / "splits" / "train.txt").read_text().split()
    labels = manifest_labels(data_root, ids, target_classes(task, profile, data_root))
    return subset_counts(labels[id_positions(ids, select_fraction(ids, fraction, seed, labels=labels))])


def transfer_options(
    task: str, profile: dict[str, Any], n_train: int, data_root: Path | None = None
) -> dict[str, Any]:
    """The runner options of a task: a schedule in epochs becomes iterations over the subset; seg / det
    classes come from the dataset folder's ``meta.json`` targets when it names them."""
    options = dict(profile[task])
    if data_root is not None and task in ("seg", "det"):
        targets = task_targets(data_root, task)
        if targets:
            options["classes"] = tuple(targets)
    epochs = options.pop("epochs", None)
    low, high = options.pop("min_iters", 1), options.pop("max_iters", None)
    if epochs is not None:
        iters = math.ceil(epochs * n_train / options.get("batch_size", 8))
        options["iters"] = int(min(max(iters, low), high or iters))
    return options


def transfer_unit(
    method: str,
    task: str,
    fraction: float,
    seed: int,
    pretrain_seed: int,
    checkpoint: str,
    arch: str | None,
    options: dict[str, Any],
    counts: dict[str, int],
    data_root: str,
    unit: str,
    device: str,
) -> dict[str, Any]:
    """One transfer run; writes and returns its record."""
    from sista_kit.downstream import run_cls, run_det, run_loc, run_seg

    kwargs = dict(
        options, data_root=data_root, fraction=fraction, seed=seed, out=f"{unit}/work", device=device
    )
    kwargs["progress"] = False
    if checkpoint == "random":
        kwargs["arch"] = arch
    start = time.perf_counter()
    runner = {"cls": run_cls, "seg": run_seg, "det": run_det, "loc": run_loc}[task]
    metrics = runner(checkpoint, **kwargs)
    for head in Path(unit, "work").rglob("*.pth"):  # the heads' weights (18 MB each) are not reused
        head.unlink()
    payload = {
        "method": method,
        "task": task,
        "fraction": fraction,
        "seed": seed,
        "pretrain_seed": pretrain_seed,
        **counts,
        "iters": kwargs.get("iters"),
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        "wall_s": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(Path(unit) / "result.json", payload, indent=1, default=str)
    return payload


def transfer_dir(
    out: Path,
    method: str,
    task: str,
    fraction: float,
    seed: int,
    checkpoint: str,
    arch: str | None,
    options: dict[str, Any],
    data_root: Path,
) -> Path:
    # keyed by the transfer settings and the checkpoint too: changed settings never reuse stale results
    settings = config_hash([options, checkpoint, arch if checkpoint == "random" else None, str(data_root)])
    return out / "transfer" / method / task / settings / f"f{fraction:g}-s{seed}"
