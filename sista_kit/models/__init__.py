"""Towers and the open_clip model integration.

- :mod:`sista_kit.models.archs`: the sista_kit timm architectures (registered with timm on import).
- :mod:`sista_kit.models.spec`: ``VisionSpec`` (architecture, size, channels) and ``trunk_family``.
- :mod:`sista_kit.models.vision`: ``create_vision_trunk``, ``load_trunk_weights``, ``trunk_info``.
- :mod:`sista_kit.models.weights`: weight files and state-dict loading with named errors.
- :mod:`sista_kit.models.checkpoint`: safetensors checkpoints, ``load_vision_trunk`` for downstream.
- :mod:`sista_kit.models.clip`: the CLIP model (open_clip factory, timm + Hugging Face towers) whose
  forward returns global and token embeddings (docs/contracts.md section 2).

The CLIP part imports open_clip and transformers; it is loaded on first use so that downstream code
that only needs a vision trunk does not pay for it.
"""

from __future__ import annotations

from typing import Any

from sista_kit.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_vision_trunk,
    read_checkpoint_config,
    save_checkpoint,
)
from sista_kit.models.spec import VisionSpec, is_vit, trunk_family
from sista_kit.models.vision import create_vision_trunk, load_trunk_weights, trunk_info

_LAZY = {
    "SistaCLIP": "sista_kit.models.clip",
    "build_model": "sista_kit.models.clip",
    "model_config": "sista_kit.models.configs",
    "list_model_configs": "sista_kit.models.configs",
    "TextBatch": "sista_kit.models.text_batch",
}

__all__ = [
    "CheckpointError",
    "VisionSpec",
    "create_vision_trunk",
    "is_vit",
    "load_checkpoint",
    "load_trunk_weights",
    "load_vision_trunk",
    "read_checkpoint_config",
    "save_checkpoint",
    "trunk_family",
    "trunk_info",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sista_kit.models' has no attribute {name!r}")
