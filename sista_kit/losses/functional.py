"""Functional core of the SISTA losses: the PyTorch reference that defines them.

Math: ``shared/METHOD.md`` sections 1-3 (SIA, STA, SISTA). Every loss module calls these functions;
the Triton kernels in ``sista_kit.kernels`` are tested against them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_choice, check_mask, check_same, check_tensor

SPARSIFY_MODES = ("threshold", "topk")
STRATEGIES = ("eliminate", "positive", "soft")
MINMAX_EPS = 1e-8


# --------------------------------------------------------------------------------------------------
# STA: sparse token alignment
# --------------------------------------------------------------------------------------------------
def check_sparsify(sparsify: str, threshold: float | None, k: int, num_patches: int) -> None:
    """Validate the sparsification options (shared by the reference and the fused kernel)."""
    check_choice("sparsify", sparsify, SPARSIFY_MODES)
    if sparsify == "threshold" and threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1] (min-max normalised scale), got {threshold}")
    if sparsify == "topk" and not 1 <= k <= num_patches:
        raise ValueError(f"k must lie in [1, P={num_patches}], got {k}")


def sparse_alignment_weights(
    similarity: Tensor,
    text_mask: Tensor | None = None,
    *,
    sparsify: str = "threshold",
    threshold: float | None = None,
    k: int = 8,
) -> Tensor:
    """Sparse word-to-patch alignment weights (SPARC-style), per pair.

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
    check_mask(text_mask, batch, length)
    check_sparsify(sparsify, threshold, k, patches)

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
    """Language-grouped vision embeddings ``c = A @ patches`` (B, L, D), not normalised.

    ``image_tokens`` (B, P, D) and ``text_tokens`` (B, L, D) are expected already L2-normalised;
    ``A`` is :func:`sparse_alignment_weights` of their dot products. This is the step the fused
    kernel replaces.
    """
    similarity = torch.bmm(text_tokens, image_tokens.transpose(1, 2))
    weights = sparse_alignment_weights(similarity, text_mask, sparsify=sparsify, threshold=threshold, k=k)
    return torch.bmm(weights, image_tokens)


def _grouping_function(backend: str, *tensors: Tensor):
    from sista_kit.kernels import choose_backend

    if choose_backend(backend, "sparse_align", *tensors) == "torch":
        return sparse_grouped_embeddings
    from sista_kit.kernels import sparse_grouped_embeddings_triton

    return sparse_grouped_embeddings_triton


def _check_token_inputs(image_tokens: Tensor, text_tokens: Tensor, text_mask: Tensor | None) -> None:
    check_tensor("image_tokens", image_tokens, 3)
    check_tensor("text_tokens", text_tokens, 3)
    check_same("image_tokens", image_tokens.shape[0], "text_tokens", text_tokens.shape[0], "batch size")
    check_same("image_tokens", image_tokens.shape[2], "text_tokens", text_tokens.shape[2], "feature size")
    if text_mask is None:
        raise ValueError("text_mask is required: (B, L) bool, True = real word")
    check_mask(text_mask, text_tokens.shape[0], text_tokens.shape[1])


def token_contrast_loss(grouped: Tensor, words: Tensor, text_mask: Tensor, temperature: float) -> Tensor:
    """Within-pair symmetric word <-> grouped-embedding cross-entropy, mean over valid words.

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
        text_tokens: (B, L, D) word embeddings.
        text_mask: (B, L) bool, True = real word (padding and special tokens False).
        sparsify, threshold, k: see :func:`sparse_alignment_weights`.
        temperature: softmax temperature of the word contrast.
        backend: ``torch`` (this reference), ``triton`` (fused kernel) or ``auto``
            (see :func:`sista_kit.kernels.choose_backend`).

    Returns:
        Scalar: mean over all valid words of the batch of (word-side + group-side) / 2.
    """
    _check_token_inputs(image_tokens, text_tokens, text_mask)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    check_sparsify(sparsify, threshold, k, image_tokens.shape[1])
    patches = F.normalize(image_tokens, dim=-1)
    words = F.normalize(text_tokens, dim=-1)
    group = _grouping_function(backend, patches, words)
    grouped = group(patches, words, text_mask, sparsify=sparsify, threshold=threshold, k=k)
    return token_contrast_loss(F.normalize(grouped, dim=-1), words, text_mask, temperature)


