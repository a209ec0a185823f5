"""Tile building blocks shared by the kernels."""

from __future__ import annotations

from ._runtime import tl, triton


@triton.jit
def dot_tile(
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
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_FP32: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """(BLOCK_M, BLOCK_N) fp32 products of rows of Q with rows of C (Q @ C^T), masked, over chunks of D."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    offs_k = tl.arange(0, BLOCK_K)
    for k0 in range(0, D, BLOCK_K):
        kk = k0 + offs_k
        k_ok = kk < D
        q = tl.load(
            Q + rows[:, None] * sq_b + kk[None, :] * sq_d, mask=r_ok[:, None] & k_ok[None, :], other=0.0
        )
        ct = tl.load(
            C + cols[None, :] * sc_b + kk[:, None] * sc_d, mask=c_ok[None, :] & k_ok[:, None], other=0.0
        )
        if DOT_FP32:
            q = q.to(tl.float32)
            ct = ct.to(tl.float32)
        acc = tl.dot(q, ct, acc, input_precision=PRECISION)
    return acc
