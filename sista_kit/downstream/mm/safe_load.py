"""mmengine checkpoints under torch's weights-only loading (torch >= 2.6), through an allow-list.

mmengine 0.10 stores the message hub in its checkpoints: ``HistoryBuffer`` objects holding numpy
arrays. ``torch.load(weights_only=True)`` refuses them, so ``resume`` / ``load_from`` fail. Two
small pieces fix that without turning weights-only loading off:

- ``allow_mmengine_checkpoints()`` allow-lists exactly those globals (the buffer classes, numpy's
  ndarray / dtype / scalar / ``_reconstruct``);
- ``SafeCheckpointHook`` stores the buffers as :class:`PlainHistoryBuffer`, which leaves out the
  buffer's table of statistics *functions* (``HistoryBuffer.__getstate__`` pickles them through
  ``builtins.getattr``, which an allow-list must not admit). They are rebuilt on load.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from .registry import HOOKS, register


class PlainHistoryBuffer(HistoryBuffer):
    """A ``HistoryBuffer`` that pickles its data only (its statistics methods are class defaults)."""

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "statistics_methods"}

    @classmethod
    def from_buffer(cls, buf: HistoryBuffer) -> PlainHistoryBuffer:
        """Copy ``buf``'s data into a plain buffer."""
        new = cls.__new__(cls)
        new.__dict__.update({k: v for k, v in buf.__dict__.items() if k != "statistics_methods"})
        return new


def _numpy_globals() -> list:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    found = [np.ndarray, np.dtype, multiarray.scalar, multiarray._reconstruct]
    # numpy >= 1.25 may pickle dtypes as instances of their numpy.dtypes classes.
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return found


def allow_mmengine_checkpoints() -> None:
    """Register mmengine's checkpoint globals as safe for ``torch.load(weights_only=True)``."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is None:  # torch < 2.4 does not default to weights-only loading
        return
    add([HistoryBuffer, PlainHistoryBuffer, *_numpy_globals()])


def _plain(obj: Any) -> Any:
    if isinstance(obj, HistoryBuffer) and not isinstance(obj, PlainHistoryBuffer):
        return PlainHistoryBuffer.from_buffer(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


class SafeCheckpointHook(Hook):
    """Store the message hub's buffers as :class:`PlainHistoryBuffer` so checkpoints reload weights-only."""

    priority = "VERY_LOW"

    def before_run(self, runner: Any) -> None:
        """Allow-list mmengine's checkpoint globals before the runner loads or resumes one."""
        allow_mmengine_checkpoints()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = _plain(checkpoint["message_hub"])


register([HOOKS], SafeCheckpointHook)
