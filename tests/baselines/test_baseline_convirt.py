"""ConVIRT: the formula on hand-computed cases, gradients, the module contract, errors."""

from __future__ import annotations

import math

import pytest
import torch

from sista_kit.baselines import ConVIRTLoss, convirt_loss
from sista_kit.losses import build_loss


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_hand_computed_two_pairs() -> None:
    # Cosines: v1.u1 = 1, v1.u2 = 0.6, v2.u1 = 0, v2.u2 = 0.8 -> logits [[10, 6], [0, 8]] at tau 0.1.
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    u = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    i2t = (_softplus(-4.0) + _softplus(-8.0)) / 2  # rows: -log(e^10 / (e^10 + e^6)), -log(e^8 / (1 + e^8))
    t2i = (_softplus(-10.0) + _softplus(-2.0)) / 2  # columns: [10, 0] target 0, [6, 8] target 1
    out = convirt_loss(v, u, output_dict=True)
    assert out["i2t"].item() == pytest.approx(i2t, rel=1e-12)
    assert out["t2i"].item() == pytest.approx(t2i, rel=1e-12)
    assert convirt_loss(v, u).item() == pytest.approx(0.75 * i2t + 0.25 * t2i, rel=1e-12)
    assert convirt_loss(v, u, lambda_=1.0).item() == pytest.approx(i2t, rel=1e-12)
    assert convirt_loss(v, u, lambda_=0.0).item() == pytest.approx(t2i, rel=1e-12)
    # Cosine: the scale of the inputs does not matter.
    assert convirt_loss(3 * v, 0.5 * u).item() == pytest.approx(0.75 * i2t + 0.25 * t2i, rel=1e-12)


def test_hand_computed_temperature_and_identical_pairs() -> None:
    # Orthonormal pairs: every row is [1/tau, 0, 0] around the target -> log(1 + 2 e^{-1/tau}).
    e = torch.eye(3, dtype=torch.float64)
    for tau in (0.1, 0.5, 1.0):
        expected = math.log(1 + 2 * math.exp(-1 / tau))
        assert convirt_loss(e, e, temperature=tau).item() == pytest.approx(expected, rel=1e-12)


def test_gradcheck() -> None:
    torch.manual_seed(0)
    v = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    u = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: convirt_loss(a, b, lambda_=0.6, temperature=0.3), (v, u))


def test_module_contract() -> None:
    torch.manual_seed(1)
    v, u = torch.randn(6, 8), torch.randn(6, 8)
    module = build_loss("convirt")
    assert isinstance(module, ConVIRTLoss)
    terms = module(
        image_features=v,
        text_features=u,
        logit_scale=torch.tensor(14.0),
        image_tokens=torch.randn(6, 3, 8),
        output_dict=True,
    )
    assert set(terms) == {"i2t_loss", "t2i_loss"}
    full = convirt_loss(v, u, output_dict=True)
    torch.testing.assert_close(terms["i2t_loss"], 0.75 * full["i2t"])
    torch.testing.assert_close(terms["t2i_loss"], 0.25 * full["t2i"])
    torch.testing.assert_close(module(image_features=v, text_features=u), full["loss"])


def test_errors() -> None:
    v = torch.randn(4, 5)
    with pytest.raises(ValueError, match="batch size"):
        convirt_loss(v, torch.randn(3, 5))
    with pytest.raises(ValueError, match="embedding size"):
        convirt_loss(v, torch.randn(4, 6))
    with pytest.raises(ValueError, match="text_features must have shape"):
        convirt_loss(v, torch.randn(4, 5, 1))
    bad = v.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(RuntimeError, match="image_features contains NaN"):
        convirt_loss(bad, v)
    with pytest.raises(ValueError, match="lambda_"):
        ConVIRTLoss(lambda_=1.5)
    with pytest.raises(ValueError, match="temperature"):
        convirt_loss(v, v, temperature=0.0)
