"""Checkpoints: a folder with ``model.safetensors`` (the whole CLIP model) and ``config.json``.

Writes are atomic: everything goes to a hidden temporary folder beside the target, which is then
renamed into place, so an interrupted write never leaves a half-written checkpoint under the final
name. Loading never unpickles arbitrary objects (safetensors, and ``torch.load(weights_only=True)``
for the optional training state).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = [
    "MODEL_FILE",
    "CONFIG_FILE",
    "TRAIN_STATE_FILE",
    "save_checkpoint",
    "load_checkpoint",
    "load_vision_trunk",
    "read_checkpoint_config",
    "load_train_state",
    "load_state_dict_checked",
    "CheckpointError",
]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAIN_STATE_FILE = "train_state.pt"
VISION_PREFIX = "visual.trunk."


class CheckpointError(ValueError):
    """A checkpoint does not match the model it is loaded into (names the offending keys)."""


def _unwrap(model: nn.Module) -> nn.Module:
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def _tensors_for_safetensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detach, move to CPU and make contiguous; clone tensors that share storage (tied weights)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state.items():
        t = value.detach().to("cpu").contiguous()
        ident = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else (id(t), 0)
        if t.numel() and ident in seen:
            t = t.clone()
        seen.add(ident)
        out[key] = t
    return out


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    config: Mapping[str, Any],
    train_state: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Write ``model`` to the folder ``path`` atomically.

    Args:
        model: the CLIP model (DDP / compiled wrappers are unwrapped).
        path: target folder; replaced if it exists.
        config: the model config (``vision_cfg`` / ``text_cfg`` ...), written as ``config.json``.
        train_state: optional optimizer / scheduler / RNG state, written with ``torch.save`` as
            ``train_state.pt`` (only tensors and plain Python containers, so it reloads with
            ``weights_only=True``).
        extra_files: optional ``{relative name: text or bytes}`` written beside the model.

    Returns:
        The final folder path.
    """
    if "vision_cfg" not in config or "text_cfg" not in config:
        raise ValueError("config must hold 'vision_cfg' and 'text_cfg' (the model config)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(_tensors_for_safetensors(_unwrap(model).state_dict()), str(tmp / MODEL_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(dict(config), indent=2, sort_keys=True))
        if train_state is not None:
            torch.save(dict(train_state), tmp / TRAIN_STATE_FILE)
        for name, content in (extra_files or {}).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _require_folder(path: str | Path) -> Path:
    path = Path(path)
    if not (path / MODEL_FILE).is_file() or not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"{path} is not a sista_kit checkpoint (needs {MODEL_FILE} and {CONFIG_FILE})"
        )
    return path


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The model config stored in a checkpoint folder."""
    return json.loads((_require_folder(path) / CONFIG_FILE).read_text())


def load_train_state(path: str | Path) -> dict[str, Any] | None:
    """The training state of a checkpoint folder (``weights_only=True``), or None if it has none."""
    file = Path(path) / TRAIN_STATE_FILE
    if not file.is_file():
        return None
    return torch.load(file, map_location="cpu", weights_only=True)


def load_state_dict_checked(
    module: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True, source: str = ""
) -> None:
    """``module.load_state_dict`` that names every mismatched key before anything is loaded.

    Raises:
        CheckpointError: shapes differ (always), or keys are missing / unexpected (when ``strict``).
    """
    own = module.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    problems = []
    if mismatched:
        problems.append("shape mismatch for " + "; ".join(mismatched))
    if strict and missing:
        problems.append("missing keys: " + ", ".join(missing))
    if strict and unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if problems:
        where = f" from {source}" if source else ""
        raise CheckpointError(
            f"cannot load weights into {type(module).__name__}{where}: " + " | ".join(problems)
        )
    module.load_state_dict(dict(state), strict=strict)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", strict: bool = True
) -> nn.Module:
    """Rebuild the CLIP model from ``config.json`` and load ``model.safetensors`` into it."""
    from sista_kit.models.clip import build_model

    folder = _require_folder(path)
    config = read_checkpoint_config(folder)
    model = build_model(config)
    state = load_file(str(folder / MODEL_FILE), device=str(map_location))
    load_state_dict_checked(model, state, strict=strict, source=str(folder / MODEL_FILE))
    return model.to(map_location)


def vision_spec(config: Mapping[str, Any]) -> tuple[str, int, int]:
    """(timm model name, image size, input channels) of a model config's vision tower."""
    import timm

    vision = config["vision_cfg"]
    name = vision.get("timm_model_name")
    if not name:
        raise ValueError("the checkpoint's vision tower is not a timm model (no vision_cfg.timm_model_name)")
    size = vision.get("image_size", 224)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    in_chans = vision.get("in_chans")
    if in_chans is None:
        cfg = timm.models.get_pretrained_cfg(name)
        in_chans = cfg.input_size[0] if cfg is not None else 3
    return name, size, int(in_chans)


def load_vision_trunk(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load only the vision trunk (a timm model) of a checkpoint, for downstream backbones.

    Returns:
        ``(trunk, info)``, ``info`` with keys arch, model_name, image_size, in_chans, patch_size, width.
    """
    from sista_kit.models.vision import create_vision_trunk, trunk_info

    folder = _require_folder(path)
    config = read_checkpoint_config(folder)
    name, size, in_chans = vision_spec(config)
    trunk = create_vision_trunk(name, size, in_chans)
    full = load_file(str(folder / MODEL_FILE), device=str(map_location))
    state = {k[len(VISION_PREFIX) :]: v for k, v in full.items() if k.startswith(VISION_PREFIX)}
    if not state:
        raise CheckpointError(f"{folder / MODEL_FILE} has no '{VISION_PREFIX}*' keys")
    load_state_dict_checked(trunk, state, strict=True, source=str(folder / MODEL_FILE))
    return trunk.to(map_location), trunk_info(trunk, name, size, in_chans)
