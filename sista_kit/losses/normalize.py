"""L2 normalisation over the last dim as an autograd Function (``F.normalize``'s values and gradients).

Autograd through ``x / max(||x||, eps)`` takes a division backward with broadcasting (several passes
and temporaries); this Function saves ``y`` and ``1 / ||x||`` and needs two passes.
"""

from __future__ import annotations

import torch
from torch import Tensor


class NormalizeFunction(torch.autograd.Function):
    """``x / max(||x||, eps)`` over the last dim (``F.normalize``) with a two-pass backward:
    dx = (g - y <y, g>) / ||x|| where the norm exceeds eps, g / eps elsewhere."""

    @staticmethod
    def forward(ctx, x: Tensor, eps: float) -> Tensor:
        inv = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(eps).reciprocal_()
        y = x * inv
        ctx.save_for_backward(y, inv)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        y, inv = ctx.saved_tensors
        # rows clamped at eps: y = x / eps is linear in x, so its gradient keeps no projection
        inner = torch.linalg.vecdot(y, grad).unsqueeze(-1).masked_fill_(inv >= 1.0 / ctx.eps, 0.0)
        return torch.addcmul(grad, y, inner, value=-1.0).mul_(inv), None


def normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """``F.normalize`` over the last dim (values and gradients). Low-precision inputs are normalised in
    float32 with ``eps`` raised to the dtype's machine epsilon: the default underflows in float16
    (zero slots became NaN) and the gradient of a zero vector, g / eps, must stay within range."""
    if x.dtype in (torch.float16, torch.bfloat16):
        eps = max(eps, torch.finfo(x.dtype).eps)
        return NormalizeFunction.apply(x.float(), eps).to(x.dtype)
    return NormalizeFunction.apply(x, eps)
