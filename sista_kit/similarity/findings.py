"""Findings provider: labeler findings with a No-Finding decision, plus wording, from report text."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .base import TextReportSimilarity
from .labeler import Code, _columns, label_reports
from .observations import CLASS_PRESETS, NAMES
from .tfidf import TfidfSimilarity


class FindingsSimilarity(TextReportSimilarity):
    """Report similarity from the findings a report states, for false-negative detection.

    Each report is labelled (:func:`~sista_kit.similarity.labeler.label_reports`) and embedded as

        normal report:    z = e_0                                  (the No-Finding axis)
        abnormal report:  z = [0, sqrt(1 - w) * l / |l|, sqrt(w) * t]

    with l the multi-hot of the classes found (positive or uncertain) and t the report's TF-IDF
    vector. So S = Z Z^T is 1 for two normal reports, 0 between a normal and an abnormal one, and
    ``(1 - w) cos(l_i, l_j) + w cos(t_i, t_j)`` for two abnormal ones: it reaches the default SIA
    threshold 0.9 only when their classes are equal and their wording agrees (cos(t) >= 0.8 at w = 0.5).

    Args:
        corpus: reports to fit the TF-IDF vocabulary on (the pretraining corpus).
        classes: which observations define equivalence, as class -> observation names; a class is
            found when any of its observations is. None: every observation of ``observations.NAMES``
            is its own class. Observations in no class are ignored (also for the No-Finding
            decision). A name from ``observations.CLASS_PRESETS``: ``"all"`` (the default),
            ``"chexpert"`` (the 13 CheXpert observations), ``"synthetic"`` (the embedded dataset's
            7 classes, which ignore devices, bones and other findings).
        wording_weight: w above, in [0, 1]; 0 compares labels only.
        uncertain_weight: weight of an uncertain class in l (1: counted like a positive one).
        max_features: TF-IDF vocabulary size.
    """

    needs_corpus = True

    def __init__(
        self,
        corpus: Sequence[str],
        classes: str | Mapping[str, Sequence[str]] | None = None,
        wording_weight: float = 0.5,
        uncertain_weight: float = 1.0,
        max_features: int | None = 4096,
    ):
        if not 0.0 <= wording_weight <= 1.0:
            raise ValueError(f"wording_weight must lie in [0, 1], got {wording_weight}")
        if not 0.0 < uncertain_weight <= 1.0:
            raise ValueError(f"uncertain_weight must lie in (0, 1], got {uncertain_weight}")
        if isinstance(classes, str):
            if classes not in CLASS_PRESETS:
                raise ValueError(
                    f"unknown classes preset {classes!r}; expected one of {', '.join(CLASS_PRESETS)}"
                )
            classes = CLASS_PRESETS[classes]
        classes = {n: (n,) for n in NAMES} if classes is None else dict(classes)
        if not classes:
            raise ValueError("classes must name at least one class")
        self.classes = {name: tuple(obs) for name, obs in classes.items()}
        self._cols = [_columns(obs) for obs in self.classes.values()]
        self.wording_weight, self.uncertain_weight = float(wording_weight), float(uncertain_weight)
        self.wording = (
            TfidfSimilarity(list(corpus), max_features=max_features) if wording_weight > 0 else None
        )

    def class_scores(self, codes: np.ndarray) -> np.ndarray:
        """(N, C) float32: 1 for a positive class, ``uncertain_weight`` for an uncertain one, else 0."""
        pos = codes == Code.POSITIVE
        unc = codes == Code.UNCERTAIN
        out = np.zeros((codes.shape[0], len(self._cols)), dtype=np.float32)
        for c, cols in enumerate(self._cols):
            out[:, c] = np.where(
                pos[:, cols].any(1), 1.0, np.where(unc[:, cols].any(1), self.uncertain_weight, 0.0)
            )
        return out

    def embed(self, reports: list[str]) -> Tensor:
        """(N, 1 + C [+ V]) float32, L2-normalised similarity embeddings of the reports."""
        self._check_reports(reports)
        labels = torch.from_numpy(self.class_scores(label_reports(reports)))
        normal = labels.sum(1, keepdim=True) == 0
        parts = [
            normal.float(),
            math.sqrt(1.0 - self.wording_weight) * torch.nn.functional.normalize(labels, dim=1),
        ]
        if self.wording is not None:
            parts.append(math.sqrt(self.wording_weight) * self.wording.embed(reports))
        z = torch.cat(parts, dim=1)
        z[:, 1:] *= (~normal).float()  # a normal report is the No-Finding axis alone
        return torch.nn.functional.normalize(z, dim=1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(classes={len(self.classes)}, wording_weight={self.wording_weight}, "
            f"uncertain_weight={self.uncertain_weight})"
        )
