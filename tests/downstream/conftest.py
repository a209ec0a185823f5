"""Fixtures of the downstream tests: tiny checkpoints (64 px towers) and a tiny disk export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

SIZE = 64
VIT = "sista_vit_tiny"

torch.set_num_threads(1)  # tiny shapes: threads only add overhead on the shared 2-core machine
RESNET = "sista_resnet18"


class _Visual(nn.Module):
    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk


class _FakeClip(nn.Module):
    """Just enough of a CLIP model for a checkpoint: ``visual.trunk.*`` keys plus a text part."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.visual = _Visual(trunk)
        self.text_projection = nn.Linear(4, 4)


def make_checkpoint(path: Path, model_name: str = VIT, seed: int = 0, perturb: float = 0.0) -> Path:
    """Save a checkpoint folder whose vision trunk is a seeded random ``model_name`` at 64 px."""
    from sista_kit.models.checkpoint import save_checkpoint
    from sista_kit.models.vision import create_vision_trunk

    torch.manual_seed(seed)
    trunk = create_vision_trunk(model_name, SIZE, 1)
    if perturb:
        with torch.no_grad():
            for p in trunk.parameters():
                p.add_(perturb * torch.randn_like(p))
    config = {"vision_cfg": {"timm_model_name": model_name, "image_size": SIZE, "in_chans": 1}, "text_cfg": {}}
    return save_checkpoint(_FakeClip(trunk), path, config)


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
