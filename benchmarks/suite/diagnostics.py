"""Benchmark-only diagnostics: false-negative detection per provider and the word-to-patch figure.

Retrieval and grounding metrics live in :mod:`sista_kit.eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from sista_kit.eval import word_patch_maps


def fn_detection(
    reports: list[str],
    labels: Tensor,
    finding_keys: list[str],
    corpus: list[str],
    threshold: float,
    providers: tuple[str, ...],
    batch_size: int | None = None,
    classes: str = "synthetic",
) -> list[dict[str, Any]]:
    """AP, and precision / recall at ``threshold`` (the one SIA uses), of each report-similarity provider
    against the true false negatives (pairs i != j with the same finding set), with
    :func:`sista_kit.similarity.detection`; pairs within blocks of ``batch_size`` as in pretraining."""
    from sista_kit.similarity import build_similarity, detection

    kwargs = {"tfidf": {"corpus": corpus}, "findings": {"corpus": corpus, "classes": classes}}
    rows = []
    for name in providers:
        provider = build_similarity(name, **kwargs.get(name, {}))
        found = detection(
            provider, labels if name == "labels" else reports, finding_keys, threshold, batch_size
        )
        rows += [
            dict(provider=name, metric=m, value=float(getattr(found, m)))
            for m in ("ap", "precision", "recall", "flagged_share")
        ]
        truth_share = found.truth_share
    rows.append(dict(provider="truth", metric="fn_pair_share", value=float(truth_share)))
    return rows


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
