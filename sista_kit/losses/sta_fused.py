"""STA's PyTorch path as two autograd Functions that work in place on one buffer each.

:func:`~sista_kit.losses.functional.sparse_grouped_embeddings` and
:func:`~sista_kit.losses.functional.token_contrast_loss` define the math; these Functions give the
same values and gradients with hand-written backward passes:

- :class:`SparseGroupingFunction`: ``c = A @ V`` with the kept values n of ``A = n / T`` built in the
  buffer of the similarities (min-max, sparsify: in place) and 1 / T, the uniform rows and the mask
  applied to (B, L, D) rows. Backward, for a word with kept
  set K, total T and span s = max - min + eps: with ``g = dL/dA`` and ``<A, g>`` its row dot product,
  dL/dS = [A > 0] (g - <A, g>) / (T s), minus the row sum of that at the arg-min (the max term
  vanishes because the weights sum to 1); <A, g> = <c, dL/dc> is a dot product over D. Rows that
  keep nothing (uniform 1/P) and masked rows get 0.
- :class:`TokenContrastFunction`: the within-pair word contrast from one buffer of shifted
  exponentials whose row and column sums give both directions (the pair mask is symmetric); exact
  where :func:`contrast_fits` holds (the caller takes the reference elsewhere).

Low-precision inputs are computed in float32 (the grouping's epsilon underflows in float16).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .normalize import NormalizeFunction, normalize
from .shifted_exp import exp_fits

__all__ = [
    "MINMAX_EPS",
    "NormalizeFunction",
    "SparseGroupingFunction",
    "TokenContrastFunction",
    "contrast_fits",
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


def _where_positive_(grad: Tensor, values: Tensor) -> Tensor:
    """``grad`` zeroed in place where ``values <= 0``: ReLU's backward, one pass without a mask."""
    return torch.ops.aten.threshold_backward.grad_input(grad, values, 0.0, grad_input=grad)


def contrast_fits(temperature: float, dtype: torch.dtype) -> bool:
    """Whether :class:`TokenContrastFunction` is exact at ``temperature`` for inputs of ``dtype``:
    exp(-2/t), its smallest entry, must be a normal number of the work dtype (t >= 0.026 in float32)."""
    return exp_fits(2.0 / temperature, _work_dtype(dtype))


def _sparsified_(sim: Tensor, topk: bool, cut: float, k: int) -> tuple[Tensor, ...]:
    """Turn ``sim`` (B, L, P) in place into the kept min-max normalised values n (A = n / T, not
    formed); return (n, row total T, span, arg-min)."""
    low, arg_low = sim.min(dim=-1, keepdim=True)
    high = sim.amax(dim=-1, keepdim=True)
    span = (high - low).add_(MINMAX_EPS)
    sim.sub_(low).div_(span)  # min-max normalised, as the reference rounds it
    if topk:
        values, index = sim.topk(k, dim=-1)
        sim.zero_().scatter_(-1, index, values)
    else:
        F.threshold(sim, _below(cut, sim.dtype), 0.0, inplace=True)  # keep n >= cut
    return sim, sim.sum(dim=-1, keepdim=True), span, arg_low


