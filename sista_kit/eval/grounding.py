"""Word grounding: does a finding word's most similar patch fall inside that finding's true region?"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor


def word_patch_maps(enc: dict[str, Any]) -> Tensor:
    """Cosine word-patch similarity (N, L, P): the map every method's token alignment starts from."""
    return F.normalize(enc["text_tokens"], dim=-1) @ F.normalize(enc["image_tokens"], dim=-1).transpose(1, 2)


def pointing_game(enc: dict[str, Any], k: int = 3) -> dict[str, float]:
    """Grounding of finding words against ground-truth masks.

    Returns ``pointing_game`` (share of finding words whose most similar patch overlaps the finding's
    mask), ``pointing_game_chance`` (mean share of patches that overlap it: a random patch's hit rate),
    ``hit_rate_at_{k}`` (share of words with at least one of their k most similar patches in the mask) and
    its chance level ``hit_rate_at_{k}_chance`` (1 - C(P - m, k) / C(P, k) for m mask patches), all
    averaged over finding words. Empty dict when the encoding has no finding word with a mask.
    """
    from math import comb

    maps = word_patch_maps(enc)
    num_patches = maps.shape[-1]
    grid = int(round(num_patches**0.5))
    masks = enc["masks"].float()  # (N, K, H, W)
    patch_masks = F.adaptive_max_pool2d(masks, grid).flatten(2) > 0  # (N, K, P)
    k = min(k, num_patches)
    hits = chance = hits_k = chance_k = 0.0
    total = 0
    for i, spans in enumerate(enc["spans"]):
        for finding, first, end in spans:
            region = patch_masks[i, finding]
            m = int(region.sum())
            if m == 0:
                continue
            for w in range(first, min(end, maps.shape[1])):
                if not enc["text_mask"][i, w]:
                    continue
                order = maps[i, w].argsort(descending=True)
                hits += float(region[order[0]])
                hits_k += float(region[order[:k]].any())
                chance += m / num_patches
                chance_k += 1 - comb(num_patches - m, k) / comb(num_patches, k)
                total += 1
    if total == 0:
        return {}
    return {
        "pointing_game": hits / total,
        "pointing_game_chance": chance / total,
        f"hit_rate_at_{k}": hits_k / total,
        f"hit_rate_at_{k}_chance": chance_k / total,
    }
