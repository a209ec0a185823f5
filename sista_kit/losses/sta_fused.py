"""STA's PyTorch path as two autograd Functions that work in place on one buffer each.

:func:`~sista_kit.losses.functional.sparse_grouped_embeddings` and
:func:`~sista_kit.losses.functional.token_contrast_loss` define the math; these Functions give the
same values and gradients with hand-written backward passes:

- :class:`SparseGroupingFunction`: ``c = A @ V`` with the sparse weights ``A`` built in the buffer of
  the similarities (min-max, sparsify, renormalise, mask: in place). Backward, for a word with kept
  set K, total T and span s = max - min + eps: with ``g = dL/dA`` and ``<A, g>`` its row dot product,
  dL/dS = [A > 0] (g - <A, g>) / (T s), minus the row sum of that at the arg-min (the max term
  vanishes because the weights sum to 1); <A, g> = <c, dL/dc> is a dot product over D. Rows that
  keep nothing (uniform 1/P) and masked rows get 0.
- :class:`TokenContrastFunction`: the within-pair word contrast from one masked logit buffer whose
  row and column log-sum-exps give both directions (the pair mask is symmetric).

Low-precision inputs are computed in float32 (the grouping's epsilon underflows in float16).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .normalize import NormalizeFunction, normalize

__all__ = [
    "MINMAX_EPS",
    "NormalizeFunction",
    "SparseGroupingFunction",
    "TokenContrastFunction",
    "normalize",
    "sparse_grouped_embeddings_fused",
    "token_contrast_fused",
]

MINMAX_EPS = 1e-8


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _below(value: float, dtype: torch.dtype) -> float:
    """The largest number of ``dtype`` below ``value``: ``x >= value`` iff ``x > _below(value)``."""
    np_dtype = {torch.float64: np.float64, torch.float32: np.float32}.get(dtype)
    if np_dtype is None:  # half types: step down in the type itself
        v = torch.tensor(value, dtype=dtype)
        return float(torch.nextafter(v, torch.tensor(float("-inf"), dtype=dtype)))
    return float(np.nextafter(np_dtype(value), np_dtype(-np.inf)))


def _full_precision(x: Tensor):
    """The fused Functions compute in (at least) float32: autocast must not lower their products."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def _sparse_weights_(sim: Tensor, mask: Tensor, topk: bool, cut: float, k: int) -> tuple[Tensor, ...]:
    """Turn ``sim`` (B, L, P) into the weights A in place; return (A, row total, span, arg-min)."""
    patches = sim.shape[-1]
    low, arg_low = sim.min(dim=-1, keepdim=True)
    high = sim.amax(dim=-1, keepdim=True)
    span = (high - low).add_(MINMAX_EPS)
    sim.sub_(low).div_(span)  # min-max normalised, as the reference rounds it
    if topk:
        values, index = sim.topk(k, dim=-1)
        sim.zero_().scatter_(-1, index, values)
    else:
        F.threshold(sim, _below(cut, sim.dtype), 0.0, inplace=True)  # keep n >= cut
    total = sim.sum(dim=-1, keepdim=True)
    valid = mask.unsqueeze(-1)
    empty = (total <= 0) & valid
    # masked rows divide by inf (-> 0); rows that keep nothing get 1/P
    divisor = total.clamp_min(1e-30).masked_fill_(~valid, float("inf"))
    torch.addcdiv(empty.to(sim.dtype) / patches, sim, divisor, out=sim)
    return sim, total, span, arg_low


