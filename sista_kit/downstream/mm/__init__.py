"""OpenMMLab integration: importing this package registers sista_kit's backbones, heads, datasets
and hooks into mmdet's and mmseg's registries (whichever is installed) and into the ``sista_kit``
scope, so configs can say ``custom_imports=dict(imports=['sista_kit.downstream.mm'])`` and
``type='sista_kit.SistaViT'``. It needs mmengine and mmcv; mmdet / mmseg parts register only when
that library is installed.

Registration in the OpenMMLab registries is this package's only import-time effect (mmengine's
``custom_imports`` relies on it). torch's weights-only allow-list for mmengine checkpoints is an
explicit call, :func:`allow_mmengine_checkpoints`, made by ``run_seg`` / ``run_det`` and by
``SafeCheckpointHook`` before a run loads or resumes.
"""

from __future__ import annotations

from . import backbones, datasets, hooks  # noqa: F401,E402  (registration side effects)
from .backbones import SistaResNet, SistaViT
from .registry import DATASETS, HOOKS, METRICS, MODELS, SCOPE
from .safe_load import PlainHistoryBuffer, SafeCheckpointHook, allow_mmengine_checkpoints

try:
    from . import heads, metrics  # noqa: F401  (need mmseg)
except ImportError:
    heads = metrics = None
try:
    from . import det_metrics  # noqa: F401  (needs mmdet)
except ImportError:
    det_metrics = None

__all__ = [
    "DATASETS",
    "HOOKS",
    "METRICS",
    "MODELS",
    "PlainHistoryBuffer",
    "SCOPE",
    "SafeCheckpointHook",
    "SistaResNet",
    "SistaViT",
    "allow_mmengine_checkpoints",
]
