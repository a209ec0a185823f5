"""Decoding step of the prepare command: each study's image (PNG / JPEG / DICOM) read once, resized,
its boxes and mask rasterised, and kept in a staging folder, so an interrupted run resumes where it
stopped. A missing or undecodable image is a counted drop; a bad annotation is an error."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..adapters.base import read_image
from ..adapters.siim import rle_decode
from .study import Study

RECORDS = "records.jsonl"


def _resize(img: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    mode = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(img).resize((size, size), mode))


def _box_px(box: np.ndarray, sx: float, sy: float, size: int) -> tuple[int, int, int, int] | None:
    """Source-pixel box -> integer box at the output size (x1 / y1 exclusive); None if it vanishes."""
    x0, y0, x1, y1 = (float(v) for v in box)
    bx0, by0 = max(0, math.floor(x0 * sx)), max(0, math.floor(y0 * sy))
    bx1, by1 = min(size, math.ceil(x1 * sx)), min(size, math.ceil(y1 * sy))
    return (bx0, by0, bx1, by1) if bx1 > bx0 and by1 > by0 else None


def _mask_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Tight boxes of a bool mask, one per image half (the synthetic rule: one box per finding and side)."""
    out = []
    half = mask.shape[1] // 2
    for lo, hi in ((0, half), (half, mask.shape[1])):
        part = mask[:, lo:hi]
        if not part.any():
            continue
        ys, xs = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
        out.append((lo + int(xs[0]), int(ys[0]), lo + int(xs[-1]) + 1, int(ys[-1]) + 1))
    return out


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stage_one(study: Study, size: int, staging: str, src_root: str) -> dict:
    """Decode one study into ``staging`` (image and maskbits PNGs); returns its record (or its drop)."""
    path = Path(study.image_path)
    try:
        img = read_image(path)
    except FileNotFoundError:
        return {"id": study.sample_id, "dropped": "missing_image", "path": str(path)}
    except ValueError:
        return {"id": study.sample_id, "dropped": "corrupt_image", "path": str(path)}
    if img.ndim != 2 or min(img.shape) < 2:
        return {"id": study.sample_id, "dropped": "corrupt_image", "path": str(path)}
    h, w = img.shape
    sx, sy = size / w, size / h
    bits = np.zeros((size, size), dtype=np.uint8)
    boxes = []
    for box, k in zip(study.boxes, study.box_classes, strict=True):
        b = _box_px(box, sx, sy, size)
        if b is None:
            continue
        boxes.append([int(k), *b])
        bits[b[1] : b[3], b[0] : b[2]] |= np.uint8(1 << k)
    if study.mask_class is not None and study.rles:
        mask = np.zeros((h, w), dtype=bool)
        for rle in study.rles:
            try:
                mask |= rle_decode(rle, h, w)
            except ValueError as e:
                raise ValueError(f"bad EncodedPixels for {study.sample_id} ({path}): {e}") from e
        small = _resize(mask.astype(np.uint8) * 255, size, nearest=True) > 127
        bits[small] |= np.uint8(1 << study.mask_class)
        boxes += [[study.mask_class, *b] for b in _mask_boxes(small)]
    out = Path(staging)
    Image.fromarray(_resize(img, size)).save(out / "images" / f"{study.sample_id}.png", compress_level=1)
    Image.fromarray(bits).save(out / "masks" / f"{study.sample_id}.png", compress_level=1)
    try:
        src = str(path.resolve().relative_to(Path(src_root).resolve()))
    except ValueError:
        src = str(path)
    return {
        "id": study.sample_id,
        "source": src,
        "sha256": sha256_file(path),
        "boxes": boxes,
        "source_size": [h, w],
    }


def _stage_many(studies: list[Study], size: int, staging: str, src_root: str) -> list[dict]:
    return [stage_one(s, size, staging, src_root) for s in studies]


def read_staged(staging: Path) -> dict[str, dict]:
    """Records already staged (a truncated last line, from an interrupted run, is ignored)."""
    path = staging / RECORDS
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[rec["id"]] = rec
    return done


def stage_all(
    studies: list[Study],
    size: int,
    staging: Path,
    src_root: Path,
    workers: int = 1,
    progress: bool = True,
    chunk: int = 32,
) -> dict[str, dict]:
    """Stage every study not staged yet (resuming earlier work); returns records by sample id."""
    from tqdm.auto import tqdm

    for sub in ("images", "masks"):
        (staging / sub).mkdir(parents=True, exist_ok=True)
    done = read_staged(staging)
    todo = [s for s in studies if s.sample_id not in done]
    bar = tqdm(
        total=len(studies),
        initial=len(studies) - len(todo),
        desc="decoding",
        unit="image",
        disable=not progress,
    )
    parts = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
    with open(staging / RECORDS, "a") as fh:
        for recs in _map(parts, size, staging, src_root, workers):
            for rec in recs:
                fh.write(json.dumps(rec) + "\n")
                done[rec["id"]] = rec
            fh.flush()
            bar.update(len(recs))
    bar.close()
    return done


def _map(
    parts: list[list[Study]], size: int, staging: Path, src_root: Path, workers: int
) -> Iterator[list[dict]]:
    if workers <= 1 or len(parts) <= 1:
        for p in parts:
            yield _stage_many(p, size, str(staging), str(src_root))
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(min(workers, os.cpu_count() or 1), mp_context=ctx) as ex:
        n = len(parts)
        yield from ex.map(_stage_many, parts, [size] * n, [str(staging)] * n, [str(src_root)] * n)
