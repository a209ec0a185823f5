"""SIIM-ACR Pneumothorax Segmentation: ``train-rle.csv`` (run-length masks) + DICOM images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import RecordDataset, find_file, read_csv, read_image


def rle_decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decode the SIIM relative run-length encoding to a bool (H, W) mask (column-major pixel order).

    ``"-1"`` is an empty mask. Pairs are (offset from the end of the previous run, run length).
    """
    rle = rle.strip()
    if rle in ("-1", ""):
        return np.zeros((height, width), dtype=bool)
    vals = np.array(rle.split(), dtype=np.int64)
    if len(vals) % 2:
        raise ValueError("odd number of values in the run-length string")
    offs, lens = vals[0::2], vals[1::2]
    starts = np.cumsum(offs) + np.concatenate([[0], np.cumsum(lens)[:-1]])
    if (offs < 0).any() or (lens < 0).any() or (starts + lens).max() > height * width:
        raise ValueError(f"run-length runs fall outside a {height}x{width} image")
    flat = np.zeros(height * width + 1, dtype=np.int32)
    np.add.at(flat, starts, 1)
    np.add.at(flat, starts + lens, -1)
    return (np.cumsum(flat[:-1]) > 0).reshape(width, height).T


class SIIMPneumothorax(RecordDataset):
    """One record per image: ``rles`` (all rows of the image; their masks are united) and ``label``.

    DICOM files are looked up recursively under ``images_dir`` (the official nested study/series folders).
    Items carry ``mask`` bool (H, W) at the DICOM's size.
    """

    name = "SIIM-ACR"

    def __init__(
        self, root: str | os.PathLike, rle_csv: str = "train-rle.csv", images_dir: str = "dicom-images-train"
    ) -> None:
        root = Path(root)
        path = find_file(root, rle_csv)
        rows = read_csv(path, ("ImageId", "EncodedPixels"))
        per: dict[str, list[str]] = {}
        for ln, r in enumerate(rows, 2):
            if not r["ImageId"]:
                raise ValueError(f"{path} line {ln}: empty ImageId")
            per.setdefault(r["ImageId"], []).append(r["EncodedPixels"])
        img_root = root / images_dir
        if not img_root.is_dir():
            raise FileNotFoundError(f"missing image folder {img_root}")
        files = {p.stem: p for p in img_root.rglob("*.dcm")}
        if not files:
            raise FileNotFoundError(f"no DICOM (*.dcm) files under {img_root}")
        records, dropped = [], {"no_dicom": 0}
        for iid, rles in per.items():
            if iid not in files:
                dropped["no_dicom"] += 1
                continue
            rles = [x for x in rles if x.strip() != "-1"]
            records.append(
                {
                    "sample_id": iid,
                    "image_path": files[iid],
                    "rles": rles,
                    "label": int(bool(rles)),
                    "rle_file": path,
                }
            )
        super().__init__(records, dropped, ("pneumothorax",), source=path)

    def __getitem__(self, idx: int) -> dict:
        rec = dict(self.records[idx])
        rec["image"] = read_image(rec["image_path"])
        h, w = rec["image"].shape
        mask = np.zeros((h, w), dtype=bool)
        for rle in rec["rles"]:
            try:
                mask |= rle_decode(rle, h, w)
            except ValueError as e:
                raise ValueError(f"{rec['rle_file']}: bad EncodedPixels for {rec['sample_id']}: {e}") from e
        rec["mask"] = mask
        return rec
