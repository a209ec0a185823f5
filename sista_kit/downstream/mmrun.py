"""Segmentation and detection through mmengine's Runner, from a shipped (or user) config file.

``run_seg`` / ``run_det`` load the config, point it at the checkpoint, data, label fraction, seed
and schedule, adapt the neck / head to the backbone's channels and strides, train, test, and
write ``metrics.json`` and the head's training-loss curve ``head_loss.csv`` beside mmengine's
checkpoints in ``out``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os.path as osp
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sista_kit.models.spec import VisionSpec

from .configs import config_path
from .encoder import RANDOM, resolve_spec
from .features import encoder_geometry
from .results import write_metrics

DEFAULT_CONFIGS = {"seg": "seg_fpn_vit_synthetic", "det": "det_retinanet_vit_synthetic"}
DEFAULT_RESNET_CONFIGS = {"seg": "seg_unet_resnet_synthetic", "det": "det_retinanet_resnet_synthetic"}
DET_KEYS = (
    "coco_bbox_mAP",
    "coco_bbox_mAP_50",
    "coco_bbox_mAP_75",
    "coco_bbox_mAP_s",
    "coco_bbox_mAP_m",
    "coco_bbox_mAP_l",
    "mgca_bbox_mAP",
)
EVAL_SPLITS = ("test", "val")


def _import_mm(task: str) -> None:
    lib = {"seg": "mmseg", "det": "mmdet"}[task]
    try:
        __import__(lib)
        import mmcv.ops  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"the {task} task needs {lib} and mmcv with its compiled ops ({e}); install the extra with "
            "`pip install sista-kit[mm]` (see scripts/install.sh for mmcv's build)"
        ) from e
    from sista_kit.downstream.mm import allow_mmengine_checkpoints  # registers backbones, datasets, hooks

    allow_mmengine_checkpoints()


@contextlib.contextmanager
def _device(device: str | None) -> Iterator[None]:
    """Make mmengine place the model on ``device`` (it otherwise takes CUDA whenever it is visible)."""
    import mmengine.device.utils as dev

    if device is None:
        yield
        return
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and dev.DEVICE != "cuda":
        raise RuntimeError("device='cuda' but mmengine sees no CUDA device")
    old, dev.DEVICE = dev.DEVICE, device
    try:
        yield
    finally:
        dev.DEVICE = old


def _datasets(cfg: Any) -> list[Any]:
    return [
        cfg[k]["dataset"] for k in ("train_dataloader", "val_dataloader", "test_dataloader") if cfg.get(k)
    ]


def _evaluators(cfg: Any) -> list[Any]:
    out = []
    for k in ("val_evaluator", "test_evaluator"):
        ev = cfg.get(k)
        if ev is not None:
            out.extend(ev if isinstance(ev, list) else [ev])
    return out


def _skip_serialisation(cfg: Any) -> None:
    """Keep the annotations of in-process loaders as Python lists: mmengine pickles them to share
    memory with loader workers, and its ``gc.collect()`` after each took ~0.3 s per split."""
    for k in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(k)
        if loader and not loader.get("num_workers", 0):
            loader["dataset"].setdefault("serialize_data", False)


def _set_resize(cfg: Any, size: int) -> None:
    for ds in _datasets(cfg):
        for t in ds.get("pipeline", []):
            if t["type"].split(".")[-1] == "Resize":
                t["scale"] = (size, size)
                t["keep_ratio"] = False
    pre = cfg.model.get("data_preprocessor") or {}
    if "size" in pre:
        pre["size"] = (size, size)


def _set_channels(cfg: Any, in_chans: int) -> None:
    """Grey-scale loading for 1-channel towers; grey replicated to 3 channels otherwise."""
    from sista_kit.data.transforms import MEAN, STD

    if in_chans not in (1, 3):
        raise ValueError(f"image towers with {in_chans} input channels are not supported (1 or 3)")
    for ds in _datasets(cfg):
        for t in ds.get("pipeline", []):
            if t["type"].split(".")[-1] == "LoadImageFromFile":
                t["color_type"] = "grayscale" if in_chans == 1 else "color"
    pre = cfg.model.get("data_preprocessor")
    if pre is not None:
        pre["mean"] = [255.0 * MEAN] * in_chans
        pre["std"] = [255.0 * STD] * in_chans
        pre["bgr_to_rgb"] = False


def _fpn_out_strides(neck: dict, strides: list[int]) -> list[int]:
    start = int(neck.get("start_level", 0))
    end = neck.get("end_level", -1)
    used = strides[start:] if end in (-1, None) else strides[start : int(end) + 1]
    outs = list(used)[: int(neck["num_outs"])]
    while len(outs) < int(neck["num_outs"]):
        outs.append(outs[-1] * 2)
    return outs


def adapt_model(model: dict, channels: list[int], strides: list[int]) -> None:
    """Fit neck and heads of an mmseg / mmdet model dict to the backbone's channels and strides."""
    neck = model.get("neck")
    head_strides = strides
    if neck is not None:
        necks = neck if isinstance(neck, list) else [neck]
        necks[0]["in_channels"] = list(channels)
        if necks[0]["type"].endswith("FPN"):
            head_strides = _fpn_out_strides(necks[0], strides)
    dh = model.get("decode_head")
    if dh is not None:  # mmseg
        if neck is None:
            dh["in_channels"] = list(channels)
        if "feature_strides" in dh:
            dh["feature_strides"] = list(head_strides)[: len(dh["feature_strides"])]
    if "bbox_head" in model:  # one-stage mmdet
        head = model["bbox_head"]
        if "anchor_generator" in head:
            head["anchor_generator"]["strides"] = list(head_strides)
        if "strides" in head:  # FCOS: regression ranges follow the strides (8x stride, as mmdet's defaults)
            head["strides"] = list(head_strides)
            if "regress_ranges" in head:
                bounds = [-1] + [8 * s for s in head_strides[:-1]] + [1e8]
                head["regress_ranges"] = tuple(zip(bounds[:-1], bounds[1:], strict=True))
    if "rpn_head" in model:  # two-stage mmdet
        model["rpn_head"]["anchor_generator"]["strides"] = list(head_strides)
        roi = model["roi_head"]["bbox_roi_extractor"]
        roi["featmap_strides"] = list(head_strides)[: len(roi["featmap_strides"])]


