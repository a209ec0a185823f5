"""Tiny checkpoints for the downstream tests (64 px towers)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

SIZE = 64
VIT = "sista_vit_tiny"

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
    config = {
        "vision_cfg": {"timm_model_name": model_name, "image_size": SIZE, "in_chans": 1},
        "text_cfg": {},
    }
    return save_checkpoint(_FakeClip(trunk), path, config)
