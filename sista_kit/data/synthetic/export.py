"""Disk export of a dataset (synthetic or IU track), reading it back, splits and label fractions.

Layout of a dataset folder::

    meta.json                    generation arguments (written last: marks a complete folder)
    manifest.jsonl               one study per line (id, report, labels, finding_key, boxes, spans, ...)
    images/{id}.png              8-bit grayscale radiograph
    masks/{id}.png               segmentation label map: 0 background, 1..len(LOCALISED) (class order of
                                 LOCALISED); where findings overlap the one later in LABEL_MAP_PRIORITY wins
    findings/{id}.png            per-finding masks for grounding: bit k set where CLASS_NAMES[k] is
    annotations/det_{split}.json COCO detection annotations (categories = LOCALISED, ids from 1)
    splits/{pretrain,train,val,test}.txt
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .findings import CLASS_NAMES, LABEL_MAP_PRIORITY, LOCALISED, finding_key
from .generator import Sample, SyntheticBatch, _chunk_size, _head, generate_chunk, iter_chunks, unpack_masks

FORMAT_VERSION = 1
SPLITS = ("pretrain", "train", "val", "test")
DEFAULT_SPLIT_FRACTIONS = {"pretrain": 0.70, "train": 0.15, "val": 0.05, "test": 0.10}


def label_map(maskbits: np.ndarray) -> np.ndarray:
    """Segmentation label map (H, W) uint8 from packed finding masks, painting LABEL_MAP_PRIORITY in order."""
    out = np.zeros(maskbits.shape, dtype=np.uint8)
    for name in LABEL_MAP_PRIORITY:
        bit = (maskbits >> CLASS_NAMES.index(name)) & 1
        out[bit.astype(bool)] = LOCALISED.index(name) + 1
    return out


def split_assignment(n: int, seed: int, fractions: dict[str, float] | None = None) -> np.ndarray:
    """Split index (into SPLITS) of each of ``n`` studies, a seeded shuffle cut by ``fractions``."""
    fr = dict(DEFAULT_SPLIT_FRACTIONS if fractions is None else fractions)
    if set(fr) != set(SPLITS) or any(v < 0 for v in fr.values()) or abs(sum(fr.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must give {SPLITS} non-negative values summing to 1, got {fr}")
    order = np.random.default_rng([seed, 0x5B1]).permutation(n)
    bounds = np.round(np.cumsum([fr[s] for s in SPLITS]) * n).astype(int)
    assign = np.empty(n, dtype=np.int64)
    assign[order] = np.searchsorted(bounds, np.arange(n), side="right")
    return assign


def label_fraction(
    ids: list[str], fraction: float, seed: int = 0, strata: list[str] | None = None
) -> list[str]:
    """A deterministic subset of ``ids`` with ``max(1, round(fraction * len(ids)))`` elements.

    With ``strata`` (e.g. finding keys) the subset is stratified: studies are ranked by their relative
    position in a seeded shuffle of their own stratum, so each stratum contributes in proportion. For a
    fixed seed the subsets are nested (the 1% subset lies inside the 10% one). Order of ``ids`` is kept.
    """
    n = len(ids)
    if n == 0:
        raise ValueError("label_fraction needs at least one id")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    count = max(1, round(fraction * n))
    rng = np.random.default_rng([seed, 0xF7AC])
    perm = rng.permutation(n)
    if strata is None:
        score = np.empty(n)
        score[perm] = np.arange(n) / n
    else:
        if len(strata) != n:
            raise ValueError(f"strata has {len(strata)} entries for {n} ids")
        _, group = np.unique(np.asarray(strata, dtype=object).astype(str), return_inverse=True)
        g = group[perm]
        order = np.argsort(g, kind="stable")  # within a stratum, shuffled order is kept
        sizes = np.bincount(g)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rank = np.empty(n)
        rank[order] = np.arange(n) - starts[g[order]]
        score = np.empty(n)
        score[perm] = (rank + 0.5) / sizes[g] + rng.random(n) * 1e-9
    chosen = np.sort(np.argsort(score, kind="stable")[:count])
    return [ids[i] for i in chosen]


def _manifest_row(s: Sample, split: str | None = None) -> dict:
    return {
        "id": s.sample_id,
        "split": split,
        "image": f"images/{s.sample_id}.png",
        "mask": f"masks/{s.sample_id}.png",
        "findings_mask": f"findings/{s.sample_id}.png",
        "report": s.report,
        "labels": [int(x) for x in s.labels],
        "finding_key": s.finding_key,
        "findings": s.findings,
        "boxes": [{"finding": CLASS_NAMES[k], "bbox": [x0, y0, x1, y1]} for k, x0, y0, x1, y1 in s.boxes],
        "spans": [{"finding": CLASS_NAMES[k], "start": a, "end": b} for k, a, b in s.spans],
        "negated": [CLASS_NAMES[k] for k in s.negated],
        "device": s.device,
    }


def _write_chunk(root: str, produce: Callable[..., list[Sample]], args: tuple) -> list[dict]:
    """Produce one chunk of samples and write its PNGs (runs in worker processes); returns manifest rows."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for s in produce(*args):
        Image.fromarray(s.image).save(os.path.join(root, "images", f"{s.sample_id}.png"), compress_level=1)
        Image.fromarray(label_map(s.maskbits)).save(
            os.path.join(root, "masks", f"{s.sample_id}.png"), compress_level=1
        )
        Image.fromarray(s.maskbits).save(
            os.path.join(root, "findings", f"{s.sample_id}.png"), compress_level=1
        )
        rows.append(_manifest_row(s))
    return rows


