"""Fused sparse word-to-patch alignment (STA grouping) in Triton.

Mirrors :func:`sista_kit.losses.functional.sparse_grouped_embeddings`: for each pair, one program
per tile of words computes the word-patch similarities (``tl.dot``), the per-word min / max, the
min-max normalisation, the sparsification (threshold, or top-k through an exact bisection on the
bits of the k-th largest value), the renormalisation and ``c = A @ patches``; the (B, L, P) weights
never reach memory. The backward pass recomputes the tile from the inputs and the per-word cut
saved by the forward pass (one float per word).

Differences from the reference, by design: with ``topk``, patches tied with the k-th largest
weight are all kept (the reference keeps an arbitrary k of them); fp32 products use 3xTF32 on GPUs
unless torch allows TF32. Inputs are not checked for NaN (the loss does that).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sista_kit.checks import check_sparsify

from ._runtime import (
    INTERPRET,
    check_device,
    check_dtype,
    device_context,
    dot_precision,
    next_pow2,
    tl,
    triton,
)
from .limits import MAX_PATCHES
from .tiles import dot_tile as _similarity_tile

MINMAX_EPS = 1e-8  # as the reference


@triton.jit
def _weights_tile(sim, cut, row_mask, p_ok, P, EPS: tl.constexpr):
    """Min-max normalise, keep entries >= cut, renormalise; uniform 1/P for rows that keep nothing."""
    low = tl.min(tl.where(p_ok[None, :], sim, float("inf")), axis=1)
    high = tl.max(tl.where(p_ok[None, :], sim, float("-inf")), axis=1)
    span = high - low + EPS
    normed = (sim - low[:, None]) / span[:, None]
    keep = (normed >= cut[:, None]) & p_ok[None, :]
    kept = tl.where(keep, normed, 0.0)
    total = tl.sum(kept, axis=1)
    uniform = tl.where(p_ok, 1.0 / P, 0.0)
    weights = tl.where((total > 0)[:, None], kept / tl.maximum(total, 1e-30)[:, None], uniform[None, :])
    weights = tl.where(row_mask[:, None], weights, 0.0)
    return weights, normed, keep, total, low, high, span


@triton.jit
def _sparse_align_fwd(
    W,
    V,
    MASK,
    OUT,
    CUT,
    L,
    P,
    D,
    threshold,
    K,
    sw_b,
    sw_l,
    sw_d,
    sv_b,
    sv_p,
    sv_d,
    so_b,
    so_l,
    so_d,
    TOPK: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    EPS: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    pid_l = tl.program_id(1)
    W += pid_b * sw_b
    V += pid_b * sv_b
    OUT += pid_b * so_b
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_p = tl.arange(0, BLOCK_P)
    l_ok = offs_l < L
    p_ok = offs_p < P
    row_mask = (tl.load(MASK + pid_b * L + offs_l, mask=l_ok, other=0) != 0) & l_ok

    sim = _similarity_tile(
        W,
        V,
        offs_l,
        offs_p,
        l_ok,
        p_ok,
        D,
        sw_l,
        sw_d,
        sv_p,
        sv_d,
        BLOCK_L,
        BLOCK_P,
        BLOCK_D,
        DOT_FP32,
        PRECISION,
    )
    if TOPK:
        # k-th largest normalised value per row, exactly: bisection on the bits of non-negative floats
        low = tl.min(tl.where(p_ok[None, :], sim, float("inf")), axis=1)
        high = tl.max(tl.where(p_ok[None, :], sim, float("-inf")), axis=1)
        normed = (sim - low[:, None]) / (high - low + EPS)[:, None]
        bits = tl.where(p_ok[None, :], normed, -1.0).to(tl.int32, bitcast=True)
        lo = tl.zeros((BLOCK_L,), dtype=tl.int32)  # count(bits >= lo) >= K holds
        hi = tl.full((BLOCK_L,), 0x3F800001, tl.int32)  # bits(1.0) + 1: count(bits >= hi) < K holds
        for _ in range(31):
            mid = lo + (hi - lo) // 2
            count = tl.sum((bits >= mid[:, None]).to(tl.int32), axis=1)
            enough = count >= K
            lo = tl.where(enough, mid, lo)
            hi = tl.where(enough, hi, mid)
        cut = lo.to(tl.float32, bitcast=True)
    else:
        cut = tl.zeros((BLOCK_L,), dtype=tl.float32) + threshold
    tl.store(CUT + pid_b * L + offs_l, cut, mask=l_ok)

    weights, _n, _k, _t, _lo, _hi, _s = _weights_tile(sim, cut, row_mask, p_ok, P, EPS)
    offs_d = tl.arange(0, BLOCK_D)
    for d0 in range(0, D, BLOCK_D):
        dd = d0 + offs_d
        d_ok = dd < D
        v = tl.load(
            V + offs_p[:, None] * sv_p + dd[None, :] * sv_d, mask=p_ok[:, None] & d_ok[None, :], other=0.0
        )
        if DOT_FP32:
            v = v.to(tl.float32)
            a = weights
        else:
            a = weights.to(v.dtype)
        c = tl.dot(a, v, input_precision=PRECISION)
        tl.store(
            OUT + offs_l[:, None] * so_l + dd[None, :] * so_d,
            c.to(OUT.dtype.element_ty),
            mask=l_ok[:, None] & d_ok[None, :],
        )


@triton.jit
def _sparse_align_bwd(
    W,
    V,
    MASK,
    CUT,
    DC,
    DW,
    DV,
    L,
    P,
    D,
    sw_b,
    sw_l,
    sw_d,
    sv_b,
    sv_p,
    sv_d,
    sc_b,
    sc_l,
    sc_d,
    sdw_b,
    sdw_l,
    sdw_d,
    sdv_b,
    sdv_p,
    sdv_d,
    BLOCK_L: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    EPS: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    pid_l = tl.program_id(1)
    W += pid_b * sw_b
    V += pid_b * sv_b
    DC += pid_b * sc_b
    DW += pid_b * sdw_b
    DV += pid_b * sdv_b
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    offs_p = tl.arange(0, BLOCK_P)
    offs_d = tl.arange(0, BLOCK_D)
    l_ok = offs_l < L
    p_ok = offs_p < P
    row_mask = (tl.load(MASK + pid_b * L + offs_l, mask=l_ok, other=0) != 0) & l_ok
    cut = tl.load(CUT + pid_b * L + offs_l, mask=l_ok, other=0.0)

    sim = _similarity_tile(
        W,
        V,
        offs_l,
        offs_p,
        l_ok,
        p_ok,
        D,
        sw_l,
        sw_d,
        sv_p,
        sv_d,
        BLOCK_L,
        BLOCK_P,
        BLOCK_D,
        DOT_FP32,
        PRECISION,
    )
    weights, normed, keep, total, low, high, span = _weights_tile(sim, cut, row_mask, p_ok, P, EPS)

    # dA = dC @ V^T
    d_weights = tl.zeros((BLOCK_L, BLOCK_P), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        dd = d0 + offs_d
        d_ok = dd < D
        dc = tl.load(
            DC + offs_l[:, None] * sc_l + dd[None, :] * sc_d, mask=l_ok[:, None] & d_ok[None, :], other=0.0
        )
        vt = tl.load(
            V + offs_p[None, :] * sv_p + dd[:, None] * sv_d, mask=p_ok[None, :] & d_ok[:, None], other=0.0
        )
        if DOT_FP32:
            dc = dc.to(tl.float32)
            vt = vt.to(tl.float32)
        d_weights = tl.dot(dc, vt, d_weights, input_precision=PRECISION)

    # renormalisation a = kept / total (rows that kept something), then the kept mask
    active = row_mask & (total > 0)
    inner = tl.sum(d_weights * weights, axis=1)
    d_kept = (d_weights - inner[:, None]) / tl.maximum(total, 1e-30)[:, None]
    d_normed = tl.where(keep & active[:, None], d_kept, 0.0)
    # min-max normalisation; min / max gradients shared evenly between ties, as torch.amin / amax
    d_sim = d_normed / span[:, None]
    d_low = -tl.sum(d_normed * (1.0 - normed), axis=1) / span
    d_high = -tl.sum(d_normed * normed, axis=1) / span
    is_low = (sim == low[:, None]) & p_ok[None, :]
    is_high = (sim == high[:, None]) & p_ok[None, :]
    n_low = tl.maximum(tl.sum(is_low.to(tl.float32), axis=1), 1.0)
    n_high = tl.maximum(tl.sum(is_high.to(tl.float32), axis=1), 1.0)
    d_sim += tl.where(is_low, (d_low / n_low)[:, None], 0.0) + tl.where(
        is_high, (d_high / n_high)[:, None], 0.0
    )

    # dW = dS @ V ; dV += A^T @ dC + dS^T @ W  (other word tiles of the pair add into dV too)
    for d0 in range(0, D, BLOCK_D):
        dd = d0 + offs_d
        d_ok = dd < D
        lw = l_ok[:, None] & d_ok[None, :]
        pw = p_ok[:, None] & d_ok[None, :]
        v = tl.load(V + offs_p[:, None] * sv_p + dd[None, :] * sv_d, mask=pw, other=0.0)
        w = tl.load(W + offs_l[:, None] * sw_l + dd[None, :] * sw_d, mask=lw, other=0.0)
        dc = tl.load(DC + offs_l[:, None] * sc_l + dd[None, :] * sc_d, mask=lw, other=0.0)
        if DOT_FP32:
            v = v.to(tl.float32)
            w = w.to(tl.float32)
            dc = dc.to(tl.float32)
            ds = d_sim
            a = weights
        else:
            ds = d_sim.to(v.dtype)
            a = weights.to(dc.dtype)
        dw = tl.dot(ds, v, input_precision=PRECISION)
        tl.store(DW + offs_l[:, None] * sdw_l + dd[None, :] * sdw_d, dw, mask=lw)
        dv = tl.dot(tl.trans(a), dc, input_precision=PRECISION)
        dv = tl.dot(tl.trans(ds), w, dv, input_precision=PRECISION)
        tl.atomic_add(DV + offs_p[:, None] * sdv_p + dd[None, :] * sdv_d, dv, mask=pw, sem="relaxed")


def _launch_config(length: int, patches: int, dim: int, dtype: torch.dtype) -> dict:
    """Tile sizes: small tiles in the interpreter (exercise ragged edges), GPU-sized otherwise."""
    block_p = next_pow2(patches)
    if INTERPRET:
        return dict(BLOCK_L=4, BLOCK_P=block_p, BLOCK_D=8, num_warps=1)
    block_p = max(block_p, 16)
    block_l = 64 if block_p <= 128 else 32 if block_p <= 256 else 16
    block_d = 32 if dtype == torch.float32 else 64
    block_d = max(16, min(block_d, next_pow2(dim)))
    return dict(BLOCK_L=block_l, BLOCK_P=block_p, BLOCK_D=block_d, num_warps=4 if block_p <= 128 else 8)


def _common(patches: Tensor, words: Tensor) -> dict:
    cfg = _launch_config(words.shape[1], patches.shape[1], patches.shape[2], patches.dtype)
    cfg.update(DOT_FP32=INTERPRET, PRECISION=dot_precision(patches.dtype), EPS=MINMAX_EPS)
    return cfg


class SparseAlignFunction(torch.autograd.Function):
    """Autograd wrapper of the fused kernel: (patches, words, mask_int8, topk, threshold, k) -> c."""

    @staticmethod
    def forward(
        ctx, patches: Tensor, words: Tensor, mask: Tensor, topk: bool, threshold: float, k: int
    ) -> Tensor:
        batch, patch_count, dim = patches.shape
        length = words.shape[1]
        out = torch.empty_like(words)
        cut = torch.empty((batch, length), dtype=torch.float32, device=words.device)
        cfg = _common(patches, words)
        grid = (batch, triton.cdiv(length, cfg["BLOCK_L"]))
        with device_context(words):
            _sparse_align_fwd[grid](
                words,
                patches,
                mask,
                out,
                cut,
                length,
                patch_count,
                dim,
                float(threshold),
                int(k),
                *words.stride(),
                *patches.stride(),
                *out.stride(),
                TOPK=topk,
                **cfg,
            )
        ctx.save_for_backward(patches, words, mask, cut)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        patches, words, mask, cut = ctx.saved_tensors
        batch, patch_count, dim = patches.shape
        length = words.shape[1]
        grad_out = grad_out.to(words.dtype).contiguous()
        grad_words = torch.empty(words.shape, dtype=torch.float32, device=words.device)
        grad_patches = torch.zeros(patches.shape, dtype=torch.float32, device=patches.device)
        cfg = _common(patches, words)
        grid = (batch, triton.cdiv(length, cfg["BLOCK_L"]))
        with device_context(words):
            _sparse_align_bwd[grid](
                words,
                patches,
                mask,
                cut,
                grad_out,
                grad_words,
                grad_patches,
                length,
                patch_count,
                dim,
                *words.stride(),
                *patches.stride(),
                *grad_out.stride(),
                *grad_words.stride(),
                *grad_patches.stride(),
                **cfg,
            )
        return grad_patches.to(patches.dtype), grad_words.to(words.dtype), None, None, None, None


def sparse_grouped_embeddings_triton(
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor | None = None,
    *,
    sparsify: str = "threshold",
    threshold: float | None = None,
    k: int = 8,
) -> Tensor:
    """Fused ``c = A @ patches`` (B, L, D); same signature and result as the PyTorch reference.

    Args:
        image_tokens: (B, P, D) patch embeddings (expected L2-normalised), P <= 1024.
        text_tokens: (B, L, D) word embeddings (expected L2-normalised), same dtype and device.
        text_mask: (B, L) bool, True = real word; masked words get zero rows. None = all real.
        sparsify: ``threshold`` (keep min-max normalised weights >= threshold, None = 1/P) or
            ``topk`` (keep the k largest per word; ties with the k-th are all kept).
        threshold, k: see ``sparsify``.

    Returns:
        (B, L, D) in the input dtype (fp32 accumulation), differentiable w.r.t. both token inputs.
    """
    for name, tensor in (("image_tokens", image_tokens), ("text_tokens", text_tokens)):
        if not isinstance(tensor, Tensor) or tensor.dim() != 3:
            raise ValueError(
                f"{name} must be a 3-D tensor, got {getattr(tensor, 'shape', type(tensor).__name__)}"
            )
        check_dtype(name, tensor)
    batch, patch_count, dim = image_tokens.shape
    if text_tokens.shape[0] != batch or text_tokens.shape[2] != dim:
        raise ValueError(
            f"text_tokens {tuple(text_tokens.shape)} does not match image_tokens {tuple(image_tokens.shape)} "
            "in batch or feature size"
        )
    if text_tokens.dtype != image_tokens.dtype:
        raise TypeError(f"image_tokens is {image_tokens.dtype} but text_tokens is {text_tokens.dtype}")
    if not 1 <= patch_count <= MAX_PATCHES:
        raise ValueError(f"the fused kernel supports 1..{MAX_PATCHES} patches, got P={patch_count}")
    check_sparsify(sparsify, threshold, k, patch_count)
    length = text_tokens.shape[1]
    if text_mask is None:
        mask = torch.ones((batch, length), dtype=torch.int8, device=text_tokens.device)
    else:
        if text_mask.dtype != torch.bool or tuple(text_mask.shape) != (batch, length):
            raise ValueError(
                f"text_mask must be a bool tensor of shape {(batch, length)}, got "
                f"{text_mask.dtype} {tuple(text_mask.shape)}"
            )
        mask = text_mask.to(torch.int8).contiguous()
    check_device(image_tokens, text_tokens, mask)
    if batch == 0 or length == 0 or dim == 0:
        return text_tokens.new_zeros((batch, length, dim)) + 0.0 * (image_tokens.sum() + text_tokens.sum())
    cut = (1.0 / patch_count if threshold is None else float(threshold)) if sparsify == "threshold" else 0.0
    return SparseAlignFunction.apply(
        image_tokens.contiguous(), text_tokens.contiguous(), mask, sparsify == "topk", cut, int(k)
    )
