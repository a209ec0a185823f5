"""End to end on prepared replicas (slow): official layout -> sista-prepare -> pretraining / transfer.

Two paths: the library runners with the folder's own targets (``meta.json["targets"]``), and the
benchmark runner ``benchmarks/run.py --data FOLDER --profile smoke`` as a user calls it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import replicas

from sista_kit.data.prepare import prepare

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SIZE = 64
ARCH = f"sista_vit_tiny:{SIZE}:1"
#: dataset -> (benchmark methods, task)
RUNS = {
    "mimic-cxr": ("sista", "cls"),
    "chexpert": ("random", "cls"),
    "covidx": ("random", "cls"),
    "siim": ("random", "seg"),
    "rsna": ("random", "det"),
    "object-cxr": ("random", "det"),
}


def _prepared(name: str, root: Path) -> Path:
    if name == "mimic-cxr":
        jpg, rep = replicas.mimic(root / "raw", n=96)
        return prepare(
            name, jpg, root / "data", image_size=SIZE, progress=False, reports=str(rep), probe_fraction=0.5
        )
    build = {
        "chexpert": replicas.chexpert,
        "covidx": replicas.covidx,
        "siim": replicas.siim,
        "rsna": replicas.rsna,
        "object-cxr": replicas.object_cxr,
    }[name]
    return prepare(name, build(root / "raw"), root / "data", image_size=SIZE, progress=False)


def _pretrain(folder: Path, logs: Path) -> Path:
    from sista_kit.train import PretrainConfig, pretrain

    cfg = PretrainConfig.from_dict(
        dict(
            model="sista-tiny",
            data=str(folder),
            image_size=SIZE,
            loss="sista",
            loss_kwargs={"similarity": "labels"},
            epochs=1,
            batch_size=8,
            lr=1e-3,
            warmup=1,
            max_length=48,
            vocab_size=300,
            val_split=None,
            workers=0,
            logs=str(logs),
            name="mimic",
            progress=False,
        )
    )
    return Path(pretrain(cfg))


def _cls_splits(folder: Path, classes: list[str]) -> dict:
    """The folder's classification splits with the labels of its target classes only (MGCA: CheXpert's
    five competition tasks; COVIDx / RSNA their one finding)."""
    from sista_kit.downstream.cls_data import ClsSplit, load_cls_splits

    names = json.loads((folder / "meta.json").read_text())["class_names"]
    cols = [names.index(c) for c in classes]
    return {k: ClsSplit(v.ids, v.images, v.labels[:, cols]) for k, v in load_cls_splits(folder).items()}


@pytest.mark.parametrize("name", list(RUNS))
def test_library_transfer_on_prepared_folder(tmp_path, name):
    from sista_kit.downstream import run_cls, run_det, run_seg

    folder = _prepared(name, tmp_path)
    targets = json.loads((folder / "meta.json").read_text())["targets"]
    _, task = RUNS[name]
    common = dict(data_root=str(folder), out=str(tmp_path / "work"), device="cpu", progress=False)
    if task == "cls":
        checkpoint = _pretrain(folder, tmp_path / "logs") if name == "mimic-cxr" else "random"
        splits = _cls_splits(folder, targets["cls"])
        common.pop("data_root")
        arch = None if checkpoint != "random" else ARCH
        metrics = run_cls(checkpoint, splits=splits, arch=arch, iters=20, **common)
        assert metrics["auroc_classes"] == len(targets["cls"])
    else:
        runner = run_seg if task == "seg" else run_det
        metrics = runner("random", arch=ARCH, iters=2, batch_size=4, classes=tuple(targets[task]), **common)
    key = {"cls": "auroc", "seg": "mDice", "det": "coco_bbox_mAP"}[task]
    assert key in metrics and math.isfinite(metrics[key]), metrics


@pytest.mark.parametrize("name", list(RUNS))
def test_benchmark_smoke_on_prepared_folder(tmp_path, name):
    folder = _prepared(name, tmp_path)
    methods, task = RUNS[name]
    out = tmp_path / "bench"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "run.py"),
        "--data",
        str(folder),
        "--profile",
        "smoke",
        "--methods",
        methods,
        "--tasks",
        task,
        "--out",
        str(out),
        "--no-diagnostics",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = json.loads((out / "results.json").read_text())
    mine = [r for r in records if r["task"] == task and r["method"] == methods]
    assert mine and all(math.isfinite(r["value"]) for r in mine)
    # the transfer learnt the folder's own target (meta.json["targets"]), not the embedded data's
    full = [r for r in mine if r["fraction"] == 1.0]
    assert full and all(r.get("n_pos", 1) > 0 for r in full), sorted(
        {(r["metric"], r.get("n_pos")) for r in full}
    )
