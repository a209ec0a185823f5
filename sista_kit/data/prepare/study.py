"""What a dataset reader hands to the prepare step: one :class:`Study` per image, plus drop counts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..synthetic.findings import CLASS_NAMES, CLS

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Study:
    """One image of a real dataset, before decoding.

    ``labels`` (K,) are over the project's findings (``CLASS_NAMES``); ``boxes`` (M, 4) x0, y0, x1, y1
    are in source pixels with one finding index per box in ``box_classes``; ``rles`` are SIIM run-length
    strings whose union is the mask of ``mask_class``. ``split`` is the protocol's fixed split or None
    (drawn by ``group``, the patient, so that a patient's images share a split).
    """

    sample_id: str
    image_path: Path
    labels: np.ndarray
    group: str
    report: str = ""
    split: str | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    box_classes: list[int] = field(default_factory=list)
    rles: list[str] = field(default_factory=list)
    mask_class: int | None = None
    source_label: str = ""


@dataclass
class Collected:
    """The studies a reader found, the rows it dropped (reason -> count), the annotation files it read
    and the split rule it applies (``fixed``: official splits; else fractions drawn per group)."""

    studies: list[Study]
    dropped: dict[str, int]
    inputs: list[Path]
    split_rule: dict
    class_map: dict[str, list[str]]
    targets: dict[str, list[str]]
    dropped_ids: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, sample_id: str | None = None) -> None:
        """Count one dropped row (and remember the first ids, for the log)."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if sample_id is not None:
            ids = self.dropped_ids.setdefault(reason, [])
            if len(ids) < 20:
                ids.append(sample_id)


def safe_id(text: str) -> str:
    """A file-name-safe sample id (``[A-Za-z0-9._-]``; other runs become ``_``)."""
    out = _UNSAFE.sub("_", text).strip("._")
    if not out:
        raise ValueError(f"cannot derive a sample id from {text!r}")
    return out


def label_row(*names: str) -> np.ndarray:
    """float32 (K,) with 1 at the named project findings."""
    out = np.zeros(len(CLASS_NAMES), dtype=np.float32)
    for n in names:
        out[CLS[n]] = 1.0
    return out


def map_labels(
    source: np.ndarray, source_names: tuple[str, ...], class_map: dict[str, list[str]]
) -> np.ndarray:
    """Project labels (K,) from source labels: a finding is 1 when any of its mapped source labels is 1."""
    idx = {n: i for i, n in enumerate(source_names)}
    out = np.zeros(len(CLASS_NAMES), dtype=np.float32)
    for name, srcs in class_map.items():
        vals = [source[idx[s]] for s in srcs]
        out[CLS[name]] = float(any(v >= 1.0 for v in vals))
    return out
