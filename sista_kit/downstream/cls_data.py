"""Classification splits from a sista_kit disk export (``manifest.jsonl`` + ``images/*.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .cls import ClsSplit


def _read_gray(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def load_cls_splits(
    root: str | Path, splits: tuple[str, ...] = ("train", "val", "test"), progress: bool = False
) -> dict[str, ClsSplit]:
    """Images (uint8, (N, 1, H, W)) and multi-label finding labels (N, K) of each split."""
    from sista_kit.data.synthetic.export import read_manifest

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
