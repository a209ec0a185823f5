"""Online provider: the model's own report embeddings, detached."""

from __future__ import annotations

from torch import Tensor

from .base import ReportSimilarity


class OnlineSimilarity(ReportSimilarity):
    """Cosine of the model's own (detached) report embeddings ``text_features``.

    Needs nothing from the data pipeline. Early in training the embeddings are close to random, so
    pair it with a high threshold (default 0.9) or a warm-up with SIA off.
    """

    source = "text_features"

    def _embed_source(self, value: Tensor) -> Tensor:
        return value
