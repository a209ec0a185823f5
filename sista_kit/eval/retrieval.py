"""Image -> report retrieval metrics on paired embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def retrieval_metrics(
    image_features: Tensor, text_features: Tensor, finding_keys: Sequence[str] | None = None
) -> dict[str, float]:
    """R@1 / R@5 of the paired report for each image, and (with ``finding_keys``) R@1 of any report with
    the same finding set as the image's own (what a radiologist would accept).

    Args:
        image_features, text_features: (N, D) embeddings of N pairs, row i of each from pair i.
        finding_keys: N strings naming each pair's finding set (equal strings = equivalent reports).
    Returns: ``retrieval_r1``, ``retrieval_r5`` and ``retrieval_r1_same_findings``, as fractions; chance
    for R@k is k / N.
    """
    if image_features.ndim != 2 or image_features.shape != text_features.shape:
        raise ValueError(
            f"image_features and text_features must both be (N, D), got "
            f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )
    n = image_features.shape[0]
    if n == 0:
        raise ValueError("retrieval needs at least one pair")
    sim = F.normalize(image_features.float(), dim=-1) @ F.normalize(text_features.float(), dim=-1).T
    rank = (sim > sim.diagonal()[:, None]).sum(1)  # ties count in the pair's favour
    out = {
        "retrieval_r1": (rank < 1).float().mean().item(),
        "retrieval_r5": (rank < 5).float().mean().item(),
    }
    if finding_keys is not None:
        if len(finding_keys) != n:
            raise ValueError(f"finding_keys has {len(finding_keys)} entries for {n} pairs")
        top1 = sim.argmax(1).tolist()
        same = [finding_keys[i] == finding_keys[j] for i, j in enumerate(top1)]
        out["retrieval_r1_same_findings"] = float(torch.tensor(same, dtype=torch.float).mean())
    return out