def _set_num_classes(model: dict, n: int) -> None:
    for key in ("decode_head", "auxiliary_head", "bbox_head"):
        if key in model and model[key] is not None:
            model[key]["num_classes"] = n
    if "roi_head" in model:
        model["roi_head"]["bbox_head"]["num_classes"] = n


def _coco_classes(ann_file: str) -> tuple[str, ...]:
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f"COCO annotation file {ann_file} does not exist")
    with open(ann_file) as f:
        cats = json.load(f).get("categories") or []
    if not cats:
        raise ValueError(f"{ann_file} lists no categories")
    return tuple(c["name"] for c in sorted(cats, key=lambda c: c["id"]))


def _backbone_spec(bb: dict, checkpoint: str, arch: str | VisionSpec | None) -> VisionSpec:
    """The backbone's architecture: ``arch`` or the config's fields for ``"random"``, else the
    checkpoint's."""
    if checkpoint == RANDOM and arch is None:
        if not bb.get("model_name"):
            raise ValueError("checkpoint='random' needs an architecture (arch='model_name:size:chans')")
        arch = VisionSpec(bb["model_name"], bb.get("image_size", 64), bb.get("in_chans", 1))
    return resolve_spec(checkpoint, arch)


def _default_config(task: str, checkpoint: str, arch: str | VisionSpec | None) -> str:
    """The shipped config for the tower's family (ViT unless the tower is known to be a ResNet)."""
    family = resolve_spec(checkpoint, arch).family if arch is not None or checkpoint != RANDOM else "vit"
    return (DEFAULT_RESNET_CONFIGS if family == "resnet" else DEFAULT_CONFIGS)[task]


def _set_backbone(cfg: Any, checkpoint: str, arch: str | VisionSpec | None, frozen: bool | None) -> None:
    """Point the backbone at the checkpoint and architecture; fit neck, heads and data to it.

    The backbone is described, not built: the run builds it once, from this config.
    """
    from mmengine.registry import MODELS

    bb = cfg.model.backbone
    bb["checkpoint"] = checkpoint
    bb.pop("init_cfg", None)
    if frozen is not None:
        bb["frozen"] = bool(frozen)
    spec = _backbone_spec(bb, checkpoint, arch)
    kind = getattr(MODELS.get(bb["type"]), "kind", None)
    if kind and kind != spec.family:
        raise TypeError(
            f"{bb['type']} needs a {kind} trunk but {checkpoint} holds {spec.model_name} ({spec.family}); "
            f"use sista_kit.Sista{'ViT' if spec.family == 'vit' else 'ResNet'}"
        )
    bb.update(spec.to_dict())
    channels, strides = encoder_geometry(spec, bb.get("out_indices"), bb.get("scales", (4.0, 2.0, 1.0, 0.5)))
    adapt_model(cfg.model, channels, strides)
    _set_resize(cfg, spec.image_size)
    _set_channels(cfg, spec.in_chans)


