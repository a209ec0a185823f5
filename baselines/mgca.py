"""MGCA (Wang et al., NeurIPS 2022): instance, cross-modal token and prototype alignment.

Matches the loss half of ``MGCA.forward`` and ``MGCA.sinkhorn`` in HKU-MedAI/MGCA
(``mgca/models/mgca/mgca_module.py``, ViT image encoder, ``use_local_atten=False``,
``bidirectional=True``), with the per-sample Python loops replaced by batched operations:

- ITA: S = norm(img) norm(rep)^T / 0.07; cross-entropy over rows plus over columns (a sum).
- word side: each word slot attends over the patches (softmax at 0.1), the attended output is
  normalised, then an L x L contrast within the sample (rows and columns), each slot weighted by its
  [CLS] attention clipped to the [10%, 90%] quantiles of the sample's non-zero weights.
- patch side: each patch attends over the real word slots, the (unnormalised) output gives a P x P
  contrast weighted by the ViT [CLS] attention clipped to its quantiles. Without patch attention
  (``image_attention=None``) the official CNN branch is used: normalised output, uniform weights.
- prototypes: Sinkhorn-Knopp codes (eps 0.05, 3 rounds, no gradient) of image and report scores
  against row-normalised prototypes; each modality predicts the other's code (softmax at 0.2).

The official word side does not mask padding: [PAD] slots act as negatives (with zero weight as
targets). ``mask_pad_words=True`` removes them, which makes the loss independent of the padding
length; the default keeps the official behaviour.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from sista_kit.checks import (
    ValueChecks,
    check_batch,
    check_mask,
    check_positive,
    check_range,
    check_shape,
    check_tensor,
    check_weight,
)
from sista_kit.losses.normalize import normalize
from sista_kit.losses.registry import register_loss
from sista_kit.losses.shifted_exp import exp_fits

from .mgca_ce import weighted_diag_ce
from .sinkhorn import sinkhorn_knopp


@torch.no_grad()
def clipped_word_weights(text_attention: Tensor, low: float = 0.1, high: float = 0.9) -> Tensor:
    """MGCA word weights: the non-zero entries of each row clipped to their [low, high] quantiles
    (``torch.quantile`` linear interpolation), zeros kept, rows normalised to sum 1. (B, L)."""
    dtype = text_attention.dtype
    attention = text_attention.to(torch.promote_types(dtype, torch.float32))  # quantile needs fp32 / fp64
    nonzero = attention != 0
    values = attention.masked_fill(~nonzero, float("nan"))
    q = torch.tensor([low, high], dtype=values.dtype, device=values.device)
    lo, hi = torch.nanquantile(values, q, dim=1, keepdim=True)
    clipped = torch.where(nonzero, torch.minimum(torch.maximum(attention, lo), hi), 0.0)
    # A row without any non-zero weight (degenerate) contributes nothing instead of NaN.
    return (clipped / clipped.sum(dim=1, keepdim=True).clamp(min=torch.finfo(clipped.dtype).tiny)).to(dtype)


@torch.no_grad()
def clipped_patch_weights(image_attention: Tensor, low: float = 0.1, high: float = 0.9) -> Tensor:
    """MGCA patch weights: every entry clipped to its row's [low, high] quantiles, rows sum to 1."""
    dtype = image_attention.dtype
    attention = image_attention.to(torch.promote_types(dtype, torch.float32))  # quantile needs fp32 / fp64
    q = torch.tensor([low, high], dtype=attention.dtype, device=attention.device)
    lo, hi = torch.quantile(attention, q, dim=1, keepdim=True)
    clipped = torch.minimum(torch.maximum(attention, lo), hi)
    return (clipped / clipped.sum(dim=1, keepdim=True).clamp(min=torch.finfo(clipped.dtype).tiny)).to(dtype)


