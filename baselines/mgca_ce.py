"""MGCA's weighted diagonal cross-entropy (both directions) as one autograd Function.

For a (B, N, N) similarity and per-slot weights w (B, N), with target = the diagonal:

    rows = -(1/B) sum_{b,l} w_bl log softmax_m(sim_b)[l, l]
    cols = -(1/B) sum_{b,m} w_bm log softmax_l(sim_b)[m, m]

Forward keeps the row and column log-sum-exps only; backward forms
dL/dsim = (g_rows w_l P_rows + g_cols w_m P_cols - diag(g_rows w + g_cols w)) / B in one buffer,
instead of two log-softmax tensors and their backward passes. When the caller knows that every
entry lies in [-span, 0] with exp(-span) normal (``bounded``), one buffer E = exp(sim) gives both
log-sum-exps as row and column sums and both softmaxes in backward: no max pass and no second exp.
"""

from __future__ import annotations

import torch
from torch import Tensor


class WeightedDiagCE(torch.autograd.Function):
    """``(sim (B, N, N), weights (B, N), bounded) -> (rows, cols)`` scalars; no gradient to the weights."""

    @staticmethod
    def forward(ctx, sim: Tensor, weights: Tensor, bounded: bool) -> tuple[Tensor, Tensor]:
        batch = sim.shape[0]
        if bounded:
            expd = torch.exp(sim)
            sum_rows, sum_cols = expd.sum(dim=2), expd.sum(dim=1)
            lse_rows, lse_cols = sum_rows.log(), sum_cols.log()
            ctx.save_for_backward(expd, weights, sum_rows.reciprocal_(), sum_cols.reciprocal_())
        else:
            lse_rows = torch.logsumexp(sim, dim=2)
            lse_cols = torch.logsumexp(sim, dim=1)
            ctx.save_for_backward(sim, weights, lse_rows, lse_cols)
        ctx.bounded = bounded
        diag = torch.diagonal(sim, dim1=1, dim2=2)
        rows = (weights * (lse_rows - diag)).sum() / batch
        cols = (weights * (lse_cols - diag)).sum() / batch
        return rows, cols

    @staticmethod
    def backward(ctx, grad_rows: Tensor, grad_cols: Tensor):
        saved, weights, row_term, col_term = ctx.saved_tensors
        batch = saved.shape[0]
        w_rows = weights * (grad_rows / batch)
        w_cols = weights * (grad_cols / batch)
        if ctx.bounded:  # softmax = E / sum: saved are E and 1 / sum
            grad = torch.mul(saved, (w_rows * row_term).unsqueeze(2))
            grad.addcmul_(saved, (w_cols * col_term).unsqueeze(1))
        else:  # saved are sim and the log-sum-exps
            grad = torch.exp(saved - row_term.unsqueeze(2)).mul_(w_rows.unsqueeze(2))
            grad.addcmul_(torch.exp(saved - col_term.unsqueeze(1)), w_cols.unsqueeze(1))
        grad.diagonal(dim1=1, dim2=2).sub_(w_rows + w_cols)
        return grad, None, None


def weighted_diag_ce(sim: Tensor, weights: Tensor, *, bounded: bool = False) -> tuple[Tensor, Tensor]:
    """Row and column weighted cross-entropy of ``sim`` with target = diagonal, divided by B.

    ``bounded``: every entry of ``sim`` lies in [-span, 0] with exp(-span) a normal number (see
    :func:`sista_kit.losses.shifted_exp.exp_fits`); the faster one-exp path is then exact.
    """
    return WeightedDiagCE.apply(sim, weights.to(sim.dtype).detach(), bounded)
