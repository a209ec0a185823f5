"""Training state for exact resume: RNG states and checkpoint discovery.

Everything here reloads with ``torch.load(weights_only=True)``: RNG states are stored as tensors,
ints and tuples only.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["rng_state", "set_rng_state", "latest_checkpoint", "checkpoint_dirs"]

_EPOCH_DIR = re.compile(r"^epoch_(\d+)$")


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch CPU (and CUDA, if initialised) RNG states of this process."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (
            kind,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dirs(folder: str | Path) -> list[tuple[int, Path]]:
    """Complete epoch checkpoints ``epoch_<n>`` in a run's checkpoint folder, oldest first.

    Folders appear under their final name only once fully written (atomic rename), so every
    listed folder is complete; temporary folders (``.epoch_<n>.tmp-*``) are never listed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _EPOCH_DIR.match(p.name)
        if m and p.is_dir() and (p / "model.safetensors").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete epoch checkpoint of a run, or None."""
    found = checkpoint_dirs(folder)
    return found[-1][1] if found else None