def _check_hparams(
    softmax_temperature: float,
    local_temperature: float,
    proto_temperature: float,
    epsilon: float,
    sinkhorn_iterations: int,
    lambdas: tuple[float, float, float],
    quantile_low: float,
    quantile_high: float,
) -> None:
    """Temperatures and epsilon finite and > 0, weights >= 0, 0 <= low <= high <= 1."""
    check_positive("softmax_temperature", softmax_temperature)
    check_positive("local_temperature", local_temperature)
    check_positive("proto_temperature", proto_temperature)
    check_positive("epsilon", epsilon)
    if (
        isinstance(sinkhorn_iterations, bool)
        or not isinstance(sinkhorn_iterations, int)
        or sinkhorn_iterations < 0
    ):
        raise ValueError(f"sinkhorn_iterations must be an int >= 0, got {sinkhorn_iterations!r}")
    for i, value in enumerate(lambdas, start=1):
        check_weight(f"lambda_{i}", value)
    check_range("quantile_low", quantile_low, 0.0, 1.0)
    check_range("quantile_high", quantile_high, 0.0, 1.0)
    if quantile_low > quantile_high:
        raise ValueError(f"need quantile_low <= quantile_high, got {quantile_low}, {quantile_high}")


def _weighted_diag_ce(
    sim: Tensor, weights: Tensor, valid: Tensor | None, bounded: bool
) -> tuple[Tensor, Tensor]:
    """Row and column cross-entropy of (B, N, N) ``sim`` with target = diagonal, weighted per slot
    and summed over slots, divided by B. ``valid`` (B, N) removes slots from both softmaxes."""
    batch = sim.shape[0]
    if valid is None:
        return weighted_diag_ce(sim, weights, bounded=bounded)
    else:
        rows = torch.log_softmax(sim.masked_fill(~valid[:, None, :], float("-inf")), dim=2)
        cols = torch.log_softmax(sim.masked_fill(~valid[:, :, None], float("-inf")), dim=1)
        rows = rows.diagonal(dim1=1, dim2=2).masked_fill(~valid, 0.0)
        cols = cols.diagonal(dim1=1, dim2=2).masked_fill(~valid, 0.0)
    return -(weights * rows).sum() / batch, -(weights * cols).sum() / batch


