"""Each baseline, built by name, drives a few optimiser steps on free embeddings with decreasing loss."""

from __future__ import annotations

import pytest
import torch

from sista_kit.losses import available_losses, build_loss

B, L, P, E = 6, 5, 4, 8


def _free_model_output(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(L)[None] < torch.randint(2, L + 1, (B, 1), generator=g)
    params = {
        "image_features": torch.randn(B, E, generator=g),
        "text_features": torch.randn(B, E, generator=g),
        "image_tokens": torch.randn(B, P, E, generator=g),
        "text_tokens": torch.randn(B, L, E, generator=g),
    }
    fixed = {
        "text_mask": mask,
        "text_attention": torch.rand(B, L, generator=g) * mask,
        "image_attention": torch.rand(B, P, generator=g),
        "logit_scale": torch.tensor(14.0),
    }
    return {**{k: v.requires_grad_() for k, v in params.items()}, **fixed}


def test_registered() -> None:
    assert {"convirt", "gloria", "mgca"} <= set(available_losses())


@pytest.mark.parametrize(
    "name,hparams",
    [("convirt", {}), ("gloria", {"chunk_size": 4}), ("mgca", {"embed_dim": E, "num_prototypes": 10})],
)
def test_loss_decreases(name: str, hparams: dict) -> None:
    torch.manual_seed(0)
    loss_fn = build_loss(name, **hparams)
    if hasattr(loss_fn, "set_epoch"):
        loss_fn.set_epoch(1)
    out = _free_model_output()
    leaves = [v for v in out.values() if v.requires_grad]
    opt = torch.optim.Adam(leaves + list(loss_fn.parameters()), lr=0.05)
    values = []
    for _ in range(15):
        opt.zero_grad()
        terms = loss_fn(**out, output_dict=True)
        assert terms and all(k.endswith("_loss") for k in terms)
        total = sum(terms.values())
        total.backward()
        opt.step()
        values.append(total.item())
    assert values[-1] < 0.7 * values[0], values
