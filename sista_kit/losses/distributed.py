"""Gathering the global batch across ranks, as open_clip's ``gather_features`` does."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn
from torch import Tensor


def world_size() -> int:
    """Number of ranks, 1 when torch.distributed is not initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather along dim 0 keeping the autograd graph (gradients are summed back to each rank).

    Every rank then computes the loss of the global batch; under DDP, whose gradient average divides
    by the world size, parameter gradients equal those of one process on the whole batch.
    """
    if world_size() == 1:
        return x
    return torch.cat(dist_nn.all_gather(x.contiguous()), dim=0)


@torch.no_grad()
def gather_no_grad(x: Tensor | None) -> Tensor | None:
    """All-gather along dim 0 without gradient (report embeddings, labels)."""
    if x is None or world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def mean_over_ranks(x: Tensor) -> Tensor:
    """The element-wise mean of ``x`` over the ranks, without gradient (``x`` itself when alone)."""
    if world_size() == 1:
        return x
    total = x.detach().clone()
    dist.all_reduce(total)
    return total / world_size()


@torch.no_grad()
def global_mean_factor(mask: Tensor) -> Tensor | float:
    """Rescale a local mean over ``mask`` into this rank's share of the global mean.

    local_mean * n_local * world / n_global: averaged over ranks (as DDP averages gradients) it is the
    mean over the global batch, whatever the number of valid items on each rank.
    """
    if world_size() == 1:
        return 1.0
    n_local = mask.sum().to(torch.float64)
    n_global = n_local.clone()
    dist.all_reduce(n_global)
    return (n_local * world_size() / n_global).to(torch.float32)


def pad_to_global_max(x: Tensor, dim: int = 1, value: float | bool = 0) -> Tensor:
    """``x`` padded with ``value`` at the end of ``dim`` to that dim's largest size over the ranks.

    All-gather needs one shape on every rank; word slots (B, L, D) differ in L when each rank sizes
    its batch by its own longest report. Keeps the autograd graph.
    """
    if world_size() == 1:
        return x
    size = torch.tensor([x.shape[dim]], device=x.device)
    dist.all_reduce(size, op=dist.ReduceOp.MAX)
    extra = int(size) - x.shape[dim]
    if extra == 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_full(shape, value)], dim=dim)
