"""Held-out retrieval during pretraining: R@1, R@5 and same-finding R@1 on a fixed split, per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sista_kit.eval import encode_split, retrieval_metrics, split_loader


class HeldoutRetrieval:
    """Image -> report retrieval of the model on the first ``samples`` studies of ``split``.

    Called with the (unwrapped) model after each epoch; the rows go to ``heldout.csv`` of the run.
    """

    def __init__(
        self,
        data_root: str | Path,
        tokenizer: Any,
        split: str,
        samples: int | None,
        max_length: int,
        image_size: int,
        batch_size: int = 64,
    ):
        self.max_length = max_length
        self.loader = split_loader(data_root, tokenizer, split, samples, max_length, image_size, batch_size)

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        enc = encode_split(model, self.loader, num_words=self.max_length, keep_images=False)
        keys = enc["finding_key"] if all(k is not None for k in enc["finding_key"]) else None
        metrics = retrieval_metrics(enc["image_features"], enc["text_features"], keys)
        return {**metrics, "pairs": float(len(enc["image_features"]))}  # chance R@k = k / pairs
