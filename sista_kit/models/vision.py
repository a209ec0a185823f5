"""Vision trunks: a factory for timm trunks (random or local weights) and their description.

The sista_kit architectures (``sista_vit_tiny``, ``sista_resnet18``, ...) are registered with timm
in :mod:`sista_kit.models.archs`; a trunk's family (ViT / ResNet) is decided by
:func:`sista_kit.models.spec.trunk_family`. Nothing here downloads weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
from torch import nn

from sista_kit.models.spec import VisionSpec, is_vit, trunk_family
from sista_kit.models.weights import load_state_dict_checked, read_state_dict

__all__ = [
    "create_vision_trunk",
    "create_trunk_from_spec",
    "trunk_info",
    "load_trunk_weights",
    "is_vit",
]


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
    probe_kwargs: dict[str, Any] = {"num_classes": 0, "in_chans": in_chans, **kwargs}
    if is_vit(model_name):
        probe_kwargs.setdefault("img_size", image_size)
    trunk = timm.create_model(model_name, pretrained=False, **probe_kwargs)
    if pretrained_path is not None:
        load_trunk_weights(trunk, pretrained_path)
    return trunk


def trunk_info(trunk: nn.Module, model_name: str, image_size: int, in_chans: int) -> dict[str, Any]:
    """Describe a trunk for downstream: arch, model_name, image_size, in_chans, patch_size, width."""
    arch = trunk_family(trunk)
    if arch == "vit":
        patch = trunk.patch_embed.patch_size
        patch_size = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
    else:
        patch_size = int(getattr(trunk, "feature_info", [{}])[-1].get("reduction", 32))
    return {
        "arch": arch,
        "model_name": model_name,
        "image_size": int(image_size),
        "in_chans": int(in_chans),
        "patch_size": patch_size,
        "width": int(trunk.num_features),
    }


def create_trunk_from_spec(spec: VisionSpec | str, **kwargs: Any) -> nn.Module:
    """:func:`create_vision_trunk` for a :class:`VisionSpec` (or its string form)."""
    spec = VisionSpec.parse(spec)
    return create_vision_trunk(spec.model_name, spec.image_size, spec.in_chans, **kwargs)


def load_trunk_weights(trunk: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load a local weights file into a trunk (safetensors, or torch.load with weights_only=True).

    Keys may carry a ``visual.trunk.`` or ``module.`` prefix; classifier weights are ignored.
    Mismatched shapes always raise, naming the keys.
    """
    state = read_state_dict(path)
    for prefix in ("module.", "visual.trunk."):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = trunk.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(("head.", "fc."))}
    load_state_dict_checked(trunk, state, strict=strict, source=str(path))
    return trunk
