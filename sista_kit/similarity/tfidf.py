"""TF-IDF provider: scikit-learn TF-IDF of word 1-2 grams, fitted on the training corpus."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import TextReportSimilarity


class TfidfSimilarity(TextReportSimilarity):
    """Cosine of TF-IDF vectors of word uni- and bi-grams (so "no effusion" differs from "effusion").

    Args:
        corpus: reports to fit the vocabulary and IDF on (the pretraining corpus).
        ngram_range: word n-gram range.
        max_features: vocabulary cap (keeps the per-batch embeddings small).
    """

    needs_corpus = True

    def __init__(
        self, corpus: list[str], ngram_range: tuple[int, int] = (1, 2), max_features: int | None = 4096
    ):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._check_reports(corpus)
        self.vectorizer = TfidfVectorizer(
            ngram_range=ngram_range, max_features=max_features, sublinear_tf=True
        )
        self.vectorizer.fit(corpus)

    def embed(self, reports: list[str]) -> Tensor:
        self._check_reports(reports)
        matrix = self.vectorizer.transform(reports)  # rows already L2-normalised
        return torch.from_numpy(matrix.toarray()).float()
