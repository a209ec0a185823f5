"""mmseg's IoU / Dice metric, with per-class values and the foreground Dice in the returned dict.

mmseg's ``IoUMetric`` only logs its per-class table; for SIIM-like tasks the number people quote is
the Dice of the foreground class, so it is returned as ``Dice.<class>`` and ``mDice_fg`` (mean over
the classes after the background).
"""

from __future__ import annotations

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS as MMSEG_METRICS

from .registry import METRICS, register


class SistaIoUMetric(IoUMetric):
    """``IoUMetric`` (mIoU, mDice, aAcc) plus ``IoU.<class>``, ``Dice.<class>`` and ``mDice_fg`` (%)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("iou_metrics", ["mIoU", "mDice"])
        super().__init__(**kwargs)

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = dict(super().compute_metrics(results))
        if self.format_only:
            return metrics
        cols = tuple(zip(*results, strict=True))
        per_class = self.total_area_to_metrics(
            sum(cols[0]),
            sum(cols[1]),
            sum(cols[2]),
            sum(cols[3]),
            ["mIoU", "mDice"],
            self.nan_to_num,
            self.beta,
        )
        names = self.dataset_meta["classes"]
        for key in ("IoU", "Dice"):
            for name, value in zip(names, per_class[key], strict=True):
                metrics[f"{key}.{name}"] = round(float(value) * 100, 2)
        fg = per_class["Dice"][1:]
        metrics["mDice_fg"] = round(float(np.nanmean(fg)) * 100, 2) if np.isfinite(fg).any() else float("nan")
        return metrics


register([METRICS, MMSEG_METRICS], SistaIoUMetric)
