"""TextBatch: the text side of a pretraining batch, moved by open_clip's loop like a tensor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

__all__ = ["TextBatch"]


@dataclass
class TextBatch:
    """Word pieces of a batch of reports plus per-sample extras that the losses read.

    Attributes:
        input_ids: int64 (B, T) word-piece ids, ``[CLS] ... [SEP] [PAD]...``.
        attention_mask: int64 (B, T), 1 for real tokens (special tokens included).
        word_ids: int64 (B, T), index of the word each piece belongs to, -1 for special / padding.
        report_embeddings: optional (B, R) embeddings of the raw reports from a text report-similarity
            provider (computed in the data pipeline), passed through the model to the loss.
        report_labels: optional (B, K) finding labels, passed through to the loss.
        num_words: number of word slots L of the model's ``text_tokens``; by default the largest word
            count in the batch. It is a Python int fixed when the batch is built on the CPU, so the
            forward never synchronises with the device to size its output. Set it to a constant
            (e.g. the context length) when outputs of several batches are concatenated.
    """

    input_ids: Tensor
    attention_mask: Tensor
    word_ids: Tensor
    report_embeddings: Tensor | None = None
    report_labels: Tensor | None = None
    num_words: int | None = None

    def __post_init__(self) -> None:
        ids, mask, words = self.input_ids, self.attention_mask, self.word_ids
        if ids.ndim != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(ids.shape)}")
        for name, t in (("attention_mask", mask), ("word_ids", words)):
            if tuple(t.shape) != tuple(ids.shape):
                raise ValueError(f"{name} shape {tuple(t.shape)} != input_ids shape {tuple(ids.shape)}")
        for name, t in (("input_ids", ids), ("attention_mask", mask), ("word_ids", words)):
            if t.is_floating_point() or t.is_complex():
                raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")
        for name in ("report_embeddings", "report_labels"):
            t = getattr(self, name)
            if t is not None and (t.ndim != 2 or t.shape[0] != ids.shape[0]):
                raise ValueError(f"{name} must be (B={ids.shape[0]}, *), got shape {tuple(t.shape)}")
        if self.num_words is None:
            if words.device.type != "cpu":
                raise ValueError("num_words must be given when a TextBatch is built from device tensors")
            self.num_words = int(words.max().clamp(min=-1)) + 1 if words.numel() else 0
        elif words.device.type == "cpu" and words.numel() and int(words.max()) >= self.num_words:
            raise ValueError(f"word_ids reach {int(words.max())} but num_words is {self.num_words}")
        self.num_words = max(int(self.num_words), 1)

    @classmethod
    def from_batch(
        cls,
        batch: Mapping[str, Any],
        report_embeddings: Tensor | None = None,
        with_labels: bool = False,
        num_words: int | None = None,
    ) -> TextBatch:
        """Build from a ``collate_pretrain`` dict (docs/contracts.md section 1)."""
        missing = [k for k in ("input_ids", "attention_mask", "word_ids") if k not in batch]
        if missing:
            raise KeyError(f"pretraining batch lacks {', '.join(missing)}")
        labels = None
        if with_labels:
            if "labels" not in batch:
                raise KeyError("the loss reads finding labels but the dataset gives no 'labels'")
            labels = batch["labels"].float()
        return cls(
            input_ids=batch["input_ids"].long(),
            attention_mask=batch["attention_mask"].long(),
            word_ids=batch["word_ids"].long(),
            report_embeddings=report_embeddings,
            report_labels=labels,
            num_words=num_words,
        )

    def _map(self, fn) -> TextBatch:
        changes = {
            f.name: fn(getattr(self, f.name))
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **changes)

    def to(
        self, device: torch.device | str | None = None, non_blocking: bool = False, **kwargs: Any
    ) -> TextBatch:
        """Move every tensor (floating extras may also take ``dtype=``; ids stay int64)."""
        dtype = kwargs.pop("dtype", None)

        def move(t: Tensor) -> Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype, non_blocking=non_blocking)
            return t.to(device=device, non_blocking=non_blocking)

        return self._map(move)

    def pin_memory(self) -> TextBatch:
        """Page-locked copy (used by DataLoader(pin_memory=True))."""
        return self._map(lambda t: t.pin_memory())

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def device(self) -> torch.device:
        return self.input_ids.device
