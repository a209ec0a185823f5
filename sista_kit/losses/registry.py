"""Losses by name, so the training entry point and the benchmark choose them from a string."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

_REGISTRY: dict[str, type[nn.Module]] = {}
# Modules whose import registers more losses (the baselines live in their own package).
_PROVIDERS = ("sista_kit.losses", "sista_kit.baselines")


def register_loss(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a loss module buildable as ``build_loss(name, **hparams)``."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"loss name {name!r} already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_providers() -> None:
    for module in _PROVIDERS:
        importlib.import_module(module)


def available_losses() -> list[str]:
    """Names accepted by :func:`build_loss`."""
    _load_providers()
    return sorted(_REGISTRY)


def build_loss(name: str, **hparams: Any) -> nn.Module:
    """Instantiate the loss registered as ``name`` with keyword hyperparameters."""
    _load_providers()
    if name not in _REGISTRY:
        raise KeyError(f"unknown loss {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**hparams)
