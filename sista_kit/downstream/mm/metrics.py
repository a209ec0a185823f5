"""mmseg's IoU / Dice metric, with per-class values, the foreground Dice and the pixel AUPRC.

mmseg's ``IoUMetric`` only logs its per-class table; for SIIM-like tasks the number people quote is
the Dice of the foreground class, so it is returned as ``Dice.<class>`` and ``mDice_fg`` (mean over
the classes after the background).

Dice is measured at the argmax; the pixel-level average precision (``AUPRC.<class>``,
``mAUPRC_fg``) ranks the predicted foreground probabilities instead (softmax over the classes; the
sigmoid output of a one-channel head). Memory stays bounded: each test image contributes, per
foreground class, a histogram of its pixels' probabilities over ``AP_BINS`` equal bins of [0, 1],
for positive and negative pixels apart; AP is sklearn's, on the bins as tied scores weighted by
their counts. That is exact for scores quantised to 1 / ``AP_BINS``.
"""

from __future__ import annotations

import numpy as np
import torch
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS as MMSEG_METRICS
from sklearn.metrics import average_precision_score

from .registry import METRICS, register

#: Probability bins of the pixel AUPRC histograms.
AP_BINS = 1000


def foreground_probabilities(seg_logits: torch.Tensor) -> torch.Tensor:
    """(C, H, W) logits -> (C - 1, H, W) probabilities of the classes after the background.

    A one-channel head's ``seg_logits`` already hold mmseg's sigmoid: the probability of class 1.
    """
    if seg_logits.shape[0] == 1:
        return seg_logits.float()
    return seg_logits.float().softmax(dim=0)[1:]


def probability_histograms(
    probs: torch.Tensor, label: torch.Tensor, ignore_index: int = 255, bins: int = AP_BINS
) -> np.ndarray:
    """(K, 2, bins) pixel counts of foreground class ``k + 1``: ``[k, 0]`` negatives, ``[k, 1]`` positives.

    ``probs`` (K, H, W) are the foreground probabilities, ``label`` (H, W) the class map; pixels
    labelled ``ignore_index`` are left out.
    """
    k = probs.shape[0]
    valid = label != ignore_index
    idx = (probs[:, valid] * bins).long().clamp_(0, bins - 1)  # (K, n)
    classes = torch.arange(1, k + 1, device=label.device)[:, None]
    positive = (label[valid][None, :] == classes).long()
    flat = idx + bins * positive + 2 * bins * torch.arange(k, device=label.device)[:, None]
    counts = torch.bincount(flat.reshape(-1), minlength=2 * bins * k)
    return counts.reshape(k, 2, bins).cpu().numpy().astype(np.int32)  # an image's counts fit int32


def histogram_average_precision(hist: np.ndarray) -> float:
    """Average precision (0-1) of one class from its (2, bins) negative / positive histogram; NaN
    without positives."""
    neg, pos = hist[0].astype(np.float64), hist[1].astype(np.float64)
    if pos.sum() == 0:
        return float("nan")
    bins = hist.shape[1]
    scores = np.tile((np.arange(bins) + 0.5) / bins, 2)
    truth = np.repeat([0, 1], bins)
    return float(average_precision_score(truth, scores, sample_weight=np.concatenate([neg, pos])))


def _mean_fg(values: np.ndarray) -> float:
    return round(float(np.nanmean(values)) * 100, 2) if np.isfinite(values).any() else float("nan")


class SistaIoUMetric(IoUMetric):
    """``IoUMetric`` (mIoU, mDice, aAcc) plus ``IoU.<class>``, ``Dice.<class>``, ``mDice_fg`` and,
    when the data samples carry ``seg_logits``, ``AUPRC.<class>`` and ``mAUPRC_fg`` (%; a class
    without positive pixels has no AUPRC and ``mAUPRC_fg`` averages the others)."""

    def __init__(self, ap_bins: int = AP_BINS, **kwargs) -> None:
        kwargs.setdefault("iou_metrics", ["mIoU", "mDice"])
        super().__init__(**kwargs)
        self.ap_bins = int(ap_bins)

    def process(self, data_batch: dict, data_samples) -> None:
        """mmseg's areas per image, and the image's probability histograms (None without logits)."""
        start = len(self.results)
        super().process(data_batch, data_samples)
        if self.format_only:
            return
        for i, sample in enumerate(data_samples, start):
            logits = sample.get("seg_logits")
            hist = None
            if logits is not None:
                label = sample["gt_sem_seg"]["data"].squeeze(0).to(logits["data"].device)
                probs = foreground_probabilities(logits["data"])
                hist = probability_histograms(probs, label, self.ignore_index, self.ap_bins)
            self.results[i] = (*self.results[i], hist)

    def compute_metrics(self, results: list) -> dict[str, float]:
        areas = [r[:4] for r in results]
        metrics = dict(super().compute_metrics(areas))
        if self.format_only:
            return metrics
        cols = tuple(zip(*areas, strict=True))
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
        metrics["mDice_fg"] = _mean_fg(per_class["Dice"][1:])
        hists = [r[4] for r in results if len(r) > 4]
        if hists and all(h is not None for h in hists):
            total = sum(h.astype(np.int64) for h in hists)
            ap = np.array([histogram_average_precision(h) for h in total])
            for name, value in zip(names[1:], ap, strict=True):
                if np.isfinite(value):  # undefined without positive pixels: left out
                    metrics[f"AUPRC.{name}"] = round(float(value) * 100, 2)
            if np.isfinite(ap).any():
                metrics["mAUPRC_fg"] = _mean_fg(ap)
        return metrics


register([METRICS, MMSEG_METRICS], SistaIoUMetric)
