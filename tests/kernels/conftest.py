"""Kernel tests run on CPU tensors through Triton's interpreter (or on a GPU when one is present)."""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():  # must precede the first import of the kernels
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> torch.device:
    """CPU under the interpreter, else the GPU."""
    from sista_kit.kernels import interpreter_enabled

    if interpreter_enabled():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        pytest.fail("no GPU and TRITON_INTERPRET is not set: the kernels cannot run")
    return torch.device("cuda")
