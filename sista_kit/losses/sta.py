"""STA: sparse token alignment, as an open_clip-style loss module."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sista_kit.checks import check_choice, check_positive, check_sparsify

from .distributed import global_mean_factor
from .functional import sparse_token_align_loss
from .registry import register_loss


@register_loss("sta")
class SparseTokenAlignLoss(nn.Module):
    """Sparse word-to-patch alignment within each pair (METHOD.md section 2).

    Args:
        sparsify: ``threshold`` (keep min-max normalised weights >= threshold, default 1/P) or ``topk``.
        threshold: threshold on the min-max normalised scale; None = 1/P.
        k: patches kept per word with ``topk``.
        temperature: temperature of the within-pair word contrast.
        backend: ``auto`` | ``torch`` | ``triton`` for the fused sparse-alignment kernel.

    Forward reads ``image_tokens`` (B, P, D), ``text_tokens`` (B, L, D) and ``text_mask`` (B, L) bool and
    ignores the rest. The loss involves each pair alone, so nothing is gathered under DDP; the local
    sum is divided by the global number of valid words (times the world size), so that DDP's gradient
    average, and the mean of the ranks' values, equal the single-process loss on the whole batch.
    """

    def __init__(
        self,
        *,
        sparsify: str = "threshold",
        threshold: float | None = None,
        k: int = 8,
        temperature: float = 0.07,
        backend: str = "auto",
    ):
        super().__init__()
        from sista_kit.kernels import BACKENDS

        check_sparsify(sparsify, threshold, k, num_patches=max(k, 1) if sparsify == "topk" else 1)
        check_choice("backend", backend, BACKENDS)
        check_positive("temperature", temperature)
        self.sparsify, self.threshold, self.k = sparsify, threshold, k
        self.temperature, self.backend = temperature, backend

    def forward(
        self,
        image_tokens: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        output_dict: bool = False,
        **kwargs: Any,
    ) -> Tensor | dict[str, Tensor]:
        loss = sparse_token_align_loss(
            image_tokens,
            text_tokens,
            text_mask,
            sparsify=self.sparsify,
            threshold=self.threshold,
            k=self.k,
            temperature=self.temperature,
            backend=self.backend,
        )
        loss = loss * global_mean_factor(text_mask)
        return {"token_align_loss": loss} if output_dict else loss
