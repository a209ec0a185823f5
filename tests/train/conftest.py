"""Fixtures of the train tests: one tiny dataset and one tokenizer, shared (read only) by every run."""

from __future__ import annotations

import pytest
from tiny_runs import build_data, build_tokenizer


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """The 160-sample embedded dataset at 64 px (see ``tiny_runs``)."""
    return build_data(tmp_path_factory.mktemp("data") / "syn")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, data_dir) -> str:
    """One tokenizer trained on the 'train' split, for runs that are compared with each other."""
    return build_tokenizer(data_dir, tmp_path_factory.mktemp("tokenizer"))