def _coco(rows: list[dict], image_size: int, description: str) -> dict:
    cats = [{"id": i + 1, "name": name, "supercategory": "finding"} for i, name in enumerate(LOCALISED)]
    images, anns = [], []
    for img_id, r in enumerate(rows, 1):
        images.append(
            {
                "id": img_id,
                "file_name": r["image"],
                "width": image_size,
                "height": image_size,
                "sample_id": r["id"],
            }
        )
        for b in r["boxes"]:
            x0, y0, x1, y1 = b["bbox"]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": LOCALISED.index(b["finding"]) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": description},
        "images": images,
        "annotations": anns,
        "categories": cats,
    }


def is_written(root: str | os.PathLike, meta: dict, overwrite: bool = False) -> bool:
    """Whether ``root`` already holds the dataset described by ``meta`` (its ``meta.json`` equals it).

    A folder holding a different dataset raises :class:`FileExistsError` unless ``overwrite=True``.
    """
    meta_path = Path(root) / "meta.json"
    if not meta_path.exists():
        return False
    try:
        old = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_path} is corrupt: {e}") from e
    if old == meta:
        return True
    if not overwrite:
        raise FileExistsError(
            f"{root} holds a different dataset ({meta_path}); pass overwrite=True or choose another folder"
        )
    return False