class SparseGroupingFunction(torch.autograd.Function):
    """``(patches (B, P, D), words (B, L, D), mask (B, L), topk, cut, k) -> c (B, L, D)``.

    The weights A = n / T are never formed: c = (n V) / T on rows that kept something, the mean patch
    on real words that kept nothing (uniform 1/P), 0 on masked words; row scales act on (B, L, D).
    """

    @staticmethod
    def forward(ctx, patches: Tensor, words: Tensor, mask: Tensor, topk: bool, cut: float, k: int) -> Tensor:
        work = _work_dtype(words.dtype)
        v, w = patches.to(work), words.to(work)
        kept, total, span, arg_low = _sparsified_(torch.bmm(w, v.transpose(1, 2)), topk, cut, k)
        valid = mask.unsqueeze(-1)
        row = torch.where((total > 0) & valid, 1.0 / total, 0.0)  # 1 / T where the gradient flows
        uniform = ((total <= 0) & valid).to(work)  # real words that kept nothing
        grouped = torch.bmm(kept, v).mul_(row).addcmul_(uniform, v.mean(dim=1, keepdim=True))
        ctx.save_for_backward(patches, words, kept, row, row / span, uniform, arg_low, grouped)
        return grouped.to(words.dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        patches, words, kept, row, scale, uniform, arg_low, grouped = ctx.saved_tensors
        work = kept.dtype
        v, w, g = patches.to(work), words.to(work), grad_out.to(work)
        # A^T g, the uniform rows' share (1/P of their gradient to every patch) folded in
        uniform_share = (uniform * g).sum(dim=1, keepdim=True) / v.shape[1]
        grad_v = torch.baddbmm(uniform_share, kept.transpose(1, 2), g * row)
        inner = torch.linalg.vecdot(grouped, g).unsqueeze(-1)  # <A, dL/dA> = <A V, dL/dc>, over D not P
        # (dL/dA - <A, dL/dA>) / (T s) as one product: the row scale and the shift folded in
        grad_s = torch.baddbmm(inner.mul_(scale).neg_(), g * scale, v.transpose(1, 2))
        grad_s = _where_positive_(grad_s, kept)
        grad_s.scatter_add_(-1, arg_low, -grad_s.sum(dim=-1, keepdim=True))
        grad_w = torch.bmm(grad_s, v)
        grad_v.baddbmm_(grad_s.transpose(1, 2), w)
        return grad_v.to(patches.dtype), grad_w.to(words.dtype), None, None, None, None


class TokenContrastFunction(torch.autograd.Function):
    """``(grouped (B, L, D), words (B, L, D), mask (B, L), temperature) -> scalar``: mean over real
    words of (word-side + group-side cross-entropy) / 2, within each pair.

    Rows of ``grouped`` and ``words`` have norm <= 1, so every logit lies in [-1/t, 1/t]: one buffer
    E = exp(logit - 1/t), zero outside the pair mask, gives both log-sum-exps as row and column sums
    (no max pass), and both softmaxes in backward (no exp). :func:`contrast_fits` says when E stays
    a normal number of the work dtype.
    """

    @staticmethod
    def forward(ctx, grouped: Tensor, words: Tensor, mask: Tensor, temperature: float) -> Tensor:
        work = _work_dtype(words.dtype)
        c, w = grouped.to(work), words.to(work)
        inv_t = 1.0 / temperature
        # logit - 1/t, the shift folded into the product
        expd = torch.baddbmm(w.new_full((1, 1, 1), -inv_t), w, c.transpose(1, 2), alpha=inv_t)
        diag = expd.diagonal(dim1=1, dim2=2).clone()
        expd.exp_().mul_(mask.unsqueeze(1)).mul_(mask.unsqueeze(2))  # 0 outside the pair mask
        rows, cols = expd.sum(dim=2), expd.sum(dim=1)  # exp(lse - 1/t) of each direction
        per_word = (0.5 * (rows.log() + cols.log()) - diag).masked_fill_(~mask, 0.0)
        count = mask.sum()
        ctx.save_for_backward(c, w, mask, expd, rows, cols, count)
        ctx.inv_t, ctx.dtypes = inv_t, (grouped.dtype, words.dtype)
        return (per_word.sum() / count).to(words.dtype)

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        c, w, mask, expd, rows, cols, count = ctx.saved_tensors
        factor = grad_loss.to(expd.dtype) * ctx.inv_t / count
        # softmax of rows = E / rows, of columns = E / cols; masked words weigh 0
        a = (0.5 * factor / rows).masked_fill_(~mask, 0.0)
        b = (0.5 * factor / cols).masked_fill_(~mask, 0.0)
        grad = torch.mul(expd, a.unsqueeze(2)).addcmul_(expd, b.unsqueeze(1))
        grad.diagonal(dim1=1, dim2=2).sub_(mask.to(grad.dtype) * factor)
        grad_grouped = torch.bmm(grad.transpose(1, 2), w)
        grad_words = torch.bmm(grad, c)
        return grad_grouped.to(ctx.dtypes[0]), grad_words.to(ctx.dtypes[1]), None, None


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
