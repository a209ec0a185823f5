"""Vision trunks: small timm architectures registered for sista_kit, and a factory for random trunks.

Importing this module registers with timm (``timm.create_model`` then finds them by name):

| name                          | arch   | input        | notes                              |
|-------------------------------|--------|--------------|------------------------------------|
| ``sista_vit_tiny``            | ViT    | 1 x 128 px   | patch 8, depth 4, width 192, 3 heads (CPU) |
| ``sista_resnet18``            | ResNet | 1 x 128 px   | ResNet-18 layout, grey-scale stem  |
| ``sista_vit_base_patch16_224``| ViT    | 3 x 224 px   | ViT-B/16 (the paper scale)         |
| ``sista_resnet50``            | ResNet | 3 x 224 px   | ResNet-50 (ConVIRT / GLoRIA scale) |

Nothing here downloads weights: ``pretrained=True`` is only accepted together with a local file
(``pretrained_cfg_overlay={"file": path}``, timm's own mechanism).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = [
    "create_vision_trunk",
    "trunk_info",
    "load_trunk_weights",
    "is_vit",
]

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


@register_model
def sista_vit_tiny(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT with patch 8 at 128 px, depth 4, width 192, 3 heads, one input channel (the CPU default)."""
    defaults = dict(img_size=128, patch_size=8, embed_dim=192, depth=4, num_heads=3, in_chans=1)
    return _build(VisionTransformer, "sista_vit_tiny", pretrained, defaults, **kwargs)


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


def is_vit(trunk: nn.Module) -> bool:
    """True for a timm VisionTransformer-like trunk (patch tokens + prefix tokens)."""
    return hasattr(trunk, "patch_embed") and hasattr(trunk, "blocks")


def create_vision_trunk(
    model_name: str,
    image_size: int,
    in_chans: int,
    pretrained_path: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a timm trunk with random weights (no classifier head, ``num_classes=0``).

    Args:
        model_name: any timm architecture name, e.g. ``sista_vit_tiny`` or ``sista_resnet18``.
        image_size: square input size in pixels (sets the ViT position grid; ResNets accept any size).
        in_chans: number of input channels (1 for grey-scale X-rays).
        pretrained_path: optional local weights file (safetensors or a plain state dict) for the trunk.
        **kwargs: extra timm model arguments (e.g. ``drop_path_rate``).

    Returns:
        The timm model. ViT trunks keep the class token and the final norm (``global_pool='token'``),
        so ``forward_features`` gives normalised tokens.
    """
    if image_size <= 0 or in_chans <= 0:
        raise ValueError(f"image_size and in_chans must be positive, got {image_size} and {in_chans}")
    entry = timm.models.get_pretrained_cfg(model_name)
    probe_kwargs: dict[str, Any] = {"num_classes": 0, "in_chans": in_chans, **kwargs}
    arch_is_vit = "vit" in model_name or (entry is not None and entry.first_conv == "patch_embed.proj")
    if arch_is_vit:
        probe_kwargs.setdefault("img_size", image_size)
    trunk = timm.create_model(model_name, pretrained=False, **probe_kwargs)
    if pretrained_path is not None:
        load_trunk_weights(trunk, pretrained_path)
    return trunk


def trunk_info(trunk: nn.Module, model_name: str, image_size: int, in_chans: int) -> dict[str, Any]:
    """Describe a trunk for downstream: arch, model_name, image_size, in_chans, patch_size, width."""
    if is_vit(trunk):
        patch = trunk.patch_embed.patch_size
        patch_size = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
        arch = "vit"
    else:
        patch_size = int(getattr(trunk, "feature_info", [{}])[-1].get("reduction", 32))
        arch = "resnet"
    return {
        "arch": arch,
        "model_name": model_name,
        "image_size": int(image_size),
        "in_chans": int(in_chans),
        "patch_size": patch_size,
        "width": int(trunk.num_features),
    }


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


def load_trunk_weights(trunk: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load a local weights file into a trunk (safetensors, or torch.load with weights_only=True).

    Keys may carry a ``visual.trunk.`` or ``module.`` prefix; classifier weights are ignored.
    Mismatched shapes always raise, naming the keys.
    """
    from sista_kit.models.checkpoint import load_state_dict_checked

    state = _read_state_dict(path)
    for prefix in ("module.", "visual.trunk."):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = trunk.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(("head.", "fc."))}
    load_state_dict_checked(trunk, state, strict=strict, source=str(path))
    return trunk