def export_folder(
    root: str | os.PathLike,
    meta: dict,
    produce: Callable[..., list[Sample]],
    jobs: list[tuple],
    assign: np.ndarray,
    description: str = "sista_kit chest radiographs",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a dataset folder (layout in the module docstring) from chunks of samples.

    ``produce(*job)`` returns the samples of one chunk (a module-level function, so that worker
    processes can run it); chunks are concatenated in ``jobs`` order and sample ``i`` goes to split
    ``SPLITS[assign[i]]``. ``meta`` (JSON-serialisable, with ``image_size``) is written last to
    ``meta.json``; when the folder already records the same ``meta`` nothing is written (see
    :func:`is_written`). ``workers`` processes produce and encode chunks in parallel (default: up to
    2; forked on Linux, like DataLoader workers); the result does not depend on it.
    """
    root = Path(root)
    if is_written(root, meta, overwrite):
        return root
    assign = np.asarray(assign, dtype=np.int64)
    if assign.ndim != 1 or (len(assign) and (assign.min() < 0 or assign.max() >= len(SPLITS))):
        raise ValueError(f"assign must be a 1-D array of split indices in [0, {len(SPLITS)}), got {assign}")
    image_size = int(meta["image_size"])
    meta_path = root / "meta.json"
    if meta_path.exists():  # a different dataset, and overwrite=True (else is_written raised)
        for sub in ("images", "masks", "findings", "annotations", "splits"):
            shutil.rmtree(root / sub, ignore_errors=True)
        meta_path.unlink(missing_ok=True)
    for sub in ("images", "masks", "findings", "annotations", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    from tqdm.auto import tqdm

    bar = tqdm(total=len(assign), desc=f"writing {root.name}", unit="study", disable=not progress)
    rows: list[dict] = []
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(
            workers, mp_context=mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        ) as ex:
            for part in ex.map(_write_chunk, [str(root)] * len(jobs), [produce] * len(jobs), jobs):
                rows += part
                bar.update(len(part))
    else:
        for job in jobs:
            part = _write_chunk(str(root), produce, job)
            rows += part
            bar.update(len(part))
    bar.close()
    if len(rows) != len(assign):
        raise ValueError(f"the chunks produced {len(rows)} samples but assign has {len(assign)} entries")
    for r, a in zip(rows, assign, strict=True):
        r["split"] = SPLITS[a]
    with open(root / "manifest.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    for si, split in enumerate(SPLITS):
        sel = [r for r, a in zip(rows, assign, strict=True) if a == si]
        (root / "splits" / f"{split}.txt").write_text("".join(r["id"] + "\n" for r in sel))
        coco = _coco(sel, image_size, description)
        (root / "annotations" / f"det_{split}.json").write_text(json.dumps(coco))
    meta_path.write_text(json.dumps(meta, indent=1))
    return root


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


def read_manifest(root: str | os.PathLike, split: str | None = None) -> list[dict]:
    """Manifest rows of a written dataset folder, optionally of one split."""
    root = Path(root)
    path = root / "manifest.jsonl"
    if not (root / "meta.json").exists() or not path.exists():
        raise FileNotFoundError(
            f"{root} is not a complete dataset folder (no meta.json / manifest.jsonl); write one with "
            "sista_kit.data.synthetic.write_dataset or sista_kit.data.iu.write_iu_dataset"
        )
    rows = []
    with open(path) as fh:
        for ln, line in enumerate(fh, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {ln} is not valid JSON: {e}") from e
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        rows = [r for r in rows if r["split"] == split]
    return rows


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path}") from None
    except OSError as e:
        raise OSError(f"cannot read image {path}: {e}") from e


def sample_from_row(root: str | os.PathLike, row: dict) -> Sample:
    """Load one :class:`Sample` (image and masks from disk) from a manifest row."""
    root = Path(root)
    idx = {name: i for i, name in enumerate(CLASS_NAMES)}
    labels = np.asarray(row["labels"], dtype=np.float32)
    return Sample(
        sample_id=row["id"],
        image=_read_png(root / row["image"]),
        report=row["report"],
        labels=labels,
        finding_key=row.get("finding_key") or finding_key(labels > 0),
        maskbits=_read_png(root / row["findings_mask"]),
        boxes=[(idx[b["finding"]], *b["bbox"]) for b in row["boxes"]],
        spans=[(idx[s["finding"]], s["start"], s["end"]) for s in row["spans"]],
        negated=[idx[x] for x in row.get("negated", [])],
        findings=row.get("findings", []),
        device=row.get("device", "none"),
    )


def load_dataset(root: str | os.PathLike, split: str | None = None) -> list[Sample]:
    """All samples (or one split) of a written folder, loaded into memory."""
    return [sample_from_row(root, r) for r in read_manifest(root, split)]


__all__ = [
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
