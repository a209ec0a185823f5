"""Classification splits: :class:`ClsSplit`, and reading them from a dataset folder
(``manifest.jsonl`` + ``images/*.png``, :mod:`sista_kit.data.folder`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from sista_kit.data.folder import read_manifest

from .fractions import id_positions

__all__ = ["ClsSplit", "load_cls_splits"]


@dataclass
class ClsSplit:
    """One split: images uint8 (N, C, H, W) and labels (N, K) 0/1 (multi-label) or (N,) int (multi-class)."""

    ids: list[str]
    images: torch.Tensor
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        n = self.images.shape[0]
        if len(self.ids) != n or self.labels.shape[0] != n:
            raise ValueError(f"{n} images, {len(self.ids)} ids and {self.labels.shape[0]} labels differ")
        if self.labels.dtype.kind == "f" and not np.isfinite(self.labels).all():
            raise ValueError("labels contain NaN or inf")

    def subset(self, keep: list[str]) -> ClsSplit:
        """The samples whose id is in ``keep`` (original order)."""
        idx = id_positions(self.ids, keep)
        return ClsSplit([self.ids[i] for i in idx], self.images[idx], self.labels[idx])

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2


def _read_gray(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def load_cls_splits(
    root: str | Path, splits: tuple[str, ...] = ("train", "val", "test"), progress: bool = False
) -> dict[str, ClsSplit]:
    """Images (uint8, (N, 1, H, W)) and multi-label finding labels (N, K) of each split."""
    root = Path(root)
    rows = read_manifest(root)
    out: dict[str, ClsSplit] = {}
    for split in splits:
        sel = [r for r in rows if r["split"] == split]
        if not sel:
            continue
        imgs = [_read_gray(root / r["image"]) for r in tqdm(sel, desc=f"read {split}", disable=not progress)]
        shapes = {a.shape for a in imgs}
        if len(shapes) != 1:
            raise ValueError(f"images of split {split!r} in {root} differ in size: {sorted(shapes)}")
        images = torch.from_numpy(np.stack(imgs))[:, None]
        labels = np.asarray([r["labels"] for r in sel], dtype=np.float32)
        out[split] = ClsSplit([r["id"] for r in sel], images, labels)
    if "train" not in out or "test" not in out:
        raise ValueError(f"{root} has no train / test studies for classification (found {sorted(out)})")
    return out
