"""A U-Net-style decode head for mmseg: the coarsest map is up-sampled step by step and fused with
each finer map (concatenate, two 3x3 conv-norm-act), as U-Net's decoder does with encoder skips."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS as MMSEG_MODELS
from torch import nn

from .registry import MODELS, register


class SistaUNetHead(BaseDecodeHead):
    """U-Net decoder over multi-level features (finest first), e.g. ResNet stages 1..4.

    Args:
        in_channels: channels of each input level, finest first.
        channels: channels of the finest decoder stage; coarser stages use ``channels * 2**k``
            capped at ``max_channels``.
        in_index: levels to use (default: all).
        **kwargs: ``BaseDecodeHead`` arguments (num_classes, norm_cfg, loss_decode, ...).
    """

    def __init__(self, in_channels: list[int], channels: int, max_channels: int = 256, **kwargs) -> None:
        kwargs.setdefault("in_index", list(range(len(in_channels))))
        super().__init__(in_channels, channels, input_transform="multiple_select", **kwargs)
        n = len(self.in_channels)
        widths = [min(channels * 2**k, max_channels) for k in range(n)]
        conv = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.bottom = ConvModule(self.in_channels[-1], widths[-1], 3, padding=1, **conv)
        self.ups = nn.ModuleList()
        for k in range(n - 2, -1, -1):  # coarse -> fine
            self.ups.append(
                nn.Sequential(
                    ConvModule(widths[k + 1] + self.in_channels[k], widths[k], 3, padding=1, **conv),
                    ConvModule(widths[k], widths[k], 3, padding=1, **conv),
                )
            )
        if widths[0] != channels:
            raise ValueError("internal: finest decoder width must equal channels")

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        feats = self._transform_inputs(inputs)
        x = self.bottom(feats[-1])
        for up, skip in zip(self.ups, feats[-2::-1], strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=self.align_corners)
            x = up(torch.cat([x, skip], dim=1))
        return self.cls_seg(x)


register([MODELS, MMSEG_MODELS], SistaUNetHead)
