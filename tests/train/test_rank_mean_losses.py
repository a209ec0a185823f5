"""Under DDP the logged loss terms are the mean over ranks; the gradients stay each rank's own."""

from __future__ import annotations

import pytest
import torch
from dist_launch import run_ranks
from torch import nn

from sista_kit.train.logs import RankMeanLosses


class _TwoTerms(nn.Module):
    """A loss with a term over the rank's own rows and a second one: values differ between ranks."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))

    def forward(self, x: torch.Tensor, output_dict: bool = False):
        terms = {"local_loss": (x @ self.w).square().mean(), "other_loss": self.w.sum() * x.sum()}
        return terms if output_dict else sum(terms.values())


def _rows(rank: int) -> torch.Tensor:
    return torch.arange(6, dtype=torch.float64).reshape(3, 2) * (rank + 1) - rank


def _rank_terms(rank: int) -> dict:
    inner = _TwoTerms()
    terms = RankMeanLosses(inner)(_rows(rank), output_dict=True)
    sum(terms.values()).backward()
    total = RankMeanLosses(_TwoTerms())(_rows(rank))
    return {"terms": {k: v.detach() for k, v in terms.items()}, "grad": inner.w.grad, "total": total.detach()}


@pytest.mark.distributed
def test_logged_terms_are_the_rank_mean_and_gradients_the_local_ones():
    ranks = run_ranks(_rank_terms, 2)
    local = []
    for rank in range(2):
        loss = _TwoTerms()
        terms = loss(_rows(rank), output_dict=True)
        sum(terms.values()).backward()
        local.append(({k: v.detach() for k, v in terms.items()}, loss.w.grad))
    assert local[0][0]["local_loss"] != local[1][0]["local_loss"]  # the ranks' own values differ
    for rank in range(2):
        got = ranks[rank]
        for key in ("local_loss", "other_loss"):
            want = (local[0][0][key] + local[1][0][key]) / 2
            torch.testing.assert_close(got["terms"][key], want, rtol=1e-12, atol=0)
        torch.testing.assert_close(got["grad"], local[rank][1], rtol=0, atol=0)
        torch.testing.assert_close(got["total"], sum(got["terms"].values()), rtol=1e-12, atol=0)