def _set_data(cfg: Any, task: str, data_root: str | Path | None, fraction: float, seed: int, classes) -> None:
    """Data root, label fraction and its seed, and the classes to learn."""
    if data_root is not None:
        root = str(Path(data_root).expanduser().resolve())
        for ds in _datasets(cfg):
            ds["data_root"] = root
        for ev in _evaluators(cfg):
            if ev.get("ann_file"):
                ev["ann_file"] = osp.join(root, osp.relpath(ev["ann_file"], cfg.get("data_root", "")))
    train_ds = cfg.train_dataloader.dataset
    train_ds["label_fraction"] = float(fraction)
    train_ds["fraction_seed"] = int(seed)
    if task == "det":
        available = _coco_classes(osp.join(train_ds["data_root"], train_ds["ann_file"]))
        classes = tuple(classes or train_ds.get("metainfo", {}).get("classes", ()) or available)
        missing = [c for c in classes if c not in available]
        if missing:
            raise ValueError(f"classes {missing} are not in the COCO categories {available}")
    else:
        classes = tuple(classes or train_ds.get("metainfo", {}).get("classes", ()))
    if classes:
        for ds in _datasets(cfg):
            ds.setdefault("metainfo", {})["classes"] = classes
        _set_num_classes(cfg.model, len(classes))


def _set_eval_split(cfg: Any, split: str) -> None:
    """Score the run on ``split``: ``"test"`` (the config's test set) or ``"val"`` (its validation set, for
    choosing a schedule or a protocol without looking at test)."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"eval_split must be one of {EVAL_SPLITS}, got {split!r}")
    if split == "val":
        if not cfg.get("val_dataloader") or not cfg.get("val_evaluator"):
            raise ValueError(f"config {cfg.filename} has no val_dataloader / val_evaluator to score on")
        cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
        cfg.test_evaluator = copy.deepcopy(cfg.val_evaluator)


def _set_schedule(cfg: Any, iters: int | None, batch_size: int | None, lr: float | None) -> None:
    """Training length (warm-up and decay follow it), batch size and learning rate."""
    if iters is not None:
        iters = int(iters)
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        cfg.train_cfg.max_iters = iters
        # A run of a given length is trained, then tested: mmengine would otherwise validate after the
        # last iteration too (a pass over the val split whose numbers nothing reads).
        cfg.train_cfg.pop("val_interval", None)
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        cfg.default_hooks.checkpoint.interval = iters
        for sch in cfg.param_scheduler:
            if sch["type"] == "LinearLR":  # warm-up: at most a tenth of a short run
                sch["end"] = max(1, min(int(sch["end"]), iters // 10))
            else:
                sch["begin"], sch["end"] = 0, iters
    if batch_size is not None:
        cfg.train_dataloader.batch_size = int(batch_size)
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = float(lr)


def _set_runtime(cfg: Any, task: str, seed: int, out: str | Path, resume: bool, progress: bool) -> None:
    """Seed, work folder, resumption, a unique experiment name and the progress bar."""
    cfg.randomness = dict(seed=int(seed), deterministic=False)
    cfg.work_dir = str(Path(out).expanduser().resolve())
    cfg.resume = bool(resume)
    cfg.experiment_name = f"{task}_{uuid.uuid4().hex[:8]}"  # unique: one DefaultScope per run
    for hook in cfg.custom_hooks:
        if hook["type"].endswith("TqdmProgressHook"):
            hook["desc"] = f"{task} train"
            hook["disable"] = not progress


def prepare_config(
    task: str,
    config: str | Path | None = None,
    *,
    checkpoint: str | Path = RANDOM,
    arch: str | VisionSpec | None = None,
    data_root: str | Path | None = None,
    out: str | Path = "work_dirs/downstream",
    fraction: float = 1.0,
    seed: int = 0,
    iters: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    frozen: bool | None = None,
    resume: bool = False,
    progress: bool = True,
    classes: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
    eval_split: str = "test",
) -> Any:
    """Build the mmengine Config of a run (see :func:`run_seg` for the arguments).

    Nothing is trained or loaded here: the backbone's channels and strides come from its
    :class:`VisionSpec`, and the Runner builds the backbone once.
    """
    from mmengine.config import Config

    _import_mm(task)
    checkpoint = str(checkpoint)
    cfg = Config.fromfile(str(config_path(config or _default_config(task, checkpoint, arch))))
    # The Runner logs and dumps the config several times; formatting it with yapf took a third of a
    # small run. (mmengine 0.10's fromfile drops its format_python_code argument for plain configs.)
    object.__setattr__(cfg, "_format_python_code", False)
    if options:  # first, so that backbone / data overrides are seen by what follows
        cfg.merge_from_dict(options)
    _set_backbone(cfg, checkpoint, arch, frozen)
    _set_data(cfg, task, data_root, fraction, seed, classes)
    _set_eval_split(cfg, eval_split)  # before the schedule, which drops the val loop of a fixed-length run
    _set_schedule(cfg, iters, batch_size, lr)
    _set_runtime(cfg, task, seed, out, resume, progress)
    _skip_serialisation(cfg)
    return cfg


def _plain(metrics: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics as Python floats (numpy / 0-d values included), ``/`` in names -> ``_``."""
    import numbers

    import numpy as np

    out = {}
    for k, v in metrics.items():
        if isinstance(v, numbers.Real) or (isinstance(v, np.ndarray) and v.size == 1):
            out[k.replace("/", "_")] = round(float(v), 4)  # float32 metrics carry noise digits
    return out


