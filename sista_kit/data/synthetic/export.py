"""Disk export of the embedded synthetic dataset, in the dataset-folder format of
:mod:`sista_kit.data.folder` (which holds the layout, the writer and the readers; they are
re-exported here under their old import path).
"""

from __future__ import annotations

import os
from pathlib import Path

from sista_kit.data.folder import (
    DEFAULT_SPLIT_FRACTIONS,
    FORMAT_VERSION,
    SPLITS,
    export_folder,
    is_written,
    label_fraction,
    label_map,
    load_dataset,
    read_manifest,
    sample_from_row,
    split_assignment,
)

from .findings import CLASS_NAMES, LOCALISED
from .generator import Sample, SyntheticBatch, _chunk_size, _head, generate_chunk, iter_chunks, unpack_masks


def _synthetic_chunk(seed: int, chunk: int, image_size: int, keep: int, kwargs: dict) -> list[Sample]:
    """The first ``keep`` samples of synthetic chunk ``chunk``."""
    batch: SyntheticBatch = generate_chunk(seed, chunk, image_size, **kwargs)
    if keep < len(batch):
        batch = _head(batch, keep)
    return batch.samples()


def write_dataset(
    root: str | os.PathLike,
    n: int,
    seed: int = 0,
    image_size: int = 128,
    split_fractions: dict[str, float] | None = None,
    normal_fraction: float = 1 / 3,
    device_fraction: float = 0.15,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``n`` synthetic studies to ``root`` (see the module docstring for the layout).

    Idempotent: when ``root/meta.json`` records the same arguments the folder is reused as is. A
    folder holding a different dataset raises unless ``overwrite=True``. ``workers`` processes
    generate and encode chunks in parallel (default: up to 2); the result does not depend on it.
    """
    meta = {
        "format_version": FORMAT_VERSION,
        "n": n,
        "seed": seed,
        "image_size": image_size,
        "split_fractions": dict(DEFAULT_SPLIT_FRACTIONS if split_fractions is None else split_fractions),
        "normal_fraction": normal_fraction,
        "device_fraction": device_fraction,
        "class_names": list(CLASS_NAMES),
        "localised": list(LOCALISED),
    }
    if is_written(root, meta, overwrite):
        return Path(root)
    assign = split_assignment(n, seed, split_fractions)
    m = _chunk_size(image_size)
    kwargs = {"normal_fraction": normal_fraction, "device_fraction": device_fraction}
    jobs = [(seed, c, image_size, min(m, n - c * m), kwargs) for c in range(-(-n // m))]
    return export_folder(
        root,
        meta,
        _synthetic_chunk,
        jobs,
        assign,
        description="sista_kit synthetic chest radiographs",
        workers=workers,
        overwrite=overwrite,
        progress=progress,
    )


__all__ = [
    "DEFAULT_SPLIT_FRACTIONS",
    "FORMAT_VERSION",
    "write_dataset",
    "export_folder",
    "is_written",
    "read_manifest",
    "load_dataset",
    "sample_from_row",
    "label_fraction",
    "split_assignment",
    "label_map",
    "unpack_masks",
    "iter_chunks",
    "SPLITS",
]
