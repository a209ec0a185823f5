"""The benchmark's work: data -> pretraining per method -> transfer per task/fraction/seed -> diagnostics.

Every unit of work leaves a ``result.json`` when it finishes; a re-run (``--resume``) skips those, and
pretraining is cached by a hash of its configuration, so added methods or tasks reuse what exists.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def record(self, path: Path, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(path)  # a unit counts as done only once its result is complete on disk
        self.ran.append(name)
        self.unit_wall_s += float(payload.get("wall_s", 0.0))
        return payload


def prepare_data(data: str, profile: dict[str, Any], out: Path) -> Path:
    """The dataset folder: the embedded synthetic data (written once) or a written dataset folder."""
    from sista_kit.data import build_synthetic

    spec = profile["data"]
    if data == "synthetic":
        folder = out / "data" / f"synthetic-n{spec['num_samples']}-s{spec['seed']}-{spec['image_size']}"
        return Path(
            build_synthetic(folder, spec["num_samples"], seed=spec["seed"], image_size=spec["image_size"])
        )
    if data == "iu":
        from sista_kit.data.iu import write_iu_dataset

        folder = out / "data" / f"iu-s{spec['seed']}-{spec['image_size']}"
        return Path(write_iu_dataset(folder, seed=spec["seed"], image_size=spec["image_size"]))
    folder = Path(data)
    if not (folder / "manifest.jsonl").is_file():
        raise FileNotFoundError(
            f"--data {data}: no manifest.jsonl there (expected 'synthetic', 'iu' or a dataset folder)"
        )
    return folder


def image_size_of(data_root: Path) -> int:
    meta = data_root / "meta.json"
    return int(json.loads(meta.read_text())["image_size"])


def pretrain_method(
    method: str, profile: dict[str, Any], data_root: Path, out: Path, device: str, ledger: Ledger
) -> Path:
    """Pretrain ``method`` (cached by its configuration hash); returns its checkpoint folder."""
    from sista_kit.train import PretrainConfig, pretrain

    spec = METHODS[method]
    cfg = dict(
        profile["pretrain"],
        loss=spec["loss"],
        loss_kwargs=spec["loss_kwargs"],
        data=str(data_root),
        image_size=image_size_of(data_root),
        device=device,
        seed=0,
        workers=0,
    )
    name = f"{method}-{config_hash(cfg)}"
    done = out / "pretrain" / name / "result.json"
    cached = ledger.cached(done, f"pretrain/{method}")
    if cached is not None:
        return Path(cached["checkpoint"])
    run_dir = out / "pretrain" / name
    resume = (
        "latest" if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()) else None
    )
    start = time.perf_counter()
    checkpoint = pretrain(
        PretrainConfig.from_dict(
            dict(
                cfg,
                logs=str(out / "pretrain"),
                name=name,
                resume=resume,
                progress=True,
                save_frequency=1,
                keep_checkpoints=1,
            )
        )
    )
    wall = time.perf_counter() - start
    ledger.record(
        done,
        f"pretrain/{method}",
        {"method": method, "checkpoint": str(checkpoint), "config": cfg, "wall_s": round(wall, 1)},
    )
    return Path(checkpoint)


def random_arch(profile: dict[str, Any], data_root: Path) -> str:
    """``model_name:image_size:in_chans`` of the profile's vision tower, for the random-init rows."""
    from sista_kit.models.checkpoint import vision_spec
    from sista_kit.models.configs import model_config

    name, _, in_chans = vision_spec(model_config(profile["pretrain"]["model"]))
    return f"{name}:{image_size_of(data_root)}:{in_chans}"


#: The metrics each task reports in the tables (all returned metrics go to results.json).
HEADLINE = {"cls": ("auroc",), "seg": ("mDice_fg",), "det": ("mgca_bbox_mAP", "coco_bbox_mAP")}


def transfer(
    method: str,
    task: str,
    fraction: float,
    seed: int,
    checkpoint: str,
    arch: str | None,
    profile: dict[str, Any],
    data_root: Path,
    out: Path,
    device: str,
    ledger: Ledger,
) -> dict[str, float]:
    """One transfer run; returns its metrics (reused when its result.json exists)."""
    from sista_kit.downstream import run_cls, run_det, run_seg

    # keyed by the transfer settings and the checkpoint too: changed settings never reuse stale results
    settings = config_hash(
        [profile[task], checkpoint, arch if checkpoint == "random" else None, str(data_root)]
    )
    unit = out / "transfer" / method / task / settings / f"f{fraction:g}-s{seed}"
    name = f"transfer/{method}/{task}/{fraction:g}/{seed}"
    cached = ledger.cached(unit / "result.json", name)
    if cached is not None:
        return cached["metrics"]
    options = dict(
        profile[task],
        data_root=str(data_root),
        fraction=fraction,
        seed=seed,
        out=str(unit / "work"),
        device=device,
        progress=False,
    )
    if checkpoint == "random":
        options["arch"] = arch
    start = time.perf_counter()
    runner = {"cls": run_cls, "seg": run_seg, "det": run_det}[task]
    metrics = runner(checkpoint, **options)
    payload = {
        "method": method,
        "task": task,
        "fraction": fraction,
        "seed": seed,
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        "wall_s": round(time.perf_counter() - start, 1),
    }
    return ledger.record(unit / "result.json", name, payload)["metrics"]
