"""CheXpert (or CheXpert-small): classification, MGCA's splits (official valid as test)."""

from __future__ import annotations

from pathlib import Path

from ..adapters.base import CHEXPERT_LABELS, find_file
from ..adapters.chexpert import CheXpert
from .mimic import CHEXPERT_MAP
from .study import Collected, Study, map_labels, safe_id

#: The five CheXpert competition tasks of MGCA's protocol, as project findings.
COMPETITION = ["atelectasis", "cardiomegaly", "consolidation", "edema", "effusion"]


def _patient(path: str) -> str:
    return next((p for p in Path(path).parts if p.startswith("patient")), path)


def collect(
    src: Path, uncertainty: str = "ones", val_size: int = 5000, frontal_only: bool = True
) -> Collected:
    """``train.csv`` -> train, with ``val_size`` images (whole patients, at most a fifth) -> val;
    ``valid.csv`` -> test (the labelled official split, as GLoRIA / MGCA use it)."""
    if int(val_size) < 1:
        raise ValueError(f"val_size must be >= 1, got {val_size}")
    inputs = [find_file(src, "train.csv"), find_file(src, "valid.csv")]
    out = Collected(
        [],
        {},
        inputs,
        {"count": {"split": "val", "n": int(val_size), "rest": "train", "cap_share": 0.2}},
        CHEXPERT_MAP,
        {"cls": COMPETITION},
    )
    for split, fixed in (("train", None), ("valid", "test")):
        ds = CheXpert(src, split=split, uncertainty=uncertainty, frontal_only=frontal_only)
        for k, v in ds.dropped.items():
            out.dropped[k] = out.dropped.get(k, 0) + v
        for r in ds.records:
            rel = Path(r["sample_id"])
            if rel.parts and (rel.parts[0] == src.name or rel.parts[0].startswith("CheXpert-v1.0")):
                rel = Path(*rel.parts[1:])
            out.studies.append(
                Study(
                    sample_id=safe_id(str(rel.with_suffix(""))),
                    image_path=r["image_path"],
                    labels=map_labels(r["labels"], CHEXPERT_LABELS, CHEXPERT_MAP),
                    group=_patient(r["sample_id"]),
                    split=fixed,
                    source_label=r["sample_id"],
                )
            )
    return out
