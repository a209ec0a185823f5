"""MIMIC-CXR-JPG (+ the MIMIC-CXR free-text reports) from the official PhysioNet layout.

Expected under ``root``: ``mimic-cxr-2.0.0-metadata.csv[.gz]``, ``mimic-cxr-2.0.0-split.csv[.gz]``,
optionally ``mimic-cxr-2.0.0-chexpert.csv[.gz]``, images ``files/p10/p10000032/s50414267/<dicom_id>.jpg``;
reports ``files/p10/p10000032/s50414267.txt`` under ``reports_root`` (default: ``root``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .base import CHEXPERT_LABELS, RecordDataset, check_policy, find_file, label_vector, read_csv

_SECTION = re.compile(r"^[ \t]*([A-Z][A-Z ()/,&-]*[A-Z)]):", re.MULTILINE)

#: Heading spellings folded onto FINDINGS / IMPRESSION, as the MIMIC-CXR section script does
#: (``mimic-cxr/txt/section_parser.py``: misspellings and combined headings).
SECTION_ALIASES = {
    **dict.fromkeys(
        (
            "FINDING",
            "FINDINS",
            "FINDINDGS",
            "FINDGINGS",
            "FINDNGS",
            "FINDNINGS",
            "FINIDNGS",
            "REFERENCE FINDINGS",
        ),
        "FINDINGS",
    ),
    **dict.fromkeys(
        (
            "IMPRESSIONS",
            "IMPRESSON",
            "IMPRRESSION",
            "IMORESSION",
            "IMPRESSOIN",
            "IMPRSSION",
            "IMPRESION",
            "IMPERSSION",
            "MPRESSION",
            "IMPESSION",
            "CONCLUSION",
            "FINDINGS AND IMPRESSION",
            "FINDINGS/IMPRESSION",
            "FINDINGS/ IMPRESSION",
        ),
        "IMPRESSION",
    ),
}


def section_report(text: str) -> dict[str, str]:
    """Split a free-text report into upper-case sections (``FINDINGS``, ``IMPRESSION``, ...).

    Heading spellings in :data:`SECTION_ALIASES` are folded; a repeated heading's texts are joined.
    """
    heads = list(_SECTION.finditer(text))
    out: dict[str, str] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        name = re.sub(r"\s+", " ", m.group(1).strip())
        name = SECTION_ALIASES.get(name, name)
        body = re.sub(r"\s+", " ", text[m.end() : end]).strip()
        out[name] = f"{out[name]} {body}".strip() if name in out else body
    return out


def last_paragraph(text: str) -> str:
    """The last non-empty paragraph (blank-line separated), whitespace collapsed: the section script's
    fallback for reports with neither FINDINGS nor IMPRESSION."""
    paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    heading_only = re.compile(r"^[A-Z][A-Z ()/,&-]*:$")
    paras = [p for p in paras if p and not p.upper().startswith("FINAL REPORT") and not heading_only.match(p)]
    return paras[-1] if paras else ""


def report_text(sections: dict[str, str], fallback: str = "") -> str:
    """``FINDINGS: ... IMPRESSION: ...`` from the sections that are present; ``fallback`` if neither."""
    parts = [f"{k}: {sections[k]}" for k in ("FINDINGS", "IMPRESSION") if sections.get(k)]
    return " ".join(parts) if parts else fallback


class MimicCXR(RecordDataset):
    """Frontal MIMIC-CXR-JPG images with their sectioned report and CheXpert labels.

    ``split=None`` keeps every split (each record carries its official ``split``); reports with neither
    FINDINGS nor IMPRESSION are empty unless ``last_paragraph_fallback`` (then their last paragraph).
    """

    name = "MIMIC-CXR"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        reports_root: str | os.PathLike | None = None,
        views: tuple[str, ...] = ("PA", "AP"),
        uncertainty: str = "ones",
        require_report: bool = True,
        last_paragraph_fallback: bool = False,
    ) -> None:
        check_policy(uncertainty)
        root = Path(root)
        rroot = Path(reports_root) if reports_root is not None else root
        meta_path = find_file(root, "mimic-cxr-2.0.0-metadata.csv")
        meta = read_csv(
            meta_path,
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
            for ln, r in enumerate(read_csv(lab_path, ("subject_id", "study_id", *CHEXPERT_LABELS)), 2):
                labels[r["study_id"]] = label_vector(r, CHEXPERT_LABELS, uncertainty, lab_path, ln)
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
            if not (sub.isdigit() and st.isdigit() and r["dicom_id"].replace("-", "").isalnum()):
                raise ValueError(
                    f"{meta_path}: row of dicom_id {r['dicom_id']!r} has a malformed subject_id / study_id "
                    f"({sub!r}, {st!r}) or dicom_id"
                )
            rel = Path("files") / f"p{sub[:2]}" / f"p{sub}"
            rpath = rroot / rel / f"s{st}.txt"
            text = ""
            if rpath.exists():
                raw = rpath.read_text(errors="replace")
                text = report_text(
                    section_report(raw), last_paragraph(raw) if last_paragraph_fallback else ""
                )
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
                    "subject_id": sub,
                    "split": sp,
                    "report_path": rpath if rpath.exists() else None,
                    "view": r["ViewPosition"],
                }
            )
        super().__init__(
            records, dropped, CHEXPERT_LABELS if labels else (), source=f"{meta_path} (split={split!r})"
        )
