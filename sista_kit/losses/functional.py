"""Functional core of the SISTA losses: the PyTorch reference that defines them, and the fast paths.

Math: ``shared/METHOD.md`` sections 1-3 (SIA, STA, SISTA). :func:`sparse_alignment_weights`,
:func:`sparse_grouped_embeddings`, :func:`token_contrast_loss` and
:func:`sparse_token_align_loss_reference` are the plain reference (tests and benchmarks compare
against it); :func:`sparse_token_align_loss` runs the same math through the fused autograd Functions
of :mod:`.sta_fused` or the Triton kernel. Backends are chosen by :func:`sista_kit.kernels.choose_backend`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sista_kit.checks import (
    SPARSIFY_MODES,
    STRATEGIES,
    ValueChecks,
    check_batch,
    check_instance_inputs,
    check_logit_scale,
    check_mask,
    check_positive,
    check_same,
    check_similarity_sources,
    check_sparsify,
    check_tensor,
)

from .sta_fused import (
    MINMAX_EPS,
    contrast_fits,
    normalize,
    sparse_grouped_embeddings_fused,
    token_contrast_fused,
)

__all__ = [
    "MINMAX_EPS",
    "SPARSIFY_MODES",
    "STRATEGIES",
    "check_instance_inputs",
    "check_similarity_sources",
    "check_sparsify",
    "false_negative_masks",
    "fn_aware_infonce",
    "sparse_alignment_weights",
    "sparse_grouped_embeddings",
    "sparse_token_align_loss",
    "sparse_token_align_loss_reference",
    "token_contrast_loss",
]


# --------------------------------------------------------------------------------------------------
# STA: sparse token alignment
# --------------------------------------------------------------------------------------------------
def sparse_alignment_weights(
    similarity: Tensor,
    text_mask: Tensor | None = None,
    *,
    sparsify: str = "threshold",
    threshold: float | None = None,
    k: int = 8,
) -> Tensor:
    """Sparse word-to-patch alignment weights (SPARC-style), per pair. The plain reference.

    Args:
        similarity: (B, L, P) word-patch similarities.
        text_mask: (B, L) bool, True = real word; rows of masked words are all zero.
        sparsify: ``"threshold"`` keeps normalised weights ``>= threshold`` (None = 1/P);
            ``"topk"`` keeps the ``k`` largest per word.
        threshold, k: see ``sparsify``.

    Returns:
        (B, L, P) weights: per word, min-max normalised over patches, sparsified, renormalised to sum
        to 1. A word whose row is constant (max == min) keeps nothing, and gets uniform weights 1/P.
    """
    check_tensor("similarity", similarity, 3)
    batch, length, patches = similarity.shape
    if text_mask is not None:
        check_mask("text_mask", text_mask, (batch, length))
    check_sparsify(sparsify, threshold, k, patches)
    ValueChecks().finite("similarity", similarity).run()

    low = similarity.amin(dim=-1, keepdim=True)
    high = similarity.amax(dim=-1, keepdim=True)
    normed = (similarity - low) / (high - low + MINMAX_EPS)
    if sparsify == "threshold":
        keep = normed >= (1.0 / patches if threshold is None else threshold)
    else:
        top = normed.topk(k, dim=-1).indices
        keep = torch.zeros_like(normed, dtype=torch.bool).scatter_(-1, top, True)
    kept = torch.where(keep, normed, torch.zeros_like(normed))
    total = kept.sum(dim=-1, keepdim=True)
    empty = total <= 0
    weights = torch.where(empty, torch.full_like(kept, 1.0 / patches), kept / total.clamp_min(1e-30))
    if text_mask is not None:
        weights = weights * text_mask.unsqueeze(-1).to(weights.dtype)
    return weights


def sparse_grouped_embeddings(
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor | None = None,
    *,
    sparsify: str = "threshold",
    threshold: float | None = None,
    k: int = 8,
) -> Tensor:
    """Language-grouped vision embeddings ``c = A @ patches`` (B, L, D), not normalised (reference).

    ``image_tokens`` (B, P, D) and ``text_tokens`` (B, L, D) are expected already L2-normalised;
    ``A`` is :func:`sparse_alignment_weights` of their dot products. This is the step the fused
    paths replace.
    """
    similarity = torch.bmm(text_tokens, image_tokens.transpose(1, 2))
    weights = sparse_alignment_weights(similarity, text_mask, sparsify=sparsify, threshold=threshold, k=k)
    return torch.bmm(weights, image_tokens)


def token_contrast_loss(grouped: Tensor, words: Tensor, text_mask: Tensor, temperature: float) -> Tensor:
    """Within-pair symmetric word <-> grouped-embedding cross-entropy, mean over valid words (reference).

    ``grouped`` and ``words`` (B, L, D) are L2-normalised. Only words of the same report are
    negatives; masked words take no part on either side.
    """
    logits = torch.bmm(words, grouped.transpose(1, 2))  # (B, L_word, L_group)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature  # fp16/bf16 -> fp32
    # Masked candidates leave the softmax; rows of masked words are zeroed (finite) and dropped below.
    pair_mask = text_mask.unsqueeze(1) & text_mask.unsqueeze(2)
    neg_inf = torch.finfo(logits.dtype).min
    row_valid = text_mask.unsqueeze(-1)
    word_side = torch.where(row_valid, logits.masked_fill(~pair_mask, neg_inf), 0.0)
    group_side = torch.where(row_valid, logits.transpose(1, 2).masked_fill(~pair_mask, neg_inf), 0.0)
    diag_w = torch.diagonal(logits, dim1=1, dim2=2)
    ce_word = torch.logsumexp(word_side, dim=-1) - diag_w
    ce_group = torch.logsumexp(group_side, dim=-1) - diag_w
    per_word = torch.where(text_mask, 0.5 * (ce_word + ce_group), 0.0)
    return per_word.sum() / text_mask.sum()


def _check_token_inputs(
    image_tokens: Tensor, text_tokens: Tensor, text_mask: Tensor | None, temperature: float
) -> ValueChecks:
    check_tensor("image_tokens", image_tokens, 3)
    check_tensor("text_tokens", text_tokens, 3)
    check_batch(
        "sparse token alignment", image_tokens=image_tokens.shape[0], text_tokens=text_tokens.shape[0]
    )
    check_same("image_tokens", image_tokens.shape[2], "text_tokens", text_tokens.shape[2], "feature size")
    if text_mask is None:
        raise ValueError("text_mask is required: (B, L) bool, True = real word")
    check_mask("text_mask", text_mask, tuple(text_tokens.shape[:2]))
    if image_tokens.shape[1] == 0:
        raise ValueError("image_tokens has no patch (P=0)")
    check_positive("temperature", temperature)
    checks = ValueChecks().finite("image_tokens", image_tokens).finite("text_tokens", text_tokens)
    return checks.nonempty("text_mask", text_mask)


def _grouping(backend: str, patches: Tensor, words: Tensor):
    from sista_kit.kernels import choose_backend

    if choose_backend(backend, "sparse_align", patches, words) == "torch":
        return sparse_grouped_embeddings_fused
    from sista_kit.kernels import sparse_grouped_embeddings_triton

    return sparse_grouped_embeddings_triton


def sparse_token_align_loss(
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor,
    *,
    sparsify: str = "threshold",
    threshold: float | None = None,
    k: int = 8,
    temperature: float = 0.07,
    backend: str = "torch",
) -> Tensor:
    """STA loss (METHOD.md section 2): sparse word-patch grouping, then within-pair word contrast.

    Args:
        image_tokens: (B, P, D) patch embeddings.
        text_tokens: (B, L, D) word embeddings; zero-padded slots are fine in every dtype.
        text_mask: (B, L) bool, True = real word (padding and special tokens False).
        sparsify, threshold, k: see :func:`sparse_alignment_weights`.
        temperature: softmax temperature of the word contrast (finite, > 0).
        backend: ``torch`` (fused PyTorch autograd Functions, any device), ``triton`` (fused kernel)
            or ``auto`` (see :func:`sista_kit.kernels.choose_backend`).

    Returns:
        Scalar: mean over all valid words of the batch of (word-side + group-side) / 2. Equal, in
        value and gradients, to :func:`sparse_token_align_loss_reference`.
    """
    checks = _check_token_inputs(image_tokens, text_tokens, text_mask, temperature)
    check_sparsify(sparsify, threshold, k, image_tokens.shape[1])
    checks.run()
    patches = normalize(image_tokens)
    words = normalize(text_tokens)
    group = _grouping(backend, patches, words)
    grouped = group(patches, words, text_mask, sparsify=sparsify, threshold=threshold, k=k)
    contrast = token_contrast_fused if contrast_fits(temperature, words.dtype) else token_contrast_loss
    return contrast(normalize(grouped), words, text_mask, temperature)


def sparse_token_align_loss_reference(
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor,
    *,
    sparsify: str = "threshold",
    threshold: float | None = None,
    k: int = 8,
    temperature: float = 0.07,
) -> Tensor:
    """STA in plain PyTorch autograd (the definition; slower than :func:`sparse_token_align_loss`)."""
    checks = _check_token_inputs(image_tokens, text_tokens, text_mask, temperature)
    check_sparsify(sparsify, threshold, k, image_tokens.shape[1])
    checks.run()
    patches = normalize(image_tokens)
    words = normalize(text_tokens)
    grouped = sparse_grouped_embeddings(
        patches, words, text_mask, sparsify=sparsify, threshold=threshold, k=k
    )
    return token_contrast_loss(normalize(grouped), words, text_mask, temperature)


# --------------------------------------------------------------------------------------------------
# SIA: false-negative-aware InfoNCE
# --------------------------------------------------------------------------------------------------
def false_negative_masks(
    similarity: Tensor, threshold: float, neutral_band: tuple[float, float] | None, diagonal: Tensor
) -> tuple[Tensor, Tensor]:
    """(false_negative, neutral) bool masks of a similarity block; ``diagonal`` marks the positives."""
    false_neg = (similarity >= threshold) & ~diagonal
    if neutral_band is None:
        return false_neg, torch.zeros_like(false_neg)
    neutral = (similarity >= neutral_band[0]) & (similarity < threshold) & ~diagonal
    return false_neg, neutral


def _off_diagonal(mask: Tensor, value: bool = False) -> Tensor:
    mask.diagonal().fill_(value)
    return mask


def _row_ce(log_prob: Tensor, target: Tensor) -> Tensor:
    """Mean over rows of the cross-entropy against a (not normalised) non-negative target."""
    return -((target / target.sum(dim=1, keepdim=True)) * log_prob).sum(dim=1).mean()


def _dense_instance_loss(
    logits: Tensor,
    similarity: Tensor | None,
    threshold: float,
    strategy: str,
    neutral_band: tuple[float, float] | None,
    soft_temperature: float,
) -> Tensor:
    """(i -> t + t -> i) / 2 of a (B, B) logit matrix with one mask for both directions: the mask of
    S^T is the transpose of the mask of S, so the text -> image side reads the same buffer by columns."""
    targets = torch.arange(logits.shape[0], device=logits.device)
    if similarity is None:
        return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
    neg_inf = torch.finfo(logits.dtype).min
    if strategy == "eliminate":  # false negatives and the neutral band leave both denominators
        low = threshold if neutral_band is None else neutral_band[0]
        # in place: the logits are this call's own product, whose backward does not read them
        masked = logits.masked_fill_(_off_diagonal(similarity >= low), neg_inf)
        return 0.5 * (F.cross_entropy(masked, targets) + F.cross_entropy(masked.T, targets))
    if neutral_band is not None:
        neutral = _off_diagonal((similarity >= neutral_band[0]) & (similarity < threshold))
        logits = logits.masked_fill(neutral, neg_inf)
    # the text -> image side reads the transposed views (as F.cross_entropy(logits.T) does)
    log_rows, log_cols = F.log_softmax(logits, dim=1), F.log_softmax(logits.T.contiguous(), dim=1)
    if strategy == "positive":
        target = _off_diagonal(similarity >= threshold, True).to(logits.dtype)
        return 0.5 * (_row_ce(log_rows, target) + _row_ce(log_cols, target.T.contiguous()))
    scores = similarity.to(logits.dtype) / soft_temperature  # soft
    if neutral_band is not None:
        scores = scores.masked_fill(neutral, neg_inf)
    rows = (torch.softmax(scores, dim=1) * log_rows).sum(dim=1)
    cols = (torch.softmax(scores.T, dim=1) * log_cols).sum(dim=1)
    return -0.5 * (rows.mean() + cols.mean())


def fn_aware_infonce(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor | float,
    report_similarity: Tensor | None = None,
    *,
    threshold: float = 0.9,
    strategy: str = "eliminate",
    neutral_band: tuple[float, float] | None = None,
    soft_temperature: float = 0.1,
    backend: str = "torch",
) -> Tensor:
    """False-negative-aware symmetric InfoNCE (SIA, METHOD.md section 1).

    Args:
        image_features, text_features: (B, D), B >= 1; L2-normalised here.
        logit_scale: exponentiated scale (1 / temperature), as open_clip gives it: a positive finite
            float or one-element tensor.
        report_similarity: (B, B) report-report similarity in [-1, 1] (no gradient flows into it).
            None = plain CLIP InfoNCE.
        threshold: pairs i != j with similarity >= threshold are false negatives.
        strategy: ``eliminate`` drops false negatives from the denominator; ``positive`` makes them
            extra positives (uniform target over {i} and them); ``soft`` uses the target
            softmax(report_similarity / soft_temperature) over the row.
        neutral_band: (low, threshold): candidates in [low, threshold) leave the denominator in every
            strategy.
        backend: ``torch`` (dense, this function), ``triton`` (tiled kernel; eliminate / positive) or
            ``auto`` (see :func:`sista_kit.kernels.choose_backend`).

    Returns:
        Scalar (image->text + text->image) / 2. Equals CLIP's InfoNCE exactly when
        ``report_similarity`` is None, or (eliminate / positive) when no entry reaches the threshold.
    """
    checks = ValueChecks()
    check_instance_inputs(
        image_features, text_features, report_similarity, threshold, strategy, neutral_band, checks
    )
    logit_scale = check_logit_scale(logit_scale, checks)
    if strategy == "soft":
        check_positive("soft_temperature", soft_temperature)
    checks.run()
    from sista_kit.kernels import choose_backend

    if choose_backend(backend, "infonce", image_features, text_features, strategy=strategy) == "triton":
        from sista_kit.kernels import fn_aware_infonce_tiled

        options = dict(threshold=threshold, strategy=strategy, neutral_band=neutral_band)
        return fn_aware_infonce_tiled(
            image_features, text_features, logit_scale, report_similarity, **options
        )
    image = normalize(image_features)
    text = normalize(text_features)
    logits = logit_scale * image @ text.T
    sim = None if report_similarity is None else report_similarity.detach()
    return _dense_instance_loss(logits, sim, threshold, strategy, neutral_band, soft_temperature)
