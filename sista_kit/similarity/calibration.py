"""How well a report-similarity provider finds the false negatives, and the threshold to use.

Truth is a set of labelled pairs: either one key per report (pairs with equal keys, i != j, are
false negatives: equal finding sets, equal tag sets) or an (N, N) bool matrix. Pairs are taken
within consecutive blocks of ``batch_size`` reports (what SIA sees in a batch) or all at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from .base import ReportSimilarity, TextReportSimilarity, similarity_from_embeddings


@dataclass(frozen=True)
class Calibration:
    """Detection figures of one provider; ``threshold`` is the one they were measured at."""

    threshold: float
    precision: float
    recall: float
    ap: float
    flagged_share: float  #: share of pairs at or above the threshold (what SIA drops)
    truth_share: float  #: share of pairs that are false negatives
    pairs: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def truth_matrix(truth: Sequence[Hashable] | Tensor) -> Tensor:
    """(N, N) bool false-negative truth from keys (equal keys) or a matrix; the diagonal is False."""
    if isinstance(truth, Tensor):
        if truth.dim() != 2 or truth.shape[0] != truth.shape[1]:
            raise ValueError(f"truth must be (N, N), got shape {tuple(truth.shape)}")
        same = truth.bool().clone()
    else:
        ids: dict[Hashable, int] = {}
        codes = torch.tensor([ids.setdefault(k, len(ids)) for k in truth])
        same = codes[:, None] == codes[None, :]
    same.fill_diagonal_(False)
    return same


def provider_embeddings(provider: ReportSimilarity, inputs: Sequence[str] | Tensor) -> Tensor:
    """Similarity embeddings Z of a provider: report texts for text providers, else the source tensor."""
    if isinstance(provider, TextReportSimilarity):
        if isinstance(inputs, Tensor):
            raise TypeError(f"{type(provider).__name__} reads report texts; got a tensor as inputs")
        return torch.nn.functional.normalize(provider.embed(list(inputs)).float(), dim=-1)
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{type(provider).__name__} reads `{provider.source}`; pass it as a tensor")
    return provider.embeddings(inputs)


def pair_scores(z: Tensor, truth: Tensor, batch_size: int | None) -> tuple[Tensor, Tensor]:
    """Similarities S_ij and truth of the off-diagonal pairs of embeddings ``z`` (N, R), taken within
    consecutive blocks of ``batch_size`` reports (all pairs when None)."""
    n = z.shape[0]
    if truth.shape != (n, n):
        raise ValueError(f"truth is {tuple(truth.shape)} but there are {n} reports")
    if batch_size is not None and batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 or None, got {batch_size}")
    step = n if batch_size is None else batch_size
    scores, labels = [], []
    for s in range(0, n, step):
        block = slice(s, min(n, s + step))
        sim = similarity_from_embeddings(z[block])
        off = ~torch.eye(sim.shape[0], dtype=torch.bool)
        scores.append(sim[off])
        labels.append(truth[block, block][off])
    return torch.cat(scores), torch.cat(labels)


def _curve(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Precision and recall at each distinct score (descending) and those scores."""
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], labels[order].double()
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]  # the last pair of each run of equal scores
    tp = torch.cumsum(y, 0)[last]
    flagged = (torch.nonzero(last).squeeze(1) + 1).double()
    return tp / flagged, tp / max(1.0, float(y.sum())), s[last]


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """AP = sum_k (R_k - R_{k-1}) P_k over distinct thresholds (scikit-learn's definition)."""
    if not labels.any():
        return float("nan")
    precision, recall, _ = _curve(scores, labels)
    return float((torch.diff(recall, prepend=recall.new_zeros(1)) * precision).sum())


def threshold_for_precision(scores: Tensor, labels: Tensor, target_precision: float) -> float:
    """The lowest threshold whose precision is >= ``target_precision`` (the most recall at that
    precision); when no threshold reaches it, the one of the highest precision."""
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must lie in (0, 1], got {target_precision}")
    precision, _, thresholds = _curve(scores, labels)
    ok = torch.nonzero(precision >= target_precision).squeeze(1)
    return float(thresholds[ok[-1]] if len(ok) else thresholds[torch.argmax(precision)])


def detection(
    provider: ReportSimilarity,
    inputs: Sequence[str] | Tensor,
    truth: Sequence[Hashable] | Tensor,
    threshold: float = 0.9,
    batch_size: int | None = None,
) -> Calibration:
    """AP, and precision / recall at ``threshold``, of the pairs SIA would drop (S_ij >= threshold)."""
    scores, labels = pair_scores(provider_embeddings(provider, inputs), truth_matrix(truth), batch_size)
    return figures_at(scores, labels, threshold)


def figures_at(scores: Tensor, labels: Tensor, threshold: float) -> Calibration:
    """Detection figures of pair ``scores`` against bool ``labels`` at ``threshold``."""
    flagged = scores >= threshold
    tp = float((flagged & labels).sum())
    return Calibration(
        threshold=float(threshold),
        precision=tp / max(1.0, float(flagged.sum())),
        recall=tp / max(1.0, float(labels.sum())),
        ap=average_precision(scores, labels),
        flagged_share=float(flagged.float().mean()),
        truth_share=float(labels.float().mean()),
        pairs=int(labels.numel()),
    )


def calibrate(
    provider: ReportSimilarity,
    texts: Sequence[str] | Tensor,
    truth: Sequence[Hashable] | Tensor,
    target_precision: float = 0.9,
    batch_size: int | None = None,
) -> Calibration:
    """Choose the threshold with the most recall at ``target_precision`` on labelled pairs, and the
    figures there. Calibrate on training data; measure held-out data with :func:`detection`.

    Args:
        provider: any report-similarity provider.
        texts: report texts (text providers) or the provider's source tensor (e.g. report labels).
        truth: one key per report (equal keys = false negative) or an (N, N) bool matrix.
        target_precision: the precision the threshold must keep.
        batch_size: compare pairs within consecutive blocks of this size (None: all pairs).
    """
    scores, labels = pair_scores(provider_embeddings(provider, texts), truth_matrix(truth), batch_size)
    return figures_at(scores, labels, threshold_for_precision(scores, labels, target_precision))
