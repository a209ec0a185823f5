"""Segmentation / detection runs through mmengine's Runner on the tiny export (a few iterations)."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.mm


def _finite(metrics: dict, *keys: str) -> None:
    for k in keys:
        assert k in metrics, sorted(metrics)
        assert math.isfinite(metrics[k]), (k, metrics[k])


def _head_loss(out, iters: int, *terms: str) -> list[dict]:
    """The run's head_loss.csv, named by metrics.json: one row per iteration, loss = sum of its terms."""
    from sista_kit.train.logs import read_csv

    rec = json.loads((out / "metrics.json").read_text())
    assert rec["head_loss"] == str(out / "head_loss.csv")
    rows = read_csv(rec["head_loss"])
    assert [r["iter"] for r in rows] == list(range(1, iters + 1))
    for r in rows:
        assert set(terms) <= set(r) and math.isfinite(r["loss"]) and r["loss"] > 0, r
        assert r["loss"] == pytest.approx(sum(r[t] for t in terms), rel=1e-4)
    return rows


@pytest.mark.parametrize(
    "name",
    [
        "seg_fpn_vit_synthetic",
        "seg_upernet_vit_synthetic",
        "seg_unet_resnet_synthetic",
        "det_retinanet_vit_synthetic",
        "det_retinanet_resnet_synthetic",
        "det_fcos_vit_synthetic",
        "det_faster_rcnn_vit_synthetic",
    ],
)
def test_shipped_configs_build_and_step(name: str, tiny_export, tmp_path) -> None:
    """Every shipped config builds with a 64 px tower and takes one training step."""
    from mmengine.registry import MODELS

    from sista_kit.downstream.mmrun import prepare_config

    task = name.split("_")[0]
    arch = "sista_resnet18:64:1" if "resnet" in name else "sista_vit_tiny:64:1"
    cfg = prepare_config(task, name, arch=arch, data_root=tiny_export, out=tmp_path, iters=1, progress=False)
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS, DefaultScope

    DefaultScope.get_instance(f"test_{name}", scope_name=cfg.default_scope)
    model = MODELS.build(cfg.model)

    ds = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([ds[i] for i in range(2)])
    losses = model(**model.data_preprocessor(batch, True), mode="loss")
    total = sum(
        v.sum() if hasattr(v, "sum") else sum(x.sum() for x in v) for k, v in losses.items() if "loss" in k
    )
    assert math.isfinite(float(total.detach()))
    total.backward()


def _stratified_size(root, fraction: float, seed: int) -> int:
    """Studies in the label subset of the training split: >= round(fraction x N), and >= 2 positives of
    every localised finding (the default seg / det classes) where the pool has them."""
    from sista_kit.data.synthetic.findings import LOCALISED
    from sista_kit.downstream.fractions import manifest_labels, select_fraction

    ids = (root / "splits" / "train.txt").read_text().split()
    size = len(select_fraction(ids, fraction, seed, labels=manifest_labels(root, ids, LOCALISED)))
    assert size >= round(fraction * len(ids))
    return size


@pytest.mark.slow
def test_seg_random_and_pretrained(tiny_export, vit_ckpt, tmp_path) -> None:
    from sista_kit.downstream import run_seg

    kw = dict(data_root=tiny_export, iters=3, batch_size=4, progress=False, device="cpu")
    a = run_seg(checkpoint="random", arch="sista_vit_tiny:64:1", out=tmp_path / "rand", **kw)
    b = run_seg(checkpoint=str(vit_ckpt), out=tmp_path / "ckpt", frozen=True, fraction=0.1, seed=2, **kw)
    for m in (a, b):
        _finite(m, "mIoU", "mDice", "aAcc", "mDice_fg")
        assert 0 < m["mAUPRC_fg"] <= 100 and "AUPRC.effusion" in m
    _head_loss(tmp_path / "ckpt", 3, "decode.loss_ce", "decode.loss_dice")
    rec = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())
    assert rec["n_train"] == _stratified_size(tiny_export, 0.1, 2) and rec["frozen"] is True
    assert (tmp_path / "ckpt" / "iter_3.pth").is_file()


