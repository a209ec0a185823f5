"""Per-sample loop versions of the losses' math, written independently of the vectorised code.

Used by the tests (agreement) and by the benchmarks (the speed of a naive implementation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sta_loop(
    image_tokens: Tensor,
    text_tokens: Tensor,
    text_mask: Tensor,
    *,
    sparsify="threshold",
    threshold=None,
    k=8,
    temperature=0.07,
) -> Tensor:
    """STA written pair by pair and word by word over the valid words only."""
    total, count = image_tokens.new_zeros(()), 0
    for b in range(image_tokens.shape[0]):
        words = F.normalize(text_tokens[b][text_mask[b]], dim=-1)  # (n, D)
        if words.shape[0] == 0:
            continue
        patches = F.normalize(image_tokens[b], dim=-1)  # (P, D)
        num_patches = patches.shape[0]
        grouped = []
        for w in words:
            s = patches @ w
            n = (s - s.min()) / (s.max() - s.min() + 1e-8)
            if sparsify == "threshold":
                keep = n >= (1.0 / num_patches if threshold is None else threshold)
            else:
                keep = torch.zeros_like(n, dtype=torch.bool)
                keep[n.topk(k).indices] = True
            a = torch.where(keep, n, torch.zeros_like(n))
            a = a / a.sum() if a.sum() > 0 else torch.full_like(n, 1.0 / num_patches)
            grouped.append(F.normalize(a @ patches, dim=-1))
        grouped = torch.stack(grouped)
        logits = words @ grouped.T / temperature
        targets = torch.arange(words.shape[0])
        ce_w = F.cross_entropy(logits, targets, reduction="sum")
        ce_g = F.cross_entropy(logits.T, targets, reduction="sum")
        total = total + 0.5 * (ce_w + ce_g)
        count += words.shape[0]
    return total / count


def sia_loop(
    image_features: Tensor,
    text_features: Tensor,
    scale: float,
    sim: Tensor | None,
    *,
    threshold=0.9,
    strategy="eliminate",
    neutral_band=None,
    soft_temperature=0.1,
) -> Tensor:
    """SIA written row by row, straight from METHOD.md."""
    v = F.normalize(image_features, dim=-1)
    t = F.normalize(text_features, dim=-1)
    logits = scale * v @ t.T
    batch = logits.shape[0]

    def direction(lg: Tensor, s: Tensor | None) -> Tensor:
        out = lg.new_zeros(())
        for i in range(batch):
            fn = [j for j in range(batch) if s is not None and j != i and s[i, j] >= threshold]
            neutral = [
                j
                for j in range(batch)
                if s is not None
                and neutral_band is not None
                and j != i
                and neutral_band[0] <= s[i, j] < threshold
            ]
            if strategy == "eliminate":
                keep = [j for j in range(batch) if j not in fn and j not in neutral]
                out = out - (lg[i, i] - torch.logsumexp(lg[i, keep], 0))
            else:
                keep = [j for j in range(batch) if j not in neutral]
                lse = torch.logsumexp(lg[i, keep], 0)
                if strategy == "positive":
                    pos = [i] + fn
                    out = out - sum(lg[i, j] - lse for j in pos) / len(pos)
                else:
                    q = torch.softmax(s[i, keep] / soft_temperature, 0)
                    out = out - sum(q[n] * (lg[i, j] - lse) for n, j in enumerate(keep))
        return out / batch

    return 0.5 * (direction(logits, sim) + direction(logits.T, None if sim is None else sim.T))
