"""SISTA = lambda_sia * SIA + lambda_sta * STA, configured by one SIA and one STA configuration."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from torch import Tensor, nn

from sista_kit.checks import check_weight
from sista_kit.similarity import ReportSimilarity

from .registry import register_loss
from .sia import SemanticInstanceAlignLoss
from .sta import SparseTokenAlignLoss


@dataclass
class SIAConfig:
    """Options of :class:`SemanticInstanceAlignLoss` (see there)."""

    similarity: str | ReportSimilarity | None = "encoder"
    threshold: float = 0.9
    strategy: str = "eliminate"
    neutral_band: tuple[float, float] | None = None
    soft_temperature: float = 0.1
    chunk_size: int | None = None
    similarity_kwargs: dict[str, Any] | None = field(default=None)


@dataclass
class STAConfig:
    """Options of :class:`SparseTokenAlignLoss` (see there)."""

    sparsify: str = "threshold"
    threshold: float | None = None
    k: int = 8
    temperature: float = 0.07


#: flat keyword arguments accepted for compatibility, mapped to (configuration, field)
_FLAT = {
    **{f.name: ("sia", f.name) for f in fields(SIAConfig)},
    "sparsify": ("sta", "sparsify"),
    "sta_threshold": ("sta", "threshold"),
    "k": ("sta", "k"),
    "token_temperature": ("sta", "temperature"),
}


def _as_dict(config: Any) -> dict[str, Any]:
    """Fields of a configuration, values as they are (``asdict`` would deep-copy a provider)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def _config(cls: type, given: Any, name: str) -> Any:
    if given is None:
        return cls()
    if isinstance(given, cls):
        return replace(given)
    if isinstance(given, dict):
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}")
        return cls(**given)
    raise TypeError(f"{name} must be a {cls.__name__}, a dict or None, got {type(given).__name__}")


@register_loss("sista")
class SISTALoss(nn.Module):
    """The SISTA objective (METHOD.md section 3): weighted sum of SIA and STA.

    Args:
        lambda_sia, lambda_sta: weights (finite, >= 0, not both 0); a weight of 0 turns that term off.
        sia: :class:`SIAConfig` (or a dict of its fields) for the instance term.
        sta: :class:`STAConfig` (or a dict of its fields) for the token term.
        backend: ``auto`` | ``torch`` | ``triton`` for both terms.
        **options: the flat keywords of earlier versions, still accepted: ``similarity``, ``threshold``,
            ``strategy``, ``neutral_band``, ``soft_temperature``, ``chunk_size``, ``similarity_kwargs``
            (SIA) and ``sparsify``, ``sta_threshold``, ``k``, ``token_temperature`` (STA); they
            override the configurations.

    Returns (output_dict=True) ``instance_align_loss`` and ``token_align_loss``, already weighted, for
    the terms whose weight is non-zero; otherwise their sum.
    """

    def __init__(
        self,
        *,
        lambda_sia: float = 1.0,
        lambda_sta: float = 1.0,
        sia: SIAConfig | dict[str, Any] | None = None,
        sta: STAConfig | dict[str, Any] | None = None,
        backend: str = "auto",
        **options: Any,
    ):
        super().__init__()
        check_weight("lambda_sia", lambda_sia)
        check_weight("lambda_sta", lambda_sta)
        if lambda_sia + lambda_sta == 0:
            raise ValueError(f"weights must be >= 0 and not both 0, got {lambda_sia=}, {lambda_sta=}")
        configs = {"sia": _config(SIAConfig, sia, "sia"), "sta": _config(STAConfig, sta, "sta")}
        for key, value in options.items():
            if key not in _FLAT:
                raise TypeError(f"SISTALoss got an unexpected keyword argument {key!r}")
            part, name = _FLAT[key]
            setattr(configs[part], name, value)
        self.sia_config, self.sta_config = configs["sia"], configs["sta"]
        self.lambda_sia, self.lambda_sta = float(lambda_sia), float(lambda_sta)
        sia_options = _as_dict(self.sia_config)
        self.sia = SemanticInstanceAlignLoss(sia_options.pop("similarity"), backend=backend, **sia_options)
        self.sta = SparseTokenAlignLoss(backend=backend, **_as_dict(self.sta_config))

    def forward(self, output_dict: bool = False, **inputs: Any) -> Tensor | dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        if self.lambda_sia:
            terms["instance_align_loss"] = self.lambda_sia * self.sia(**inputs)
        if self.lambda_sta:
            terms["token_align_loss"] = self.lambda_sta * self.sta(**inputs)
        return terms if output_dict else sum(terms.values())
