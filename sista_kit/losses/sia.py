"""SIA: semantics-aware instance alignment, as an open_clip-style loss module."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from sista_kit.checks import check_choice, check_chunk_size, check_instance_options, check_positive
from sista_kit.similarity import ReportSimilarity, build_similarity, similarity_from_embeddings

from .chunked_infonce import CHUNKED_STRATEGIES, fn_aware_infonce_chunked
from .distributed import gather_no_grad, gather_with_grad, world_size
from .functional import fn_aware_infonce
from .registry import register_loss


@register_loss("sia")
class SemanticInstanceAlignLoss(nn.Module):
    """False-negative-aware InfoNCE over the global batch (METHOD.md section 1).

    Args:
        similarity: report-similarity provider (``encoder`` | ``tfidf`` | ``labels`` | ``online`` or a
            :class:`~sista_kit.similarity.ReportSimilarity`); None = plain CLIP InfoNCE. The default,
            ``encoder``, reads ``report_embeddings`` made by a frozen sentence encoder in the data pipeline
            (``sista_kit.train`` does this). ``online`` needs no pipeline support, but an untrained model's
            report embeddings are nearly identical, so at the start of training every pair passes the
            threshold and the instance term vanishes: use it to fine-tune, not from scratch. A
            ``report_similarity`` (B, B) passed to forward takes precedence (single process only).
        threshold: report similarity at or above which a pair is a false negative.
        strategy: ``eliminate`` (default) | ``positive`` | ``soft``.
        neutral_band: optional (low, threshold) band ignored in both roles.
        soft_temperature: temperature of the ``soft`` targets.
        chunk_size: if set (>= 1), the O(B * chunk) chunked path (eliminate / positive).
        backend: ``auto`` | ``torch`` | ``triton`` for the tiled kernel (auto: Triton on CUDA when it pays).
        term: name of the returned loss term.

    Forward takes open_clip's model output as keywords (``image_features``, ``text_features``,
    ``logit_scale`` already exponentiated, plus the provider's source such as ``report_embeddings``)
    and ignores the rest. Under torch.distributed features are gathered with gradient and the loss is
    that of the global batch.
    """

    def __init__(
        self,
        similarity: str | ReportSimilarity | None = "encoder",
        *,
        threshold: float = 0.9,
        strategy: str = "eliminate",
        neutral_band: tuple[float, float] | None = None,
        soft_temperature: float = 0.1,
        chunk_size: int | None = None,
        backend: str = "auto",
        term: str = "instance_align_loss",
        similarity_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        from sista_kit.kernels import BACKENDS

        check_instance_options(threshold, strategy, neutral_band)
        check_choice("backend", backend, BACKENDS)
        check_positive("soft_temperature", soft_temperature)
        check_chunk_size("chunk_size", chunk_size)
        self.similarity = build_similarity(similarity, **(similarity_kwargs or {}))
        self.threshold, self.strategy, self.soft_temperature = threshold, strategy, soft_temperature
        self.neutral_band = tuple(neutral_band) if neutral_band is not None else None
        self.chunk_size, self.backend, self.term = chunk_size, backend, term

    def _similarity_embeddings(self, text: Tensor, inputs: dict[str, Any]) -> Tensor | None:
        if self.similarity is None:
            return None
        source = self.similarity.source
        value = text if source == "text_features" else gather_no_grad(inputs.get(source))
        if isinstance(value, Tensor) and (value.dim() == 0 or value.shape[0] != text.shape[0]):
            raise ValueError(
                f"{source} must have one row per pair (batch of {text.shape[0]}), "
                f"got shape {tuple(value.shape)}"
            )
        return self.similarity.embeddings(value)

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor | float,
        report_similarity: Tensor | None = None,
        output_dict: bool = False,
        **kwargs: Any,
    ) -> Tensor | dict[str, Tensor]:
        image = gather_with_grad(image_features)
        text = gather_with_grad(text_features)
        if report_similarity is not None and world_size() > 1:
            raise ValueError(
                "report_similarity (B, B) covers the local batch only; under torch.distributed use a "
                "similarity provider so that its embeddings are gathered over the global batch"
            )
        embed = None if report_similarity is not None else self._similarity_embeddings(text, kwargs)
        options = dict(threshold=self.threshold, strategy=self.strategy, neutral_band=self.neutral_band)
        loss = self._loss(image, text, logit_scale, report_similarity, embed, options)
        return {self.term: loss} if output_dict else loss

    def _loss(self, image, text, logit_scale, sim_matrix, sim_embed, options) -> Tensor:
        from sista_kit.kernels import choose_backend

        if choose_backend(self.backend, "infonce", image, text, strategy=self.strategy) == "triton":
            from sista_kit.kernels import fn_aware_infonce_tiled

            return fn_aware_infonce_tiled(
                image, text, logit_scale, report_similarity=sim_matrix, report_embeddings=sim_embed, **options
            )
        if self.chunk_size is not None and self.strategy in CHUNKED_STRATEGIES:
            return fn_aware_infonce_chunked(
                image,
                text,
                logit_scale,
                sim_matrix,
                report_embeddings=sim_embed,
                chunk_size=self.chunk_size,
                **options,
            )
        if sim_matrix is None and sim_embed is not None:
            sim_matrix = similarity_from_embeddings(sim_embed)
        return fn_aware_infonce(
            image, text, logit_scale, sim_matrix, soft_temperature=self.soft_temperature, **options
        )  # backend "torch": the choice above already fell back to PyTorch


@register_loss("clip")
class CLIPLoss(SemanticInstanceAlignLoss):
    """Plain symmetric InfoNCE (CLIP) over the global batch: SIA without false-negative handling."""

    def __init__(self, *, chunk_size: int | None = None, backend: str = "auto"):
        super().__init__(None, chunk_size=chunk_size, backend=backend, term="contrastive_loss")
