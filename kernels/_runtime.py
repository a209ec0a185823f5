"""Triton runtime facts shared by the kernels: interpreter mode, dot precision, launch context.

Importing this module imports triton. ``TRITON_INTERPRET=1`` must be set before that import for the
kernels to run on CPU tensors (Triton decides per kernel when it is decorated).
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from .limits import SUPPORTED_DTYPES


@triton.jit
def _probe(x):
    pass


#: True when the kernels of this process run in Triton's CPU interpreter.
INTERPRET: bool = type(_probe).__name__ == "InterpretedFunction"


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (and >= 1)."""
    return triton.next_power_of_2(max(int(n), 1))


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision that matches torch's own matmul for ``dtype``.

    fp32 operands use exact fp32 products in the interpreter, TF32 when torch itself allows TF32
    matmuls, and 3xTF32 (fp32-grade accuracy on tensor cores) otherwise. Half-precision operands
    ignore the setting.
    """
    if INTERPRET or dtype != torch.float32:
        return "ieee"
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "tf32x3"


def device_context(tensor: torch.Tensor):
    """Launch on the tensor's own GPU (Triton launches on the current device)."""
    if tensor.device.type == "cuda":
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()


def check_device(*tensors: torch.Tensor) -> None:
    """Kernels read CUDA tensors, or CPU tensors under the interpreter; all on one device."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"all inputs must be on one device, got {sorted(str(d) for d in devices)}")
    device = next(iter(devices))
    if device.type == "cuda" or (INTERPRET and device.type == "cpu"):
        return
    hint = (
        " (set TRITON_INTERPRET=1 before sista_kit.kernels is first used to run on CPU)"
        if not INTERPRET
        else ""
    )
    raise RuntimeError(f"the Triton kernels need CUDA tensors, got {device}{hint}")


def check_dtype(name: str, tensor: torch.Tensor) -> None:
    """Raise for dtypes the kernels do not read."""
    if tensor.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name} must be float32, bfloat16 or float16 for the Triton kernels, got {tensor.dtype}"
        )


__all__ = [
    "INTERPRET",
    "SUPPORTED_DTYPES",
    "check_device",
    "check_dtype",
    "device_context",
    "dot_precision",
    "next_pow2",
    "tl",
    "triton",
]
