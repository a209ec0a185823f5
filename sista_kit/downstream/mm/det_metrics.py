"""mmdet's COCO metric with custom IoU thresholds that work on numpy 2 (MGCA's 0.40:0.05:0.75).

``CocoMetric(iou_thrs=[...])`` hands pycocotools a Python list, and ``COCOeval.summarize`` then
compares a float with the list (``np.where`` on a 0-d array), which numpy 2 rejects. The thresholds
are kept as a numpy array here; everything else is mmdet's metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS as MMDET_METRICS

from .registry import METRICS, register

MGCA_IOU_THRS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)


class SistaCocoMetric(CocoMetric):
    """``CocoMetric`` whose ``iou_thrs`` is a numpy array (e.g. MGCA's 0.40:0.05:0.75, prefix ``mgca``)."""

    def __init__(self, iou_thrs: Sequence[float] | float | None = None, **kwargs) -> None:
        super().__init__(iou_thrs=iou_thrs, **kwargs)
        if iou_thrs is not None:
            self.iou_thrs = np.round(np.atleast_1d(np.asarray(iou_thrs, dtype=np.float64)), 4)


register([METRICS, MMDET_METRICS], SistaCocoMetric)
