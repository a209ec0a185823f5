"""The vision tower of a sista_kit pretraining checkpoint (or a random one), as a downstream encoder.

Checkpoint keys are mapped to the trunk by ``sista_kit.models.checkpoint.load_vision_trunk`` (the
``visual.trunk.`` prefix, docs/contracts.md section 4), which names missing / unexpected / mis-shaped
keys. The architecture travels as one :class:`~sista_kit.models.spec.VisionSpec` (``EncoderSpec`` is
the same class). This module imports no OpenMMLab package.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from sista_kit.models.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    load_vision_trunk,
    read_checkpoint_config,
    vision_spec,
)
from sista_kit.models.spec import VisionSpec, trunk_family
from sista_kit.models.vision import create_trunk_from_spec

__all__ = [
    "RANDOM",
    "EncoderSpec",
    "build_trunk",
    "check_checkpoint_dir",
    "freeze",
    "read_checkpoint_spec",
    "resolve_spec",
    "trunk_kind",
]

WEIGHTS_FILE = MODEL_FILE
RANDOM = "random"


#: The downstream name of :class:`sista_kit.models.spec.VisionSpec` (one spec, two names).
EncoderSpec = VisionSpec


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


def read_checkpoint_spec(path: str | Path) -> VisionSpec:
    """The vision architecture recorded in a checkpoint folder's ``config.json``."""
    return vision_spec(read_checkpoint_config(check_checkpoint_dir(path)))


def trunk_kind(trunk: nn.Module) -> str:
    """``"vit"`` or ``"resnet"``: :func:`sista_kit.models.spec.trunk_family` (kept under this name)."""
    return trunk_family(trunk)


def resolve_spec(
    checkpoint: str | Path | None = RANDOM, arch: str | dict | VisionSpec | None = None
) -> VisionSpec:
    """The architecture a :func:`build_trunk` call builds, read without building anything.

    ``arch`` for ``"random"``; the checkpoint's ``config.json`` otherwise (``arch`` is then ignored).
    """
    ckpt = RANDOM if checkpoint is None else str(checkpoint)
    if ckpt == RANDOM:
        if arch is None:
            raise ValueError("checkpoint='random' needs an architecture (arch='model_name:size:chans')")
        return VisionSpec.parse(arch)
    return read_checkpoint_spec(ckpt.removeprefix(RANDOM + ":"))


def build_trunk(
    checkpoint: str | Path | None = RANDOM, arch: str | dict | VisionSpec | None = None
) -> tuple[nn.Module, VisionSpec]:
    """Build the vision trunk of a checkpoint folder (with its weights) or a random one.

    Args:
        checkpoint: a checkpoint folder; ``"random"`` (or None) for random weights of ``arch``;
            ``"random:DIR"`` for random weights with the architecture recorded in ``DIR``.
        arch: ``"model_name[:image_size[:in_chans]]"`` or a :class:`VisionSpec`; needed for
            ``"random"``, ignored otherwise.
    Returns:
        (trunk, spec)
    """
    ckpt = RANDOM if checkpoint is None else str(checkpoint)
    if ckpt == RANDOM or ckpt.startswith(RANDOM + ":"):
        spec = resolve_spec(ckpt, arch)
        return create_trunk_from_spec(spec), spec
    # The key mapping (``visual.trunk.*`` -> trunk) and the strict key check live in load_vision_trunk.
    trunk, info = load_vision_trunk(check_checkpoint_dir(ckpt))
    return trunk, VisionSpec(str(info["model_name"]), int(info["image_size"]), int(info["in_chans"]))


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients through ``module`` and put it in eval mode (callers keep it there in ``train()``)."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return module
