"""MGCA's weighted diagonal cross-entropy (both directions) as one autograd Function.

For a (B, N, N) similarity and per-slot weights w (B, N), with target = the diagonal:

    rows = -(1/B) sum_{b,l} w_bl log softmax_m(sim_b)[l, l]
    cols = -(1/B) sum_{b,m} w_bm log softmax_l(sim_b)[m, m]

Forward keeps the row and column log-sum-exps only; backward forms
dL/dsim = (g_rows w_l P_rows + g_cols w_m P_cols - diag(g_rows w + g_cols w)) / B in one buffer,
instead of two log-softmax tensors and their backward passes.
"""

from __future__ import annotations

import torch
from torch import Tensor


class WeightedDiagCE(torch.autograd.Function):
    """``(sim (B, N, N), weights (B, N)) -> (rows, cols)`` scalars; no gradient to the weights."""

    @staticmethod
    def forward(ctx, sim: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        batch = sim.shape[0]
        lse_rows = torch.logsumexp(sim, dim=2)
        lse_cols = torch.logsumexp(sim, dim=1)
        diag = torch.diagonal(sim, dim1=1, dim2=2)
        rows = (weights * (lse_rows - diag)).sum() / batch
        cols = (weights * (lse_cols - diag)).sum() / batch
        ctx.save_for_backward(sim, weights, lse_rows, lse_cols)
        return rows, cols

    @staticmethod
    def backward(ctx, grad_rows: Tensor, grad_cols: Tensor):
        sim, weights, lse_rows, lse_cols = ctx.saved_tensors
        batch = sim.shape[0]
        w_rows = weights * (grad_rows / batch)
        w_cols = weights * (grad_cols / batch)
        grad = torch.exp(sim - lse_rows.unsqueeze(2)).mul_(w_rows.unsqueeze(2))
        grad.addcmul_(torch.exp(sim - lse_cols.unsqueeze(1)), w_cols.unsqueeze(1))
        grad.diagonal(dim1=1, dim2=2).sub_(w_rows + w_cols)
        return grad, None


def weighted_diag_ce(sim: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column weighted cross-entropy of ``sim`` with target = diagonal, divided by B."""
    return WeightedDiagCE.apply(sim, weights.to(sim.dtype).detach())
