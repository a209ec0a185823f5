"""RSNA Pneumonia: DICOM images with opacity boxes, 60 / 20 / 20 per patient (MGCA's detection split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..adapters.base import find_file
from ..adapters.rsna import RSNAPneumonia
from ..synthetic.findings import CLS
from .study import Collected, Study, label_row

TARGET = "consolidation"


def collect(
    src: Path, labels_csv: str = "stage_2_train_labels.csv", images_dir: str = "stage_2_train_images"
) -> Collected:
    """One study per patient; its pneumonia boxes become ``consolidation`` boxes (and label)."""
    ds = RSNAPneumonia(src, labels_csv=labels_csv, images_dir=images_dir)
    out = Collected(
        [],
        dict(ds.dropped),
        [find_file(src, labels_csv)],
        {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
        {TARGET: ["Lung Opacity (pneumonia box)"]},
        {"cls": [TARGET], "det": [TARGET]},
    )
    for r in ds.records:
        boxes = np.asarray(r["boxes"], dtype=np.float32).reshape(-1, 4)
        out.studies.append(
            Study(
                sample_id=r["sample_id"],
                image_path=r["image_path"],
                labels=label_row(TARGET) if r["label"] else label_row(),
                group=r["sample_id"],
                boxes=boxes,
                box_classes=[CLS[TARGET]] * len(boxes),
                source_label="pneumonia" if r["label"] else "normal",
            )
        )
    return out
