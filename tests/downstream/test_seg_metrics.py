"""Pixel AUPRC of the segmentation metric against sklearn on hand-made logits and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg")
pytestmark = pytest.mark.mm

CLASSES = ("background", "a", "b")


def _samples(logits: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """Data samples as mmengine's evaluator hands them to a metric (dicts of ``data``)."""
    return [
        {
            "seg_logits": {"data": lg},
            "pred_sem_seg": {"data": lg.argmax(0, keepdim=True) if lg.shape[0] > 1 else (lg > 0.5).long()},
            "gt_sem_seg": {"data": lb[None]},
        }
        for lg, lb in zip(logits, labels, strict=True)
    ]


def _evaluate(logits: torch.Tensor, labels: torch.Tensor, classes=CLASSES, **kwargs) -> dict:
    from sista_kit.downstream.mm.metrics import SistaIoUMetric

    metric = SistaIoUMetric(**kwargs)
    metric.dataset_meta = {"classes": classes}
    metric.process({}, _samples(logits, labels))
    return metric.evaluate(len(logits))


def _sklearn_ap(probs: np.ndarray, labels: np.ndarray, c: int) -> float:
    from sklearn.metrics import average_precision_score

    keep = labels != 255
    return 100 * average_precision_score(labels[keep] == c, probs[:, c][keep])


def test_auprc_matches_sklearn() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (4, 24, 24), generator=g)
    labels[0, :3] = 255  # ignored pixels
    signal = torch.nn.functional.one_hot(labels.clamp(max=2), 3).permute(0, 3, 1, 2)
    logits = torch.randn(4, 3, 24, 24, generator=g) + 2.0 * signal
    m = _evaluate(logits, labels)
    probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    flat = labels.reshape(-1).numpy()
    for c, name in enumerate(CLASSES[1:], 1):
        exact = _sklearn_ap(probs, flat, c)
        assert abs(m[f"AUPRC.{name}"] - exact) < 0.05, (name, m[f"AUPRC.{name}"], exact)
        # on scores quantised to the bins the histogram AP is sklearn's exactly
        quantised = np.floor(probs * 1000).clip(0, 999)
        assert m[f"AUPRC.{name}"] == pytest.approx(_sklearn_ap(quantised, flat, c), abs=0.006)
    assert m["mAUPRC_fg"] == pytest.approx((m["AUPRC.a"] + m["AUPRC.b"]) / 2, abs=0.01)
    assert 0 < m["mAUPRC_fg"] < 100 and "mDice_fg" in m


def test_perfect_and_constant_predictors() -> None:
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (3, 16, 16), generator=g)
    perfect = 20.0 * torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    m = _evaluate(perfect, labels)
    assert m["AUPRC.a"] == m["AUPRC.b"] == m["mAUPRC_fg"] == 100.0
    constant = _evaluate(torch.zeros(3, 3, 16, 16), labels)
    for c, name in enumerate(CLASSES[1:], 1):
        rate = 100 * float((labels == c).float().mean())
        assert constant[f"AUPRC.{name}"] == pytest.approx(rate, abs=0.01)


def test_one_channel_head_and_absent_class() -> None:
    """A sigmoid head's probabilities rank class 1; a class with no positive pixel has no AUPRC."""
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[0, 2:5, 2:5] = 1
    probs = torch.full((2, 1, 8, 8), 0.2)
    probs[0, 0, 2:5, 2:5] = 0.9
    probs[1, 0, :2] = 0.9  # false positives ranked with the true ones
    m = _evaluate(probs, labels, classes=("background", "a"))
    assert m["AUPRC.a"] == pytest.approx(100 * 9 / (9 + 16), abs=0.01)
    only_a = labels.clone()
    only_a[1, 0, 0] = 1
    three = torch.cat([1 - probs, probs, torch.zeros_like(probs)], dim=1).log()  # class b: no pixel
    m = _evaluate(three, only_a)
    assert "AUPRC.b" not in m and m["mAUPRC_fg"] == m["AUPRC.a"] and np.isfinite(m["mAUPRC_fg"])
    none = _evaluate(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long))
    assert not any(k.startswith(("AUPRC", "mAUPRC")) for k in none)
