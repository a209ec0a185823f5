import pytest
import torch

from sista_kit.similarity import LabelSimilarity, TfidfSimilarity, calibrate, detection
from sista_kit.similarity.calibration import (
    average_precision,
    pair_scores,
    threshold_for_precision,
    truth_matrix,
)


def test_truth_matrix_from_keys_and_matrix():
    t = truth_matrix(["a", "b", "a"])
    assert t.tolist() == [[False, False, True], [False, False, False], [True, False, False]]
    assert truth_matrix(torch.ones(2, 2)).tolist() == [[False, True], [True, False]]
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        truth_matrix(torch.ones(2, 3))


def test_average_precision_matches_definition():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([True, False, True, False])
    # P at the two positives: 1/1 and 2/3; each adds half of the recall
    assert average_precision(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # ties are one threshold: both pairs flagged together, P = 1/2 for the whole recall
    assert average_precision(torch.tensor([0.5, 0.5]), torch.tensor([True, False])) == pytest.approx(0.5)


def test_threshold_for_precision():
    scores = torch.tensor([0.95, 0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([True, True, False, True, False])
    assert threshold_for_precision(scores, labels, 1.0) == pytest.approx(0.9)
    assert threshold_for_precision(scores, labels, 0.75) == pytest.approx(0.7)
    # unreachable target: the threshold of the highest precision
    assert threshold_for_precision(torch.tensor([0.9, 0.8]), torch.tensor([False, True]), 0.99) == (
        pytest.approx(0.8)
    )
    with pytest.raises(ValueError, match="target_precision"):
        threshold_for_precision(scores, labels, 0.0)


def test_pairs_within_batches():
    z = torch.eye(4)
    scores, labels = pair_scores(z, truth_matrix([0, 0, 0, 0]), batch_size=2)
    assert scores.numel() == 4 and labels.all()  # two blocks of 2 x 2 off-diagonal pairs
    with pytest.raises(ValueError, match="batch_size"):
        pair_scores(z, truth_matrix([0] * 4), batch_size=1)
    with pytest.raises(ValueError, match="there are 4 reports"):
        pair_scores(z, truth_matrix([0] * 3), batch_size=None)


def test_calibrate_and_detection_on_labels():
    labels = torch.tensor([[0, 0], [0, 0], [1, 0], [1, 0], [1, 1], [0, 1]], dtype=torch.float32)
    keys = ["normal", "normal", "a", "a", "a,b", "b"]
    cal = calibrate(LabelSimilarity(), labels, keys, target_precision=1.0)
    assert cal.precision == 1.0 and cal.recall == 1.0 and cal.ap == pytest.approx(1.0)
    assert cal.threshold > 0.71  # cos of {a} and {a, b} is 0.707 and must not be flagged
    at_zero = detection(LabelSimilarity(), labels, keys, threshold=0.5)
    assert at_zero.recall == 1.0 and at_zero.precision < 1.0
    assert cal.truth_share == pytest.approx(4 / 30) and cal.pairs == 30


def test_text_providers_take_texts():
    texts = ["No effusion.", "No effusion.", "Large right effusion."]
    result = detection(TfidfSimilarity(texts), texts, [0, 0, 1], threshold=0.9)
    assert result.precision == 1.0 and result.recall == 1.0
    with pytest.raises(TypeError, match="reads report texts"):
        detection(TfidfSimilarity(texts), torch.zeros(3, 2), [0, 0, 1])
    with pytest.raises(TypeError, match="pass it as a tensor"):
        detection(LabelSimilarity(), texts, [0, 0, 1])
