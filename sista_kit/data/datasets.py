"""Pretraining dataset and collate: the batch of docs/contracts.md section 1."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .folder import read_image, row_finding_key
from .synthetic.export import read_manifest, sample_from_row, write_dataset
from .synthetic.findings import CLASS_NAMES
from .synthetic.generator import Sample
from .tokenizer import encode_reports
from .transforms import ImageTransform

log = logging.getLogger("sista_kit.data")


class PretrainDataset(Dataset):
    """Image-report pairs for pretraining, from a written dataset folder or in-memory samples.

    Each item is a dict: ``image`` float32 (C, H, W), ``input_ids`` / ``attention_mask`` /
    ``word_ids`` int64 (max_length,), ``report``, ``labels`` float32 (K,), ``finding_key``,
    ``sample_id``; with ``return_masks=True`` also ``masks`` bool (K, H, W), ``boxes`` and ``spans``.

    Studies whose report is empty (or only whitespace) are dropped and counted (``dropped_ids``, and a
    warning naming them); a source with no study left raises ValueError.
    """

    def __init__(
        self,
        source: str | os.PathLike | list[Sample],
        tokenizer,
        max_length: int = 128,
        transform=None,
        split: str | None = "pretrain",
        return_masks: bool = False,
        class_names: tuple[str, ...] = CLASS_NAMES,
    ) -> None:
        if isinstance(source, (str, os.PathLike)):
            self.root: Path | None = Path(source)
            rows = read_manifest(self.root, split)
            self.dropped_ids = [str(r.get("id")) for r in rows if not str(r.get("report") or "").strip()]
            self.rows = [r for r in rows if str(r.get("report") or "").strip()]
            self.samples: list[Sample] | None = None
            total = len(rows)
        else:
            items = list(source)
            self.dropped_ids = [s.sample_id for s in items if not (s.report or "").strip()]
            self.root, self.rows = None, None
            self.samples = [s for s in items if (s.report or "").strip()]
            total = len(items)
        where = f"{source if self.root else 'the given list'} (split={split!r})"
        if self.dropped_ids:
            log.warning(
                "%s: dropped %d of %d studies with an empty report (first: %s)",
                where,
                len(self.dropped_ids),
                total,
                ", ".join(self.dropped_ids[:5]),
            )
        if len(self) == 0:
            empty = f"; all {total} reports are empty" if total else ""
            raise ValueError(f"no samples in {where}{empty}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.transform = transform if transform is not None else ImageTransform()
        self.return_masks = return_masks
        self.class_names = tuple(class_names)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        # Reports are tokenised once here (batched), not once per item and epoch.
        self._reports = (
            [str(r["report"]) for r in self.rows]
            if self.rows is not None
            else [s.report for s in self.samples]
        )
        self._tokens = _token_table(tokenizer, self._reports, max_length, self.pad_id)

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.samples)

    def sample(self, idx: int) -> Sample:
        return self.samples[idx] if self.samples is not None else sample_from_row(self.root, self.rows[idx])

    def __getitem__(self, idx: int) -> dict:
        if self.return_masks or self.rows is None:
            s = self.sample(idx)
            image, labels, key, sample_id = s.image, s.labels, s.finding_key, s.sample_id
        else:  # the image only: the findings mask is read when masks are asked for
            row = self.rows[idx]
            image, labels = read_image(self.root / row["image"]), row["labels"]
            key, sample_id = row_finding_key(row), row["id"]
        item = {k: v[idx].long() for k, v in self._tokens.items()}
        item.update(
            image=self.transform(image),
            report=self._reports[idx],
            finding_key=key,
            sample_id=sample_id,
            labels=torch.as_tensor(np.asarray(labels, dtype=np.float32)),
        )
        if self.return_masks:
            item.update(masks=torch.from_numpy(s.masks), boxes=list(s.boxes), spans=list(s.spans))
        return item


def encode_padded(tokenizer, reports: list[str], max_length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """:func:`encode_reports` padded to ``max_length`` columns (int64 (N, max_length) each)."""
    enc = encode_reports(tokenizer, reports, max_length)
    pad = max_length - enc["input_ids"].shape[1]
    fill = {"input_ids": pad_id, "attention_mask": 0, "word_ids": -1}
    return {k: torch.nn.functional.pad(v, (0, pad), value=fill[k]) for k, v in enc.items()}


def _token_table(tokenizer, reports: list[str], max_length: int, pad_id: int, chunk: int = 1024) -> dict:
    """Every report tokenised once, in batches: ids int32, mask bool, word ids int16 (N, max_length)."""
    dtypes = {"input_ids": torch.int32, "attention_mask": torch.bool, "word_ids": torch.int16}
    parts = [
        encode_padded(tokenizer, reports[i : i + chunk], max_length, pad_id)
        for i in range(0, len(reports), chunk)
    ]
    return {k: torch.cat([p[k] for p in parts]).to(dtype) for k, dtype in dtypes.items()}


def pretrain_item(s: Sample, tokenizer, max_length: int, transform, pad_id: int) -> dict:
    """One pretraining item (the keys of :class:`PretrainDataset`, masks aside) from a sample: the report
    tokenised and padded to ``max_length``, the image through ``transform``."""
    item = {k: v[0] for k, v in encode_padded(tokenizer, [s.report], max_length, pad_id).items()}
    item.update(
        image=transform(s.image),
        report=s.report,
        finding_key=s.finding_key,
        sample_id=s.sample_id,
        labels=torch.as_tensor(np.asarray(s.labels, dtype=np.float32)),
    )
    return item


def collate_pretrain(samples: list[dict]) -> dict:
    """Stack dataset items into the pretraining batch; token columns are trimmed to the longest report."""
    if not samples:
        raise ValueError("collate_pretrain got an empty list")
    attn = torch.stack([s["attention_mask"] for s in samples])
    t = max(int(attn.sum(1).max()), 1)
    batch = {
        "image": torch.stack([s["image"] for s in samples]).float(),
        "input_ids": torch.stack([s["input_ids"] for s in samples])[:, :t].long(),
        "attention_mask": attn[:, :t].long(),
        "word_ids": torch.stack([s["word_ids"] for s in samples])[:, :t].long(),
        "report": [s["report"] for s in samples],
        "finding_key": [s["finding_key"] for s in samples],
        "sample_id": [s["sample_id"] for s in samples],
    }
    if all(s.get("labels") is not None for s in samples):
        batch["labels"] = torch.stack([s["labels"] for s in samples]).float()
    if all("masks" in s for s in samples):
        batch["masks"] = torch.stack([s["masks"] for s in samples])
        batch["boxes"] = [s["boxes"] for s in samples]
        batch["spans"] = [s["spans"] for s in samples]
    return batch


def build_synthetic(root: str | os.PathLike, n: int, seed: int = 0, image_size: int = 128, **kwargs) -> Path:
    """Write (or reuse) the embedded synthetic dataset in ``root``; see ``synthetic.write_dataset``."""
    return write_dataset(root, n, seed=seed, image_size=image_size, **kwargs)
