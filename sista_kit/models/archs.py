"""The sista_kit timm architectures: the one place where sista_kit registers models with timm.

Importing this module registers them (timm's ``@register_model``, which runs at import); every
module that builds a trunk imports it, so ``timm.create_model("sista_vit_tiny")`` works once any
of ``sista_kit.models`` is imported.

| name                          | arch   | input        | notes                              |
|-------------------------------|--------|--------------|------------------------------------|
| ``sista_vit_tiny``            | ViT    | 1 x 128 px   | patch 8, depth 4, width 192, 3 heads (CPU) |
| ``sista_vit_mini``            | ViT    | 1 x 128 px   | as tiny at width 128, 2 heads      |
| ``sista_vit_micro``           | ViT    | 1 x 128 px   | as mini at depth 3 (benchmark)     |
| ``sista_resnet18``            | ResNet | 1 x 128 px   | ResNet-18 layout, grey-scale stem  |
| ``sista_vit_base_patch16_224``| ViT    | 3 x 224 px   | ViT-B/16 (the paper scale)         |
| ``sista_resnet50``            | ResNet | 3 x 224 px   | ResNet-50 (ConVIRT / GLoRIA scale) |

Nothing here downloads weights: ``pretrained=True`` is only accepted together with a local file
(``pretrained_cfg_overlay={"file": path}``, timm's own mechanism). ``sista_vit_tiny`` and
``sista_vit_mini`` / ``sista_vit_micro`` standardise each input image (:class:`StandardizedPatchEmbed`).
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import PatchEmbed
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["SISTA_ARCHS"]

#: The architectures registered here.
SISTA_ARCHS = (
    "sista_vit_tiny",
    "sista_vit_mini",
    "sista_vit_micro",
    "sista_resnet18",
    "sista_vit_base_patch16_224",
    "sista_resnet50",
)

_GREY = {"mean": (0.5,), "std": (0.5,)}
_IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def _vit_cfg(in_chans: int, size: int, stats: dict[str, tuple[float, ...]]) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 0,
        "input_size": (in_chans, size, size),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bicubic",
        "fixed_input_size": True,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
        **stats,
    }


def _resnet_cfg(in_chans: int, size: int, stats: dict[str, tuple[float, ...]]) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 0,
        "input_size": (in_chans, size, size),
        "pool_size": (size // 32, size // 32),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "apache-2.0",
        **stats,
    }


# timm's register_model picks these up by entry-point name.
default_cfgs = generate_default_cfgs(
    {
        "sista_vit_tiny": _vit_cfg(1, 128, _GREY),
        "sista_vit_mini": _vit_cfg(1, 128, _GREY),
        "sista_vit_micro": _vit_cfg(1, 128, _GREY),
        "sista_resnet18": _resnet_cfg(1, 128, _GREY),
        "sista_vit_base_patch16_224": _vit_cfg(3, 224, _IMAGENET),
        "sista_resnet50": _resnet_cfg(3, 224, _IMAGENET),
    }
)


def _check_offline(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> None:
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    if pretrained and not overlay.get("file"):
        raise ValueError(
            f"{variant}: no hub weights exist for sista_kit architectures; pass a local weights file with "
            "pretrained_cfg_overlay={'file': path} or load one with load_trunk_weights()"
        )


def _build(cls: type[nn.Module], variant: str, pretrained: bool, defaults: dict[str, Any], **kwargs: Any):
    _check_offline(variant, pretrained, kwargs)
    model_args = {**defaults, **kwargs}
    return build_model_with_cfg(cls, variant, pretrained, **model_args)


class StandardizedPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` on the image standardised per sample (zero mean, unit variance).

    Radiographs differ in exposure, contrast and gamma far more than in their findings; standardising
    each image removes the global intensity scale before the first layer, so a small tower trained from
    scratch spends its first steps on anatomy and findings rather than on exposure (measured on the
    embedded data: docs/benchmark). No parameters: state dicts are those of ``PatchEmbed``, and any
    per-dataset mean / std normalisation done before it has no effect (an affine map standardises away).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.ndim))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True).clamp(min=1e-3)
        return super().forward((x - mean) / std)


#: The CPU ViT: patch 8 at 128 px, depth 4, width 192, 3 heads, one standardised input channel.
_CPU_VIT: dict[str, Any] = dict(
    img_size=128,
    patch_size=8,
    embed_dim=192,
    depth=4,
    num_heads=3,
    in_chans=1,
    embed_layer=StandardizedPatchEmbed,
)


#: ``_CPU_VIT`` at width 128 with 2 heads of 64.
_MINI_VIT: dict[str, Any] = {**_CPU_VIT, "embed_dim": 128, "num_heads": 2}


@register_model
def sista_vit_tiny(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT with patch 8 at 128 px, depth 4, width 192, 3 heads, one input channel (the CPU default).

    The input is standardised per image (:class:`StandardizedPatchEmbed`).
    """
    return _build(VisionTransformer, "sista_vit_tiny", pretrained, _CPU_VIT, **kwargs)


@register_model
def sista_vit_mini(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """``sista_vit_tiny`` at width 128 with 2 heads of 64.

    On the embedded data (64 px, 519 steps of batch 64) it reached a higher held-out R@1 than the
    width-192 tower (validation split, 150 pairs: 0.113 against 0.053) in 0.66x the step time.
    """
    return _build(VisionTransformer, "sista_vit_mini", pretrained, _MINI_VIT, **kwargs)


@register_model
def sista_vit_micro(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """``sista_vit_mini`` at depth 3: the benchmark's vision tower on CPU.

    With a one-layer text tower (``sista-micro``) a step costs ~0.65x that of ``sista-mini``; on the
    embedded data (64 px, batch 64, CLIP) 865 of its steps reached a held-out R@1 of 0.140 (validation
    split, 150 pairs) and a last-epoch training InfoNCE of 2.37, against 0.113 and 2.86 for 519 steps of
    ``sista-mini`` in about the same time: these towers are limited by steps, not by capacity.
    """
    return _build(VisionTransformer, "sista_vit_micro", pretrained, {**_MINI_VIT, "depth": 3}, **kwargs)


@register_model
def sista_vit_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-B/16 at 224 px with three input channels (the paper scale)."""
    defaults = dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, in_chans=3)
    return _build(VisionTransformer, "sista_vit_base_patch16_224", pretrained, defaults, **kwargs)


@register_model
def sista_resnet18(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-18 layout with a one-channel stem."""
    defaults = dict(block=BasicBlock, layers=(2, 2, 2, 2), in_chans=1)
    return _build(ResNet, "sista_resnet18", pretrained, defaults, **kwargs)


@register_model
def sista_resnet50(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50 with three input channels (ConVIRT / GLoRIA scale)."""
    defaults = dict(block=Bottleneck, layers=(3, 4, 6, 3), in_chans=3)
    return _build(ResNet, "sista_resnet50", pretrained, defaults, **kwargs)
