"""sista_kit backbones inside mmdet / mmseg: registry names, checkpoint loading, freezing, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.mm


def _cfg(d: dict):
    from mmengine.config import ConfigDict

    return ConfigDict(d)


def test_import_without_openmmlab() -> None:
    """`import sista_kit.downstream` (and the cls path) work when mm packages cannot be imported."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('mmdet', 'mmseg', 'mmengine', 'mmcv'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import sista_kit, sista_kit.downstream\n"
        "from sista_kit.downstream import run_cls, build_trunk, MultiScaleEncoder\n"
        "import sista_kit.downstream.cli\n"
        "assert not any(m.split('.')[0] in ('mmdet', 'mmseg', 'mmengine') for m in sys.modules)\n"
        "try:\n"
        "    from sista_kit.downstream import run_seg; run_seg(checkpoint='random')\n"
        "except ImportError as e:\n"
        "    assert 'mm' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('expected ImportError')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("lib", ["mmdet", "mmseg"])
def test_scoped_and_plain_names_build(lib: str, vit_ckpt) -> None:
    import importlib

    import sista_kit.downstream.mm  # noqa: F401

    registry = importlib.import_module(f"{lib}.registry").MODELS
    for name in ("sista_kit.SistaViT", "SistaViT"):
        bb = registry.build(_cfg(dict(type=name, init_cfg=dict(type="Pretrained", checkpoint=str(vit_ckpt)))))
        outs = bb(torch.zeros(1, 1, 64, 64))
        assert [o.shape[-1] for o in outs] == [32, 16, 8, 4]
        assert bb.checkpoint == str(vit_ckpt) and bb.spec.image_size == 64


def test_detector_init_weights_keeps_checkpoint(vit_ckpt) -> None:
    """mmengine's init_weights on the whole detector must not re-initialise the loaded trunk."""
    from mmdet.registry import MODELS
    from safetensors.torch import load_file

    import sista_kit.downstream.mm  # noqa: F401

    cfg = dict(
        type="RetinaNet",
        _scope_="mmdet",
        data_preprocessor=dict(type="DetDataPreprocessor", mean=[127.5], std=[63.75], pad_size_divisor=32),
        backbone=dict(type="sista_kit.SistaViT", checkpoint=str(vit_ckpt), frozen=True),
        neck=dict(
            type="FPN",
            in_channels=[192] * 4,
            out_channels=32,
            start_level=1,
            add_extra_convs="on_output",
            num_outs=5,
        ),
        bbox_head=dict(
            type="RetinaHead",
            num_classes=2,
            in_channels=32,
            stacked_convs=1,
            feat_channels=32,
            anchor_generator=dict(
                type="AnchorGenerator",
                octave_base_scale=4,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides=[4, 8, 16, 32, 64],
            ),
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        train_cfg=dict(
            assigner=dict(
                type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1
            ),
            sampler=dict(type="PseudoSampler"),
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
        test_cfg=dict(
            nms_pre=100,
            min_bbox_size=0,
            score_thr=0.05,
            nms=dict(type="nms", iou_threshold=0.5),
            max_per_img=10,
        ),
    )
    det = MODELS.build(_cfg(cfg))
    det.init_weights()
    saved = load_file(str(vit_ckpt / "model.safetensors"))
    trunk = det.backbone.encoder.trunk
    for k, v in trunk.state_dict().items():
        assert torch.equal(v, saved[f"visual.trunk.{k}"]), k
    det.train()
    assert not trunk.training and not any(p.requires_grad for p in trunk.parameters())
    assert det.backbone.encoder.pyramid.training


def test_backbone_errors(vit_ckpt, resnet_ckpt, tmp_path) -> None:
    from mmseg.registry import MODELS

    import sista_kit.downstream.mm  # noqa: F401

    with pytest.raises(TypeError, match="SistaResNet"):
        MODELS.build(_cfg(dict(type="sista_kit.SistaViT", checkpoint=str(resnet_ckpt))))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MODELS.build(_cfg(dict(type="sista_kit.SistaResNet", checkpoint=str(tmp_path / "nope"))))
    with pytest.raises(ValueError, match="model_name"):
        MODELS.build(_cfg(dict(type="sista_kit.SistaViT", checkpoint="random")))
    with pytest.raises(ValueError, match="Pretrained"):
        MODELS.build(
            _cfg(dict(type="sista_kit.SistaViT", model_name="sista_vit_tiny", init_cfg=dict(type="Kaiming")))
        )


def test_unet_head_shapes(resnet_ckpt) -> None:
    from mmseg.registry import MODELS

    import sista_kit.downstream.mm  # noqa: F401

    bb = MODELS.build(_cfg(dict(type="sista_kit.SistaResNet", checkpoint=str(resnet_ckpt))))
    head = MODELS.build(
        _cfg(
            dict(
                type="sista_kit.SistaUNetHead",
                in_channels=bb.out_channels,
                channels=16,
                num_classes=3,
                norm_cfg=dict(type="BN"),
            )
        )
    )
    out = head(bb(torch.zeros(2, 1, 64, 64)))
    assert out.shape == (2, 3, 16, 16)  # at the finest stage (stride 4)


def test_safe_globals_allow_mmengine_checkpoints(tmp_path) -> None:
    import numpy as np
    from mmengine.logging import HistoryBuffer

    from sista_kit.downstream.mm import SafeCheckpointHook, allow_mmengine_checkpoints

    allow_mmengine_checkpoints()
    buf = HistoryBuffer()
    buf.update(1.5)
    buf.update(2.5)
    ckpt = {
        "message_hub": {"log_scalars": {"loss": buf}, "runtime_info": {"iter": 3}},
        "arr": np.arange(3.0),
        "scalar": np.float64(2.0),
        "dt": np.dtype("int64"),
    }
    torch.save(ckpt, tmp_path / "raw.pth")  # mmengine's own buffer pickles functions via getattr
    with pytest.raises(Exception, match="getattr"):
        torch.load(tmp_path / "raw.pth", weights_only=True)
    SafeCheckpointHook().before_save_checkpoint(None, ckpt)
    torch.save(ckpt, tmp_path / "x.pth")
    back = torch.load(tmp_path / "x.pth", weights_only=True)
    loss = back["message_hub"]["log_scalars"]["loss"]
    assert isinstance(loss, HistoryBuffer) and loss.current() == 2.5 and loss.mean() == 2.0
    assert back["scalar"] == 2.0 and back["message_hub"]["runtime_info"]["iter"] == 3
