"""Registries of the ``sista_kit`` scope, children of mmengine's roots.

With them, ``type='sista_kit.SistaViT'`` resolves from mmdet's and mmseg's registries alike (mmengine
looks a scoped name up among the root's children). The classes are also registered under their
plain names in mmdet's / mmseg's own registries, so ``type='SistaViT'`` works in either scope.
"""

from __future__ import annotations

from mmengine.registry import DATASETS as ROOT_DATASETS
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import METRICS as ROOT_METRICS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import Registry

SCOPE = "sista_kit"
_LOCATION = ["sista_kit.downstream.mm"]

MODELS = Registry("model", parent=ROOT_MODELS, scope=SCOPE, locations=_LOCATION)
DATASETS = Registry("dataset", parent=ROOT_DATASETS, scope=SCOPE, locations=_LOCATION)
HOOKS = Registry("hook", parent=ROOT_HOOKS, scope=SCOPE, locations=_LOCATION)
METRICS = Registry("metric", parent=ROOT_METRICS, scope=SCOPE, locations=_LOCATION)


def register(registries: list[Registry], cls: type) -> type:
    """Register ``cls`` under its class name in each registry (idempotent)."""
    for reg in registries:
        reg.register_module(module=cls, force=True)
    return cls
