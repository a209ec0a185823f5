"""mmseg / mmdet datasets over a sista_kit disk export, with the label-fraction option.

``label_fraction`` (default 1.0) and ``fraction_seed`` keep the documented, deterministic subset of
the split (``sista_kit.data.label_fraction``); use them on the training split only.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence
from typing import Any

from ..fractions import select_fraction
from .registry import DATASETS, register


def _sample_id(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def _keep_fraction(
    data_list: list[dict], fraction: float, seed: int, key: str, labels: Any = None
) -> list[dict]:
    """The label-fraction subset of ``data_list``, stratified by ``labels`` (N, K) of the target classes."""
    if fraction >= 1.0:
        return data_list
    ids = [_sample_id(d[key]) for d in data_list]
    keep = set(select_fraction(ids, fraction, seed, labels=labels))
    return [d for d, i in zip(data_list, ids, strict=True) if i in keep]


def _instance_labels(data_list: list[dict], num_classes: int) -> list[list[int]]:
    """Per image, whether it has a box of each class (mmdet's ``instances[].bbox_label``)."""
    out = []
    for d in data_list:
        present = {int(inst["bbox_label"]) for inst in d.get("instances", [])}
        out.append([int(c in present) for c in range(num_classes)])
    return out


try:
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS as MMSEG_DATASETS
except ImportError:  # mmseg not installed: segmentation datasets unavailable
    BaseSegDataset = None

if BaseSegDataset is not None:

    class SistaSegDataset(BaseSegDataset):
        """Images + PNG label maps listed by a split file (one sample id per line).

        Args:
            source_classes: class names of the label-map values (index = pixel value, 0 = background).
            metainfo: ``dict(classes=...)``: the classes to segment, background first, a subset of
                ``source_classes``; every other source class becomes background. E.g.
                ``("background", "pneumothorax")`` for a SIIM-like binary task.
            label_fraction: fraction of the split to keep (training split).
            fraction_seed: seed of that selection.
            **kwargs: ``BaseSegDataset`` arguments (data_root, ann_file, data_prefix, pipeline, ...).
        """

        METAINFO: dict[str, Any] = {}

        def __init__(
            self,
            source_classes: Sequence[str] | None = None,
            label_fraction: float = 1.0,
            fraction_seed: int = 0,
            **kwargs: Any,
        ) -> None:
            self.source_classes = None if source_classes is None else tuple(source_classes)
            self.label_fraction = float(label_fraction)
            self.fraction_seed = int(fraction_seed)
            kwargs.setdefault("img_suffix", ".png")
            kwargs.setdefault("seg_map_suffix", ".png")
            super().__init__(**kwargs)

        def get_label_map(self, new_classes: Sequence[str] | None = None) -> dict[int, int] | None:
            """Label-map value -> training id: listed classes keep their place, others become 0."""
            if self.source_classes is None or new_classes is None:
                return None
            new = list(new_classes)
            unknown = [c for c in new if c not in self.source_classes]
            if unknown:
                raise ValueError(
                    f"classes {unknown} are not among the label map's classes {self.source_classes}"
                )
            if new[0] != self.source_classes[0]:
                raise ValueError(
                    f"the first class must be the background {self.source_classes[0]!r}, got {new[0]!r}"
                )
            mapping = {v: (new.index(c) if c in new else 0) for v, c in enumerate(self.source_classes)}
            return None if all(k == v for k, v in mapping.items()) else mapping

        def load_data_list(self) -> list[dict]:
            if self.ann_file and not osp.isfile(self.ann_file):
                raise FileNotFoundError(f"split file {self.ann_file} does not exist")
            data = super().load_data_list()
            for d in data:
                for k in ("img_path", "seg_map_path"):
                    if k in d and not osp.isfile(d[k]):
                        raise FileNotFoundError(f"{k} {d[k]} (listed in {self.ann_file}) does not exist")
            labels = None
            if self.label_fraction < 1.0:
                from ..fractions import manifest_labels

                targets = list(self.metainfo["classes"])[1:]  # background first
                ids = [_sample_id(d["img_path"]) for d in data]
                labels = manifest_labels(self.data_root, ids, targets)
            return _keep_fraction(data, self.label_fraction, self.fraction_seed, "img_path", labels)

    register([DATASETS, MMSEG_DATASETS], SistaSegDataset)

try:
    from mmdet.datasets import CocoDataset
    from mmdet.registry import DATASETS as MMDET_DATASETS
except ImportError:  # mmdet not installed: detection datasets unavailable
    CocoDataset = None

if CocoDataset is not None:

    class SistaCocoDataset(CocoDataset):
        """A COCO-format split (boxes) with the label-fraction option; classes from ``metainfo``.

        Images without boxes are kept in training when ``filter_cfg`` says so (negatives matter for
        RSNA-like data); the fraction is taken over all images of the split, before filtering.
        """

        def __init__(self, label_fraction: float = 1.0, fraction_seed: int = 0, **kwargs: Any) -> None:
            self.label_fraction = float(label_fraction)
            self.fraction_seed = int(fraction_seed)
            super().__init__(**kwargs)

        def load_data_list(self) -> list[dict]:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f"COCO annotation file {self.ann_file} does not exist")
            data = super().load_data_list()
            labels = _instance_labels(data, len(self.metainfo["classes"]))
            return _keep_fraction(data, self.label_fraction, self.fraction_seed, "img_path", labels)

    register([DATASETS, MMDET_DATASETS], SistaCocoDataset)
