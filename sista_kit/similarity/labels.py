"""Label provider: cosine of finding-label vectors (MedCLIP-style), when the dataset has labels."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import ReportSimilarity


class LabelSimilarity(ReportSimilarity):
    """Cosine of multi-hot finding labels ``report_labels`` (B, K).

    A "no finding" indicator is appended, so that two normal studies (all-zero labels) have
    similarity 1 rather than an undefined cosine, and a normal study is orthogonal to any abnormal one.
    Uncertain labels may be given as fractions in [0, 1].
    """

    source = "report_labels"

    def _embed_source(self, value: Tensor) -> Tensor:
        if value.dim() != 2:
            raise ValueError(f"report_labels must be (B, K), got shape {tuple(value.shape)}")
        labels = value.float().clamp(0.0, 1.0)
        normal = (labels.sum(dim=1, keepdim=True) == 0).float()
        return torch.cat([labels, normal], dim=1)
