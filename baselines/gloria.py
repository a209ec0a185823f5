"""GLoRIA (Huang et al., ICCV 2021): global + attention-based local image-report contrast.

Matches ``gloria/loss/gloria_loss.py`` of marshuang80/gloria (as ``GLoRIA.calc_loss`` calls it),
vectorised over the batch:

- global: G[j, i] = temp3 * cos(image_j, text_i); cross-entropy over rows (image -> text) and
  over columns (text -> image).
- local, for every text i and *every* image j of the batch: a1 = softmax over the words of the raw
  dot products region . word; a2 = softmax over the regions of temp1 * a1; context c_t = sum_p a2 v_p;
  R(i, j) = log sum_t exp(temp2 * cos(e_t, c_t)); logits[j, i] = temp3 * R(i, j); symmetric
  cross-entropy. The temperatures are multipliers, as in the official code.

The local term costs O(B^2 L P D) time. It runs without padded work and without the (B, B, L, D)
context tensors of a direct implementation: the used word slots of each text are moved to the front
(the local similarity does not depend on the order of a text's words), texts are grouped into buckets
of similar length, and cos(e_t, c_t) comes from the region-word dot products already formed
(c_t . e_t = sum_p a2_p (v_p . e_t); ||c_t||^2 = a2^T G a2 with the P x P Gram matrix G = V V^T).
Memory is O(B^2 L P). ``chunk_size`` computes it a block of images at a time under activation
checkpointing, so that memory is O(B * chunk * L * P) in both passes (the block is recomputed in
backward). Finding the buckets reads the text lengths on the host (one synchronisation per call).

Word slots: the official local loss uses [CLS] + the words (``cap_len = n + 1``), not [SEP]. The
model of this project gives words only (``text_tokens`` has no [CLS] slot); :class:`GLoRIALoss`
puts a [CLS] slot back in front (``include_cls=True``, the default, to match the official method),
filled with ``text_cls_token`` when the model provides it, else with ``text_features``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sista_kit.checks import (
    ValueChecks,
    check_batch,
    check_chunk_size,
    check_mask,
    check_positive,
    check_tensor,
    check_weight,
    same_size,
)
from sista_kit.losses.distributed import gather_no_grad, gather_with_grad, pad_to_global_max
from sista_kit.losses.registry import register_loss


def _cosine_logits(a: Tensor, b: Tensor, eps: float) -> Tensor:
    """cos(a_j, b_i) for all pairs, with the official clamp max(|a||b|, eps); (Ba, Bb)."""
    norms = a.norm(dim=-1)[:, None] * b.norm(dim=-1)[None, :]
    return (a @ b.t()) / norms.clamp(min=eps)


#: Most length buckets per call; more buckets waste less padding but make smaller products.
MAX_BUCKETS = 8


def _compact(words: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    """Move each text's used slots to the front (order kept): (B, L_max, D), its mask, the lengths."""
    lengths = mask.sum(dim=1)
    sizes = lengths.tolist()
    longest = max(sizes)
    index = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :longest]
    compact = torch.gather(words, 1, index[..., None].expand(-1, -1, words.shape[2]))
    used = torch.arange(longest, device=mask.device)[None, :] < lengths[:, None]
    return compact, used, sizes


def _buckets(sizes: list[int], device: torch.device) -> list[tuple[Tensor, int]]:
    """Texts sorted by length, split into up to MAX_BUCKETS groups: (text indices, group length)."""
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    count = min(MAX_BUCKETS, len(order))
    bounds = [round(i * len(order) / count) for i in range(count + 1)]
    groups = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    return [(torch.tensor(g, device=device), sizes[g[-1]]) for g in groups]


