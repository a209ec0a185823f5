"""Input validation shared by the losses, the baselines and the kernels (torch only, no sista_kit import).

Two kinds of checks:

- *cheap* checks read only metadata (type, shape, dtype) or Python numbers (temperatures, weights,
  thresholds); they always run and raise a ``TypeError`` / ``ValueError`` naming the argument;
- *value* checks read tensor data (NaN / inf, an all-False mask, a non-positive ``logit_scale``).
  A loss collects them in one :class:`ValueChecks` and runs them as one reduction per tensor
  (``aminmax``, no temporary) combined into one flag. What happens then is the *check policy*:

  ============ ==================================================================================
  ``auto``     default. CPU tensors: the flag is read (free on CPU) and a failure raises
               :class:`InvalidValueError` naming the tensor. CUDA tensors: ``torch._assert_async``,
               a device-side assertion, so the forward pass never waits for the device.
  ``full``     as ``auto`` on CPU, and on CUDA too: the flag is read (one host synchronisation).
  ``off``      value checks are skipped.
  ============ ==================================================================================

  The policy comes from ``SISTA_CHECK_INPUTS`` (auto | full | off), :func:`set_check_inputs`, or the
  :func:`check_inputs` context manager; a loss argument ``check_finite=False`` turns it off per call.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from numbers import Real

import torch
from torch import Tensor

POLICIES = ("auto", "full", "off")
ENV_VAR = "SISTA_CHECK_INPUTS"
SPARSIFY_MODES = ("threshold", "topk")
STRATEGIES = ("eliminate", "positive", "soft")
_policy: str | None = None


class InvalidValueError(ValueError, RuntimeError):
    """A tensor holds values a loss cannot take (NaN / inf, an empty mask, a non-positive scale).

    A ``ValueError`` (as every bad-argument error here) and a ``RuntimeError`` (what a device-side
    assertion raises), so that callers catching either keep working.
    """


# --------------------------------------------------------------------------------------------------
# policy
# --------------------------------------------------------------------------------------------------
def check_policy() -> str:
    """The active value-check policy: ``auto``, ``full`` or ``off``."""
    if _policy is not None:
        return _policy
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in POLICIES:
        raise ValueError(f"{ENV_VAR}={value!r} is not one of {', '.join(POLICIES)}")
    return value


def set_check_inputs(policy: str | None) -> None:
    """Set the value-check policy for the process (None = back to ``SISTA_CHECK_INPUTS``)."""
    global _policy
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"unknown check policy {policy!r}; expected one of {', '.join(POLICIES)}")
    _policy = policy


@contextlib.contextmanager
def check_inputs(policy: str = "full") -> Iterator[None]:
    """Context manager: run value checks under ``policy`` (``full`` = debug: exact errors on CUDA too)."""
    global _policy
    if policy not in POLICIES:
        raise ValueError(f"unknown check policy {policy!r}; expected one of {', '.join(POLICIES)}")
    previous, _policy = _policy, policy
    try:
        yield
    finally:
        _policy = previous


# --------------------------------------------------------------------------------------------------
# cheap checks: metadata and Python numbers
# --------------------------------------------------------------------------------------------------
def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def check_tensor(
    name: str, x: object, shape: int | tuple[int | None, ...], *, floating: bool = True
) -> Tensor:
    """Raise unless ``x`` is a tensor of ``shape`` (an ndim, or sizes with None = any) and, when
    ``floating``, of a floating dtype. Reads no data. Returns ``x``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if isinstance(shape, int):
        if x.dim() != shape:
            raise ValueError(f"{name} must have {shape} dimensions, got shape {tuple(x.shape)}")
    elif x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape, strict=False)):
        raise ValueError(f"{name} must have shape {_shape_text(shape)}, got {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
    return x


def check_shape(name: str, x: Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise a ValueError naming ``name`` when ``x`` does not have ``shape`` (None = any size)."""
    check_tensor(name, x, shape, floating=False)


def check_mask(name: str, mask: object, shape: tuple[int, ...]) -> Tensor:
    """A mask is a bool tensor of ``shape`` (True = real slot). Its content is a value check
    (:meth:`ValueChecks.nonempty`)."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{name} must be a bool tensor (True = real slot), got {got}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    return mask


def check_batch(what: str, **sizes: int) -> int:
    """Common batch size of the named tensors; raise when they disagree or when it is 0."""
    batch = same_size("batch size", **sizes)
    if batch == 0:
        raise ValueError(f"{what}: the batch is empty (B=0); a loss needs at least one pair")
    return batch


def same_size(what: str, **sizes: int) -> int:
    """Return the common value of ``sizes``; raise naming every argument when they disagree."""
    values = set(sizes.values())
    if len(values) != 1:
        listed = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(f"{what} mismatch: {listed}")
    return values.pop()


def check_same(name_a: str, a: int, name_b: str, b: int, what: str) -> None:
    """Raise when two sizes that must agree differ."""
    if a != b:
        raise ValueError(f"{what} mismatch: {name_a} has {a}, {name_b} has {b}")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise for a value outside ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(choices)}")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(name: str, value: object) -> float:
    """A finite number > 0 (temperatures, scales); NaN and inf are rejected."""
    number = _number(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {number}")
    return number


def check_range(name: str, value: object, low: float, high: float, what: str = "") -> float:
    """A finite number in [low, high]."""
    number = _number(name, value)
    if not low <= number <= high:
        raise ValueError(
            f"{name} must lie in [{low}, {high}]{' (' + what + ')' if what else ''}, got {number}"
        )
    return number


def check_weight(name: str, value: object) -> float:
    """A loss weight: a finite number >= 0."""
    number = _number(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {number}")
    return number


def check_chunk_size(name: str, value: object) -> int | None:
    """None (no chunking) or an int >= 1; 0 is an error, not a silent 'off'."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be None or a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be None (no chunking) or >= 1, got {value}")
    return value


def check_logit_scale(logit_scale: object, checks: ValueChecks | None = None) -> Tensor | float:
    """``logit_scale``: a positive finite float, or a tensor with one element (its value is checked
    through ``checks``, in the same reduction as the other tensors)."""
    if isinstance(logit_scale, Tensor):
        if logit_scale.numel() != 1:
            raise ValueError(
                "logit_scale must be a scalar (a float or a one-element tensor, the exponentiated "
                f"scale), got shape {tuple(logit_scale.shape)}"
            )
        if not logit_scale.is_floating_point():
            raise TypeError(f"logit_scale must be a floating tensor, got {logit_scale.dtype}")
        if checks is not None:
            checks.positive("logit_scale", logit_scale)
        return logit_scale.reshape(())
    return check_positive("logit_scale", logit_scale)


def check_sparsify(sparsify: str, threshold: float | None, k: int, num_patches: int) -> None:
    """Validate STA's sparsification options (shared by the reference and the fused kernel)."""
    check_choice("sparsify", sparsify, SPARSIFY_MODES)
    if sparsify == "threshold" and threshold is not None:
        check_range("threshold", threshold, 0.0, 1.0, "min-max normalised scale")
    if sparsify == "topk":
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if not 1 <= k <= num_patches:
            raise ValueError(f"k must lie in [1, P={num_patches}], got {k}")


def check_instance_options(threshold: float, strategy: str, neutral_band: tuple[float, float] | None) -> None:
    """Validate SIA's options (dense, chunked and tiled paths alike)."""
    check_choice("strategy", strategy, STRATEGIES)
    check_range("threshold", threshold, -1.0, 1.0, "cosine similarity")
    if neutral_band is not None:
        low, high = (float(v) for v in neutral_band)
        if not -1.0 <= low <= high <= 1.0 or abs(high - threshold) > 1e-12:
            raise ValueError(
                f"neutral_band must be (low, threshold) with -1 <= low <= threshold, got {neutral_band}"
            )


def check_instance_inputs(
    image_features: Tensor,
    text_features: Tensor,
    report_similarity: Tensor | None,
    threshold: float,
    strategy: str,
    neutral_band: tuple[float, float] | None,
    checks: ValueChecks | None = None,
) -> int:
    """Validate the inputs of the instance losses; returns the batch size. Value checks (finite
    features, report similarity in [-1, 1]) go to ``checks`` when given."""
    check_tensor("image_features", image_features, 2)
    check_tensor("text_features", text_features, 2)
    batch = check_batch(
        "instance loss", image_features=image_features.shape[0], text_features=text_features.shape[0]
    )
    check_same(
        "image_features", image_features.shape[1], "text_features", text_features.shape[1], "feature size"
    )
    check_instance_options(threshold, strategy, neutral_band)
    if report_similarity is not None:
        check_tensor("report_similarity", report_similarity, 2)
        if tuple(report_similarity.shape) != (batch, batch):
            raise ValueError(
                f"report_similarity must be ({batch}, {batch}) for a batch of {batch}, "
                f"got {tuple(report_similarity.shape)}"
            )
    if checks is not None:
        checks.finite("image_features", image_features)
        checks.finite("text_features", text_features)
        if report_similarity is not None:
            checks.within("report_similarity", report_similarity, -1.0, 1.0)
    return batch


def check_similarity_sources(
    report_similarity: Tensor | None, report_embeddings: Tensor | None, batch: int
) -> None:
    """At most one source of report similarity; embeddings are (B, R) (chunked and tiled paths)."""
    if report_similarity is not None and report_embeddings is not None:
        raise ValueError("give report_similarity or report_embeddings, not both")
    if report_embeddings is not None:
        check_tensor("report_embeddings", report_embeddings, 2)
        if report_embeddings.shape[0] != batch:
            raise ValueError(
                f"report_embeddings must be ({batch}, R) for a batch of {batch}, "
                f"got {tuple(report_embeddings.shape)}"
            )


# --------------------------------------------------------------------------------------------------
# value checks: one reduction per tensor, one flag
# --------------------------------------------------------------------------------------------------
class ValueChecks:
    """Collects the data-dependent checks of one call and runs them together (see the module doc).

    Args:
        enabled: False skips every value check (a loss's ``check_finite=False``); None/True follow
            the policy.
    """

    def __init__(self, enabled: bool | None = None):
        self.enabled = enabled is not False
        self._items: list[tuple[str, str, Tensor, tuple[float, float] | None]] = []

    def finite(self, name: str, x: Tensor | None) -> ValueChecks:
        """``x`` holds no NaN or inf (integer and bool tensors always pass)."""
        if x is not None and x.numel() and x.is_floating_point():
            self._items.append(("finite", name, x, None))
        return self

    def within(self, name: str, x: Tensor, low: float, high: float) -> ValueChecks:
        """``x`` is finite and lies in [low, high] (a small tolerance for rounding)."""
        if x.numel():
            self._items.append(("within", name, x, (low, high)))
        return self

    def positive(self, name: str, x: Tensor) -> ValueChecks:
        """``x`` is finite and > 0 (``logit_scale``)."""
        self._items.append(("positive", name, x, None))
        return self

    def nonempty(self, name: str, mask: Tensor, *, per_row: bool = False) -> ValueChecks:
        """``mask`` has a True somewhere (or, ``per_row``, in every row)."""
        self._items.append(("rows" if per_row else "any", name, mask, None))
        return self

    @staticmethod
    def _ok(kind: str, x: Tensor, bounds: tuple[float, float] | None) -> Tensor:
        if kind == "any":
            return x.any()
        if kind == "rows":
            return x.any(dim=-1).all() if x.numel() else torch.ones((), dtype=torch.bool, device=x.device)
        low, high = torch.aminmax(x.detach().reshape(-1))
        ok = torch.isfinite(low) & torch.isfinite(high)
        if kind == "positive":
            ok = ok & (low > 0)
        elif kind == "within":
            tol = 1e-3 if x.dtype in (torch.float16, torch.bfloat16) else 1e-5
            ok = ok & (low >= bounds[0] - tol) & (high <= bounds[1] + tol)
        return ok

    @staticmethod
    def _message(kind: str, name: str, bounds: tuple[float, float] | None) -> str:
        return {
            "finite": f"{name} contains NaN or inf",
            "within": f"{name} must be finite and lie in [{bounds and bounds[0]}, {bounds and bounds[1]}]",
            "positive": f"{name} must be finite and positive (the exponentiated scale)",
            "any": f"{name} is all False: the batch has no real word (empty reports?)",
            "rows": f"{name} has a row with no True slot (an empty text)",
        }[kind]

    def run(self) -> None:
        """Run the collected checks under the active policy; raise :class:`InvalidValueError`."""
        if not self.enabled or not self._items:
            return
        policy = check_policy()
        if policy == "off":
            return
        flags = [self._ok(kind, x, bounds) for kind, _, x, bounds in self._items]
        on_cpu = all(x.device.type == "cpu" for _, _, x, _ in self._items)
        if policy == "auto" and not on_cpu:
            for (kind, name, _, bounds), flag in zip(self._items, flags, strict=True):
                torch._assert_async(flag, self._message(kind, name, bounds))
            return
        ok = flags[0] if len(flags) == 1 else torch.stack([f.to(flags[0].device) for f in flags]).all()
        if bool(ok):
            return
        for (kind, name, _, bounds), flag in zip(self._items, flags, strict=True):
            if not bool(flag):
                raise InvalidValueError(self._message(kind, name, bounds))
