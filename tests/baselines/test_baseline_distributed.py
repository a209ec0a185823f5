"""Two gloo processes: MGCA Sinkhorn codes are those of the global batch; prototype gradients averaged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from dist_launch import run_ranks

from sista_kit.baselines import MGCALoss, mgca_loss, sinkhorn_knopp

WORLD = 2


def _inputs(b: int = 8, l: int = 5, p: int = 4, d: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.arange(l)[None] < torch.randint(2, l + 1, (b, 1), generator=g)
    return dict(
        image_features=torch.randn(b, d, generator=g, dtype=torch.float64),
        text_features=torch.randn(b, d, generator=g, dtype=torch.float64),
        image_tokens=torch.randn(b, p, d, generator=g, dtype=torch.float64),
        text_tokens=torch.randn(b, l, d, generator=g, dtype=torch.float64),
        text_mask=mask,
        text_attention=torch.rand(b, l, generator=g, dtype=torch.float64) * mask,
        image_attention=torch.rand(b, p, generator=g, dtype=torch.float64),
    )


def _scores(x: dict[str, torch.Tensor], protos: torch.Tensor) -> torch.Tensor:
    return F.normalize(x["image_features"], dim=1) @ F.normalize(protos, dim=1).t()


def _protos() -> torch.Tensor:
    return torch.randn(9, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _worker(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = _inputs()
    half = slice(rank * 4, rank * 4 + 4)
    local = {k: v[half] for k, v in x.items()}
    codes = sinkhorn_knopp(_scores(local, _protos()), epsilon=0.05, iterations=3)
    module = MGCALoss(embed_dim=6, num_prototypes=9).double()
    module.prototypes.data.copy_(_protos())
    module.set_epoch(1)
    module(**local).backward()
    return codes, module.prototypes.grad


@pytest.mark.distributed
def test_distributed_sinkhorn_and_prototype_gradients() -> None:
    results = run_ranks(_worker, WORLD)

    x = _inputs()
    whole = sinkhorn_knopp(_scores(x, _protos()), epsilon=0.05, iterations=3)
    torch.testing.assert_close(torch.cat([results[0][0], results[1][0]]), whole, rtol=1e-6, atol=1e-7)
    # Not the same as each half on its own: the codes really are those of the global batch.
    alone = sinkhorn_knopp(_scores({k: v[:4] for k, v in x.items()}, _protos()), distributed=False)
    assert not torch.allclose(alone, whole[:4], atol=1e-4)

    # Each rank holds the average of the per-rank prototype gradients (computed with global codes).
    protos = F.normalize(_protos(), dim=1)
    rep_whole = sinkhorn_knopp(F.normalize(x["text_features"], dim=1) @ protos.t())
    per_rank = []
    for r in range(WORLD):
        rows = slice(r * 4, r * 4 + 4)
        leaf = protos.clone().requires_grad_(True)
        local = {k: v[rows] for k, v in x.items()}
        mgca_loss(**local, prototypes=leaf, image_codes=whole[rows], report_codes=rep_whole[rows])[
            "loss"
        ].backward()
        per_rank.append(leaf.grad)
    expected = (per_rank[0] + per_rank[1]) / 2
    assert not torch.allclose(per_rank[0], expected)
    for r in range(WORLD):
        torch.testing.assert_close(results[r][1], expected, rtol=1e-6, atol=1e-9)
