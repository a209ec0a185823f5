"""Two gloo processes: ConVIRT and GLoRIA over the gathered global batch equal one process;
``gather=False`` keeps the official local-batch behaviour."""

from __future__ import annotations

import pytest
import torch
from dist_launch import run_ranks

from sista_kit.baselines import ConVIRTLoss, GLoRIALoss

WORLD, BATCH = 2, 6


def _inputs(b=BATCH, e=5, p=4, length=4):
    g = torch.Generator().manual_seed(0)
    return dict(
        image_features=torch.randn(b, e, generator=g, dtype=torch.float64),
        text_features=torch.randn(b, e, generator=g, dtype=torch.float64),
        image_tokens=torch.randn(b, p, e, generator=g, dtype=torch.float64),
        text_tokens=torch.randn(b, length, e, generator=g, dtype=torch.float64),
        text_mask=torch.arange(length)[None] < torch.randint(1, length + 1, (b, 1), generator=g),
    )


def _losses():
    return {
        "convirt": ConVIRTLoss(),
        "gloria": GLoRIALoss(),
        "convirt_local": ConVIRTLoss(gather=False),
        "gloria_local": GLoRIALoss(gather=False),
    }


def _run(rows):
    out = {}
    inputs = _inputs()
    for name, loss_fn in _losses().items():
        local = {k: v[rows].clone() for k, v in inputs.items()}
        leaves = [local[k].requires_grad_() for k in ("image_features", "text_features", "image_tokens")]
        loss = loss_fn(**local)
        loss.backward()
        out[name] = (loss.detach(), *[torch.zeros_like(t) if t.grad is None else t.grad for t in leaves])
    return out


def _worker(rank: int) -> dict:
    half = BATCH // WORLD
    return _run(slice(rank * half, (rank + 1) * half))


@pytest.mark.distributed
def test_baselines_gather_the_global_batch():
    results = run_ranks(_worker, WORLD)
    single = _run(slice(0, BATCH))
    half = BATCH // WORLD
    for name in ("convirt", "gloria"):
        loss, *grads = single[name]
        for rank in range(WORLD):
            r_loss, *r_grads = results[rank][name]
            torch.testing.assert_close(r_loss, loss, msg=f"{name}: loss of rank {rank}")
            rows = slice(rank * half, (rank + 1) * half)
            for got, want in zip(r_grads, grads, strict=True):  # DDP divides the summed gradient by WORLD
                torch.testing.assert_close(got / WORLD, want[rows], msg=f"{name}: gradient of rank {rank}")
        # the official behaviour: each rank contrasts its own half only, a smaller (different) loss
        local_mean = sum(results[rank][f"{name}_local"][0] for rank in range(WORLD)) / WORLD
        assert not torch.allclose(local_mean, loss), f"{name}: gather=False should differ from one process"
        assert local_mean < loss
