"""sista_kit vision towers as OpenMMLab backbones (mmdet and mmseg).

    custom_imports = dict(imports=['sista_kit.downstream.mm'], allow_failed_imports=False)
    model = dict(backbone=dict(type='sista_kit.SistaViT', frozen=True,
                               init_cfg=dict(type='Pretrained', checkpoint='runs/sista/checkpoint')))

The weights are the vision trunk of a sista_kit pretraining checkpoint folder
(docs/contracts.md section 4); ``checkpoint='random'`` with ``model_name`` builds the same
architecture with random weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseModule

from sista_kit.models.spec import VisionSpec, trunk_family

from ..encoder import RANDOM, build_trunk
from ..features import MultiScaleEncoder
from .registry import MODELS, register


class _SistaBackbone(BaseModule):
    """Shared logic: resolve the checkpoint, build the trunk, wrap it as a multi-scale encoder."""

    kind = ""

    def __init__(
        self,
        checkpoint: str | None = None,
        model_name: str | None = None,
        image_size: int = 64,
        in_chans: int = 1,
        out_indices: Sequence[int] | None = None,
        scales: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        frozen: bool = False,
        init_cfg: dict | list | None = None,
    ) -> None:
        cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg or [])
        pretrained = [c for c in cfgs if c.get("type") == "Pretrained"]
        if pretrained:
            if checkpoint is not None and checkpoint != pretrained[0]["checkpoint"]:
                raise ValueError(f"checkpoint={checkpoint!r} and init_cfg {pretrained[0]} disagree")
            checkpoint = pretrained[0]["checkpoint"]
            cfgs = [c for c in cfgs if c.get("type") != "Pretrained"]
        if cfgs:
            raise ValueError(
                f"{type(self).__name__} takes only init_cfg=dict(type='Pretrained', ...), got {cfgs}"
            )
        super().__init__(init_cfg=None)
        if checkpoint in (None, RANDOM) and model_name is None:
            raise ValueError(
                f"{type(self).__name__} needs a checkpoint folder, or model_name for random weights"
            )
        arch = VisionSpec(model_name, image_size, in_chans) if model_name else None
        trunk, self.spec = build_trunk(checkpoint, arch)
        self.checkpoint = RANDOM if checkpoint is None else str(checkpoint)
        kind = trunk_family(trunk)
        if kind != self.kind:
            raise TypeError(
                f"{type(self).__name__} needs a {self.kind} trunk but {self.checkpoint} holds "
                f"{self.spec.model_name} ({kind}); use Sista{'ViT' if kind == 'vit' else 'ResNet'}"
            )
        self.encoder = MultiScaleEncoder(trunk, out_indices=out_indices, scales=scales, frozen=frozen)

    @property
    def out_channels(self) -> list[int]:
        """Channels of each output level."""
        return self.encoder.out_channels

    @property
    def strides(self) -> list[int]:
        """Stride of each output level, in input pixels."""
        return self.encoder.strides

    def init_weights(self) -> None:
        """Keep the trunk as built (checkpoint weights or timm's own init).

        mmengine's default would call the timm trunk's ``init_weights`` and overwrite loaded weights.
        """
        self._is_init = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.encoder(x)

    def extra_repr(self) -> str:
        return f"checkpoint={self.checkpoint!r}, arch={self.spec}, frozen={self.encoder.frozen}"


class SistaViT(_SistaBackbone):
    """ViT tower + simple feature pyramid (4 maps, strides patch/4 .. 2*patch, ``embed_dim`` channels).

    Args:
        checkpoint: sista_kit checkpoint folder, ``'random'`` or ``'random:DIR'`` (the architecture
            of DIR, random weights); ``init_cfg=dict(type='Pretrained', checkpoint=DIR)`` is the same.
        model_name, image_size, in_chans: the timm architecture for ``'random'``.
        out_indices: block(s) feeding the pyramid: one (default: the last) or one per scale.
        scales: pyramid levels as up-sampling factors of the patch grid.
        frozen: freeze the trunk (the MGCA protocol); the pyramid layers still train.
    """

    kind = "vit"


class SistaResNet(_SistaBackbone):
    """ResNet tower; returns the stages ``out_indices`` (default 1..4, strides 4..32).

    Args: as :class:`SistaViT` (``scales`` is unused).
    """

    kind = "resnet"

    def __init__(self, *args: Any, out_indices: Sequence[int] = (1, 2, 3, 4), **kwargs: Any) -> None:
        super().__init__(*args, out_indices=out_indices, **kwargs)


def _lib_registries() -> list:
    regs = []
    try:
        from mmdet.registry import MODELS as MMDET_MODELS

        regs.append(MMDET_MODELS)
    except ImportError:
        pass
    try:
        from mmseg.registry import MODELS as MMSEG_MODELS

        regs.append(MMSEG_MODELS)
    except ImportError:
        pass
    return regs


for _cls in (SistaViT, SistaResNet):
    register([MODELS, *_lib_registries()], _cls)