def mgca_loss(
    image_features: Tensor,
    text_features: Tensor,
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor,
    text_attention: Tensor,
    image_attention: Tensor | None,
    prototypes: Tensor,
    *,
    softmax_temperature: float = 0.07,
    local_temperature: float = 0.1,
    proto_temperature: float = 0.2,
    epsilon: float = 0.05,
    sinkhorn_iterations: int = 3,
    lambda_1: float = 1.0,
    lambda_2: float = 1.0,
    lambda_3: float = 1.0,
    quantile_low: float = 0.1,
    quantile_high: float = 0.9,
    bidirectional: bool = True,
    mask_pad_words: bool = False,
    image_codes: Tensor | None = None,
    report_codes: Tensor | None = None,
    return_intermediates: bool = False,
    check_finite: bool = True,
) -> dict[str, Tensor]:
    """MGCA's loss terms (functional form, official conventions).

    Args:
        image_features: (B, D) global image projection (normalised here).
        text_features: (B, D) global report projection ([CLS]).
        image_tokens: (B, P, D) patch projections (ViT [CLS] excluded).
        text_tokens: (B, L, D) word-slot projections ([CLS] excluded).
        text_mask: (B, L) bool, True = real slot; False slots are masked on the patch side (and on the
            word side only with ``mask_pad_words``).
        text_attention: (B, L) [CLS] attention per word slot (no gradient); its non-zero entries are
            the slots weighted as targets on the word side.
        image_attention: (B, P) last-block [CLS]->patch attention, heads averaged (no gradient);
            None = the official CNN branch (uniform patch weights, normalised patch output).
        prototypes: (K, D) prototype matrix, used as given: the official code row-normalises it in
            place beforehand (:class:`MGCALoss` does). Pass a detached tensor to freeze it.
        softmax_temperature, local_temperature, proto_temperature: 0.07, 0.1, 0.2 (divisors).
        epsilon, sinkhorn_iterations: Sinkhorn-Knopp settings (0.05, 3).
        lambda_1, lambda_2, lambda_3: weights of ITA, local and prototype terms in ``loss``.
        quantile_low, quantile_high: clipping quantiles of the attention weights.
        bidirectional: include the patch side of the token alignment.
        mask_pad_words: drop False slots of ``text_mask`` from the word-side softmaxes too.
        image_codes, report_codes: (B, K) precomputed Sinkhorn targets (default: computed here,
            across ranks under torch.distributed).
        return_intermediates: add ``ita_logits``, ``word_weights``, ``patch_weights``,
            ``image_codes``, ``report_codes``.
        check_finite: run the value checks (NaN / inf, empty texts) under the policy of
            :mod:`sista_kit.checks`.

    Returns:
        dict with ``loss`` (weighted total), ``ita`` (= ``ita_i2t + ita_t2i``), ``word`` (mean of
        ``word_rows`` / ``word_cols``), ``patch`` (mean of ``patch_rows`` / ``patch_cols``),
        ``local`` (= word + patch), ``proto`` (mean of ``proto_i2t`` / ``proto_t2i``), all unweighted.
    """
    _check_hparams(
        softmax_temperature, local_temperature, proto_temperature, epsilon, sinkhorn_iterations,
        (lambda_1, lambda_2, lambda_3), quantile_low, quantile_high,
    )  # fmt: skip
    check_tensor("image_features", image_features, (None, None))
    batch, dim = image_features.shape
    check_tensor("text_features", text_features, (None, dim))
    check_tensor("image_tokens", image_tokens, (None, None, dim))
    check_tensor("text_tokens", text_tokens, (None, None, dim))
    check_batch(
        "MGCA",
        image_features=batch,
        text_features=text_features.shape[0],
        image_tokens=image_tokens.shape[0],
        text_tokens=text_tokens.shape[0],
    )
    n_patch, n_word = image_tokens.shape[1], text_tokens.shape[1]
    check_mask("text_mask", text_mask, (batch, n_word))
    check_tensor("text_attention", text_attention, (batch, n_word))
    if image_attention is not None:
        check_tensor("image_attention", image_attention, (batch, n_patch))
    check_tensor("prototypes", prototypes, (None, dim))
    for name, codes in (("image_codes", image_codes), ("report_codes", report_codes)):
        if codes is not None:
            check_shape(name, codes, (batch, prototypes.shape[0]))
    checks = ValueChecks(check_finite)
    for name, value in (
        ("image_features", image_features),
        ("text_features", text_features),
        ("image_tokens", image_tokens),
        ("text_tokens", text_tokens),
        ("text_attention", text_attention),
        ("image_attention", image_attention),
        ("prototypes", prototypes),
    ):
        checks.finite(name, value)
    checks.nonempty("text_mask", text_mask, per_row=True).run()

    img = normalize(image_features)
    rep = normalize(text_features)
    patch = normalize(image_tokens)
    word = normalize(text_tokens)
    out: dict[str, Tensor] = {}

    # Instance alignment.
    labels = torch.arange(batch, device=img.device)
    ita_logits = img @ rep.t() / softmax_temperature
    out["ita_i2t"] = F.cross_entropy(ita_logits, labels)
    out["ita_t2i"] = F.cross_entropy(ita_logits.t(), labels)
    out["ita"] = out["ita_i2t"] + out["ita_t2i"]

    # Local logits are products of unit vectors over the temperature t, in [-1/t, 1/t]: shifted by
    # -1/t inside the product (softmaxes and cross-entropies do not see a shift), their exp needs
    # no max pass (see sista_kit.losses.shifted_exp).
    inv_t = 1.0 / local_temperature
    bounded = exp_fits(2.0 * inv_t, word.dtype)
    shift = word.new_full((1, 1, 1), -inv_t if bounded else 0.0)

    # Word side: every slot attends over the patches of its own image.
    word_weights = clipped_word_weights(text_attention, quantile_low, quantile_high).to(word.dtype)
    # (B, L, P) scores (word . patch - 1) / t, also the patch side's (transposed)
    dots = torch.baddbmm(shift, word, patch.transpose(1, 2), alpha=inv_t)
    attn = torch.softmax(dots, dim=-1)
    word_out = normalize(attn @ patch)
    word_sim = torch.baddbmm(shift, word, word_out.transpose(1, 2), alpha=inv_t)
    valid = text_mask if mask_pad_words else None
    out["word_rows"], out["word_cols"] = _weighted_diag_ce(word_sim, word_weights, valid, bounded)
    out["word"] = (out["word_rows"] + out["word_cols"]) / 2
    out["local"] = out["word"]

    # Patch side: every patch attends over the real word slots of its own report.
    patch_weights = None
    if bidirectional:
        scores = dots.transpose(1, 2).masked_fill(~text_mask[:, None, :], float("-inf"))
        patch_attn = torch.softmax(scores, dim=-1)  # (B, P, L)
        if image_attention is None:
            patch_out = F.normalize(patch_attn @ word, dim=-1)
            patch_weights = patch.new_full((batch, n_patch), 1.0 / n_patch)
            patch_sim = torch.baddbmm(shift, patch, patch_out.transpose(1, 2), alpha=inv_t)
        else:
            patch_weights = clipped_patch_weights(image_attention, quantile_low, quantile_high).to(
                patch.dtype
            )
            # patch_sim = patch (A word)^T = (A dots)^T, from the dot products already formed:
            # O(P^2 L) instead of O(P L D + P^2 D). Its transpose is formed; rows and columns swap.
            # The rows of A sum to 1: the shift of dots carries over.
            sim_t = patch_attn @ dots
            cols, rows = weighted_diag_ce(sim_t, patch_weights, bounded=bounded)
        if image_attention is None:
            rows, cols = _weighted_diag_ce(patch_sim, patch_weights, None, bounded)
        out["patch_rows"], out["patch_cols"] = rows, cols
        out["patch"] = (out["patch_rows"] + out["patch_cols"]) / 2
        out["local"] = out["word"] + out["patch"]

    # Prototype alignment with swapped prediction.
    img_scores = img @ prototypes.t()
    rep_scores = rep @ prototypes.t()
    if image_codes is None:
        image_codes = sinkhorn_knopp(img_scores, epsilon=epsilon, iterations=sinkhorn_iterations)
    if report_codes is None:
        report_codes = sinkhorn_knopp(rep_scores, epsilon=epsilon, iterations=sinkhorn_iterations)
    img_logp = torch.log_softmax(img_scores / proto_temperature, dim=1)
    rep_logp = torch.log_softmax(rep_scores / proto_temperature, dim=1)
    out["proto_i2t"] = -(image_codes.detach() * rep_logp).sum(dim=1).mean()
    out["proto_t2i"] = -(report_codes.detach() * img_logp).sum(dim=1).mean()
    out["proto"] = (out["proto_i2t"] + out["proto_t2i"]) / 2

    out["loss"] = lambda_1 * out["ita"] + lambda_2 * out["local"] + lambda_3 * out["proto"]
    if return_intermediates:
        out["ita_logits"] = ita_logits
        out["word_weights"] = word_weights
        out["image_codes"], out["report_codes"] = image_codes, report_codes
        if patch_weights is not None:
            out["patch_weights"] = patch_weights
    return out


