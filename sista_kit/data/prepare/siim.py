"""SIIM-ACR Pneumothorax: DICOM images with run-length masks, 70 / 15 / 15 (MGCA's split)."""

from __future__ import annotations

from pathlib import Path

from ..adapters.base import find_file
from ..adapters.siim import SIIMPneumothorax
from ..synthetic.findings import CLS
from .study import Collected, Study, label_row, safe_id

TARGET = "pneumothorax"


def collect(src: Path, rle_csv: str = "train-rle.csv", images_dir: str = "dicom-images-train") -> Collected:
    """One study per image; the union of its run-length masks is the ``pneumothorax`` mask."""
    ds = SIIMPneumothorax(src, rle_csv=rle_csv, images_dir=images_dir)
    out = Collected(
        [],
        dict(ds.dropped),
        [find_file(src, rle_csv)],
        {"fractions": {"train": 0.7, "val": 0.15, "test": 0.15}},
        {TARGET: ["Pneumothorax (EncodedPixels)"]},
        {"cls": [TARGET], "seg": ["background", TARGET]},
    )
    for r in ds.records:
        out.studies.append(
            Study(
                sample_id=safe_id(r["sample_id"]),
                image_path=r["image_path"],
                labels=label_row(TARGET) if r["label"] else label_row(),
                group=r["sample_id"],
                rles=list(r["rles"]),
                mask_class=CLS[TARGET],
                source_label=TARGET if r["label"] else "normal",
            )
        )
    return out
