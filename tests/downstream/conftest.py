"""Fixtures of the downstream tests: tiny checkpoints (64 px towers) and a tiny disk export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from downstream_helpers import RESNET, SIZE, VIT, make_checkpoint  # noqa: F401

torch.set_num_threads(1)  # tiny shapes: threads only add overhead on the shared 2-core machine


@pytest.fixture(scope="session")
def vit_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "vit", VIT, seed=1)


@pytest.fixture(scope="session")
def resnet_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "resnet", RESNET, seed=2)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-study synthetic export at 64 px (train 30, val 6, test 18)."""
    from sista_kit.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("data") / "synthetic"
    fr = {"pretrain": 0.1, "train": 0.5, "val": 0.1, "test": 0.3}
    return write_dataset(root, 60, seed=0, image_size=SIZE, split_fractions=fr, workers=1, progress=False)
