"""Data for pretraining: dataset folders, tokenizer, a rank-contiguous sampler and open_clip DataInfo.

open_clip's loop expects ``data["train"]`` with ``set_epoch`` and a dataloader that has
``num_batches`` / ``num_samples`` and yields ``(images, texts)``; here ``texts`` is a
:class:`~sista_kit.models.TextBatch` that also carries what report-similarity providers need.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from sista_kit.data.datasets import build_synthetic, collate_pretrain
from sista_kit.data.folder import require_dataset_folder, synthetic_folder_name
from sista_kit.models.text_batch import TextBatch

__all__ = [
    "ContiguousDistributedSampler",
    "PretrainCollate",
    "ReportEmbeddingTable",
    "ProgressLoader",
    "DataInfo",
    "prepare_dataset_folder",
    "make_loader",
    "eval_loader",
]

_log = logging.getLogger(__name__)


class ContiguousDistributedSampler(DistributedSampler):
    """Each global batch of ``batch_size * world`` shuffled indices is cut into contiguous rank slices.

    The concatenation of the ranks' batches (what an all-gather gives) is then exactly the batch a
    single process would see with ``batch_size * world``, so losses over the gathered global batch
    match single-process runs. The order depends only on (seed, epoch); incomplete global batches
    are dropped.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ):
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        global_batch = batch_size * num_replicas
        self.num_batches = len(dataset) // global_batch
        if self.num_batches == 0:
            raise ValueError(
                f"{len(dataset)} samples cannot fill one global batch of {global_batch} "
                f"({batch_size} per process x {num_replicas})"
            )
        self.num_samples = self.num_batches * batch_size
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.dataset), generator=g)
        else:
            order = torch.arange(len(self.dataset))
        blocks = order[: self.total_size].view(self.num_batches, self.num_replicas, self.batch_size)
        return iter(blocks[:, self.rank].reshape(-1).tolist())

    def __len__(self) -> int:
        return self.num_samples


class ReportEmbeddingTable:
    """Embeddings of every distinct report of a dataset from a text report-similarity provider,
    computed once (frozen encoder, no gradient) and looked up per batch."""

    def __init__(self, provider: Any, reports: Sequence[str], chunk: int = 64, progress: bool = True):
        from tqdm.auto import tqdm

        unique = sorted(set(reports))
        self.index = {r: i for i, r in enumerate(unique)}
        parts = []
        for start in tqdm(
            range(0, len(unique), chunk), desc="report embeddings", disable=not progress, leave=False
        ):
            parts.append(provider.embed(unique[start : start + chunk]).float().cpu())
        self.table = torch.cat(parts) if parts else torch.zeros(0, 1)

    def __call__(self, reports: Sequence[str]) -> torch.Tensor:
        try:
            rows = [self.index[r] for r in reports]
        except KeyError as e:
            raise KeyError("a report of the batch was not embedded in advance") from e
        return self.table[torch.as_tensor(rows, dtype=torch.long)]


class PretrainCollate:
    """``collate_pretrain`` then split into ``(images, TextBatch)`` for open_clip's loop.

    Args:
        report_embed: callable reports -> (B, R) for text report-similarity providers, or None.
        with_labels: attach the finding labels as ``report_labels``.
        num_words: fixed word slots (needed when outputs of several batches are concatenated, as
            open_clip does with ``accum_freq > 1``); None = the batch's largest word count.
    """

    def __init__(self, report_embed: Any = None, with_labels: bool = False, num_words: int | None = None):
        self.report_embed, self.with_labels, self.num_words = report_embed, with_labels, num_words

    def __call__(self, samples: list[dict]) -> tuple[torch.Tensor, TextBatch]:
        batch = collate_pretrain(samples)
        if "report_embedding" in samples[0]:  # stored with the data (webdataset shards)
            emb = torch.stack([s["report_embedding"] for s in samples]).float()
        else:
            emb = self.report_embed(batch["report"]) if self.report_embed is not None else None
        texts = TextBatch.from_batch(
            batch, report_embeddings=emb, with_labels=self.with_labels, num_words=self.num_words
        )
        return batch["image"], texts


class ProgressLoader:
    """A dataloader seen through a tqdm bar; keeps open_clip's ``num_batches`` / ``num_samples``."""

    def __init__(
        self, loader: DataLoader, num_batches: int, num_samples: int, enabled: bool, desc: str = "train"
    ):
        self.loader, self.num_batches, self.num_samples = loader, num_batches, num_samples
        self.enabled, self.desc, self.bar = enabled, desc, None

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[Any]:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            self.loader,
            total=self.num_batches,
            desc=self.desc,
            disable=not self.enabled,
            unit="step",
            dynamic_ncols=True,
        )
        try:
            yield from self.bar
        finally:
            self.bar.close()


@dataclass
class DataInfo:
    """open_clip_train's DataInfo shape: a dataloader plus an epoch setter for its sampler, or for the
    epoch its webdataset workers share (``open_clip_train.data.SharedEpoch``)."""

    dataloader: Any
    sampler: ContiguousDistributedSampler | None = None
    shared_epoch: Any = None

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        if self.shared_epoch is not None:
            self.shared_epoch.set_value(epoch)


def prepare_dataset_folder(
    data: str,
    data_dir: str | None,
    logs: str,
    num_samples: int,
    seed: int,
    image_size: int,
    is_master: bool,
    barrier: Any = None,
    split_fractions: dict[str, float] | None = None,
) -> Path:
    """The dataset folder: the embedded synthetic data (written once, by the master) or a given folder.

    ``split_fractions`` (synthetic data only) overrides the default pretrain / train / val / test cut.
    """
    if data != "synthetic":
        return require_dataset_folder(data, what="--data")
    folder = (
        Path(data_dir)
        if data_dir
        else Path(logs) / "_data" / synthetic_folder_name(num_samples, seed, image_size, split_fractions)
    )
    if is_master:
        build_synthetic(
            folder, num_samples, seed=seed, image_size=image_size, split_fractions=split_fractions
        )
    if barrier is not None:
        barrier()
    return folder


def make_loader(
    dataset: Dataset,
    batch_size: int,
    collate: PretrainCollate,
    workers: int,
    seed: int,
    world_size: int,
    rank: int,
    shuffle: bool,
    pin_memory: bool,
    progress: bool,
    desc: str,
) -> DataInfo:
    """A DataInfo whose loader yields each rank's contiguous share of every global batch."""
    sampler = ContiguousDistributedSampler(dataset, batch_size, world_size, rank, shuffle=shuffle, seed=seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=False,
    )
    wrapped = ProgressLoader(
        loader, sampler.num_batches, sampler.num_samples * world_size, enabled=progress, desc=desc
    )
    return DataInfo(wrapped, sampler)


def eval_loader(dataset: Dataset, batch_size: int, collate: PretrainCollate, workers: int) -> DataInfo:
    """Held-out loader for retrieval (master only, in order, last batch kept)."""
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate
    )
    loader.num_samples = len(dataset)
    loader.num_batches = math.ceil(len(dataset) / batch_size)
    return DataInfo(loader, None)
