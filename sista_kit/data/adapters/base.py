"""Shared pieces of the real-dataset readers: CSV reading with clear errors, image decoding, drop counts."""

from __future__ import annotations

import csv
import gzip
import io
import logging
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
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{path}: {what} is not a number: {value!r}") from None


class RecordDataset(Dataset):
    """A list of records (dicts with ``image_path``) whose images are read on access."""

    name = "dataset"

    def __init__(
        self, records: list[dict], dropped: dict[str, int], class_names: tuple[str, ...] = ()
    ) -> None:
        self.records = records
        self.dropped = {k: v for k, v in dropped.items() if v}
        self.class_names = tuple(class_names)
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


def uncertain(value: str, policy: str) -> float:
    """CheXpert label cell -> float: 1 positive, 0 negative/blank, -1 uncertain mapped by ``policy``
    (ones -> 1, zeros -> 0, ignore -> NaN, to be masked out of the loss)."""
    if value in ("", None):
        return 0.0
    v = float(value)
    if v == -1.0:
        return {"ones": 1.0, "zeros": 0.0, "ignore": float("nan")}[policy]
    return v


def check_policy(policy: str) -> None:
    if policy not in UNCERTAINTY_POLICIES:
        raise ValueError(f"uncertainty policy must be one of {UNCERTAINTY_POLICIES}, got {policy!r}")
