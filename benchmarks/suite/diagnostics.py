"""Diagnostics on data with ground truth: false-negative detection, retrieval, word grounding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def fn_detection(
    reports: list[str],
    labels: Tensor,
    finding_keys: list[str],
    corpus: list[str],
    threshold: float,
    providers: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Precision / recall / F1 of each report-similarity provider at ``threshold`` against the true
    false negatives (pairs i != j with the same finding set)."""
    from sista_kit.losses.functional import false_negative_masks
    from sista_kit.similarity import (
        EncoderSimilarity,
        LabelSimilarity,
        TfidfSimilarity,
        similarity_from_embeddings,
    )

    same = torch.tensor([[a == b for b in finding_keys] for a in finding_keys])
    diagonal = torch.eye(len(finding_keys), dtype=torch.bool)
    off_diag = ~diagonal
    truth = same & off_diag
    embed = {
        "encoder": lambda: EncoderSimilarity().embed(reports),
        "tfidf": lambda: TfidfSimilarity(corpus).embed(reports),
        "labels": lambda: LabelSimilarity().embeddings(labels),
    }
    rows = []
    for name in providers:
        z = F.normalize(embed[name]().float(), dim=-1)
        pred, _ = false_negative_masks(
            similarity_from_embeddings(z), threshold, None, diagonal
        )  # what SIA drops
        tp = (pred & truth).sum().item()
        precision = tp / max(1, pred.sum().item())
        recall = tp / max(1, truth.sum().item())
        f1 = 2 * precision * recall / max(1e-12, precision + recall)
        rows += [
            dict(provider=name, metric=m, value=v)
            for m, v in (("precision", precision), ("recall", recall), ("f1", f1))
        ]
    rows.append(
        dict(
            provider="truth", metric="fn_pair_share", value=truth.float().sum().item() / off_diag.sum().item()
        )
    )
    return rows


@torch.no_grad()
def encode_split(model: torch.nn.Module, loader, num_words: int) -> dict[str, Any]:
    """Run the model over a loader of ``collate_pretrain`` batches (with masks and spans)."""
    from sista_kit.models import TextBatch

    model.eval()
    keep: dict[str, list] = {
        k: []
        for k in (
            "image_features",
            "text_features",
            "image_tokens",
            "text_tokens",
            "text_mask",
            "masks",
            "spans",
            "finding_key",
            "report",
            "image",
        )
    }
    for batch in loader:
        out = model(batch["image"], TextBatch.from_batch(batch, num_words=num_words))
        for key in ("image_features", "text_features", "image_tokens", "text_tokens", "text_mask"):
            keep[key].append(out[key].float())
        keep["masks"].append(batch["masks"])
        keep["image"].append(batch["image"])
        for key in ("spans", "finding_key", "report"):
            keep[key] += batch[key]
    return {k: (torch.cat(v) if v and isinstance(v[0], Tensor) else v) for k, v in keep.items()}


def retrieval(enc: dict[str, Any]) -> dict[str, float]:
    """Image -> report retrieval: R@1 / R@5 of the paired report, and R@1 of any report with the same
    finding set (what a radiologist would accept)."""
    sim = F.normalize(enc["image_features"], dim=-1) @ F.normalize(enc["text_features"], dim=-1).T
    rank = (sim > sim.diagonal()[:, None]).sum(1)
    top1 = sim.argmax(1)
    keys = enc["finding_key"]
    same_findings = torch.tensor(
        [keys[i] == keys[int(j)] for i, j in enumerate(top1.tolist())], dtype=torch.float
    )
    return {
        "retrieval_r1": (rank < 1).float().mean().item(),
        "retrieval_r5": (rank < 5).float().mean().item(),
        "retrieval_r1_same_findings": same_findings.mean().item(),
    }


def word_patch_maps(enc: dict[str, Any]) -> Tensor:
    """Cosine word-patch similarity (N, L, P): the map every method's token alignment starts from."""
    return F.normalize(enc["text_tokens"], dim=-1) @ F.normalize(enc["image_tokens"], dim=-1).transpose(1, 2)


def pointing_game(enc: dict[str, Any]) -> dict[str, float]:
    """Share of finding words whose most similar patch overlaps that finding's ground-truth mask,
    and the chance level (mean share of patches overlapping the mask)."""
    maps = word_patch_maps(enc)
    num_patches = maps.shape[-1]
    grid = int(round(num_patches**0.5))
    masks = enc["masks"].float()  # (N, K, H, W)
    patch_masks = F.adaptive_max_pool2d(masks, grid).flatten(2) > 0  # (N, K, P)
    hits, chance, total = 0.0, 0.0, 0
    for i, spans in enumerate(enc["spans"]):
        for finding, first, end in spans:
            region = patch_masks[i, finding]
            if not region.any():
                continue
            words = [w for w in range(first, end) if w < maps.shape[1] and enc["text_mask"][i, w]]
            for w in words:
                hits += float(region[maps[i, w].argmax()])
                chance += region.float().mean().item()
                total += 1
    if total == 0:
        return {}
    return {"pointing_game": hits / total, "pointing_game_chance": chance / total}


def alignment_figure(encodings: dict[str, dict[str, Any]], out_path: Path, samples: int = 3) -> Path | None:
    """For a few finding words: the image with the true mask, and each method's word-patch map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(encodings.values()))
    picks = [(i, s) for i, spans in enumerate(first["spans"]) for s in spans[:1]][:samples]
    if not picks:
        return None
    methods = list(encodings)
    fig, axes = plt.subplots(
        len(picks), len(methods) + 1, figsize=(2.3 * (len(methods) + 1), 2.5 * len(picks)), squeeze=False
    )
    from tokenizers.pre_tokenizers import BertPreTokenizer

    for row, (i, (finding, start, _end)) in enumerate(picks):
        image = first["image"][i, 0]
        words = [w for w, _ in BertPreTokenizer().pre_tokenize_str(first["report"][i].lower())]
        ax = axes[row, 0]
        ax.imshow(image, cmap="gray")
        ax.contour(first["masks"][i, finding].float(), levels=[0.5], colors="lime", linewidths=1)
        ax.set_title(f'"{words[start]}": true region', fontsize=8)
        for col, method in enumerate(methods, start=1):
            enc = encodings[method]
            maps = word_patch_maps({k: enc[k][i : i + 1] for k in ("text_tokens", "image_tokens")})[0]
            grid = int(round(maps.shape[-1] ** 0.5))
            heat = maps[min(start, maps.shape[0] - 1)].reshape(grid, grid)
            ax = axes[row, col]
            ax.imshow(image, cmap="gray")
            ax.imshow(
                F.interpolate(heat[None, None], size=image.shape, mode="nearest")[0, 0],
                cmap="magma",
                alpha=0.55,
            )
            ax.contour(first["masks"][i, finding].float(), levels=[0.5], colors="lime", linewidths=0.8)
            ax.set_title(method, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("word-to-patch similarity of a finding word (green: true region)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
