"""Test-wide set-up: Triton's interpreter on CPU-only machines, one thread, shared fixtures path."""

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


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared folder (reference fixtures), beside the repository or $SISTA_SHARED."""
    path = Path(os.environ.get("SISTA_SHARED", REPO_ROOT.parent / "shared"))
    if not path.is_dir():
        pytest.fail(f"shared folder not found at {path}; set SISTA_SHARED")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
