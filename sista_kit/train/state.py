"""Training state for exact resume: RNG states, checkpoint discovery and integrity.

Everything here reloads with ``torch.load(weights_only=True)``: RNG states are stored as tensors,
ints and tuples only.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from sista_kit.models.checkpoint import (
    MODEL_FILE,
    TRAIN_STATE_FILE,
    CheckpointError,
    load_train_state,
    read_checkpoint_config,
)

__all__ = [
    "rng_state",
    "set_rng_state",
    "latest_checkpoint",
    "checkpoint_dirs",
    "ResumePoint",
    "check_resumable",
    "checkpoint_problem",
    "latest_intact_checkpoint",
    "resume_point",
]

_EPOCH_DIR = re.compile(r"^epoch_(\d+)$")
_STATE_KEYS = ("epoch", "optimizer", "loss")
_log = logging.getLogger("sista_kit.train")


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


class ResumePoint(NamedTuple):
    """A checkpoint folder that passed :func:`check_resumable`, with its loaded training state."""

    path: Path
    train_state: dict[str, Any]


def _check_weights(path: Path) -> None:
    """``model.safetensors`` exists and its header covers the whole file (catches truncation)."""
    from safetensors import SafetensorError, safe_open

    file = path / MODEL_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found")
    try:
        with safe_open(str(file), framework="pt") as fh:
            fh.keys()
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file} is not a readable safetensors file (truncated or corrupt): {e}") from e


def check_resumable(path: str | Path) -> dict[str, Any]:
    """Check that a checkpoint folder can be resumed from; its training state.

    Intact means: ``model.safetensors`` readable, ``config.json`` a valid model config, and
    ``train_state.pt`` loadable with ``weights_only=True`` and holding epoch, optimizer and loss state.

    Raises:
        FileNotFoundError: a file is missing (names it).
        CheckpointError: a file is truncated, corrupt or incomplete (names it).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {path}")
    _check_weights(path)
    read_checkpoint_config(path)
    state = load_train_state(path, required=True)
    assert state is not None  # required=True raises instead
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path / TRAIN_STATE_FILE} lacks {', '.join(missing)}: not a training state")
    if not isinstance(state["epoch"], int) or state["epoch"] < 0:
        raise CheckpointError(f"{path / TRAIN_STATE_FILE}: epoch must be an int >= 0, got {state['epoch']!r}")
    return state


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be resumed from (the error text of :func:`check_resumable`), or None if intact."""
    try:
        check_resumable(path)
    except (FileNotFoundError, CheckpointError) as e:
        return str(e)
    return None


def _epoch_folders(folder: Path) -> list[tuple[int, Path]]:
    """Every ``epoch_<n>`` folder, complete or not, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _EPOCH_DIR.match(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def _newest_intact(folder: Path) -> ResumePoint | None:
    skipped = []
    for _, path in _epoch_folders(folder):
        try:
            state = check_resumable(path)
        except (FileNotFoundError, CheckpointError) as e:
            skipped.append(f"{path}: {e}")
            _log.warning("resume: skipping %s: %s", path, e)
            continue
        if skipped:
            _log.warning("resume: falling back to %s, an older intact checkpoint", path)
        return ResumePoint(path, state)
    if skipped:
        raise CheckpointError(
            f"no intact checkpoint to resume from in {folder}; every epoch_<n> folder is damaged:\n  "
            + "\n  ".join(skipped)
        )
    return None


def latest_intact_checkpoint(folder: str | Path) -> Path | None:
    """The newest intact epoch checkpoint of a run (older ones if newer are damaged, with a warning).

    Returns None when the folder holds no ``epoch_<n>`` folder at all (nothing to resume).

    Raises:
        CheckpointError: ``epoch_<n>`` folders exist but none is intact (names each and why).
    """
    point = _newest_intact(Path(folder))
    return point.path if point is not None else None


def resume_point(resume: str | Path | None, folder: str | Path) -> ResumePoint | None:
    """Where a run resumes from: ``resume`` is None (start afresh), ``"latest"`` (the newest intact
    checkpoint in the run's checkpoint ``folder``, None if there is none yet) or a checkpoint folder.

    Raises:
        FileNotFoundError, CheckpointError: an explicit folder is not intact, or ``latest`` finds
            checkpoints but none intact (the message names the folder and file).
    """
    if resume is None or resume == "":
        return None
    if str(resume) == "latest":
        return _newest_intact(Path(folder))
    path = Path(resume)
    return ResumePoint(path, check_resumable(path))
