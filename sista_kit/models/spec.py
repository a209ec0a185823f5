"""What a vision trunk is: :class:`VisionSpec` (architecture, input size, channels) and its family.

One spec travels from a model config or checkpoint to a downstream backbone. It is read from a
model config (:meth:`VisionSpec.from_config`), a command-line string ``"name[:size[:chans]]"``, a
dict, a ``(name, size, chans)`` tuple, or another spec (:meth:`VisionSpec.parse`), and it unpacks
as ``name, size, chans = spec``.

:func:`trunk_family` is the one place that decides whether a trunk (or an architecture name) is a
ViT or a ResNet; everything else asks it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from sista_kit.models import archs  # noqa: F401  (registers the sista_kit timm architectures)

__all__ = ["DEFAULT_IMAGE_SIZE", "DEFAULT_IN_CHANS", "Family", "VisionSpec", "is_vit", "trunk_family"]

Family = Literal["vit", "resnet"]
#: Defaults of the string form (``"sista_vit_tiny"`` means ``"sista_vit_tiny:64:1"``).
DEFAULT_IMAGE_SIZE = 64
DEFAULT_IN_CHANS = 1


def _family_of_module(trunk: nn.Module) -> Family | None:
    if hasattr(trunk, "patch_embed") and hasattr(trunk, "blocks"):
        return "vit"
    if all(hasattr(trunk, f"layer{i}") for i in range(1, 5)):
        return "resnet"
    return None


def _family_of_name(name: str) -> Family | None:
    import timm

    cfg = timm.models.get_pretrained_cfg(name) if timm.is_model(name) else None
    first_conv = getattr(cfg, "first_conv", None)
    if first_conv == "patch_embed.proj":
        return "vit"
    if first_conv == "conv1":
        return "resnet"
    lowered = name.lower()  # architectures without a pretrained cfg: timm's naming
    if "vit" in lowered:
        return "vit"
    if "resnet" in lowered:
        return "resnet"
    return None


def trunk_family(trunk: nn.Module | str) -> Family:
    """``"vit"`` or ``"resnet"`` for a timm trunk (by its modules) or a timm architecture name.

    Raises:
        TypeError: the trunk / name is neither a timm ViT nor a timm ResNet.
    """
    found = _family_of_name(trunk) if isinstance(trunk, str) else _family_of_module(trunk)
    if found is None:
        what = repr(trunk) if isinstance(trunk, str) else type(trunk).__name__
        raise TypeError(f"unsupported vision trunk {what}: expected a timm ViT or ResNet")
    return found


def is_vit(trunk: nn.Module | str) -> bool:
    """True for a timm VisionTransformer-like trunk (patch tokens + prefix tokens) or its name."""
    try:
        return trunk_family(trunk) == "vit"
    except TypeError:
        return False


def _positive(value: Any, what: str, source: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an integer, got {value!r} (from {source!r})") from None
    if number <= 0:
        raise ValueError(f"{what} must be positive, got {number} (from {source!r})")
    return number


@dataclass(frozen=True)
class VisionSpec:
    """Architecture of a vision trunk: enough to build it again with random weights.

    Attributes:
        model_name: a timm architecture name, e.g. ``sista_vit_tiny``.
        image_size: square input size in pixels.
        in_chans: input channels (1 for grey-scale radiographs).
    """

    model_name: str
    image_size: int
    in_chans: int

    def __post_init__(self) -> None:
        if not isinstance(self.model_name, str) or not self.model_name:
            raise ValueError(f"model_name must be a non-empty string, got {self.model_name!r}")
        object.__setattr__(self, "image_size", _positive(self.image_size, "image_size", self))
        object.__setattr__(self, "in_chans", _positive(self.in_chans, "in_chans", self))

    def __iter__(self) -> Iterator[Any]:
        """Unpack as ``model_name, image_size, in_chans``."""
        return iter((self.model_name, self.image_size, self.in_chans))

    def __str__(self) -> str:
        return f"{self.model_name}:{self.image_size}:{self.in_chans}"

    @property
    def family(self) -> Family:
        """``"vit"`` or ``"resnet"`` (see :func:`trunk_family`)."""
        return trunk_family(self.model_name)

    def to_dict(self) -> dict[str, Any]:
        """``{"model_name", "image_size", "in_chans"}``."""
        return {"model_name": self.model_name, "image_size": self.image_size, "in_chans": self.in_chans}

    @classmethod
    def parse(cls, arch: str | Mapping[str, Any] | tuple | VisionSpec) -> VisionSpec:
        """From ``"model_name[:image_size[:in_chans]]"`` (defaults 64 px, 1 channel), a dict with
        ``model_name`` / ``image_size`` / ``in_chans``, a ``(name, size, chans)`` tuple, or a spec."""
        if isinstance(arch, VisionSpec):
            return arch
        if isinstance(arch, Mapping):
            missing = [k for k in ("model_name", "image_size", "in_chans") if k not in arch]
            if missing:
                raise ValueError(f"vision spec dict lacks {', '.join(missing)}: {dict(arch)}")
            return cls(str(arch["model_name"]), arch["image_size"], arch["in_chans"])
        if isinstance(arch, tuple):
            if len(arch) != 3:
                raise ValueError(
                    f"vision spec tuple must be (model_name, image_size, in_chans), got {arch!r}"
                )
            return cls(str(arch[0]), arch[1], arch[2])
        parts = str(arch).split(":")
        if not parts[0] or len(parts) > 3:
            raise ValueError(f"arch must look like 'model_name[:image_size[:in_chans]]', got {arch!r}")
        size = parts[1] if len(parts) > 1 else DEFAULT_IMAGE_SIZE
        chans = parts[2] if len(parts) > 2 else DEFAULT_IN_CHANS
        return cls(parts[0], size, chans)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VisionSpec:
        """The vision tower of a sista_kit model config (``vision_cfg.timm_model_name`` ...).

        ``in_chans`` defaults to the timm architecture's own (3 when it has no pretrained cfg).
        """
        import timm

        vision = config.get("vision_cfg")
        if not isinstance(vision, Mapping):
            raise ValueError("the model config has no vision_cfg dict")
        name = vision.get("timm_model_name")
        if not name:
            raise ValueError(
                "the checkpoint's vision tower is not a timm model (no vision_cfg.timm_model_name)"
            )
        size = vision.get("image_size", 224)
        size = size[0] if isinstance(size, (list, tuple)) else size
        in_chans = vision.get("in_chans")
        if in_chans is None:
            cfg = timm.models.get_pretrained_cfg(name) if timm.is_model(name) else None
            in_chans = cfg.input_size[0] if cfg is not None else 3
        return cls(str(name), size, in_chans)
