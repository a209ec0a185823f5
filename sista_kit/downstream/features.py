"""Multi-scale feature maps and pooled features from a timm vision trunk (no OpenMMLab import).

- ViT: a simple feature pyramid (ViTDet): maps from the last block, or one intermediate block per
  level, brought to strides patch/4, patch/2, patch, 2*patch by deconvolution / pooling.
- ResNet: the outputs of its stages (strides 4, 8, 16, 32).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import LayerNorm2d
from torch import nn

from sista_kit.models.spec import VisionSpec, trunk_family

from .encoder import freeze


def _scale_block(scale: float, dim: int) -> nn.Module:
    """Resample a stride-p map to stride p/scale, keeping ``dim`` channels."""
    if scale == 4.0:
        return nn.Sequential(
            nn.ConvTranspose2d(dim, dim, 2, stride=2),
            LayerNorm2d(dim),
            nn.GELU(),
            nn.ConvTranspose2d(dim, dim, 2, stride=2),
        )
    if scale == 2.0:
        return nn.ConvTranspose2d(dim, dim, 2, stride=2)
    if scale == 1.0:
        return nn.Identity()
    if scale == 0.5:
        return nn.MaxPool2d(2, 2)
    raise ValueError(f"pyramid scale must be one of 4, 2, 1, 0.5, got {scale}")


class MultiScaleEncoder(nn.Module):
    """A timm ViT or ResNet trunk that returns a tuple of NCHW maps, finest first.

    Args:
        trunk: the timm model (``sista_kit.downstream.encoder.build_trunk``).
        out_indices: ViT: block indices (one = the same block for every level, or one per level);
            ResNet: stage indices in 1..4.
        scales: ViT only: pyramid levels as up-sampling factors of the patch grid.
        frozen: no gradient through the trunk and the trunk stays in eval mode; the pyramid layers
            (new, randomly initialised) still train.
    """

    def __init__(
        self,
        trunk: nn.Module,
        out_indices: Sequence[int] | None = None,
        scales: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        frozen: bool = False,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.kind = trunk_family(trunk)
        self.frozen = bool(frozen)
        if self.kind == "vit":
            depth = len(trunk.blocks)
            idx = [-1] if out_indices is None else list(out_indices)
            if len(idx) not in (1, len(scales)):
                raise ValueError(f"give one block index or one per scale ({len(scales)}), got {idx}")
            bad = [i for i in idx if not -depth <= i < depth]
            if bad:
                raise ValueError(f"block indices {bad} out of range for a {depth}-block ViT")
            self.indices = [i % depth for i in idx]
            dim = int(trunk.embed_dim)
            patch = int(trunk.patch_embed.patch_size[0])
            self.pyramid = nn.ModuleList(_scale_block(float(s), dim) for s in scales)
            self.out_channels = [dim] * len(scales)
            self.strides = [int(patch / float(s)) for s in scales]
        else:
            idx = [1, 2, 3, 4] if out_indices is None else list(out_indices)
            if not idx or any(not 1 <= i <= 4 for i in idx):
                raise ValueError(f"ResNet stage indices must lie in 1..4, got {idx}")
            self.indices = idx
            info = trunk.feature_info  # stem, layer1..layer4
            self.pyramid = None
            self.out_channels = [int(info[i]["num_chs"]) for i in idx]
            self.strides = [int(info[i]["reduction"]) for i in idx]
        if self.frozen:
            freeze(self.trunk)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """The input size a ViT trunk was built for (None for ResNet, which takes any size)."""
        if self.kind != "vit":
            return None
        size = self.trunk.patch_embed.img_size
        return None if size is None else (int(size[0]), int(size[1]))

    def train(self, mode: bool = True) -> MultiScaleEncoder:
        super().train(mode)
        if self.frozen:
            self.trunk.eval()
        return self

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` checked, grey-scale images repeated to the channels of an RGB trunk."""
        if x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        chans = (
            self.trunk.patch_embed.proj.in_channels if self.kind == "vit" else self.trunk.conv1.in_channels
        )
        if x.shape[1] == 1 and chans > 1:
            x = x.expand(-1, chans, -1, -1)
        if x.shape[1] != chans:
            raise ValueError(f"encoder takes {chans} channel(s), got images of shape {tuple(x.shape)}")
        size = self.image_size
        if (
            size is not None
            and tuple(x.shape[-2:]) != size
            and not getattr(self.trunk, "dynamic_img_size", False)
        ):
            raise ValueError(f"this ViT was built for {size[0]}x{size[1]} images, got {tuple(x.shape[-2:])}")
        return x

    def _trunk_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.kind == "vit":
            return self.trunk.forward_intermediates(
                x, indices=sorted(set(self.indices)), output_fmt="NCHW", intermediates_only=True
            )
        return self.trunk.forward_intermediates(x, indices=self.indices, intermediates_only=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Multi-scale maps, finest first: channels ``self.out_channels``, strides ``self.strides``."""
        x = self._check_input(x)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            maps = self._trunk_maps(x)
        if self.kind == "resnet":
            return tuple(maps)
        by_block = dict(zip(sorted(set(self.indices)), maps, strict=True))
        blocks = self.indices if len(self.indices) > 1 else self.indices * len(self.pyramid)
        return tuple(level(by_block[b]) for level, b in zip(self.pyramid, blocks, strict=True))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global image features (B, D): the trunk's own pooling ([CLS] / average), before any head."""
        x = self._check_input(x)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.trunk.forward_head(self.trunk.forward_features(x), pre_logits=True)

    @property
    def pooled_dim(self) -> int:
        """Width of ``pooled`` features."""
        return int(self.trunk.num_features)


def encoder_geometry(
    spec: VisionSpec | str,
    out_indices: Sequence[int] | None = None,
    scales: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
) -> tuple[list[int], list[int]]:
    """``(out_channels, strides)`` of :class:`MultiScaleEncoder` over ``spec``, without weights.

    The trunk is built on the meta device (shapes only: no memory, no checkpoint read), so a
    config can be fitted to a backbone before the run builds it once.
    """
    from sista_kit.models.vision import create_trunk_from_spec

    try:
        with torch.device("meta"):
            encoder = MultiScaleEncoder(create_trunk_from_spec(spec), out_indices=out_indices, scales=scales)
    except (NotImplementedError, RuntimeError):  # an architecture whose init reads tensor values
        encoder = MultiScaleEncoder(create_trunk_from_spec(spec), out_indices=out_indices, scales=scales)
    return list(encoder.out_channels), list(encoder.strides)
