"""Sinkhorn-Knopp equipartition codes (SwAV / MGCA), single-process or across ranks."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def sinkhorn_knopp(
    scores: Tensor,
    *,
    epsilon: float = 0.05,
    iterations: int = 3,
    distributed: bool | None = None,
) -> Tensor:
    """Soft assignments of samples to prototypes with equal prototype usage over the batch.

    As MGCA's ``sinkhorn`` / ``distributed_sinkhorn``: Q = exp(scores / epsilon)^T (K, B), Q /= sum Q,
    then ``iterations`` rounds of row scaling to 1/K and column scaling to 1/B_global, and a final
    column normalisation. Under torch.distributed (``distributed=None`` detects it) the sums over
    samples are all-reduced, so every rank gets the rows of the code of the *global* batch that
    belong to its samples (equal local batch sizes assumed, as in the official code). A global
    maximum is subtracted before ``exp`` (no overflow for small epsilon; the result is unchanged).

    Args:
        scores: (B, K) sample-prototype scores (cosines); no gradient is taken.
        epsilon: entropic regularisation (exp(score / epsilon)).
        iterations: rounds of Sinkhorn scaling.
        distributed: all-reduce across ranks; None = when a process group of size > 1 is initialised.

    Returns:
        (B, K) float32 codes whose rows sum to 1 (the official code returns float32 too).
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must have shape (B, K), got {tuple(scores.shape)}")
    if epsilon <= 0 or iterations < 0:
        raise ValueError(f"need epsilon > 0 and iterations >= 0, got {epsilon}, {iterations}")
    world = _world_size()
    reduce = world > 1 if distributed is None else bool(distributed)
    if reduce and world == 1 and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("distributed=True but torch.distributed is not initialised")

    work = scores.detach().to(torch.float64 if scores.dtype == torch.float64 else torch.float32)
    logits = work / epsilon
    top = logits.max()
    if reduce:
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    q = torch.exp(logits - top).t()  # (K, B)
    total = q.sum()
    if reduce:
        dist.all_reduce(total)
    q = q / total
    n_proto, n_local = q.shape
    r = 1.0 / n_proto
    c = 1.0 / (n_local * (world if reduce else 1))
    for _ in range(iterations):
        row = q.sum(dim=1)
        if reduce:
            dist.all_reduce(row)
        q = q * (r / row)[:, None]
        q = q * (c / q.sum(dim=0))[None, :]
    return (q / q.sum(dim=0, keepdim=True)).t().float()
