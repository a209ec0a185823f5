"""Input validation shared by the losses: clear errors instead of silent wrong numbers."""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(name: str, x: Tensor, ndim: int, *, floating: bool = True) -> None:
    """Raise if ``x`` is not a tensor of ``ndim`` dimensions (floating, finite when ``floating``)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if floating:
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf")


def check_mask(text_mask: Tensor | None, batch: int, length: int) -> None:
    """A word mask is a (B, L) bool tensor with at least one real word in the batch."""
    if text_mask is None:
        return
    if not isinstance(text_mask, Tensor) or text_mask.dtype != torch.bool:
        got = text_mask.dtype if isinstance(text_mask, Tensor) else type(text_mask).__name__
        raise TypeError(f"text_mask must be a bool tensor (True = real word), got {got}")
    if tuple(text_mask.shape) != (batch, length):
        raise ValueError(f"text_mask must have shape {(batch, length)}, got {tuple(text_mask.shape)}")
    if not text_mask.any():
        raise ValueError("text_mask is all False: the batch has no real word (empty reports?)")


def check_same(name_a: str, a: int, name_b: str, b: int, what: str) -> None:
    """Raise when two sizes that must agree differ."""
    if a != b:
        raise ValueError(f"{what} mismatch: {name_a} has {a}, {name_b} has {b}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise for a value outside ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")
