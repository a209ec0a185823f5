"""MIMIC-CXR-JPG (+ the MIMIC-CXR free-text reports) from the official PhysioNet layout.

Expected under ``root``: ``mimic-cxr-2.0.0-metadata.csv[.gz]``, ``mimic-cxr-2.0.0-split.csv[.gz]``,
optionally ``mimic-cxr-2.0.0-chexpert.csv[.gz]``, images ``files/p10/p10000032/s50414267/<dicom_id>.jpg``;
reports ``files/p10/p10000032/s50414267.txt`` under ``reports_root`` (default: ``root``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .base import CHEXPERT_LABELS, RecordDataset, check_policy, find_file, read_csv, uncertain

_SECTION = re.compile(r"^\s*([A-Z][A-Z /&]+):", re.MULTILINE)


def section_report(text: str) -> dict[str, str]:
    """Split a free-text report into upper-case sections (``FINDINGS``, ``IMPRESSION``, ...)."""
    heads = list(_SECTION.finditer(text))
    out = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out[m.group(1).strip()] = re.sub(r"\s+", " ", text[m.end() : end]).strip()
    return out


def report_text(sections: dict[str, str]) -> str:
    """``FINDINGS: ... IMPRESSION: ...`` from the sections that are present (empty if neither)."""
    parts = [f"{k}: {sections[k]}" for k in ("FINDINGS", "IMPRESSION") if sections.get(k)]
    return " ".join(parts)


class MimicCXR(RecordDataset):
    """Frontal MIMIC-CXR-JPG images with their sectioned report and CheXpert labels."""

    name = "MIMIC-CXR"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        reports_root: str | os.PathLike | None = None,
        views: tuple[str, ...] = ("PA", "AP"),
        uncertainty: str = "ones",
        require_report: bool = True,
    ) -> None:
        check_policy(uncertainty)
        root = Path(root)
        rroot = Path(reports_root) if reports_root is not None else root
        meta = read_csv(
            find_file(root, "mimic-cxr-2.0.0-metadata.csv"),
            ("dicom_id", "subject_id", "study_id", "ViewPosition"),
        )
        splits = {
            r["dicom_id"]: r["split"]
            for r in read_csv(
                find_file(root, "mimic-cxr-2.0.0-split.csv"), ("dicom_id", "study_id", "subject_id", "split")
            )
        }
        labels = {}
        try:
            lab_path = find_file(root, "mimic-cxr-2.0.0-chexpert.csv")
        except FileNotFoundError:
            lab_path = None
        if lab_path is not None:
            names = tuple(c for c in CHEXPERT_LABELS)
            for ln, r in enumerate(read_csv(lab_path, ("subject_id", "study_id", *names)), 2):
                try:
                    labels[r["study_id"]] = np.array(
                        [uncertain(r[c], uncertainty) for c in names], dtype=np.float32
                    )
                except ValueError:
                    raise ValueError(
                        f"{lab_path} line {ln}: label values must be 1, 0, -1 or blank"
                    ) from None
        records = []
        dropped = {"other_split": 0, "not_frontal": 0, "no_report": 0, "no_split": 0}
        for r in meta:
            sp = splits.get(r["dicom_id"])
            if sp is None:
                dropped["no_split"] += 1
                continue
            if split is not None and sp != split:
                dropped["other_split"] += 1
                continue
            if r["ViewPosition"] not in views:
                dropped["not_frontal"] += 1
                continue
            sub, st = r["subject_id"], r["study_id"]
            rel = Path("files") / f"p{sub[:2]}" / f"p{sub}"
            rpath = rroot / rel / f"s{st}.txt"
            text = ""
            if rpath.exists():
                text = report_text(section_report(rpath.read_text(errors="replace")))
            if require_report and not text:
                dropped["no_report"] += 1
                continue
            records.append(
                {
                    "sample_id": r["dicom_id"],
                    "image_path": root / rel / f"s{st}" / f"{r['dicom_id']}.jpg",
                    "report": text,
                    "labels": labels.get(st),
                    "study_id": st,
                    "view": r["ViewPosition"],
                }
            )
        super().__init__(records, dropped, CHEXPERT_LABELS if labels else ())
