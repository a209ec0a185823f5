"""Test-wide set-up: Triton's interpreter on CPU-only machines, one thread, the in-repository fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Triton reads TRITON_INTERPRET when its kernels are first imported: set it before any test imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Two cores shared by the test process and its helpers: one intra-op thread gives stable timings.
torch.set_num_threads(int(os.environ.get("SISTA_TEST_THREADS", "1")))

REPO_ROOT = Path(__file__).resolve().parents[1]


#: Test fixtures kept in the repository (tests never read a folder outside it).
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
