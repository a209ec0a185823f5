"""SISTA = lambda_sia * SIA + lambda_sta * STA."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sista_kit.similarity import ReportSimilarity

from .registry import register_loss
from .sia import SemanticInstanceAlignLoss
from .sta import SparseTokenAlignLoss


@register_loss("sista")
class SISTALoss(nn.Module):
    """The SISTA objective (METHOD.md section 3): weighted sum of SIA and STA.

    Args:
        lambda_sia, lambda_sta: weights; a weight of 0 turns that term off (ablations).
        similarity, threshold, strategy, neutral_band, soft_temperature, chunk_size: SIA options
            (see :class:`SemanticInstanceAlignLoss`).
        sparsify, sta_threshold, k, token_temperature: STA options (see :class:`SparseTokenAlignLoss`).
        backend: ``auto`` | ``torch`` | ``triton`` for both terms.

    Returns (output_dict=True) ``instance_align_loss`` and ``token_align_loss``, already weighted, for
    the terms whose weight is non-zero; otherwise their sum.
    """

    def __init__(
        self,
        *,
        lambda_sia: float = 1.0,
        lambda_sta: float = 1.0,
        similarity: str | ReportSimilarity | None = "encoder",
        threshold: float = 0.9,
        strategy: str = "eliminate",
        neutral_band: tuple[float, float] | None = None,
        soft_temperature: float = 0.1,
        chunk_size: int | None = None,
        sparsify: str = "threshold",
        sta_threshold: float | None = None,
        k: int = 8,
        token_temperature: float = 0.07,
        backend: str = "auto",
        similarity_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        if lambda_sia < 0 or lambda_sta < 0 or lambda_sia + lambda_sta == 0:
            raise ValueError(f"weights must be >= 0 and not both 0, got {lambda_sia=}, {lambda_sta=}")
        self.lambda_sia, self.lambda_sta = lambda_sia, lambda_sta
        self.sia = SemanticInstanceAlignLoss(
            similarity,
            threshold=threshold,
            strategy=strategy,
            neutral_band=neutral_band,
            soft_temperature=soft_temperature,
            chunk_size=chunk_size,
            backend=backend,
            similarity_kwargs=similarity_kwargs,
        )
        self.sta = SparseTokenAlignLoss(
            sparsify=sparsify, threshold=sta_threshold, k=k, temperature=token_temperature, backend=backend
        )

    def forward(self, output_dict: bool = False, **inputs: Any) -> Tensor | dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        if self.lambda_sia:
            terms["instance_align_loss"] = self.lambda_sia * self.sia(**inputs)
        if self.lambda_sta:
            terms["token_align_loss"] = self.lambda_sta * self.sta(**inputs)
        return terms if output_dict else sum(terms.values())
