"""Backend choice for the fused kernels: PyTorch reference or Triton.

Rules, in order:
1. an explicit ``"torch"`` or ``"triton"`` argument wins;
2. ``"auto"`` reads ``SISTA_KERNELS`` (auto | torch | triton; unset = auto);
3. auto picks Triton only for CUDA tensors of a supported shape and dtype, large enough to pay, and
   PyTorch otherwise (CPU tensors never reach Triton in auto mode);
4. Triton asked for explicitly on CPU tensors runs in Triton's interpreter when ``TRITON_INTERPRET=1``
   was set before the kernels were first imported, and raises otherwise; it also raises when triton
   is not importable or the shape is not supported;
5. the SIA strategy ``soft`` (no tiled kernel) always runs in PyTorch.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from torch import Tensor

from .limits import MAX_DIM, MAX_PATCHES, MIN_INFONCE_BATCH, MIN_SPARSE_ALIGN_WORK, SUPPORTED_DTYPES

BACKENDS = ("auto", "torch", "triton")
#: Operations with a kernel, and the tensors ``choose_backend`` expects for each.
OPS = {"sparse_align": "(patches (B, P, D), words (B, L, D))", "infonce": "(image (B, D), text (B, D))"}
ENV_VAR = "SISTA_KERNELS"
#: SIA strategies the tiled kernel implements (``soft`` needs whole target rows).
TILED_STRATEGIES = ("eliminate", "positive")
_TRUE = ("1", "true", "yes", "on", "y")


def triton_available() -> bool:
    """True when the triton package can be found (without importing it)."""
    return importlib.util.find_spec("triton") is not None


def interpreter_enabled() -> bool:
    """True when the kernels run (or, once imported, will run) in Triton's CPU interpreter."""
    runtime = sys.modules.get(f"{__package__}._runtime")
    if runtime is not None:  # decided when the kernels were decorated
        return bool(runtime.INTERPRET)
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in _TRUE


def unsupported_reason(op: str, *tensors: Tensor, strategy: str | None = None) -> str | None:
    """Why the kernel for ``op`` cannot take these tensors (or SIA ``strategy``), or None when it can."""
    if op not in OPS:
        raise ValueError(f"unknown kernel op {op!r}; expected one of {', '.join(OPS)}")
    if op == "infonce" and strategy is not None and strategy not in TILED_STRATEGIES:
        return f"strategy {strategy!r} (the tiled kernel supports {', '.join(TILED_STRATEGIES)})"
    if len(tensors) < 2:
        return f"{op} expects {OPS[op]}, got {len(tensors)} tensor(s)"
    first, second = tensors[:2]
    for tensor in (first, second):
        if tensor.dtype not in SUPPORTED_DTYPES:
            return f"dtype {tensor.dtype} (supported: float32, bfloat16, float16)"
    if op == "sparse_align":
        if first.dim() != 3 or second.dim() != 3:
            return f"{op} expects {OPS[op]}, got shapes {tuple(first.shape)}, {tuple(second.shape)}"
        if first.shape[1] > MAX_PATCHES:
            return f"P={first.shape[1]} patches (the fused kernel holds at most {MAX_PATCHES} per row)"
        return None
    if first.dim() != 2 or second.dim() != 2:
        return f"{op} expects {OPS[op]}, got shapes {tuple(first.shape)}, {tuple(second.shape)}"
    if first.shape[1] > MAX_DIM:
        return f"D={first.shape[1]} features (the tiled kernel supports at most {MAX_DIM})"
    return None


def pays(op: str, *tensors: Tensor) -> bool:
    """True when the problem is large enough for the kernel to beat the PyTorch path."""
    if op == "sparse_align":
        patches, words = tensors[:2]
        batch, num_patches, dim = patches.shape
        return batch * words.shape[1] * num_patches * dim >= MIN_SPARSE_ALIGN_WORK
    return tensors[0].shape[0] >= MIN_INFONCE_BATCH


def _require_triton(op: str, tensors: tuple[Tensor, ...], strategy: str | None = None) -> None:
    """Raise a clear error when the Triton kernel cannot run on these tensors."""
    try:
        importlib.import_module("triton")
    except Exception as err:  # ImportError, or a broken install failing at import
        raise RuntimeError(
            f"backend 'triton' was requested for {op} but triton is not importable ({err}); "
            "install triton or use backend='torch'"
        ) from err
    devices = {t.device.type for t in tensors}
    if devices - {"cuda", "cpu"}:
        raise RuntimeError(
            f"backend 'triton' runs on CUDA tensors (or CPU under the interpreter), got {devices}"
        )
    if "cpu" in devices and not interpreter_enabled():
        raise RuntimeError(
            f"backend 'triton' was requested for {op} on CPU tensors: Triton needs CUDA tensors, or "
            "TRITON_INTERPRET=1 set before sista_kit.kernels' kernels are first imported (slow; for tests). "
            "Use backend='auto' or 'torch' on CPU."
        )
    reason = unsupported_reason(op, *tensors, strategy=strategy)
    if reason is not None:
        raise ValueError(
            f"backend 'triton' cannot run {op}: unsupported {reason}; use backend='auto' or 'torch'"
        )


def choose_backend(requested: str, op: str, *tensors: Tensor, strategy: str | None = None) -> str:
    """Resolve ``auto|torch|triton`` (and the ``SISTA_KERNELS`` override) to ``"torch"`` or ``"triton"``.

    Args:
        requested: the backend asked for by the caller (a loss's ``backend`` argument).
        op: ``"sparse_align"`` (tensors: patches, words) or ``"infonce"`` (tensors: image, text).
        tensors: the inputs the kernel would read.
        strategy: for ``infonce``, the SIA strategy (``soft`` always runs in PyTorch).

    Raises:
        ValueError: unknown backend / op / ``SISTA_KERNELS`` value, or an explicit ``triton`` request
            for an unsupported shape.
        RuntimeError: an explicit ``triton`` request that cannot run (no triton; CPU tensors without
            the interpreter).
    """
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; expected one of {', '.join(BACKENDS)}")
    if op not in OPS:
        raise ValueError(f"unknown kernel op {op!r}; expected one of {', '.join(OPS)}")
    if requested == "auto":
        requested = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
        if requested not in BACKENDS:
            raise ValueError(f"{ENV_VAR}={requested!r} is not one of {', '.join(BACKENDS)}")
    if requested == "torch" or (
        op == "infonce" and strategy is not None and strategy not in TILED_STRATEGIES
    ):
        return "torch"  # an SIA strategy without a kernel (soft) runs in PyTorch whatever was asked
    if requested == "triton":
        _require_triton(op, tensors, strategy)
        return "triton"
    if not tensors or not all(t.is_cuda for t in tensors) or not triton_available():
        return "torch"
    if unsupported_reason(op, *tensors, strategy=strategy) is not None or not pays(op, *tensors):
        return "torch"
    return "triton"
