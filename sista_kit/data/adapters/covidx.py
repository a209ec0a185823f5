"""COVIDx CXR: split files ``{train,val,test}.txt`` (``patient_id filename label source``) + images."""

from __future__ import annotations

import os
from pathlib import Path

from .base import RecordDataset, inside


class COVIDx(RecordDataset):
    """COVIDx images with a class index into ``class_names`` (the labels found in the split file, sorted)."""

    name = "COVIDx"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        split_file: str | None = None,
        class_names: tuple[str, ...] | None = None,
    ) -> None:
        root = Path(root)
        path = root / (split_file or f"{split}.txt")
        if not path.exists():
            raise FileNotFoundError(f"missing COVIDx split file {path}")
        entries, dropped = [], {"blank_line": 0}
        for ln, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                dropped["blank_line"] += 1
                continue
            if len(parts) < 3:
                raise ValueError(
                    f"{path} line {ln}: expected 'patient_id filename label [source]', got {line!r}"
                )
            inside(root / split, parts[1], f"{path} line {ln} filename")
            entries.append((parts[0], parts[1], parts[2].lower()))
        names = tuple(class_names) if class_names else tuple(sorted({e[2] for e in entries}))
        unknown = sorted({e[2] for e in entries} - set(names))
        if unknown:
            raise ValueError(f"{path}: labels {unknown} are not in class_names {names}")
        records = [
            {"sample_id": fn, "patient_id": pid, "image_path": root / split / fn, "label": names.index(lab)}
            for pid, fn, lab in entries
        ]
        super().__init__(records, dropped, names, source=path)
