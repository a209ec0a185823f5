"""Downstream transfer of a pretrained vision tower: classification, segmentation, detection.

- ``run_cls(checkpoint, data_root=..., fraction=..., seed=..., protocol='linear'|'finetune')``:
  linear probe on the frozen encoder (MGCA's protocol) or fine-tuning; macro AUROC / accuracy.
- ``run_seg(config, checkpoint=..., data_root=..., ...)``: mmsegmentation (FPN / UPerNet / U-Net);
  mIoU and Dice.
- ``run_det(config, checkpoint=..., data_root=..., ...)``: mmdetection (RetinaNet / FCOS /
  Faster R-CNN); COCO mAP and MGCA's mAP over IoU 0.40:0.75.
- ``run_loc(checkpoint, data_root=..., fraction=..., seed=...)``: which cells of the frozen encoder's
  patch grid hold which finding (a logistic regression per finding); patch-level average precision.
- ``python -m sista_kit.downstream {cls,seg,det,loc} --checkpoint DIR|random ...``.
- OpenMMLab backbones ``sista_kit.SistaViT`` / ``sista_kit.SistaResNet`` (``sista_kit.downstream.mm``).

Nothing here imports mmengine, mmdet or mmseg until a segmentation / detection run needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run_cls": "sista_kit.downstream.cls",
    "ClsSplit": "sista_kit.downstream.cls",
    "run_seg": "sista_kit.downstream.mmrun",
    "run_det": "sista_kit.downstream.mmrun",
    "run_loc": "sista_kit.downstream.patch_probe",
    "prepare_config": "sista_kit.downstream.mmrun",
    "build_trunk": "sista_kit.downstream.encoder",
    "EncoderSpec": "sista_kit.downstream.encoder",
    "VisionSpec": "sista_kit.models.spec",
    "resolve_spec": "sista_kit.downstream.encoder",
    "encoder_geometry": "sista_kit.downstream.features",
    "MultiScaleEncoder": "sista_kit.downstream.features",
    "select_fraction": "sista_kit.downstream.fractions",
    "config_path": "sista_kit.downstream.configs",
    "list_configs": "sista_kit.downstream.configs",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sista_kit.downstream' has no attribute {name!r}")
