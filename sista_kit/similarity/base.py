"""Report-similarity providers: what SIA uses to find false negatives.

Every provider maps what travels with a batch to L2-normalised *similarity embeddings* Z (B, R),
and the report similarity is S = Z Z^T in [-1, 1]. Expressing all providers this way lets the
instance loss gather Z across ranks and lets the chunked / tiled paths compute the false-negative
mask tile by tile, without a B x B buffer. Nothing here takes gradient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from sista_kit.checks import ValueChecks

#: Model-output keys a provider may read (see docs/contracts.md).
SOURCES = ("text_features", "report_embeddings", "report_labels")


def similarity_from_embeddings(z: Tensor) -> Tensor:
    """Report similarity S = Z Z^T of L2-normalised similarity embeddings, clamped to [-1, 1]."""
    return (z @ z.T).clamp_(-1.0, 1.0)


class ReportSimilarity(ABC):
    """Base class: subclasses set ``source`` and implement :meth:`embeddings`."""

    #: which model-output key the provider reads
    source: str = "report_embeddings"
    #: whether the constructor takes the training reports as ``corpus=``
    needs_corpus: bool = False

    @abstractmethod
    def _embed_source(self, value: Tensor) -> Tensor:
        """Map the source tensor (B, ...) to unnormalised similarity embeddings (B, R)."""

    @torch.no_grad()
    def embeddings(self, value: Tensor | None) -> Tensor:
        """L2-normalised similarity embeddings Z (B, R) from the source tensor."""
        if value is None:
            raise ValueError(
                f"{type(self).__name__} needs `{self.source}` in the loss inputs; "
                "the model / collate did not provide it"
            )
        # a value check: one reduction, read on CPU, a device-side assertion on CUDA (no host sync)
        ValueChecks().finite(self.source, value).run()
        return F.normalize(self._embed_source(value.detach()).float(), dim=-1)

    @torch.no_grad()
    def similarity(self, value: Tensor | None) -> Tensor:
        """Report similarity S (B, B) = Z Z^T, clamped to [-1, 1]."""
        return similarity_from_embeddings(self.embeddings(value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r})"


class TextReportSimilarity(ReportSimilarity):
    """A provider that reads raw report text: ``embed`` runs once per batch in the data pipeline
    (collate), and its output travels as ``report_embeddings``."""

    source = "report_embeddings"

    @abstractmethod
    def embed(self, reports: list[str]) -> Tensor:
        """Embed raw reports -> (N, R) float32, L2-normalised."""

    def _embed_source(self, value: Tensor) -> Tensor:
        return value

    @staticmethod
    def _check_reports(reports: list[str]) -> None:
        if isinstance(reports, str) or not all(isinstance(r, str) for r in reports):
            raise TypeError("reports must be a list of strings")
        empty = [i for i, r in enumerate(reports) if not r.strip()]
        if empty:
            raise ValueError(f"empty report text at batch positions {empty[:10]}")