# --------------------------------------------------------------------------------------------------
# SIA: false-negative-aware InfoNCE
# --------------------------------------------------------------------------------------------------
def check_instance_inputs(
    image_features: Tensor,
    text_features: Tensor,
    report_similarity: Tensor | None,
    threshold: float,
    strategy: str,
    neutral_band: tuple[float, float] | None,
) -> None:
    """Validate the inputs of the instance losses (dense and chunked paths alike)."""
    check_tensor("image_features", image_features, 2)
    check_tensor("text_features", text_features, 2)
    check_same(
        "image_features", image_features.shape[0], "text_features", text_features.shape[0], "batch size"
    )
    check_same(
        "image_features", image_features.shape[1], "text_features", text_features.shape[1], "feature size"
    )
    check_choice("strategy", strategy, STRATEGIES)
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [-1, 1] (cosine similarity), got {threshold}")
    if neutral_band is not None:
        low, high = neutral_band
        if not -1.0 <= low <= high <= 1.0 or abs(high - threshold) > 1e-12:
            raise ValueError(
                f"neutral_band must be (low, threshold) with -1 <= low <= threshold, got {neutral_band}"
            )
    if report_similarity is not None:
        check_tensor("report_similarity", report_similarity, 2)
        batch = image_features.shape[0]
        if tuple(report_similarity.shape) != (batch, batch):
            raise ValueError(
                f"report_similarity must be ({batch}, {batch}), got {tuple(report_similarity.shape)}"
            )


def check_similarity_sources(
    report_similarity: Tensor | None, report_embeddings: Tensor | None, batch: int
) -> None:
    """At most one source of report similarity; embeddings are (B, R) (chunked and tiled paths)."""
    if report_similarity is not None and report_embeddings is not None:
        raise ValueError("give report_similarity or report_embeddings, not both")
    if report_embeddings is not None:
        check_tensor("report_embeddings", report_embeddings, 2)
        if report_embeddings.shape[0] != batch:
            raise ValueError(f"report_embeddings must be ({batch}, R), got {tuple(report_embeddings.shape)}")


def false_negative_masks(
    similarity: Tensor, threshold: float, neutral_band: tuple[float, float] | None, diagonal: Tensor
) -> tuple[Tensor, Tensor]:
    """(false_negative, neutral) bool masks of a similarity block; ``diagonal`` marks the positives."""
    false_neg = (similarity >= threshold) & ~diagonal
    if neutral_band is None:
        return false_neg, torch.zeros_like(false_neg)
    neutral = (similarity >= neutral_band[0]) & (similarity < threshold) & ~diagonal
    return false_neg, neutral


def _directional_loss(
    logits: Tensor,
    similarity: Tensor | None,
    threshold: float,
    strategy: str,
    neutral_band: tuple[float, float] | None,
    soft_temperature: float,
) -> Tensor:
    """Row-wise (query -> candidates) loss; the positive of row i is column i."""
    batch = logits.shape[0]
    targets = torch.arange(batch, device=logits.device)
    if similarity is None:
        return F.cross_entropy(logits, targets)
    diagonal = torch.eye(batch, dtype=torch.bool, device=logits.device)
    false_neg, neutral = false_negative_masks(similarity, threshold, neutral_band, diagonal)
    neg_inf = torch.finfo(logits.dtype).min
    if strategy == "eliminate":
        return F.cross_entropy(logits.masked_fill(false_neg | neutral, neg_inf), targets)
    log_prob = F.log_softmax(logits.masked_fill(neutral, neg_inf), dim=-1)
    if strategy == "positive":
        positives = (false_neg | diagonal).to(logits.dtype)
        target = positives / positives.sum(dim=-1, keepdim=True)
    else:  # soft
        scores = (similarity.to(logits.dtype) / soft_temperature).masked_fill(neutral, neg_inf)
        target = torch.softmax(scores, dim=-1)
    return -(target * log_prob).sum(dim=-1).mean()


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
) -> Tensor:
    """False-negative-aware symmetric InfoNCE (SIA, METHOD.md section 1).

    Args:
        image_features, text_features: (B, D); L2-normalised here.
        logit_scale: exponentiated scale (1 / temperature), as open_clip gives it.
        report_similarity: (B, B) report-report similarity in [-1, 1] (no gradient flows into it).
            None = plain CLIP InfoNCE.
        threshold: pairs i != j with similarity >= threshold are false negatives.
        strategy: ``eliminate`` drops false negatives from the denominator; ``positive`` makes them
            extra positives (uniform target over {i} and them); ``soft`` uses the target
            softmax(report_similarity / soft_temperature) over the row.
        neutral_band: (low, threshold): candidates in [low, threshold) leave the denominator in every
            strategy.

    Returns:
        Scalar (image->text + text->image) / 2. Equals CLIP's InfoNCE exactly when
        ``report_similarity`` is None, or (eliminate / positive) when no entry reaches the threshold.
    """
    check_instance_inputs(image_features, text_features, report_similarity, threshold, strategy, neutral_band)
    if strategy == "soft" and soft_temperature <= 0:
        raise ValueError(f"soft_temperature must be positive, got {soft_temperature}")
    image = F.normalize(image_features, dim=-1)
    text = F.normalize(text_features, dim=-1)
    logits = logit_scale * image @ text.T
    sim = None if report_similarity is None else report_similarity.detach()
    i2t = _directional_loss(logits, sim, threshold, strategy, neutral_band, soft_temperature)
    t2i = _directional_loss(
        logits.T, None if sim is None else sim.T, threshold, strategy, neutral_band, soft_temperature
    )
    return 0.5 * (i2t + t2i)
