"""Forward + backward time of the baseline and SISTA losses at medical scale (CPU, one thread).

    pytest benchmarks/test_bench_baselines.py --benchmark-only

Shapes: L = 112 words, P = 196 patches (ViT-B/16 at 224 px), E = 128, B = 64 and 256. GLoRIA's local
term is O(B^2 L P E): at B = 64 one step already takes seconds and ~2 GB, at B = 256 it would take
~16x that time (and ~30 GB unchunked), so it is measured at B = 64 only. Group "losses", beside the
SISTA losses at the same shapes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from sista_kit.baselines import ConVIRTLoss, GLoRIALoss, MGCALoss
from sista_kit.losses import CLIPLoss, SISTALoss, SparseTokenAlignLoss

L, P, E = 112, 196, 128

CASES: list[tuple[str, int, Callable[[], nn.Module], int]] = [
    # name, batch, constructor, rounds
    ("convirt", 64, ConVIRTLoss, 20),
    ("convirt", 256, ConVIRTLoss, 20),
    ("mgca", 64, lambda: MGCALoss(embed_dim=E, num_prototypes=500), 5),
    ("mgca", 256, lambda: MGCALoss(embed_dim=E, num_prototypes=500), 3),
    ("gloria", 64, GLoRIALoss, 2),
    ("clip", 64, CLIPLoss, 20),
    ("clip", 256, CLIPLoss, 20),
    ("sta", 64, SparseTokenAlignLoss, 5),
    ("sta", 256, SparseTokenAlignLoss, 3),
    ("sista", 64, lambda: SISTALoss(similarity="labels"), 5),
    ("sista", 256, lambda: SISTALoss(similarity="labels"), 3),
]


def _model_output(batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.arange(L)[None] < torch.randint(L // 4, L + 1, (batch, 1), generator=g)
    return {
        "image_features": torch.randn(batch, E, generator=g).requires_grad_(),
        "text_features": torch.randn(batch, E, generator=g).requires_grad_(),
        "image_tokens": torch.randn(batch, P, E, generator=g).requires_grad_(),
        "text_tokens": torch.randn(batch, L, E, generator=g).requires_grad_(),
        "text_mask": mask,
        "text_attention": torch.rand(batch, L, generator=g) * mask,
        "image_attention": torch.rand(batch, P, generator=g),
        "logit_scale": torch.tensor(14.0),
        "report_labels": (torch.rand(batch, 7, generator=g) < 0.15).float(),
    }


@pytest.mark.benchmark(group="losses")
@pytest.mark.parametrize("name,batch,make,rounds", CASES, ids=[f"{n}-B{b}" for n, b, _, _ in CASES])
def test_baseline_loss_forward_backward(benchmark, name: str, batch: int, make, rounds: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    loss_fn = make()
    if hasattr(loss_fn, "set_epoch"):
        loss_fn.set_epoch(1)  # prototypes trainable, as after the first epoch
    benchmark.extra_info.update(loss=name, B=batch, L=L, P=P, E=E, threads=1, device="cpu")

    def step(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = loss_fn(**inputs)
        loss.backward()
        return loss.detach()

    loss = benchmark.pedantic(
        step, setup=lambda: ((_model_output(batch),), {}), rounds=rounds, warmup_rounds=1
    )
    assert torch.isfinite(loss)
