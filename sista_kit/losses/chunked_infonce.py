"""Chunked false-negative-aware InfoNCE in plain PyTorch: O(B * chunk) extra memory.

Inf-CL pattern: the forward pass keeps only the per-row and per-column log-sum-exp (and the
positive-logit sums), accumulated over row chunks; the backward pass recomputes each chunk of logits.
The false-negative mask of a chunk comes from a slice of the report-similarity matrix or, when only
report embeddings Z are given, from Z[rows] @ Z.T, so that no B x B buffer ever exists.
Strategies ``eliminate`` and ``positive``; ``soft`` needs whole rows of targets and stays dense.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sista_kit.checks import (
    ValueChecks,
    check_chunk_size,
    check_instance_inputs,
    check_logit_scale,
    check_similarity_sources,
)

from .functional import false_negative_masks

CHUNKED_STRATEGIES = ("eliminate", "positive")


def _block(
    image: Tensor,
    text: Tensor,
    scale: Tensor,
    sim_rows: Tensor | None,
    start: int,
    threshold: float,
    strategy: str,
    neutral_band: tuple[float, float] | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Logits of one row chunk, the mask of allowed candidates, and the positives mask."""
    logits = scale * (image @ text.T)
    rows = torch.arange(logits.shape[0], device=logits.device)
    diagonal = torch.zeros_like(logits, dtype=torch.bool)
    diagonal[rows, rows + start] = True
    if sim_rows is None:
        return logits, torch.ones_like(diagonal), diagonal
    false_neg, neutral = false_negative_masks(sim_rows, threshold, neutral_band, diagonal)
    if strategy == "eliminate":
        return logits, ~(false_neg | neutral), diagonal
    return logits, ~neutral, diagonal | false_neg


def _sim_rows(sim_matrix: Tensor | None, sim_embed: Tensor | None, start: int, stop: int) -> Tensor | None:
    if sim_matrix is not None:
        return sim_matrix[start:stop].float()
    if sim_embed is not None:
        return sim_embed[start:stop].float() @ sim_embed.float().T
    return None


class _ChunkedInfoNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, text, scale, sim_matrix, sim_embed, threshold, strategy, neutral_band, chunk):
        image32, text32, scale32 = image.float(), text.float(), scale.float()
        batch = image.shape[0]
        row_lse = torch.empty(batch, device=image.device)
        col_lse = torch.full((batch,), float("-inf"), device=image.device)
        row_pos, row_cnt = torch.zeros_like(row_lse), torch.zeros_like(row_lse)
        col_pos, col_cnt = torch.zeros_like(row_lse), torch.zeros_like(row_lse)
        for start in range(0, batch, chunk):
            stop = min(start + chunk, batch)
            sim_rows = _sim_rows(sim_matrix, sim_embed, start, stop)
            logits, allowed, positive = _block(
                image32[start:stop], text32, scale32, sim_rows, start, threshold, strategy, neutral_band
            )
            masked = logits.masked_fill(~allowed, float("-inf"))
            row_lse[start:stop] = torch.logsumexp(masked, dim=1)
            col_lse = torch.logaddexp(col_lse, torch.logsumexp(masked, dim=0))
            pos_logits = torch.where(positive, logits, torch.zeros_like(logits))
            row_pos[start:stop] = pos_logits.sum(dim=1)
            row_cnt[start:stop] = positive.sum(dim=1)
            col_pos += pos_logits.sum(dim=0)
            col_cnt += positive.sum(dim=0)
        loss = 0.5 * ((row_lse - row_pos / row_cnt).mean() + (col_lse - col_pos / col_cnt).mean())
        ctx.save_for_backward(image, text, scale, sim_matrix, sim_embed, row_lse, col_lse, row_cnt, col_cnt)
        ctx.options = (threshold, strategy, neutral_band, chunk)
        return loss.to(image.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        image, text, scale, sim_matrix, sim_embed, row_lse, col_lse, row_cnt, col_cnt = ctx.saved_tensors
        threshold, strategy, neutral_band, chunk = ctx.options
        image32, text32, scale32 = image.float(), text.float(), scale.float()
        batch = image.shape[0]
        factor = grad_loss.float() / (2 * batch)
        grad_image = torch.zeros_like(image32)
        grad_text = torch.zeros_like(text32)
        grad_scale = torch.zeros((), device=image.device)
        for start in range(0, batch, chunk):
            stop = min(start + chunk, batch)
            sim_rows = _sim_rows(sim_matrix, sim_embed, start, stop)
            logits, allowed, positive = _block(
                image32[start:stop], text32, scale32, sim_rows, start, threshold, strategy, neutral_band
            )
            masked = logits.masked_fill(~allowed, float("-inf"))
            prob_rows = torch.exp(masked - row_lse[start:stop, None])
            prob_cols = torch.exp(masked - col_lse[None, :])
            pos = positive.float()
            target = pos / row_cnt[start:stop, None] + pos / col_cnt[None, :]
            grad_logits = factor * (prob_rows + prob_cols - target)
            grad_image[start:stop] = scale32 * (grad_logits @ text32)
            grad_text += scale32 * (grad_logits.T @ image32[start:stop])
            grad_scale += (grad_logits * logits).sum() / scale32
        grad_scale = grad_scale.to(scale.dtype) if ctx.needs_input_grad[2] else None
        return (
            grad_image.to(image.dtype),
            grad_text.to(text.dtype),
            grad_scale,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def fn_aware_infonce_chunked(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor | float,
    report_similarity: Tensor | None = None,
    *,
    report_embeddings: Tensor | None = None,
    threshold: float = 0.9,
    strategy: str = "eliminate",
    neutral_band: tuple[float, float] | None = None,
    chunk_size: int = 1024,
) -> Tensor:
    """Same value and gradients as :func:`~sista_kit.losses.functional.fn_aware_infonce`, chunked.

    Args:
        report_similarity: (B, B) similarity, sliced per chunk; or
        report_embeddings: (B, R) L2-normalised embeddings Z whose products Z Z^T are the similarity,
            computed per chunk (no B x B buffer at all).
        chunk_size: rows of logits held at once.
    """
    checks = ValueChecks()
    batch = check_instance_inputs(
        image_features, text_features, report_similarity, threshold, strategy, neutral_band, checks
    )
    if strategy not in CHUNKED_STRATEGIES:
        raise ValueError(f"the chunked path supports strategies {CHUNKED_STRATEGIES}, got {strategy!r}")
    check_similarity_sources(report_similarity, report_embeddings, batch)
    if check_chunk_size("chunk_size", chunk_size) is None:
        raise ValueError("chunk_size must be >= 1 for the chunked path, got None")
    logit_scale = check_logit_scale(logit_scale, checks)
    checks.finite("report_embeddings", report_embeddings).run()
    image = F.normalize(image_features, dim=-1)
    text = F.normalize(text_features, dim=-1)
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=image.device)
    sim_matrix = None if report_similarity is None else report_similarity.detach()
    sim_embed = None if report_embeddings is None else report_embeddings.detach()
    return _ChunkedInfoNCE.apply(
        image, text, scale, sim_matrix, sim_embed, threshold, strategy, neutral_band, chunk_size
    )
