"""Pretraining data from webdataset shards (``dataset_type="webdataset"``), in open_clip's conventions.

The pipeline is open_clip_train's ``get_wds_dataset`` with sista_kit's samples: shards resampled with
replacement (``ResampledShards2``, ``dataset_resampled``) or, per epoch, shuffled alike on every rank
(``detshuffle2``, seed + epoch) and split between ranks, then between DataLoader workers; samples read
with ``tarfile_to_samples_nothrow`` and shuffled in a buffer; each worker yields a fixed number of full
batches per epoch (rolling over into its next pass), so every rank takes the same number of steps.
Unlike open_clip the epoch length is rounded down, as the folder loader drops the incomplete global
batch: with evenly filled shards one epoch is one pass over the split, and ranks read disjoint samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from sista_kit.data.folder import read_meta
from sista_kit.data.shards import ShardItems, read_shard_index, shard_corpus, shard_urls
from sista_kit.train.data import DataInfo, PretrainCollate, ProgressLoader

__all__ = ["ShardSource", "open_shards", "shard_loader", "stored_embeddings_match"]

_log = logging.getLogger(__name__)


@dataclass
class ShardSource:
    """What a run reads from a shard folder.

    Attributes:
        index: the shard index (:func:`~sista_kit.data.shards.read_shard_index`).
        corpus: the training split's reports (tokenizer, corpus-fitted similarity providers).
        folder: the dataset folder the shards were written from, when it is present (the validation
            split and held-out retrieval read it); None when only the shards were copied.
    """

    index: dict
    corpus: list[str]
    folder: Path | None


def open_shards(data: str, split: str) -> ShardSource:
    """The shards of ``data`` (a shard folder, or a dataset folder holding ``shards/``) for ``split``."""
    index = read_shard_index(data, what="--data")
    source = Path(index["request"]["source"])
    # the folder the shards sit in (moved with them), else the one they were written from
    candidates = [Path(index["root"]).parent, source]
    folder = next((c for c in candidates if _holds(c, index["request"]["source_meta"])), None)
    if folder is None:
        _log.warning("the dataset folder %s of the shards is absent: no validation split is read", source)
    return ShardSource(index, shard_corpus(index, split), folder)


def _holds(folder: Path, meta: dict) -> bool:
    """Whether ``folder`` is the complete dataset folder whose meta.json is ``meta``."""
    try:
        return read_meta(folder) == meta
    except (FileNotFoundError, ValueError):
        return False


def stored_embeddings_match(index: dict, loss_kwargs: dict[str, Any]) -> bool:
    """Whether the shards carry report embeddings made by the loss's similarity provider (same name and
    options; a corpus-fitted provider is fitted on the sharded pretraining split in both cases)."""
    stored = index["request"].get("report_embeddings")
    if not stored or not isinstance(loss_kwargs.get("similarity"), str):
        return False
    options = {k: v for k, v in (loss_kwargs.get("similarity_kwargs") or {}).items() if k != "corpus"}
    return (
        stored.get("similarity") == loss_kwargs["similarity"]
        and (stored.get("similarity_kwargs") or {}) == options
    )


def _rank_slice(src, rank: int, world_size: int):
    """Every ``world_size``-th shard from ``rank`` on (webdataset's split_by_node with an explicit rank)."""
    yield from islice(src, rank, None, world_size)


class _RankSeed:
    """Seed of a (rank, DataLoader worker) for resampling shards; ResampledShards2 adds the epoch."""

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank = seed, rank

    def __call__(self) -> int:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        return self.seed * 100_003 + self.rank * 1000 + (info.id if info is not None else 0)


def _check_shares(counts: list[int], streams: int, batch_size: int, resampled: bool) -> None:
    """Each (rank, worker) stream must get shards holding at least one batch per pass."""
    if resampled:
        if min(counts) < 1:
            raise ValueError("a shard holds no sample")
        return
    if len(counts) < streams:
        raise ValueError(
            f"{len(counts)} shards cannot feed {streams} ranks x workers: write more shards "
            "(a smaller max_count) or set dataset_resampled"
        )
    share = sum(sorted(counts)[: len(counts) // streams])
    if share < batch_size:
        raise ValueError(
            f"a rank's worker may get only {share} samples per pass, less than batch_size={batch_size}: "
            "write more samples per shard, fewer workers, or set dataset_resampled"
        )


def shard_loader(
    index: dict,
    split: str,
    batch_size: int,
    items: ShardItems,
    collate: PretrainCollate,
    workers: int,
    seed: int,
    world_size: int,
    rank: int,
    resampled: bool = False,
    num_samples: int | None = None,
    pin_memory: bool = False,
    progress: bool = False,
    desc: str = "train",
) -> DataInfo:
    """A DataInfo whose loader yields this rank's full batches of ``split`` from the shards.

    Args:
        index: the shard index.
        split: the split to read.
        batch_size: per process.
        items: raw sample -> pretraining item.
        collate: items -> ``(images, TextBatch)``.
        workers: DataLoader worker processes (0 = in this process).
        seed: shard shuffling seed (the same on every rank).
        world_size, rank: this process's place.
        resampled: draw shards with replacement (open_clip's ``--dataset-resampled``).
        num_samples: samples per epoch (open_clip's ``--train-num-samples``); default: the split's count.
        pin_memory, progress, desc: as for the folder loader.
    """
    import webdataset as wds
    from open_clip_train.data import (
        _SAMPLE_SHUFFLE_INITIAL,
        _SAMPLE_SHUFFLE_SIZE,
        _SHARD_SHUFFLE_INITIAL,
        _SHARD_SHUFFLE_SIZE,
        ResampledShards2,
        SharedEpoch,
        detshuffle2,
        tarfile_to_samples_nothrow,
    )

    urls = shard_urls(index, split)
    counts = [s["count"] for s in index["splits"][split]["shards"]]
    _check_shares(counts, world_size * max(1, workers), batch_size, resampled)
    shared_epoch = SharedEpoch(epoch=0)
    if resampled:
        stages: list[Any] = [
            ResampledShards2(urls, deterministic=True, worker_seed=_RankSeed(seed, rank), epoch=shared_epoch)
        ]
    else:
        stages = [
            wds.SimpleShardList(urls),
            detshuffle2(
                bufsize=_SHARD_SHUFFLE_SIZE, initial=_SHARD_SHUFFLE_INITIAL, seed=seed, epoch=shared_epoch
            ),
            partial(_rank_slice, rank=rank, world_size=world_size),
            wds.split_by_worker,
        ]
    stages += [
        tarfile_to_samples_nothrow,
        wds.shuffle(bufsize=_SAMPLE_SHUFFLE_SIZE, initial=_SAMPLE_SHUFFLE_INITIAL),
        wds.map(items),
        wds.batched(batch_size, collation_fn=collate, partial=False),
    ]
    total = int(num_samples or sum(counts))
    global_batch = batch_size * world_size
    streams = max(1, workers)
    worker_batches = total // global_batch // streams
    if worker_batches == 0:
        raise ValueError(
            f"{total} samples cannot fill one global batch of {global_batch} per worker "
            f"({batch_size} per process x {world_size}, {streams} worker stream(s))"
        )
    num_batches = worker_batches * streams
    dataset = wds.DataPipeline(*stages).with_epoch(worker_batches)
    loader = wds.WebLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
    )
    wrapped = ProgressLoader(loader, num_batches, num_batches * global_batch, enabled=progress, desc=desc)
    return DataInfo(wrapped, None, shared_epoch)
