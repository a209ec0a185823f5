"""Providers check their source through the shared value checks (policy switch, named errors)."""

from __future__ import annotations

import pytest
import torch

from sista_kit.checks import InvalidValueError, check_inputs
from sista_kit.similarity.labels import LabelSimilarity


def test_non_finite_source_is_named_and_follows_the_policy() -> None:
    provider = LabelSimilarity()
    labels = torch.tensor([[1.0, 0.0], [float("nan"), 1.0]])
    with pytest.raises(InvalidValueError, match="report_labels contains NaN or inf"):
        provider.embeddings(labels)
    with check_inputs("off"):
        assert provider.embeddings(labels).shape == (2, 3)


def test_integer_and_bool_sources_pass() -> None:
    provider = LabelSimilarity()
    for labels in (torch.tensor([[1, 0], [0, 1]]), torch.tensor([[True, False], [False, False]])):
        assert torch.isfinite(provider.embeddings(labels)).all()
