"""Run a model over a split of a dataset folder and keep what the evaluations need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

_TENSORS = ("image_features", "text_features", "image_tokens", "text_tokens", "text_mask")


def split_loader(
    data_root: str | Path,
    tokenizer: Any,
    split: str,
    samples: int | None,
    max_length: int,
    image_size: int | None = None,
    batch_size: int = 64,
):
    """A deterministic loader over the first ``samples`` studies of ``split`` (masks and word spans
    included), for :func:`encode_split`."""
    from torch.utils.data import DataLoader, Subset

    from sista_kit.data import ImageTransform, PretrainDataset, collate_pretrain

    transform = ImageTransform() if image_size is None else ImageTransform(image_size=image_size)
    dataset = PretrainDataset(data_root, tokenizer, max_length, transform, split=split, return_masks=True)
    if samples is not None:
        dataset = Subset(dataset, range(min(samples, len(dataset))))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_pretrain)


@torch.no_grad()
def encode_split(model: torch.nn.Module, loader, num_words: int, keep_images: bool = True) -> dict[str, Any]:
    """Embeddings, tokens, masks, word spans, finding keys and reports of every study in ``loader``
    (batches of ``collate_pretrain`` with masks). The model is put in eval mode and restored after."""
    from sista_kit.models import TextBatch

    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    keep: dict[str, list] = {k: [] for k in (*_TENSORS, "masks", "spans", "finding_key", "report", "image")}
    try:
        for batch in loader:
            text = TextBatch.from_batch(batch, num_words=num_words).to(device)
            out = model(batch["image"].to(device), text)
            for key in _TENSORS:
                keep[key].append(out[key].float().cpu())
            keep["masks"].append(batch["masks"])
            if keep_images:
                keep["image"].append(batch["image"])
            for key in ("spans", "finding_key", "report"):
                keep[key] += batch[key]
    finally:
        model.train(was_training)
    return {k: (torch.cat(v) if v and isinstance(v[0], Tensor) else v) for k, v in keep.items()}
