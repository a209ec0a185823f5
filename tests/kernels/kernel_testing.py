"""Helpers shared by the kernel tests."""

from __future__ import annotations

import torch


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, *, atol: float, rtol: float = 0.0, what: str = ""
) -> None:
    """Compare in fp32 with an absolute + relative tolerance, naming the quantity on failure."""
    actual, expected = actual.detach().float().cpu(), expected.detach().float().cpu()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


def grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], upstream: torch.Tensor | None = None):
    """Gradients of ``out`` (weighted by ``upstream``) with respect to ``inputs``."""
    return torch.autograd.grad(out, inputs, upstream)
