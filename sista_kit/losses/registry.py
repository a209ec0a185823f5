"""Losses by name, so the training entry point and the benchmark choose them from a string.

Two ways put a loss in the registry, and the registry imports no provider by name:

- **Entry points** (the documented mechanism): a distribution declares its losses in the
  ``sista_kit.losses`` group, ``name = "package.module:LossClass"``. sista_kit declares its own
  (``sia``, ``clip``, ``sta``, ``sista``) and the baselines' (``convirt``, ``gloria``, ``mgca``) in
  ``pyproject.toml``; another package adds a loss the same way, and it is loaded on first use.
- **register_loss**: the class decorator, for losses defined at run time (tests, notebooks).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from torch import nn

__all__ = ["ENTRY_POINT_GROUP", "available_losses", "build_loss", "loss_class", "register_loss"]

#: The package entry-point group that lists losses buildable by name.
ENTRY_POINT_GROUP = "sista_kit.losses"

_REGISTRY: dict[str, type[nn.Module]] = {}


def register_loss(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a loss module buildable as ``build_loss(name, **hparams)``."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"loss name {name!r} already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        return cls

    return wrap


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_losses() -> list[str]:
    """Names accepted by :func:`build_loss` (registered classes and declared entry points)."""
    return sorted(set(_REGISTRY) | set(_entry_points()))


def loss_class(name: str) -> type[nn.Module]:
    """The loss class registered (or declared as an entry point) under ``name``."""
    if name not in _REGISTRY:
        ep = _entry_points().get(name)
        if ep is None:
            raise KeyError(f"unknown loss {name!r}; available: {', '.join(available_losses())}")
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(
                f"entry point {name!r} of group {ENTRY_POINT_GROUP!r} ({ep.value}) is not an nn.Module class"
            )
        register_loss(name)(cls)
    return _REGISTRY[name]


def build_loss(name: str, **hparams: Any) -> nn.Module:
    """Instantiate the loss registered as ``name`` with keyword hyperparameters."""
    return loss_class(name)(**hparams)
