"""Shared pieces of the real-dataset readers: CSV reading with clear errors, image decoding, drop counts."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

log = logging.getLogger("sista_kit.data")

CHEXPERT_LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
UNCERTAINTY_POLICIES = ("ones", "zeros", "ignore")


def find_file(root: Path, *names: str) -> Path:
    """First of ``names`` that exists under ``root`` (plain or .gz), else FileNotFoundError naming them."""
    for name in names:
        for cand in (root / name, root / f"{name}.gz"):
            if cand.exists():
                return cand
    raise FileNotFoundError(f"none of {', '.join(str(root / n) for n in names)} exists")


def read_csv(
    path: str | os.PathLike, required: tuple[str, ...], delimiter: str = ","
) -> list[dict[str, str]]:
    """Rows of a (optionally gzipped) CSV; raises naming the file on a missing file, columns or bad rows."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing annotation file {path}")
    try:
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; found {header}")
    reader.fieldnames = header
    rows = []
    for ln, row in enumerate(reader, 2):
        if None in row or any(row.get(c) is None for c in required):
            raise ValueError(f"{path} line {ln}: wrong number of fields")
        rows.append({k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()})
    return rows


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Min-max scale any grayscale array to uint8 (no-op for uint8)."""
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / max(hi - lo, 1e-6) * 255).round().astype(np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Grayscale uint8 (H, W) from PNG/JPEG or DICOM (MONOCHROME1 inverted); errors name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing image file {path}")
    if path.suffix.lower() in (".dcm", ".dicom"):
        try:
            import pydicom

            ds = pydicom.dcmread(path)
            arr = ds.pixel_array
        except Exception as e:  # pydicom raises many types for broken files
            raise ValueError(f"cannot decode DICOM {path}: {e}") from e
        if arr.ndim == 3:
            arr = arr[..., 0] if arr.shape[-1] in (3, 4) else arr[0]
        img = to_uint8(arr)
        if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
            img = 255 - img
        return img
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return to_uint8(np.asarray(im.convert("L") if im.mode not in ("L", "I;16", "I") else im))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot decode image {path}: {e}") from e


def parse_float(value: str, path: Path, what: str) -> float:
    """A finite float from a CSV cell; ValueError naming ``path`` and ``what`` (e.g. ``line 3 x``)."""
    try:
        out = float(value)
    except ValueError:
        raise ValueError(f"{path}: {what} is not a number: {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{path}: {what} is not a finite number: {value!r}")
    return out


def inside(root: Path, rel: str | os.PathLike, where: str) -> Path:
    """``root / rel``, refusing absolute paths and ``..`` that leave ``root`` (``where`` names the row)."""
    rel_path = Path(rel)
    if not str(rel).strip():
        raise ValueError(f"{where}: empty file name")
    if rel_path.is_absolute():
        raise ValueError(f"{where}: absolute path {str(rel)!r} is not allowed (paths are relative to {root})")
    target = root / rel_path
    base = root.resolve()
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise ValueError(f"{where}: path {str(rel)!r} resolves outside the dataset root {root}")
    return target


class RecordDataset(Dataset):
    """A list of records (dicts with ``image_path``) whose images are read on access."""

    name = "dataset"

    def __init__(
        self,
        records: list[dict],
        dropped: dict[str, int],
        class_names: tuple[str, ...] = (),
        source: str | os.PathLike | None = None,
    ) -> None:
        self.records = records
        self.dropped = {k: v for k, v in dropped.items() if v}
        self.class_names = tuple(class_names)
        if not records:
            drops = f"; dropped rows: {self.dropped}" if self.dropped else ""
            raise ValueError(f"{self.name}: no samples in {source or 'the given records'}{drops}")
        if self.dropped:
            log.info("%s: kept %d rows, dropped %s", self.name, len(records), self.dropped)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, idx: int) -> dict:
        rec = dict(self.records[idx])
        rec["image"] = read_image(rec["image_path"])
        return rec

    def summary(self) -> str:
        drops = ", ".join(f"{k}: {v}" for k, v in self.dropped.items()) or "none"
        return f"{self.name}: {len(self)} samples; dropped rows: {drops}"


LABEL_VALUES = (1.0, 0.0, -1.0)


def uncertain(value: str, policy: str) -> float:
    """CheXpert label cell -> float: 1 positive, 0 negative/blank, -1 uncertain mapped by ``policy``
    (ones -> 1, zeros -> 0, ignore -> NaN, to be masked out of the loss). Any other value (``2``,
    ``nan``, text) raises ValueError."""
    if value in ("", None):
        return 0.0
    v = float(value)
    if v not in LABEL_VALUES:
        raise ValueError(f"label value {value!r} is not 1, 0, -1 or blank")
    if v == -1.0:
        return {"ones": 1.0, "zeros": 0.0, "ignore": float("nan")}[policy]
    return v


def label_vector(
    row: dict[str, str], names: tuple[str, ...], policy: str, path: Path, line: int
) -> np.ndarray:
    """float32 label vector of one CSV row (see :func:`uncertain`); errors name file, line and column."""
    out = np.empty(len(names), dtype=np.float32)
    for i, name in enumerate(names):
        try:
            out[i] = uncertain(row[name], policy)
        except ValueError:
            raise ValueError(
                f"{path} line {line} column {name!r}: label values must be 1, 0, -1 or blank, "
                f"got {row[name]!r}"
            ) from None
    return out


def check_policy(policy: str) -> None:
    if policy not in UNCERTAINTY_POLICIES:
        raise ValueError(f"uncertainty policy must be one of {UNCERTAINTY_POLICIES}, got {policy!r}")
