"""Object-CXR: foreign-object boxes; official train -> train / val 80 / 20, dev -> test (MGCA's split)."""

from __future__ import annotations

from pathlib import Path

from ..adapters.base import find_file
from ..adapters.object_cxr import ObjectCXR
from ..synthetic.findings import CLS
from .study import Collected, Study, label_row, safe_id

#: The folder format's classes are the project's findings; foreign objects (compact, box-sized) are
#: stored under this localised class until the format carries a dataset's own vocabulary.
TARGET = "nodule"


def collect(src: Path) -> Collected:
    """One study per image; every object (rectangle, ellipse or polygon) becomes a box."""
    out = Collected(
        [],
        {},
        [find_file(src, "train.csv"), find_file(src, "dev.csv")],
        {"fractions": {"train": 0.8, "val": 0.2}},
        {TARGET: ["foreign object"]},
        {"cls": [TARGET], "det": [TARGET]},
    )
    for split, fixed in (("train", None), ("dev", "test")):
        ds = ObjectCXR(src, split=split)
        for r in ds.records:
            boxes = r["boxes"]
            out.studies.append(
                Study(
                    sample_id=safe_id(f"{split}_{Path(r['sample_id']).stem}"),
                    image_path=r["image_path"],
                    labels=label_row(TARGET) if r["label"] else label_row(),
                    group=f"{split}/{r['sample_id']}",
                    split=fixed,
                    boxes=boxes,
                    box_classes=[CLS[TARGET]] * len(boxes),
                    source_label="foreign_object" if r["label"] else "none",
                )
            )
    return out
