"""The vision tower of a sista_kit pretraining checkpoint (or a random one), as a downstream encoder.

Checkpoint keys are mapped to the trunk by ``sista_kit.models.checkpoint.load_vision_trunk`` (the
``visual.trunk.`` prefix, docs/contracts.md section 4), which names missing / unexpected / mis-shaped
keys. This module imports no OpenMMLab package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
RANDOM = "random"


@dataclass(frozen=True)
class EncoderSpec:
    """Architecture of a vision trunk: enough to build it again with random weights."""

    model_name: str
    image_size: int
    in_chans: int

    @classmethod
    def parse(cls, arch: str | dict | EncoderSpec) -> EncoderSpec:
        """From ``"model_name[:image_size[:in_chans]]"``, a dict or a spec (defaults 64 px, 1 channel)."""
        if isinstance(arch, EncoderSpec):
            return arch
        if isinstance(arch, dict):
            return cls(str(arch["model_name"]), int(arch["image_size"]), int(arch["in_chans"]))
        parts = str(arch).split(":")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"arch must look like 'model_name[:image_size[:in_chans]]', got {arch!r}")
        size = int(parts[1]) if len(parts) > 1 else 64
        chans = int(parts[2]) if len(parts) > 2 else 1
        return cls(parts[0], size, chans)


def check_checkpoint_dir(path: str | Path) -> Path:
    """Return ``path`` as a Path after checking it is a sista_kit checkpoint folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"checkpoint folder {p} does not exist")
    if not p.is_dir():
        raise NotADirectoryError(
            f"checkpoint {p} is not a folder; a sista_kit checkpoint is a folder with "
            f"{WEIGHTS_FILE} and {CONFIG_FILE}"
        )
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (p / name).is_file():
            raise FileNotFoundError(f"checkpoint folder {p} has no {name}")
    return p.resolve()


def read_checkpoint_spec(path: str | Path) -> EncoderSpec:
    """The vision architecture recorded in a checkpoint folder's ``config.json``."""
    from sista_kit.models.checkpoint import read_checkpoint_config, vision_spec

    p = check_checkpoint_dir(path)
    try:
        config = read_checkpoint_config(p)
    except json.JSONDecodeError as e:
        raise ValueError(f"{p / CONFIG_FILE} is not valid JSON: {e}") from e
    return EncoderSpec(*vision_spec(config))


def trunk_kind(trunk: nn.Module) -> str:
    """``"vit"`` for a timm VisionTransformer-like trunk, ``"resnet"`` for a timm ResNet."""
    if hasattr(trunk, "patch_embed") and hasattr(trunk, "blocks"):
        return "vit"
    if all(hasattr(trunk, f"layer{i}") for i in range(1, 5)):
        return "resnet"
    raise TypeError(f"unsupported vision trunk {type(trunk).__name__}: expected a timm ViT or ResNet")


def build_trunk(
    checkpoint: str | Path | None = RANDOM, arch: str | dict | EncoderSpec | None = None
) -> tuple[nn.Module, EncoderSpec]:
    """Build the vision trunk of a checkpoint folder (with its weights) or a random one.

    Args:
        checkpoint: a checkpoint folder; ``"random"`` (or None) for random weights of ``arch``;
            ``"random:DIR"`` for random weights with the architecture recorded in ``DIR``.
        arch: ``"model_name[:image_size[:in_chans]]"``; needed for ``"random"``, ignored otherwise.
    Returns:
        (trunk, spec)
    """
    from sista_kit.models.vision import create_vision_trunk

    ckpt = RANDOM if checkpoint is None else str(checkpoint)
    if ckpt == RANDOM:
        if arch is None:
            raise ValueError("checkpoint='random' needs an architecture (arch='model_name:size:chans')")
        spec = EncoderSpec.parse(arch)
        return create_vision_trunk(spec.model_name, spec.image_size, spec.in_chans), spec
    if ckpt.startswith(RANDOM + ":"):
        spec = read_checkpoint_spec(ckpt[len(RANDOM) + 1 :])
        return create_vision_trunk(spec.model_name, spec.image_size, spec.in_chans), spec
    from sista_kit.models.checkpoint import load_vision_trunk

    # The key mapping (``visual.trunk.*`` -> trunk) and the strict key check live in load_vision_trunk.
    trunk, info = load_vision_trunk(check_checkpoint_dir(ckpt))
    return trunk, EncoderSpec(str(info["model_name"]), int(info["image_size"]), int(info["in_chans"]))


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients through ``module`` and put it in eval mode (callers keep it there in ``train()``)."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return module
