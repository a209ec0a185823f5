"""Input validation for the baseline losses.

Shape and dtype problems raise at once. Non-finite values are checked with ``torch._assert_async``:
on CPU it raises a ``RuntimeError`` naming the tensor immediately; on CUDA it is a device-side
assertion that costs no host synchronisation in the forward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_float(name: str, x: Tensor, shape: tuple[int | None, ...], *, finite: bool = True) -> None:
    """Raise unless ``x`` is a floating tensor whose shape matches ``shape`` (None = any size)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
    check_shape(name, x, shape)
    if finite:
        assert_finite(name, x)


def check_shape(name: str, x: Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise a ValueError naming ``name`` when ``x`` does not have ``shape`` (None = any size)."""
    ok = x.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape, strict=False))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def check_mask(name: str, mask: Tensor, shape: tuple[int, int]) -> None:
    """A word mask is a bool (B, L) tensor with at least one True per row (no empty text)."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be a bool tensor (True = real slot), got {got}")
    check_shape(name, mask, shape)
    torch._assert_async(mask.any(dim=1).all(), f"{name} has a row with no True slot (an empty text)")


def assert_finite(name: str, x: Tensor) -> None:
    """Fail with a message naming ``name`` if ``x`` holds NaN or inf (no host sync on CUDA)."""
    torch._assert_async(torch.isfinite(x).all(), f"{name} contains NaN or inf")


def same_size(what: str, **sizes: int) -> int:
    """Return the common value of ``sizes``; raise naming every argument when they disagree."""
    values = set(sizes.values())
    if len(values) != 1:
        listed = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(f"{what} mismatch: {listed}")
    return values.pop()