@pytest.mark.slow
def test_det_random_and_pretrained(tiny_export, resnet_ckpt, vit_ckpt, tmp_path) -> None:
    from sista_kit.downstream import run_det

    kw = dict(data_root=tiny_export, iters=2, batch_size=4, progress=False, device="cpu")
    # score_thr 0 keeps every box, so pycocotools really evaluates after two steps.
    keep_all = {"model.test_cfg.score_thr": 0.0}
    a = run_det(
        checkpoint="random", arch="sista_vit_tiny:64:1", out=tmp_path / "rand", options=keep_all, **kw
    )
    b = run_det(checkpoint=str(resnet_ckpt), out=tmp_path / "ckpt", fraction=0.5, options=keep_all, **kw)
    for m in (a, b):
        _finite(m, "coco_bbox_mAP", "coco_bbox_mAP_50", "mgca_bbox_mAP")
        assert 0 <= m["mgca_bbox_mAP"] <= 1
    _head_loss(tmp_path / "ckpt", 2, "loss_cls", "loss_bbox")
    rec = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())
    assert rec["n_train"] == _stratified_size(tiny_export, 0.5, 0), rec["n_train"]
    assert rec["arch"] == "sista_resnet18" and not rec["empty_predictions"]
    # The default threshold after two steps keeps no box: AP is 0, not missing.
    c = run_det(checkpoint="random", arch="sista_vit_tiny:64:1", out=tmp_path / "thr", **kw)
    _finite(c, "coco_bbox_mAP", "mgca_bbox_mAP")


@pytest.mark.slow
def test_resume_continues(tiny_export, tmp_path) -> None:
    """A run stopped at iteration 2 resumes from its checkpoint (torch >= 2.6 weights-only loading)."""
    from mmengine.runner import Runner

    from sista_kit.downstream.mm.head_loss import HeadLossHook
    from sista_kit.downstream.mmrun import prepare_config, run_seg
    from sista_kit.train.logs import read_csv

    kw = dict(arch="sista_vit_tiny:64:1", data_root=tiny_export, out=tmp_path, batch_size=2, progress=False)
    run_seg(checkpoint="random", iters=2, **kw)
    assert (tmp_path / "iter_2.pth").is_file()
    cfg = prepare_config("seg", checkpoint="random", iters=4, resume=True, **kw)
    from mmengine.hooks import Hook

    class StartIter(Hook):
        def before_train(self, runner) -> None:
            self.start = runner.iter

    runner = Runner.from_cfg(cfg)
    start = StartIter()
    runner.register_hook(start)
    runner.register_hook(HeadLossHook())
    runner.train()
    assert start.start == 2 and runner.iter == 4
    assert (tmp_path / "iter_4.pth").is_file()
    # the loss curve continues the first run's rows
    assert [r["iter"] for r in read_csv(tmp_path / "head_loss.csv")] == [1, 2, 3, 4]


def test_bad_data_root(tmp_path) -> None:
    from sista_kit.downstream import run_det

    with pytest.raises(FileNotFoundError, match="det_train.json"):
        run_det(
            checkpoint="random", arch="sista_vit_tiny:64:1", data_root=tmp_path, out=tmp_path / "o", iters=1
        )


@pytest.mark.parametrize(
    "name",
    ["seg_upernet_vit_siim", "seg_unet_resnet_siim", "det_retinanet_vit_rsna", "det_faster_rcnn_resnet_rsna"],
)
def test_real_data_configs_build(name: str, tiny_export, tmp_path) -> None:
    """The paper-scale configs parse, adapt to a (tiny) tower and build their model."""
    from mmengine.registry import MODELS, DefaultScope

    from sista_kit.downstream.mmrun import prepare_config

    task = name.split("_")[0]
    arch = "sista_resnet18:64:1" if "resnet" in name else "sista_vit_tiny:64:1"
    classes = ("nodule",) if task == "det" else None
    blocks = {} if "resnet" in name else {"model.backbone.out_indices": [0, 1, 2, 3]}  # tiny ViT: 4 blocks
    cfg = prepare_config(
        task,
        name,
        arch=arch,
        data_root=tiny_export,
        out=tmp_path,
        iters=1,
        progress=False,
        classes=classes,
        options=blocks,
    )
    DefaultScope.get_instance(f"test_{name}", scope_name=cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert cfg.train_dataloader.dataset.label_fraction == 1.0
    head = model.decode_head if task == "seg" else model
    assert head is not None and cfg.model.backbone.image_size == 64
    if task == "seg":
        assert cfg.model.decode_head.num_classes == 2


def test_cli_writes_metrics(tiny_export, tmp_path, capsys) -> None:
    from sista_kit.downstream.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "cls",
                "--checkpoint",
                "random",
                "--arch",
                "sista_vit_tiny:64:1",
                "--data-root",
                str(tiny_export),
                "--out",
                str(out),
                "--fraction",
                "0.1",
                "--iters",
                "5",
                "--no-progress",
            ]
        )
        == 0
    )
    rec = json.loads((out / "metrics.json").read_text())
    from sista_kit.downstream.cls_data import load_cls_splits
    from sista_kit.downstream.fractions import select_fraction

    pool = load_cls_splits(tiny_export)["train"]
    expected = select_fraction(pool.ids, 0.1, 0, labels=pool.labels)  # stratified, >= 2 positives a class
    assert rec["n_train"] == len(expected) >= 3 and math.isfinite(rec["metrics"]["auroc"])
    assert json.loads(capsys.readouterr().out)["auroc"] == rec["metrics"]["auroc"]


