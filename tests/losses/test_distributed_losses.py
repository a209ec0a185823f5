"""Two gloo processes: the instance loss over the gathered global batch equals one process."""

from __future__ import annotations

import pytest
import torch
from dist_launch import run_ranks

from sista_kit.losses import SemanticInstanceAlignLoss, SISTALoss

WORLD = 2


def _inputs(b=8, e=6, p=5, length=4):
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([[1, 0], [0, 0], [1, 0], [0, 1], [0, 0], [1, 0], [0, 1], [0, 0]], dtype=torch.float)
    return dict(
        image_features=torch.randn(b, e, generator=g, dtype=torch.float64),
        text_features=torch.randn(b, e, generator=g, dtype=torch.float64),
        image_tokens=torch.randn(b, p, e, generator=g, dtype=torch.float64),
        text_tokens=torch.randn(b, length, e, generator=g, dtype=torch.float64),
        text_mask=torch.arange(length)[None] < torch.randint(1, length + 1, (b, 1), generator=g),
        report_labels=labels,
    )


def _losses():
    return {
        "sia_labels": SemanticInstanceAlignLoss("labels"),
        "sia_online_chunked": SemanticInstanceAlignLoss("online", threshold=0.3, chunk_size=3),
        "sista_positive": SISTALoss(similarity="labels", strategy="positive"),
    }


def _run(inputs, rows):
    """Loss value and gradients of the features in ``rows`` of the global batch."""
    out = {}
    for name, loss_fn in _losses().items():
        local = {k: v[rows].clone() for k, v in inputs.items()}
        for k in ("image_features", "text_features", "image_tokens", "text_tokens"):
            local[k].requires_grad_(True)
        loss = loss_fn(**local, logit_scale=torch.tensor(5.0, dtype=torch.float64))
        loss.backward()
        out[name] = (
            loss.detach(),
            local["image_features"].grad,
            local["text_features"].grad,
            local["text_tokens"].grad,
        )
    return out


def _worker(rank: int) -> dict:
    return _run(_inputs(), slice(rank * 4, rank * 4 + 4))


@pytest.mark.distributed
def test_two_processes_equal_one_process():
    results = run_ranks(_worker, WORLD)
    single = _run(_inputs(), slice(0, 8))
    for name, (loss, grad_img, grad_txt, grad_tok) in single.items():
        mean_loss = sum(results[rank][name][0] for rank in range(WORLD)) / WORLD
        torch.testing.assert_close(mean_loss, loss, msg=f"{name}: mean loss over ranks")
        for rank in range(WORLD):
            r_loss, r_img, r_txt, r_tok = results[rank][name]
            if name.startswith("sia"):  # the instance loss is that of the global batch on every rank
                torch.testing.assert_close(r_loss, loss, msg=f"{name}: loss of rank {rank}")
            rows = slice(rank * 4, rank * 4 + 4)
            # all_gather's backward sums the identical per-rank losses' gradients; DDP then divides by WORLD.
            torch.testing.assert_close(
                r_img / WORLD, grad_img[rows], msg=f"{name}: image grad of rank {rank}"
            )
            torch.testing.assert_close(r_txt / WORLD, grad_txt[rows], msg=f"{name}: text grad of rank {rank}")
            if grad_tok is not None:
                torch.testing.assert_close(
                    r_tok / WORLD, grad_tok[rows], msg=f"{name}: token grad of rank {rank}"
                )
