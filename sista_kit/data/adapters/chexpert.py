"""CheXpert (and CheXpert-small) from its official layout: ``train.csv`` / ``valid.csv`` + JPEGs."""

from __future__ import annotations

import os
from pathlib import Path

from .base import CHEXPERT_LABELS, RecordDataset, check_policy, find_file, inside, label_vector, read_csv


class CheXpert(RecordDataset):
    """CheXpert images with 14 labels. ``uncertainty``: ones | zeros | ignore (NaN); blanks are 0.

    ``root`` is the dataset folder (``CheXpert-v1.0-small``) holding the CSVs; the CSV ``Path`` column
    starts with the release folder's name (``CheXpert-v1.0[-small]``), which is replaced by ``root``.
    """

    name = "CheXpert"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        uncertainty: str = "ones",
        frontal_only: bool = True,
    ) -> None:
        check_policy(uncertainty)
        if split not in ("train", "valid"):
            raise ValueError(f"CheXpert split must be 'train' or 'valid', got {split!r}")
        root = Path(root)
        path = find_file(root, f"{split}.csv")
        rows = read_csv(path, ("Path", "Frontal/Lateral", *CHEXPERT_LABELS))
        records, dropped = [], {"lateral_view": 0}
        for ln, r in enumerate(rows, 2):
            if frontal_only and r["Frontal/Lateral"] != "Frontal":
                dropped["lateral_view"] += 1
                continue
            rel = Path(r["Path"])
            # "CheXpert-v1.0-small/train/...": the CSV names the release folder, whatever ``root`` is called
            if rel.parts and (rel.parts[0] == root.name or rel.parts[0].startswith("CheXpert-v1.0")):
                rel = Path(*rel.parts[1:]) if len(rel.parts) > 1 else Path("")
            img = inside(root, rel, f"{path} line {ln} Path")
            labels = label_vector(r, CHEXPERT_LABELS, uncertainty, path, ln)
            records.append(
                {"sample_id": r["Path"], "image_path": img, "labels": labels, "view": r.get("AP/PA", "")}
            )
        super().__init__(records, dropped, CHEXPERT_LABELS, source=path)
