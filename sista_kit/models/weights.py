"""Reading weight files and loading state dicts with errors that name the file and the keys.

No pickled objects: safetensors files, or ``torch.load(weights_only=True)`` for plain state dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["CheckpointError", "load_state_dict_checked", "read_safetensors", "read_state_dict"]


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not match the model it is loaded into (names file / keys)."""


def read_safetensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is truncated or not a safetensors file (names the file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt): {e}") from e


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file: safetensors, or a torch file (``{"state_dict": ...}`` unwrapped)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


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