class _AverageGradAcrossRanks(torch.autograd.Function):
    """Identity whose backward averages the gradient over ranks (the loss module is not inside the
    model's DDP wrapper; averaging an already-averaged gradient again changes nothing)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
        return grad


@register_loss("mgca")
class MGCALoss(nn.Module):
    """MGCA as an open_clip-style loss module holding the learnable prototypes.

    Args:
        embed_dim: embedding size E of the model output (size of the prototypes).
        num_prototypes: K (official 500).
        softmax_temperature, local_temperature, proto_temperature, epsilon, sinkhorn_iterations,
        lambda_1, lambda_2, lambda_3, quantile_low, quantile_high, bidirectional, mask_pad_words:
            see :func:`mgca_loss` (official values by default).
        freeze_prototypes_epochs: the prototypes get no gradient while the epoch given to
            :meth:`set_epoch` is below this (official: 1).
        freeze_prototypes_steps: alternatively, no gradient during the first this many training
            forward passes (for loops that do not report epochs). Either condition freezes.
        check_finite: assert the inputs hold no NaN/inf.

    The prototypes are a parameter of this module: the optimiser must include the loss's parameters.
    Each forward row-normalises them in place (as the official code does). Under torch.distributed
    their gradient is averaged across ranks and the Sinkhorn codes are those of the global batch.

    Forward uses ``image_features``, ``text_features``, ``image_tokens``, ``text_tokens``,
    ``text_mask``, ``text_attention`` and ``image_attention`` (None/absent = CNN branch) and ignores
    other keywords. Returns ``{"ita_loss", "word_loss", "patch_loss", "proto_loss"}`` (weighted by
    lambda_1, lambda_2, lambda_2, lambda_3) with ``output_dict=True``, else their sum.
    """

    def __init__(
        self,
        embed_dim: int = 128,
        num_prototypes: int = 500,
        *,
        softmax_temperature: float = 0.07,
        local_temperature: float = 0.1,
        proto_temperature: float = 0.2,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        lambda_1: float = 1.0,
        lambda_2: float = 1.0,
        lambda_3: float = 1.0,
        quantile_low: float = 0.1,
        quantile_high: float = 0.9,
        bidirectional: bool = True,
        mask_pad_words: bool = False,
        freeze_prototypes_epochs: int = 1,
        freeze_prototypes_steps: int | None = None,
        check_finite: bool = True,
    ):
        super().__init__()
        if embed_dim < 1 or num_prototypes < 1:
            raise ValueError(
                f"need embed_dim >= 1 and num_prototypes >= 1, got {embed_dim}, {num_prototypes}"
            )
        _check_hparams(
            softmax_temperature, local_temperature, proto_temperature, epsilon, sinkhorn_iterations,
            (lambda_1, lambda_2, lambda_3), quantile_low, quantile_high,
        )  # fmt: skip
        # Same initialisation as the official nn.Linear(emb_dim, num_prototypes, bias=False).
        self.prototypes = nn.Parameter(
            nn.Linear(embed_dim, num_prototypes, bias=False).weight.detach().clone()
        )
        self.hparams = dict(
            softmax_temperature=softmax_temperature,
            local_temperature=local_temperature,
            proto_temperature=proto_temperature,
            epsilon=epsilon,
            sinkhorn_iterations=sinkhorn_iterations,
            lambda_1=lambda_1,
            lambda_2=lambda_2,
            lambda_3=lambda_3,
            quantile_low=quantile_low,
            quantile_high=quantile_high,
            bidirectional=bidirectional,
            mask_pad_words=mask_pad_words,
        )
        self.freeze_prototypes_epochs = freeze_prototypes_epochs
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.check_finite = check_finite
        self.epoch: int | None = None
        self.step = 0
        self._warned = False

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the current (0-based) epoch; prototypes are frozen while it is below
        ``freeze_prototypes_epochs``."""
        self.epoch = int(epoch)

    @property
    def prototypes_frozen(self) -> bool:
        """Whether the next forward leaves the prototypes without gradient."""
        by_epoch = self.epoch is not None and self.epoch < self.freeze_prototypes_epochs
        by_step = self.freeze_prototypes_steps is not None and self.step < self.freeze_prototypes_steps
        return by_epoch or by_step

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        image_tokens: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        text_attention: Tensor,
        image_attention: Tensor | None = None,
        output_dict: bool = False,
        **kwargs: Any,
    ) -> Tensor | dict[str, Tensor]:
        if self.prototypes.shape[1] != image_features.shape[-1]:
            raise ValueError(
                f"prototypes have size {self.prototypes.shape[1]} but image_features have "
                f"{image_features.shape[-1]}: build MGCALoss(embed_dim={image_features.shape[-1]})"
            )
        training = self.training and torch.is_grad_enabled()
        if training and not self._warned and self.epoch is None and self.freeze_prototypes_steps is None:
            if self.freeze_prototypes_epochs > 0:
                warnings.warn(
                    "MGCALoss: set_epoch() was never called and freeze_prototypes_steps is None, so the "
                    "prototypes are not frozen during the first epoch as in MGCA",
                    stacklevel=2,
                )
            self._warned = True
        with torch.no_grad():
            self.prototypes.copy_(F.normalize(self.prototypes, dim=1))
        prototypes = (
            self.prototypes.detach()
            if self.prototypes_frozen
            else _AverageGradAcrossRanks.apply(self.prototypes)
        )
        if training:
            self.step += 1
        check_tensor("text_attention", text_attention, tuple(text_mask.shape))
        out = mgca_loss(
            image_features,
            text_features,
            image_tokens,
            text_tokens,
            text_mask,
            # Padding slots never count as targets, whatever the encoder put there.
            text_attention.masked_fill(~text_mask, 0.0) if text_mask.dtype == torch.bool else text_attention,
            image_attention,
            prototypes.to(image_features.dtype),
            check_finite=self.check_finite,
            **self.hparams,
        )
        h = self.hparams
        terms = {
            "ita_loss": h["lambda_1"] * out["ita"],
            "word_loss": h["lambda_2"] * out["word"],
            "proto_loss": h["lambda_3"] * out["proto"],
        }
        if "patch" in out:
            terms["patch_loss"] = h["lambda_2"] * out["patch"]
        return terms if output_dict else sum(terms.values())

    def extra_repr(self) -> str:
        k, e = self.prototypes.shape
        return f"embed_dim={e}, num_prototypes={k}, freeze_prototypes_epochs={self.freeze_prototypes_epochs}"