def test_bad_checkpoint_path(tiny_export, tmp_path) -> None:
    from sista_kit.downstream import run_seg

    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_seg(tmp_path / "no_such_checkpoint", data_root=tiny_export, out=tmp_path / "o", iters=1)


def test_prepare_config_builds_no_backbone(vit_ckpt, resnet_ckpt, tiny_export, tmp_path, monkeypatch) -> None:
    """The config is fitted from the checkpoint's spec; the backbone is built once, by the run."""
    import sista_kit.downstream.encoder as encoder
    import sista_kit.downstream.mm.backbones as backbones
    from sista_kit.downstream.mmrun import prepare_config

    def no_build(*args, **kwargs):
        raise AssertionError("prepare_config built a backbone")

    monkeypatch.setattr(encoder, "build_trunk", no_build)
    monkeypatch.setattr(encoder, "load_vision_trunk", no_build)
    monkeypatch.setattr(backbones, "build_trunk", no_build)
    cfg = prepare_config("seg", checkpoint=str(vit_ckpt), data_root=tiny_export, out=tmp_path, progress=False)
    bb = cfg.model.backbone
    assert (bb.model_name, bb.image_size, bb.in_chans, bb.checkpoint) == (
        "sista_vit_tiny",
        64,
        1,
        str(vit_ckpt),
    )
    assert cfg.model.neck.in_channels == [192] * 4  # the tiny ViT's width at every pyramid level
    res = prepare_config(
        "det", checkpoint=str(resnet_ckpt), data_root=tiny_export, out=tmp_path, progress=False
    )
    assert res.model.backbone.type.endswith("SistaResNet")  # the default config follows the family
    with pytest.raises(TypeError, match="SistaResNet"):
        prepare_config(
            "seg", "seg_fpn_vit_synthetic", checkpoint=str(resnet_ckpt), data_root=tiny_export, out=tmp_path
        )


def test_short_runs_skip_validation(vit_ckpt, tiny_export, tmp_path) -> None:
    """A run of a given length trains then tests (no val pass after the last iteration); in-process
    loaders keep their annotations unserialised."""
    from sista_kit.downstream.mmrun import prepare_config

    for task in ("seg", "det"):
        kw = dict(checkpoint=str(vit_ckpt), data_root=tiny_export, out=tmp_path / task, progress=False)
        short = prepare_config(task, iters=3, **kw)
        assert short.val_cfg is None and short.val_dataloader is None and short.val_evaluator is None
        assert short.test_dataloader.dataset.serialize_data is False
        assert short.train_dataloader.dataset.serialize_data is False
        full = prepare_config(task, **kw)  # the config's own schedule keeps its validation
        assert full.val_cfg is not None and full.val_dataloader is not None


def test_eval_split_val_scores_the_validation_split(vit_ckpt, tiny_export, tmp_path) -> None:
    """``eval_split="val"`` tests on the validation split (to choose a schedule without test); a bad
    split name is refused."""
    from sista_kit.downstream.mmrun import prepare_config

    for task, split_key in (("seg", "ann_file"), ("det", "ann_file")):
        kw = dict(checkpoint=str(vit_ckpt), data_root=tiny_export, out=tmp_path / task, progress=False)
        test = prepare_config(task, iters=2, **kw)
        val = prepare_config(task, iters=2, eval_split="val", **kw)
        assert "test" in test.test_dataloader.dataset[split_key]
        assert "val" in val.test_dataloader.dataset[split_key]
        assert val.val_dataloader is None  # a fixed-length run still skips the val loop
        if task == "det":
            assert all("det_val.json" in ev["ann_file"] for ev in val.test_evaluator)
        with pytest.raises(ValueError, match="eval_split must be one of"):
            prepare_config(task, iters=2, eval_split="train", **kw)


def test_cli_eval_split(tiny_export, tmp_path) -> None:
    """seg on val through the CLI records the split; --eval-split is refused for cls / loc."""
    from sista_kit.downstream.cli import main

    out = tmp_path / "seg"
    base = ["--checkpoint", "random", "--arch", "sista_vit_tiny:64:1", "--data-root", str(tiny_export)]
    argv = ["seg", *base, "--out", str(out), "--iters", "2", "--eval-split", "val", "--no-progress"]
    assert main(argv) == 0
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["eval_split"] == "val" and math.isfinite(rec["metrics"]["mDice_fg"])
    with pytest.raises(SystemExit):
        main(["cls", *base, "--out", str(tmp_path / "cls"), "--eval-split", "val"])
