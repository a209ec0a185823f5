"""Checkpoints: a folder with ``model.safetensors`` (the whole CLIP model) and ``config.json``.

Writes are atomic: everything goes to a hidden temporary folder beside the target, which is then
renamed into place, so an interrupted write never leaves a half-written checkpoint under the final
name. Loading never unpickles arbitrary objects (safetensors, and ``torch.load(weights_only=True)``
for the optional training state).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from sista_kit.models.spec import VisionSpec
from sista_kit.models.vision import create_vision_trunk, trunk_info
from sista_kit.models.weights import CheckpointError, load_state_dict_checked, read_safetensors

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
    "vision_spec",
]

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAIN_STATE_FILE = "train_state.pt"
VISION_PREFIX = "visual.trunk."


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
    """The model config stored in a checkpoint folder.

    Raises:
        FileNotFoundError: the folder lacks ``model.safetensors`` or ``config.json``.
        CheckpointError: ``config.json`` is not valid JSON or not a model config (names the file).
    """
    file = _require_folder(path) / CONFIG_FILE
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from e
    if not isinstance(config, dict) or "vision_cfg" not in config or "text_cfg" not in config:
        raise CheckpointError(f"{file} is not a sista_kit model config (needs vision_cfg and text_cfg)")
    return config


def load_train_state(path: str | Path, required: bool = False) -> dict[str, Any] | None:
    """The training state of a checkpoint folder (``weights_only=True``), or None if it has none.

    Args:
        path: the checkpoint folder.
        required: raise instead of returning None when the folder has no ``train_state.pt``.

    Raises:
        FileNotFoundError: ``required`` and there is no ``train_state.pt`` (names the file).
        CheckpointError: the file is truncated, corrupt, holds objects other than tensors and plain
            containers, or is not a dict (names the file).
    """
    file = Path(path) / TRAIN_STATE_FILE
    if not file.is_file():
        if required:
            raise FileNotFoundError(f"{file} not found: {Path(path)} holds no training state to resume from")
        return None
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"{file} is not a readable training state (truncated or corrupt): {e}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{file} does not hold a training state dict (found {type(state).__name__})")
    return state


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", strict: bool = True
) -> nn.Module:
    """Rebuild the CLIP model from ``config.json`` and load ``model.safetensors`` into it.

    The checkpoint is self-contained: the training-time initial weights named by the config
    (``vision_cfg.pretrained_path``, a pretrained text ``hf_model_name`` folder) are neither read
    nor needed, since ``model.safetensors`` holds every weight.
    """
    from sista_kit.models.clip import build_model

    folder = _require_folder(path)
    config = read_checkpoint_config(folder)
    model = build_model(config, load_pretrained=False)
    state = read_safetensors(folder / MODEL_FILE, device=map_location)
    load_state_dict_checked(model, state, strict=strict, source=str(folder / MODEL_FILE))
    return model.to(map_location)


def vision_spec(config: Mapping[str, Any]) -> VisionSpec:
    """The :class:`VisionSpec` of a model config's vision tower (unpacks as ``name, size, chans``)."""
    return VisionSpec.from_config(config)


def load_vision_trunk(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load only the vision trunk (a timm model) of a checkpoint, for downstream backbones.

    Returns:
        ``(trunk, info)``, ``info`` with keys arch, model_name, image_size, in_chans, patch_size, width.
    """
    folder = _require_folder(path)
    name, size, in_chans = vision_spec(read_checkpoint_config(folder))
    trunk = create_vision_trunk(name, size, in_chans)
    full = read_safetensors(folder / MODEL_FILE, device=map_location)
    state = {k[len(VISION_PREFIX) :]: v for k, v in full.items() if k.startswith(VISION_PREFIX)}
    if not state:
        raise CheckpointError(f"{folder / MODEL_FILE} has no '{VISION_PREFIX}*' keys")
    load_state_dict_checked(trunk, state, strict=True, source=str(folder / MODEL_FILE))
    return trunk.to(map_location), trunk_info(trunk, name, size, in_chans)
