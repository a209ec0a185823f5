"""RSNA Pneumonia Detection Challenge: ``stage_2_train_labels.csv`` (boxes) + DICOM images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import RecordDataset, find_file, inside, parse_float, read_csv


class RSNAPneumonia(RecordDataset):
    """One record per patient: ``boxes`` float32 (M, 4) as x0, y0, x1, y1 in pixels, ``label`` 0/1."""

    name = "RSNA Pneumonia"

    def __init__(
        self,
        root: str | os.PathLike,
        labels_csv: str = "stage_2_train_labels.csv",
        images_dir: str = "stage_2_train_images",
    ) -> None:
        root = Path(root)
        path = find_file(root, labels_csv)
        rows = read_csv(path, ("patientId", "x", "y", "width", "height", "Target"))
        img_root = root / images_dir
        if not img_root.is_dir():
            raise FileNotFoundError(f"missing image folder {img_root}")
        if next(img_root.glob("*.dcm"), None) is None:
            raise FileNotFoundError(f"no DICOM (*.dcm) files in {img_root}")
        per: dict[str, list] = {}
        paths: dict[str, Path] = {}
        for ln, r in enumerate(rows, 2):
            pid = r["patientId"]
            if pid not in paths:
                paths[pid] = inside(img_root, f"{pid}.dcm", f"{path} line {ln} patientId")
            boxes = per.setdefault(pid, [])
            if r["Target"] not in ("0", "1"):
                raise ValueError(f"{path} line {ln}: Target must be 0 or 1, got {r['Target']!r}")
            if r["Target"] == "1":
                x, y, w, h = (
                    parse_float(r[c], path, f"line {ln} {c}") for c in ("x", "y", "width", "height")
                )
                if w <= 0 or h <= 0:
                    raise ValueError(f"{path} line {ln}: box has non-positive size ({w} x {h})")
                boxes.append([x, y, x + w, y + h])
        records = [
            {
                "sample_id": pid,
                "image_path": paths[pid],
                "boxes": np.asarray(b, dtype=np.float32).reshape(-1, 4),
                "label": int(bool(b)),
            }
            for pid, b in per.items()
        ]
        super().__init__(records, {}, ("pneumonia",), source=path)
