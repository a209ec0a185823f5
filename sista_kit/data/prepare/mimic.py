"""MIMIC-CXR-JPG with the MIMIC-CXR reports: pretraining pairs, sectioned and filtered reports."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..adapters.base import CHEXPERT_LABELS, find_file
from ..adapters.mimic import MimicCXR
from ..synthetic.findings import CLASS_NAMES
from .study import Collected, Study, map_labels

#: Project finding <- CheXpert labels (a finding is positive when any of its labels is).
CHEXPERT_MAP: dict[str, list[str]] = {
    "consolidation": ["Consolidation", "Pneumonia"],
    "nodule": ["Lung Lesion"],
    "effusion": ["Pleural Effusion"],
    "pneumothorax": ["Pneumothorax"],
    "cardiomegaly": ["Cardiomegaly"],
    "atelectasis": ["Atelectasis"],
    "edema": ["Edema"],
}
OFFICIAL = {"validate": "val", "test": "test"}


def collect(
    src: Path,
    reports: str | os.PathLike | None = None,
    uncertainty: str = "ones",
    min_words: int = 3,
    probe_fraction: float = 0.1,
    last_paragraph: bool = True,
) -> Collected:
    """Frontal images with their FINDINGS / IMPRESSION text (the section script's last-paragraph fallback
    when ``last_paragraph``); reports empty or under ``min_words`` words are dropped and counted.

    Official ``train`` -> pretrain, except a seeded ``probe_fraction`` of its subjects -> train (for
    in-domain probes); ``validate`` -> val; ``test`` -> test.
    """
    if not 0.0 <= float(probe_fraction) < 1.0:
        raise ValueError(f"probe_fraction must lie in [0, 1), got {probe_fraction}")
    if int(min_words) < 1:
        raise ValueError(f"min_words must be >= 1, got {min_words}")
    ds = MimicCXR(
        src,
        split=None,
        reports_root=reports,
        uncertainty=uncertainty,
        require_report=False,
        last_paragraph_fallback=last_paragraph,
    )
    inputs = [find_file(src, "mimic-cxr-2.0.0-metadata.csv"), find_file(src, "mimic-cxr-2.0.0-split.csv")]
    try:
        inputs.append(find_file(src, "mimic-cxr-2.0.0-chexpert.csv"))
    except FileNotFoundError:
        pass
    out = Collected(
        [],
        dict(ds.dropped),
        inputs,
        {"fractions": {"pretrain": 1.0 - probe_fraction, "train": probe_fraction}},
        CHEXPERT_MAP,
        {"cls": list(CLASS_NAMES)},
    )
    for r in ds.records:
        sid = f"{r['sample_id']} (study s{r['study_id']})"
        if not r["report"]:
            out.drop("no_report_file" if r["report_path"] is None else "empty_report", sid)
            continue
        if len(r["report"].split()) - sum(k in r["report"] for k in ("FINDINGS:", "IMPRESSION:")) < min_words:
            out.drop("short_report", sid)
            continue
        labels = r["labels"] if r["labels"] is not None else np.zeros(len(CHEXPERT_LABELS), dtype=np.float32)
        sp = r["split"]
        if sp not in ("train", *OFFICIAL):
            raise ValueError(f"{inputs[1]}: dicom_id {r['sample_id']!r} has unknown split {sp!r}")
        fixed = OFFICIAL.get(sp) or ("pretrain" if probe_fraction == 0 else None)
        out.studies.append(
            Study(
                sample_id=r["sample_id"],
                image_path=r["image_path"],
                labels=map_labels(labels, CHEXPERT_LABELS, CHEXPERT_MAP),
                group=r["subject_id"],
                report=r["report"],
                split=fixed,
                source_label=f"s{r['study_id']}",
            )
        )
    return out
