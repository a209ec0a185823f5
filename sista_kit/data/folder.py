"""The dataset-folder format: its layout, writer and readers (synthetic data, the IU track, training,
downstream transfer and the benchmark all read and write it).

Layout of a dataset folder::

    meta.json                    generation arguments (written last: marks a complete folder)
    manifest.jsonl               one study per line (id, report, labels, finding_key, boxes, spans, ...)
    images/{id}.png              8-bit grayscale radiograph
    masks/{id}.png               segmentation label map: 0 background, 1..len(LOCALISED) (class order of
                                 LOCALISED); where findings overlap the one later in LABEL_MAP_PRIORITY wins
    findings/{id}.png            per-finding masks for grounding: bit k set where CLASS_NAMES[k] is
    annotations/det_{split}.json COCO detection annotations (categories = LOCALISED, ids from 1)
    splits/{pretrain,train,val,test}.txt
    shards/                      optional webdataset tar shards of splits, for streaming at scale
                                 (written by :func:`sista_kit.data.shards.write_shards`)

A folder is complete once ``meta.json`` exists (it is written last, atomically); a folder whose
``meta.json`` records other arguments is never silently reused (:func:`is_written`).
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

from sista_kit.data.synthetic.findings import CLASS_NAMES, LABEL_MAP_PRIORITY, LOCALISED, finding_key
from sista_kit.data.synthetic.generator import Sample
from sista_kit.io import write_json_atomic, write_text_atomic

__all__ = [
    "DEFAULT_SPLIT_FRACTIONS",
    "FORMAT_VERSION",
    "SPLITS",
    "export_folder",
    "is_written",
    "label_fraction",
    "label_map",
    "load_dataset",
    "read_manifest",
    "read_image",
    "read_meta",
    "require_dataset_folder",
    "row_finding_key",
    "sample_from_row",
    "split_assignment",
    "synthetic_folder_name",
]

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
    from .subsets import stratified_order

    if strata is not None and len(strata) != n:
        raise ValueError(f"strata has {len(strata)} entries for {n} ids")
    count = max(1, round(fraction * n))
    chosen = np.sort(stratified_order(n, seed, strata)[:count])
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
    """Write a dataset folder (the layout of this module's docstring) from chunks of samples.

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
    if assign.ndim == 1 and len(assign) == 0:
        raise ValueError(f"no studies to write to {root}: a dataset folder needs at least one")
    if assign.ndim != 1 or (assign.min() < 0 or assign.max() >= len(SPLITS)):
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
    write_text_atomic(root / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    for si, split in enumerate(SPLITS):
        sel = [r for r, a in zip(rows, assign, strict=True) if a == si]
        write_text_atomic(root / "splits" / f"{split}.txt", "".join(r["id"] + "\n" for r in sel))
        write_json_atomic(root / "annotations" / f"det_{split}.json", _coco(sel, image_size, description))
    write_json_atomic(meta_path, meta, indent=1)  # last: marks the folder complete
    return root


def read_manifest(root: str | os.PathLike, split: str | None = None) -> list[dict]:
    """Manifest rows of a written dataset folder, optionally of one split."""
    root = require_dataset_folder(root)
    path = root / "manifest.jsonl"
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


def read_image(path: Path) -> np.ndarray:
    """A PNG as a uint8 array; a missing or unreadable file raises naming its path."""
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path}") from None
    except OSError as e:
        raise OSError(f"cannot read image {path}: {e}") from e


def row_finding_key(row: dict) -> str:
    """A manifest row's finding-set key: the stored one, else derived from its labels."""
    return row.get("finding_key") or finding_key(np.asarray(row["labels"]) > 0)


def sample_from_row(root: str | os.PathLike, row: dict) -> Sample:
    """Load one :class:`Sample` (image and masks from disk) from a manifest row."""
    root = Path(root)
    idx = {name: i for i, name in enumerate(CLASS_NAMES)}
    labels = np.asarray(row["labels"], dtype=np.float32)
    return Sample(
        sample_id=row["id"],
        image=read_image(root / row["image"]),
        report=row["report"],
        labels=labels,
        finding_key=row_finding_key(row),
        maskbits=read_image(root / row["findings_mask"]),
        boxes=[(idx[b["finding"]], *b["bbox"]) for b in row["boxes"]],
        spans=[(idx[s["finding"]], s["start"], s["end"]) for s in row["spans"]],
        negated=[idx[x] for x in row.get("negated", [])],
        findings=row.get("findings", []),
        device=row.get("device", "none"),
    )


def load_dataset(root: str | os.PathLike, split: str | None = None) -> list[Sample]:
    """All samples (or one split) of a written folder, loaded into memory."""
    return [sample_from_row(root, r) for r in read_manifest(root, split)]


def read_meta(root: str | os.PathLike) -> dict:
    """The ``meta.json`` of a complete dataset folder (generation arguments, ``image_size``)."""
    path = Path(require_dataset_folder(root)) / "meta.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is corrupt: {e}") from e


def require_dataset_folder(root: str | os.PathLike, what: str = "dataset folder") -> Path:
    """``root`` as a Path after checking it is a complete dataset folder (``meta.json`` + manifest).

    Args:
        root: the folder.
        what: how an error names it (e.g. ``"--data ./x"``).
    """
    root = Path(root)
    missing = [name for name in ("meta.json", "manifest.jsonl") if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{what} {root} is not a complete dataset folder (no {' / '.join(missing)}); write one with "
            "sista_kit.data.synthetic.write_dataset or sista_kit.data.iu.write_iu_dataset"
        )
    return root


def synthetic_folder_name(
    num_samples: int, seed: int, image_size: int, split_fractions: dict[str, float] | None = None
) -> str:
    """The folder name under which training and the benchmark cache the embedded synthetic data.

    Non-default split fractions are part of the name, in per mille of (pretrain, train, val, test).
    """
    name = f"synthetic-n{num_samples}-s{seed}-{image_size}"
    if split_fractions is not None and dict(split_fractions) != dict(DEFAULT_SPLIT_FRACTIONS):
        name += "-split" + "-".join(f"{round(1000 * split_fractions[s])}" for s in SPLITS)
    return name
