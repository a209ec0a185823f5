"""Tiled false-negative-aware InfoNCE (SIA) in Triton: O(B * D) memory, no B x B buffer.

Mirrors :func:`sista_kit.losses.chunked_infonce.fn_aware_infonce_chunked` (Inf-CL pattern). The
forward pass runs one kernel per direction; each program owns a tile of query rows and streams over
the candidate tiles with an online softmax, keeping the per-row log-sum-exp over allowed candidates,
the sum of positive logits and the positive count. The backward pass recomputes each logit tile and
accumulates the gradient of its rows, again once per direction. The false-negative mask of a tile
comes from a tile of the report-similarity matrix S, or from Z_q . Z_c computed on the fly from
report embeddings Z. Strategies ``eliminate`` and ``positive`` (``soft`` needs whole target rows and
stays with the PyTorch reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sista_kit.checks import ValueChecks, check_instance_inputs, check_logit_scale, check_similarity_sources

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
from .limits import MAX_DIM
from .tiles import dot_tile as _logit_tile

TILED_STRATEGIES = ("eliminate", "positive")


@triton.jit
def _mask_tile(
    SIM,
    Z,
    rows,
    cols,
    r_ok,
    c_ok,
    R,
    ss_q,
    ss_c,
    sz_b,
    sz_d,
    threshold,
    band_low,
    SIM_MODE: tl.constexpr,
    POSITIVE: tl.constexpr,
    BAND: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_R: tl.constexpr,
    ZPRECISION: tl.constexpr,
):
    """(allowed, positive) masks of a tile: candidates in the softmax, and the targets."""
    valid = r_ok[:, None] & c_ok[None, :]
    diag = rows[:, None] == cols[None, :]
    if SIM_MODE == 0:
        allowed = valid
        positive = diag & valid
    else:
        if SIM_MODE == 1:
            sim_ptr = SIM + rows.to(tl.int64)[:, None] * ss_q + cols.to(tl.int64)[None, :] * ss_c
            sim = tl.load(sim_ptr, mask=valid, other=0.0).to(tl.float32)
        else:
            sim = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            offs_r = tl.arange(0, BLOCK_R)
            for r0 in range(0, R, BLOCK_R):
                rr = r0 + offs_r
                r_in = rr < R
                zq = tl.load(
                    Z + rows[:, None] * sz_b + rr[None, :] * sz_d,
                    mask=r_ok[:, None] & r_in[None, :],
                    other=0.0,
                )
                zc = tl.load(
                    Z + cols[None, :] * sz_b + rr[:, None] * sz_d,
                    mask=c_ok[None, :] & r_in[:, None],
                    other=0.0,
                )
                sim = tl.dot(zq, zc, sim, input_precision=ZPRECISION)
        false_neg = (sim >= threshold) & ~diag
        if POSITIVE:
            allowed = valid
            positive = (diag | false_neg) & valid
        else:
            allowed = valid & ~false_neg
            positive = diag & valid
        if BAND:
            neutral = (sim >= band_low) & (sim < threshold) & ~diag
            allowed = allowed & ~neutral
    return allowed, positive


@triton.jit
def _infonce_stats(
    Q,
    C,
    SIM,
    Z,
    SCALE,
    LSE,
    POS,
    CNT,
    B,
    D,
    R,
    threshold,
    band_low,
    sq_b,
    sq_d,
    sc_b,
    sc_d,
    ss_q,
    ss_c,
    sz_b,
    sz_d,
    SIM_MODE: tl.constexpr,
    POSITIVE: tl.constexpr,
    BAND: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_R: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    ZPRECISION: tl.constexpr,
):
    """Per query row: log-sum-exp over allowed candidates, sum and count of positive logits."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    r_ok = rows < B
    scale = tl.load(SCALE).to(tl.float32)
    m_i = tl.full((BLOCK_M,), -1.0e30, tl.float32)  # finite: no inf - inf
    s_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    pos = tl.zeros((BLOCK_M,), dtype=tl.float32)
    cnt = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for n0 in range(0, B, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        c_ok = cols < B
        logits = scale * _logit_tile(
            Q,
            C,
            rows,
            cols,
            r_ok,
            c_ok,
            D,
            sq_b,
            sq_d,
            sc_b,
            sc_d,
            BLOCK_M,
            BLOCK_N,
            BLOCK_K,
            DOT_FP32,
            PRECISION,
        )
        allowed, positive = _mask_tile(
            SIM,
            Z,
            rows,
            cols,
            r_ok,
            c_ok,
            R,
            ss_q,
            ss_c,
            sz_b,
            sz_d,
            threshold,
            band_low,
            SIM_MODE,
            POSITIVE,
            BAND,
            BLOCK_M,
            BLOCK_N,
            BLOCK_R,
            ZPRECISION,
        )
        m_new = tl.maximum(m_i, tl.max(tl.where(allowed, logits, -1.0e30), axis=1))
        p = tl.exp(tl.where(allowed, logits - m_new[:, None], float("-inf")))
        s_i = s_i * tl.exp(m_i - m_new) + tl.sum(p, axis=1)
        m_i = m_new
        pos += tl.sum(tl.where(positive, logits, 0.0), axis=1)
        cnt += tl.sum(positive.to(tl.float32), axis=1)
    tl.store(LSE + rows, m_i + tl.log(tl.maximum(s_i, 1e-30)), mask=r_ok)  # s_i >= 1 on real rows
    tl.store(POS + rows, pos, mask=r_ok)
    tl.store(CNT + rows, cnt, mask=r_ok)


@triton.jit
def _infonce_grad(
    Q,
    C,
    SIM,
    Z,
    SCALE,
    GRAD,
    OWN_LSE,
    OWN_CNT,
    OTHER_LSE,
    OTHER_CNT,
    DQ,
    DSCALE,
    B,
    D,
    R,
    threshold,
    band_low,
    sq_b,
    sq_d,
    sc_b,
    sc_d,
    ss_q,
    ss_c,
    sz_b,
    sz_d,
    sdq_b,
    sdq_d,
    SIM_MODE: tl.constexpr,
    POSITIVE: tl.constexpr,
    BAND: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
    ZPRECISION: tl.constexpr,
):
    """Gradient of the query rows (and their share of d loss / d scale), recomputing logit tiles.

    dL/dlogit_qc = g / (2B) * (p_row + p_col - pos / cnt_row - pos / cnt_col), the same expression
    seen from either direction, so one kernel serves both with the roles swapped.
    """
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    r_ok = rows < B
    scale = tl.load(SCALE).to(tl.float32)
    factor = tl.load(GRAD).to(tl.float32) / (2.0 * B)
    own_lse = tl.load(OWN_LSE + rows, mask=r_ok, other=0.0)
    own_inv = 1.0 / tl.load(OWN_CNT + rows, mask=r_ok, other=1.0)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    d_scale = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for n0 in range(0, B, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        c_ok = cols < B
        raw = _logit_tile(
            Q,
            C,
            rows,
            cols,
            r_ok,
            c_ok,
            D,
            sq_b,
            sq_d,
            sc_b,
            sc_d,
            BLOCK_M,
            BLOCK_N,
            BLOCK_K,
            DOT_FP32,
            PRECISION,
        )
        logits = scale * raw
        allowed, positive = _mask_tile(
            SIM,
            Z,
            rows,
            cols,
            r_ok,
            c_ok,
            R,
            ss_q,
            ss_c,
            sz_b,
            sz_d,
            threshold,
            band_low,
            SIM_MODE,
            POSITIVE,
            BAND,
            BLOCK_M,
            BLOCK_N,
            BLOCK_R,
            ZPRECISION,
        )
        other_lse = tl.load(OTHER_LSE + cols, mask=c_ok, other=0.0)
        other_inv = 1.0 / tl.load(OTHER_CNT + cols, mask=c_ok, other=1.0)
        prob = tl.exp(tl.where(allowed, logits - own_lse[:, None], float("-inf")))
        prob += tl.exp(tl.where(allowed, logits - other_lse[None, :], float("-inf")))
        target = tl.where(positive, own_inv[:, None] + other_inv[None, :], 0.0)
        g = factor * (prob - target)
        d_scale += tl.sum(g * raw, axis=1)
        c = tl.load(
            C + cols[:, None] * sc_b + offs_d[None, :] * sc_d, mask=c_ok[:, None] & d_ok[None, :], other=0.0
        )
        if DOT_FP32:
            c = c.to(tl.float32)
            gc = g
        else:
            gc = g.to(c.dtype)
        acc = tl.dot(gc, c, acc, input_precision=PRECISION)
    out = (scale * acc).to(DQ.dtype.element_ty)
    tl.store(DQ + rows[:, None] * sdq_b + offs_d[None, :] * sdq_d, out, mask=r_ok[:, None] & d_ok[None, :])
    tl.store(DSCALE + rows, d_scale, mask=r_ok)


def _launch_config(dim: int, dtype: torch.dtype) -> tuple[dict, dict]:
    """(forward, backward) tile sizes; small ragged tiles in the interpreter."""
    block_d = max(16, next_pow2(dim))
    if INTERPRET:
        common = dict(BLOCK_M=8, BLOCK_N=16, BLOCK_K=16, BLOCK_R=8)
        return dict(common, num_warps=1), dict(common, BLOCK_D=next_pow2(dim), num_warps=1)
    block_k = max(16, min(64 if dtype != torch.float32 else 32, next_pow2(dim)))
    fwd = dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=block_k, BLOCK_R=32, num_warps=8, num_stages=3)
    block_m = 64 if block_d <= 128 else 32 if block_d <= 512 else 16
    block_n = 64 if block_d <= 256 else 32
    bwd = dict(
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        BLOCK_R=32,
        BLOCK_D=block_d,
        num_warps=4 if block_d <= 128 else 8,
        num_stages=2,
    )
    return fwd, bwd


def _sim_args(sim_matrix: Tensor | None, sim_embed: Tensor | None, scale: Tensor, transpose: bool):
    """(SIM, Z, R, ss_q, ss_c, sz_b, sz_d, SIM_MODE) for one direction; Z Z^T is symmetric."""
    if sim_matrix is not None:
        s0, s1 = sim_matrix.stride()
        return sim_matrix, scale, 1, (s1 if transpose else s0), (s0 if transpose else s1), 0, 0, 1
    if sim_embed is not None:
        return scale, sim_embed, sim_embed.shape[1], 0, 0, *sim_embed.stride(), 2
    return scale, scale, 1, 0, 0, 0, 0, 0


class TiledInfoNCEFunction(torch.autograd.Function):
    """Autograd wrapper: (image, text, scale, S or None, Z or None, threshold, positive, band_low) -> loss."""

    @staticmethod
    def forward(
        ctx,
        image,
        text,
        scale,
        sim_matrix,
        sim_embed,
        threshold: float,
        positive: bool,
        band_low: float | None,
    ):
        batch, dim = image.shape
        fwd_cfg, _ = _launch_config(dim, image.dtype)
        flags = dict(
            POSITIVE=positive,
            BAND=band_low is not None,
            DOT_FP32=INTERPRET,
            PRECISION=dot_precision(image.dtype),
            ZPRECISION=dot_precision(torch.float32),
        )
        band = float(band_low) if band_low is not None else 0.0
        stats = torch.empty((2, 3, batch), dtype=torch.float32, device=image.device)
        grid = (triton.cdiv(batch, fwd_cfg["BLOCK_M"]),)
        with device_context(image):
            for side, (query, cand) in enumerate(((image, text), (text, image))):
                sim, z, r, ss_q, ss_c, sz_b, sz_d, mode = _sim_args(sim_matrix, sim_embed, scale, side == 1)
                _infonce_stats[grid](
                    query,
                    cand,
                    sim,
                    z,
                    scale,
                    stats[side, 0],
                    stats[side, 1],
                    stats[side, 2],
                    batch,
                    dim,
                    r,
                    float(threshold),
                    band,
                    *query.stride(),
                    *cand.stride(),
                    ss_q,
                    ss_c,
                    sz_b,
                    sz_d,
                    SIM_MODE=mode,
                    **flags,
                    **fwd_cfg,
                )
        lse, pos, cnt = stats[:, 0], stats[:, 1], stats[:, 2]
        loss = 0.5 * (lse - pos / cnt).mean(dim=1).sum()
        ctx.save_for_backward(image, text, scale, sim_matrix, sim_embed, stats)
        ctx.options = (threshold, band, flags)
        return loss.to(image.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        image, text, scale, sim_matrix, sim_embed, stats = ctx.saved_tensors
        threshold, band, flags = ctx.options
        batch, dim = image.shape
        _, bwd_cfg = _launch_config(dim, image.dtype)
        grad_loss = grad_loss.reshape(1).float().contiguous()
        grads = [torch.empty_like(image), torch.empty_like(text)]
        d_scale = torch.empty((2, batch), dtype=torch.float32, device=image.device)
        grid = (triton.cdiv(batch, bwd_cfg["BLOCK_M"]),)
        with device_context(image):
            for side, (query, cand) in enumerate(((image, text), (text, image))):
                sim, z, r, ss_q, ss_c, sz_b, sz_d, mode = _sim_args(sim_matrix, sim_embed, scale, side == 1)
                other = 1 - side
                _infonce_grad[grid](
                    query,
                    cand,
                    sim,
                    z,
                    scale,
                    grad_loss,
                    stats[side, 0],
                    stats[side, 2],
                    stats[other, 0],
                    stats[other, 2],
                    grads[side],
                    d_scale[side],
                    batch,
                    dim,
                    r,
                    float(threshold),
                    band,
                    *query.stride(),
                    *cand.stride(),
                    ss_q,
                    ss_c,
                    sz_b,
                    sz_d,
                    *grads[side].stride(),
                    SIM_MODE=mode,
                    **flags,
                    **bwd_cfg,
                )
        # each logit's d loss / d scale is counted once, in the image -> text pass
        grad_scale = d_scale[0].sum() if ctx.needs_input_grad[2] else None
        return grads[0], grads[1], grad_scale, None, None, None, None, None


def fn_aware_infonce_tiled(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor | float,
    report_similarity: Tensor | None = None,
    *,
    report_embeddings: Tensor | None = None,
    threshold: float = 0.9,
    strategy: str = "eliminate",
    neutral_band: tuple[float, float] | None = None,
) -> Tensor:
    """Tiled Triton version of ``fn_aware_infonce`` (eliminate / positive); O(B * D) memory.

    Args:
        image_features, text_features: (B, D) features, L2-normalised here; same dtype and device.
        logit_scale: exponentiated scale (1 / temperature), a float or a tensor (its gradient is
            returned when it requires one).
        report_similarity: (B, B) report similarity read one tile at a time; or
        report_embeddings: (B, R) embeddings Z whose products Z_i . Z_j give the similarity, computed
            per tile (no B x B buffer at all). Neither = plain CLIP InfoNCE.
        threshold: candidates j != i with similarity >= threshold are false negatives.
        strategy: ``eliminate`` (drop false negatives from the denominator) or ``positive`` (extra
            positives, uniform target).
        neutral_band: (low, threshold): candidates in [low, threshold) leave the denominator.

    Returns:
        Scalar (image->text + text->image) / 2 in the features' dtype.
    """
    checks = ValueChecks()  # finite inputs, S in [-1, 1], logit_scale > 0: device-side asserts on CUDA
    check_instance_inputs(
        image_features, text_features, report_similarity, threshold, strategy, neutral_band, checks
    )
    check_similarity_sources(report_similarity, report_embeddings, image_features.shape[0])
    logit_scale = check_logit_scale(logit_scale, checks)
    checks.finite("report_embeddings", report_embeddings).run()
    for name, tensor in (("image_features", image_features), ("text_features", text_features)):
        check_dtype(name, tensor)
    if image_features.dtype != text_features.dtype:
        raise TypeError(
            f"image_features is {image_features.dtype} but text_features is {text_features.dtype}"
        )
    batch, dim = image_features.shape
    if not 1 <= dim <= MAX_DIM or batch < 1:
        raise ValueError(f"the tiled kernel supports B >= 1 and 1 <= D <= {MAX_DIM}, got {(batch, dim)}")
    if strategy not in TILED_STRATEGIES:
        raise ValueError(
            f"the tiled kernel supports strategies {TILED_STRATEGIES}, got {strategy!r} "
            "(use the PyTorch reference for 'soft')"
        )
    sim_matrix = None if report_similarity is None else report_similarity.detach()
    sim_embed = None if report_embeddings is None else report_embeddings.detach().float().contiguous()
    check_device(*[t for t in (image_features, text_features, sim_matrix, sim_embed) if t is not None])
    image = F.normalize(image_features, dim=-1).contiguous()
    text = F.normalize(text_features, dim=-1).contiguous()
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=image.device).reshape(())
    band_low = None if neutral_band is None else float(neutral_band[0])
    return TiledInfoNCEFunction.apply(
        image, text, scale, sim_matrix, sim_embed, float(threshold), strategy == "positive", band_low
    )