class SparseGroupingFunction(torch.autograd.Function):
    """``(patches (B, P, D), words (B, L, D), mask (B, L), topk, cut, k) -> c (B, L, D)``."""

    @staticmethod
    def forward(ctx, patches: Tensor, words: Tensor, mask: Tensor, topk: bool, cut: float, k: int) -> Tensor:
        work = _work_dtype(words.dtype)
        v, w = patches.to(work), words.to(work)
        weights, total, span, arg_low = _sparse_weights_(torch.bmm(w, v.transpose(1, 2)), mask, topk, cut, k)
        # 1 / (T s) on rows whose gradient flows (kept something, real word), 0 elsewhere
        scale = torch.where((total > 0) & mask.unsqueeze(-1), 1.0 / (total * span), 0.0)
        grouped = torch.bmm(weights, v)
        ctx.save_for_backward(patches, words, weights, scale, arg_low, grouped)
        return grouped.to(words.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        patches, words, weights, scale, arg_low, grouped = ctx.saved_tensors
        work = weights.dtype
        v, w, g = patches.to(work), words.to(work), grad_out.to(work)
        grad_v = torch.bmm(weights.transpose(1, 2), g)
        grad_s = torch.bmm(g, v.transpose(1, 2))  # dL/dA, turned into dL/dS in place
        inner = torch.linalg.vecdot(grouped, g).unsqueeze(-1)  # <A, dL/dA> = <A V, dL/dc>, over D not P
        grad_s.sub_(inner).mul_(weights > 0).mul_(scale)
        grad_s.scatter_add_(-1, arg_low, -grad_s.sum(dim=-1, keepdim=True))
        grad_w = torch.bmm(grad_s, v)
        grad_v.baddbmm_(grad_s.transpose(1, 2), w)
        return grad_v.to(patches.dtype), grad_w.to(words.dtype), None, None, None, None


class TokenContrastFunction(torch.autograd.Function):
    """``(grouped (B, L, D), words (B, L, D), mask (B, L), temperature) -> scalar``: mean over real
    words of (word-side + group-side cross-entropy) / 2, within each pair."""

    @staticmethod
    def forward(ctx, grouped: Tensor, words: Tensor, mask: Tensor, temperature: float) -> Tensor:
        work = _work_dtype(words.dtype)
        logits = torch.bmm(words, grouped.transpose(1, 2)).to(work).div_(temperature)
        pair = mask.unsqueeze(1) & mask.unsqueeze(2)
        logits.masked_fill_(~pair, float("-inf"))
        # rows / columns of masked words are all -inf: their lse is set to 0 (exp(-inf - 0) = 0)
        lse_rows = torch.logsumexp(logits, dim=2).masked_fill_(~mask, 0.0)
        lse_cols = torch.logsumexp(logits, dim=1).masked_fill_(~mask, 0.0)
        diag = torch.diagonal(logits, dim1=1, dim2=2).masked_fill(~mask, 0.0)
        count = mask.sum()
        loss = (0.5 * (lse_rows + lse_cols) - diag).sum() / count
        ctx.save_for_backward(grouped, words, mask, logits, lse_rows, lse_cols, count)
        ctx.temperature = temperature
        return loss.to(words.dtype)

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        grouped, words, mask, logits, lse_rows, lse_cols, count = ctx.saved_tensors
        factor = grad_loss.to(logits.dtype) / count
        grad = torch.exp(logits - lse_rows.unsqueeze(2))
        grad.add_(torch.exp(logits - lse_cols.unsqueeze(1)))
        grad.diagonal(dim1=1, dim2=2).sub_(2.0 * mask.to(grad.dtype))
        grad.mul_(0.5 * factor / ctx.temperature)
        grad = grad.to(words.dtype)
        grad_words = torch.bmm(grad, grouped)
        grad_grouped = torch.bmm(grad.transpose(1, 2), words)
        return grad_grouped, grad_words, None, None


def sparse_grouped_embeddings_fused(
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor | None = None,
    *,
    sparsify: str = "threshold",
    threshold: float | None = None,
    k: int = 8,
) -> Tensor:
    """Fused PyTorch ``c = A @ patches`` (B, L, D): same contract as the reference, inputs unchecked."""
    batch, length = text_tokens.shape[:2]
    mask = text_mask if text_mask is not None else text_tokens.new_ones((batch, length), dtype=torch.bool)
    patches = image_tokens.shape[1]
    cut = (1.0 / patches if threshold is None else float(threshold)) if sparsify == "threshold" else 0.0
    with _full_precision(text_tokens):
        return SparseGroupingFunction.apply(image_tokens, text_tokens, mask, sparsify == "topk", cut, int(k))


def token_contrast_fused(grouped: Tensor, words: Tensor, text_mask: Tensor, temperature: float) -> Tensor:
    """Fused :func:`~sista_kit.losses.functional.token_contrast_loss` (inputs L2-normalised)."""
    with _full_precision(words):
        return TokenContrastFunction.apply(grouped, words, text_mask, float(temperature))
