"""Fused Triton kernels for SISTA, importable as ``sista_kit.kernels``.

Three layers, as Liger-Kernel: Triton kernels with their autograd Functions
(:mod:`.sparse_align`, :mod:`.tiled_infonce`), functional APIs with the signatures of the PyTorch
reference, and :func:`choose_backend`, which the losses call to pick the kernel or the reference.

    from sista_kit.kernels import sparse_grouped_embeddings_triton, fn_aware_infonce_tiled

Triton is imported on first use of a kernel, not by ``import sista_kit.kernels``; set
``TRITON_INTERPRET=1`` before that first use to run the kernels on CPU tensors (tests).
"""

from __future__ import annotations

import importlib
from typing import Any

from .dispatch import BACKENDS, ENV_VAR, choose_backend, interpreter_enabled, triton_available

_LAZY = {
    "sparse_grouped_embeddings_triton": ".sparse_align",
    "SparseAlignFunction": ".sparse_align",
    "fn_aware_infonce_tiled": ".tiled_infonce",
    "TiledInfoNCEFunction": ".tiled_infonce",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "choose_backend",
    "interpreter_enabled",
    "triton_available",
    *_LAZY,
]