class GramQuadraticForm(torch.autograd.Function):
    """``q[j, n] = a[j, :, n]^T G[j] a[j, :, n]`` for a symmetric Gram matrix G (B, P, P), a (B, P, N).

    Backward reuses ``G a`` from the forward pass: dq/da = 2 G a (no product), dq/dG = a diag(g) a^T
    (one product), instead of autograd's two products through ``G a``.
    """

    @staticmethod
    def forward(ctx, a: Tensor, gram: Tensor) -> Tensor:
        spread = torch.bmm(gram, a)
        ctx.save_for_backward(a, spread)
        return (a * spread).sum(dim=1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, spread = ctx.saved_tensors
        weighted = a * grad.unsqueeze(1)
        grad_gram = torch.bmm(weighted, a.transpose(1, 2)) if ctx.needs_input_grad[1] else None
        return spread * (2.0 * grad.unsqueeze(1)) if ctx.needs_input_grad[0] else None, grad_gram


def _bucket_similarity(
    dots: Tensor, gram: Tensor, words: Tensor, used: Tensor, temp1: float, temp2: float, eps: float
) -> Tensor:
    """R[j, i] of the images with Gram matrices ``gram`` (Bc, P, P) against the texts ``words``
    (Bt, Lb, D), from their dot products ``dots[j, p, i, t] = v_{j,p} . e_{i,t}`` (Bc, P, Bt, Lb)."""
    n_img, n_reg, n_txt, n_words = dots.shape
    unused = torch.zeros(used.shape, dtype=dots.dtype, device=dots.device).masked_fill_(~used, float("-inf"))
    a1 = torch.softmax(dots + unused, dim=3)  # over the used words
    a2 = torch.softmax(a1 * temp1, dim=1)  # over regions
    num = (a2 * dots).sum(dim=1)  # c . e, (Bc, Bt, Lb)
    squared = GramQuadraticForm.apply(a2.reshape(n_img, n_reg, n_txt * n_words), gram)
    context_norm = squared.view(n_img, n_txt, n_words).clamp_min(0.0).sqrt()  # ||c|| = sqrt(a2^T G a2)
    den = (context_norm * words.norm(dim=-1)[None]).clamp(min=eps)
    sim = (temp2 * num / den).masked_fill(~used[None], float("-inf"))
    return torch.logsumexp(sim, dim=2)


def _local_block(
    regions: Tensor,
    words: Tensor,
    used: Tensor,
    buckets: list[tuple[Tensor, int]],
    temp1: float,
    temp2: float,
    eps: float,
) -> Tensor:
    """R[j, i] for the images ``regions`` (Bc, P, D) against every text, columns in bucket order.

    The region-word dot products of all buckets come from one GEMM (a few wide products run faster
    than one narrow product per bucket); each bucket reads its column block, words last so that the
    word softmax is contiguous.
    """
    n_img, n_reg, dim = regions.shape
    gram = torch.bmm(regions, regions.transpose(1, 2))
    texts = [words[idx, :length] for idx, length in buckets]
    flat = torch.cat([t.reshape(-1, dim) for t in texts])
    dots = (regions.reshape(n_img * n_reg, dim) @ flat.t()).view(n_img, n_reg, -1)
    blocks = dots.split([t.shape[0] * t.shape[1] for t in texts], dim=2)
    parts = [
        _bucket_similarity(block.unflatten(2, t.shape[:2]), gram, t, used[idx, :length], temp1, temp2, eps)
        for block, t, (idx, length) in zip(blocks, texts, buckets, strict=True)
    ]
    return torch.cat(parts, dim=1)


def _own_attention(regions: Tensor, words: Tensor, mask: Tensor, temp1: float) -> Tensor:
    """a2 of each text over its own image, (B, L, P), zero on unused slots."""
    dots = torch.bmm(words, regions.transpose(1, 2))  # (B, L, P)
    a1 = torch.softmax(dots.masked_fill(~mask[..., None], float("-inf")), dim=1)  # over the used words
    a2 = torch.softmax(a1 * temp1, dim=2)  # over regions
    return a2.masked_fill(~mask[..., None], 0.0)


def gloria_local_similarity(
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor,
    *,
    temp1: float = 4.0,
    temp2: float = 5.0,
    eps: float = 1e-8,
    chunk_size: int | None = None,
    return_attention: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """GLoRIA's aggregated local similarity R(i, j) for all text/image pairs, laid out [j, i].

    Args:
        image_tokens: (B, P, D) region features (unnormalised).
        text_tokens: (B, L, D) word features; slots where ``text_mask`` is False are ignored and get
            an exact zero gradient.
        text_mask: (B, L) bool, True = slot used by the loss (at least one per text).
        chunk_size: images per block (checkpointed when gradients are needed); None = one block.
        return_attention: also return a2 of each text over its own image, (B, L, P).

    Returns:
        (R of shape (B_images, B_texts), attention maps or None).
    """
    check_chunk_size("chunk_size", chunk_size)
    words, used, sizes = _compact(text_tokens, text_mask)
    buckets = _buckets(sizes, text_tokens.device)
    inverse = torch.argsort(torch.cat([idx for idx, _ in buckets]))
    n_img = image_tokens.shape[0]
    if chunk_size is None or chunk_size >= n_img:
        r = _local_block(image_tokens, words, used, buckets, temp1, temp2, eps)
    else:
        grad = torch.is_grad_enabled() and (image_tokens.requires_grad or text_tokens.requires_grad)
        rows = []
        for start in range(0, n_img, chunk_size):
            args = (image_tokens[start : start + chunk_size], words, used, buckets, temp1, temp2, eps)
            rows.append(checkpoint(_local_block, *args, use_reentrant=False) if grad else _local_block(*args))
        r = torch.cat(rows, dim=0)
    attention = _own_attention(image_tokens, text_tokens, text_mask, temp1) if return_attention else None
    return r[:, inverse], attention


def gloria_loss(
    image_features: Tensor,
    text_features: Tensor,
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor,
    *,
    temp1: float = 4.0,
    temp2: float = 5.0,
    temp3: float = 10.0,
    local_weight: float = 1.0,
    global_weight: float = 1.0,
    eps: float = 1e-8,
    chunk_size: int | None = None,
    return_logits: bool = False,
    return_attention: bool = False,
    check_finite: bool = True,
) -> dict[str, Tensor]:
    """GLoRIA's global and local losses (functional form, the official convention).

    Args:
        image_features, text_features: (B, D) global embeddings (cosine taken here).
        image_tokens: (B, P, D) region features, region p = row-major index of the feature grid.
        text_tokens: (B, L, D) word-slot features. In the official convention slot 0 is [CLS] and the
            used slots are [CLS] + the words ([SEP] excluded).
        text_mask: (B, L) bool, True = slot used (any pattern, at least one per text).
        temp1, temp2, temp3: the attention sharpening, word aggregation and logit multipliers.
        local_weight, global_weight: weights of the two terms in ``loss``.
        eps: clamp of the cosine denominators.
        chunk_size: images per block of the local term (see :func:`gloria_local_similarity`).
        return_logits: add ``global_logits`` and ``local_logits`` ((B, B), row = image, column = text).
        return_attention: add ``attn_maps`` (B, L, P): each text's word-to-region attention over its
            own image, zero on unused slots.
        check_finite: run the value checks (NaN / inf, empty texts) under the policy of
            :mod:`sista_kit.checks`.

    Returns:
        dict with ``loss`` (weighted total), ``global_i2t``, ``global_t2i``, ``local_i2t``,
        ``local_t2i`` (the official loss0 / loss1 of each term) and the optional entries above.
    """
    for name, value in (("temp1", temp1), ("temp2", temp2), ("temp3", temp3), ("eps", eps)):
        check_positive(name, value)
    check_weight("local_weight", local_weight)
    check_weight("global_weight", global_weight)
    check_tensor("image_features", image_features, (None, None))
    check_tensor("text_features", text_features, (None, None))
    check_tensor("image_tokens", image_tokens, (None, None, None))
    check_tensor("text_tokens", text_tokens, (None, None, None))
    batch = check_batch(
        "GLoRIA",
        image_features=image_features.shape[0],
        text_features=text_features.shape[0],
        image_tokens=image_tokens.shape[0],
        text_tokens=text_tokens.shape[0],
    )
    same_size(
        "global embedding size", image_features=image_features.shape[1], text_features=text_features.shape[1]
    )
    same_size("token embedding size", image_tokens=image_tokens.shape[2], text_tokens=text_tokens.shape[2])
    check_mask("text_mask", text_mask, (batch, text_tokens.shape[1]))
    checks = ValueChecks(check_finite)
    for name, value in (
        ("image_features", image_features),
        ("text_features", text_features),
        ("image_tokens", image_tokens),
        ("text_tokens", text_tokens),
    ):
        checks.finite(name, value)
    checks.nonempty("text_mask", text_mask, per_row=True).run()

    labels = torch.arange(batch, device=image_features.device)
    global_logits = temp3 * _cosine_logits(image_features, text_features, eps)
    r, attn = gloria_local_similarity(
        image_tokens,
        text_tokens,
        text_mask,
        temp1=temp1,
        temp2=temp2,
        eps=eps,
        chunk_size=chunk_size,
        return_attention=return_attention,
    )
    local_logits = temp3 * r
    out = {
        "global_i2t": F.cross_entropy(global_logits, labels),
        "global_t2i": F.cross_entropy(global_logits.t(), labels),
        "local_i2t": F.cross_entropy(local_logits, labels),
        "local_t2i": F.cross_entropy(local_logits.t(), labels),
    }
    out["loss"] = local_weight * (out["local_i2t"] + out["local_t2i"]) + global_weight * (
        out["global_i2t"] + out["global_t2i"]
    )
    if return_logits:
        out["global_logits"], out["local_logits"] = global_logits, local_logits
    if return_attention:
        out["attn_maps"] = attn
    return out


@register_loss("gloria")
class GLoRIALoss(nn.Module):
    """GLoRIA as an open_clip-style loss module.

    Args:
        temp1, temp2, temp3: official multipliers 4, 5, 10.
        local_weight, global_weight: official weights 1, 1.
        eps: cosine clamp (1e-8).
        include_cls: prepend a [CLS] slot to the words (the official local loss includes it). The slot
            holds ``text_cls_token`` (B, E) when the model gives it, else ``text_features``.
        chunk_size: images per checkpointed block of the local term; None = whole batch at once
            (memory ~ 8 * B^2 * L * P floats, L the mean text length).
        check_finite: run the value checks (NaN / inf, empty texts).
        gather: under torch.distributed, contrast over the global batch (features, regions and word
            slots all-gathered with gradient, as the SISTA losses do), so that N processes give the
            loss of one process on the whole batch. False = each rank's local batch only, as the
            official code does under DDP (fewer negatives; values not comparable across world sizes).
            Every rank must have the same batch size; ranks with fewer word slots pad theirs to the
            largest count before the gather.

    Forward uses ``image_features``, ``text_features``, ``image_tokens`` (regions), ``text_tokens``,
    ``text_mask`` and optionally ``text_cls_token``; it ignores other keywords (``logit_scale``
    included: the temperatures are fixed). Returns ``{"global_i2t_loss", "global_t2i_loss",
    "local_i2t_loss", "local_t2i_loss"}`` (already weighted) with ``output_dict=True``, else their sum.
    """

    def __init__(
        self,
        temp1: float = 4.0,
        temp2: float = 5.0,
        temp3: float = 10.0,
        local_weight: float = 1.0,
        global_weight: float = 1.0,
        eps: float = 1e-8,
        include_cls: bool = True,
        chunk_size: int | None = None,
        check_finite: bool = True,
        gather: bool = True,
    ):
        super().__init__()
        for name, value in (("temp1", temp1), ("temp2", temp2), ("temp3", temp3), ("eps", eps)):
            check_positive(name, value)
        check_weight("local_weight", local_weight)
        check_weight("global_weight", global_weight)
        check_chunk_size("chunk_size", chunk_size)
        self.temp1, self.temp2, self.temp3 = temp1, temp2, temp3
        self.local_weight, self.global_weight, self.eps = local_weight, global_weight, eps
        self.include_cls, self.chunk_size, self.check_finite = include_cls, chunk_size, check_finite
        self.gather = gather

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        image_tokens: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        text_cls_token: Tensor | None = None,
        output_dict: bool = False,
        **kwargs: Any,
    ) -> Tensor | dict[str, Tensor]:
        words, mask = text_tokens, text_mask
        if self.include_cls:
            cls = text_features if text_cls_token is None else text_cls_token
            check_tensor("text_cls_token", cls, (text_tokens.shape[0], text_tokens.shape[2]))
            words = torch.cat([cls[:, None, :].to(text_tokens.dtype), text_tokens], dim=1)
            mask = torch.cat([text_mask.new_ones(text_mask.shape[0], 1), text_mask], dim=1)
        if self.gather:
            image_features, text_features = gather_with_grad(image_features), gather_with_grad(text_features)
            # ranks size their word slots by their own longest report: pad to one L before gathering
            words, mask = pad_to_global_max(words, 1), pad_to_global_max(mask, 1, False)
            image_tokens, words = gather_with_grad(image_tokens), gather_with_grad(words)
            if mask.dtype == torch.bool:
                mask = gather_no_grad(mask.to(torch.uint8)).bool()
        out = gloria_loss(
            image_features,
            text_features,
            image_tokens,
            words,
            mask,
            temp1=self.temp1,
            temp2=self.temp2,
            temp3=self.temp3,
            eps=self.eps,
            chunk_size=self.chunk_size,
            check_finite=self.check_finite,
        )
        terms = {
            "global_i2t_loss": self.global_weight * out["global_i2t"],
            "global_t2i_loss": self.global_weight * out["global_t2i"],
            "local_i2t_loss": self.local_weight * out["local_i2t"],
            "local_t2i_loss": self.local_weight * out["local_t2i"],
        }
        return terms if output_dict else sum(terms.values())

    def extra_repr(self) -> str:
        return (
            f"temp1={self.temp1}, temp2={self.temp2}, temp3={self.temp3}, "
            f"local_weight={self.local_weight}, global_weight={self.global_weight}, "
            f"include_cls={self.include_cls}, chunk_size={self.chunk_size}, gather={self.gather}"
        )