def run_mm(task: str, config: str | Path | None = None, *, device: str | None = None, **kwargs: Any) -> dict:
    """Train and test one segmentation / detection run; returns the metric dict (also in metrics.json,
    whose ``head_loss`` names the per-iteration training-loss CSV)."""
    from mmengine.runner import Runner

    from sista_kit.downstream.mm.head_loss import HeadLossHook

    t0 = time.perf_counter()
    cfg = prepare_config(task, config, **kwargs)
    with _device(device):
        runner = Runner.from_cfg(cfg)
        head_loss = HeadLossHook()
        runner.register_hook(head_loss)
        runner.train()
        n_train = len(runner.train_dataloader.dataset)
        metrics = _plain(runner.test())
    empty = False
    if task == "det" and not metrics:
        # mmdet's CocoMetric returns nothing when no box passes the score threshold: AP is then 0.
        empty = True
        metrics = {k: 0.0 for k in DET_KEYS}
    record = {
        "task": task,
        "config": cfg.filename,
        "checkpoint": str(kwargs.get("checkpoint", RANDOM)),
        "arch": cfg.model.backbone.get("model_name"),
        "image_size": cfg.model.backbone.get("image_size"),
        "frozen": bool(cfg.model.backbone.get("frozen", False)),
        "fraction": float(kwargs.get("fraction", 1.0)),
        "seed": int(kwargs.get("seed", 0)),
        "eval_split": kwargs.get("eval_split", "test"),
        "iters": int(cfg.train_cfg.max_iters),
        "n_train": n_train,
        "empty_predictions": empty,
        "head_loss": str(head_loss.path),
        "metrics": metrics,
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    write_metrics(cfg.work_dir, record)
    return metrics


def run_seg(
    checkpoint: str | Path = RANDOM, *, config: str | Path | None = None, **kwargs: Any
) -> dict[str, float]:
    """Segmentation transfer (mmseg): returns ``{"mIoU", "mDice", "aAcc", "Dice.<class>", "mDice_fg",
    "AUPRC.<class>", "mAUPRC_fg", ...}`` (%; AUPRC: pixel-level average precision).

    Args:
        checkpoint: sista_kit checkpoint folder, ``"random"`` or ``"random:DIR"``.
        config: a shipped config name (``configs.list_configs('seg')``) or a config file;
            default ``seg_fpn_vit_synthetic`` (``seg_unet_resnet_synthetic`` for a ResNet arch).
        arch: ``"model_name[:image_size[:in_chans]]"`` (for ``"random"``).
        data_root: the disk export's folder; fraction / seed: label fraction of the training split.
        out: work folder (mmengine checkpoints, logs, ``metrics.json``).
        iters, batch_size, lr, frozen: schedule and protocol overrides.
        resume: continue the run in ``out`` from its last checkpoint.
        device: ``"cpu"`` or ``"cuda"`` (default: what mmengine finds).
        progress: show the tqdm bar.
        classes: classes to learn (segmentation: background first, e.g. ``("background", "pneumothorax")``;
            detection: a subset of the COCO categories); default: the config's / all.
        options: extra ``Config.merge_from_dict`` overrides.
        eval_split: the split the returned metrics are of: ``"test"``, or ``"val"`` to choose a schedule
            or protocol on the validation split.
    """
    return run_mm("seg", config, checkpoint=str(checkpoint), **kwargs)


def run_det(
    checkpoint: str | Path = RANDOM, *, config: str | Path | None = None, **kwargs: Any
) -> dict[str, float]:
    """Detection transfer (mmdet): returns COCO ``coco_bbox_mAP...`` and MGCA's ``mgca_bbox_mAP``.

    ``mgca_bbox_mAP`` averages AP over IoU 0.40:0.05:0.75 (MGCA's protocol); arguments as
    :func:`run_seg` (default config ``det_retinanet_vit_synthetic``).
    """
    return run_mm("det", config, checkpoint=str(checkpoint), **kwargs)
