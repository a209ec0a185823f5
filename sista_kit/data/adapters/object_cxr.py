"""Object-CXR (foreign objects): ``train.csv`` / ``dev.csv`` with ``image_name,annotation`` + JPEGs.

An annotation is ``;``-separated objects: ``0 x1 y1 x2 y2`` (rectangle), ``1 x1 y1 x2 y2`` (ellipse in
its box) or ``2 x1 y1 x2 y2 ... xn yn`` (polygon); an empty annotation means no object.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import RecordDataset, find_file, inside, read_csv


def parse_annotation(text: str) -> np.ndarray:
    """Boxes float32 (M, 4) x0, y0, x1, y1 of one Object-CXR annotation string."""
    boxes = []
    for obj in filter(None, (o.strip() for o in (text or "").split(";"))):
        vals = obj.split()
        kind = vals[0]
        coords = np.array(vals[1:], dtype=np.float32)
        if kind in ("0", "1"):
            if len(coords) != 4:
                raise ValueError(f"shape {kind} needs 4 coordinates, got {len(coords)}")
            x0, y0, x1, y1 = coords
        elif kind == "2":
            if len(coords) < 6 or len(coords) % 2:
                raise ValueError(f"a polygon needs an even number (>= 6) of coordinates, got {len(coords)}")
            xs, ys = coords[0::2], coords[1::2]
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
        else:
            raise ValueError(f"unknown shape type {kind!r} (expected 0, 1 or 2)")
        boxes.append([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


class ObjectCXR(RecordDataset):
    """Object-CXR images with foreign-object ``boxes`` (M, 4) and ``label`` (any object)."""

    name = "Object-CXR"

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        if split not in ("train", "dev"):
            raise ValueError(f"Object-CXR split must be 'train' or 'dev', got {split!r}")
        root = Path(root)
        path = find_file(root, f"{split}.csv")
        records = []
        for ln, r in enumerate(read_csv(path, ("image_name", "annotation")), 2):
            try:
                boxes = parse_annotation(r["annotation"])
            except ValueError as e:
                raise ValueError(f"{path} line {ln}: {e}") from e
            records.append(
                {
                    "sample_id": r["image_name"],
                    "image_path": inside(root / split, r["image_name"], f"{path} line {ln} image_name"),
                    "boxes": boxes,
                    "label": int(len(boxes) > 0),
                }
            )
        super().__init__(records, {}, ("foreign_object",), source=path)
