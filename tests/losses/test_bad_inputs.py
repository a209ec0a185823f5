"""Every bad input of a public SISTA loss entry point gives a clear error naming the argument."""

from __future__ import annotations

import math

import pytest
import torch

from sista_kit.checks import InvalidValueError, check_inputs, set_check_inputs
from sista_kit.losses import (
    SemanticInstanceAlignLoss,
    SISTALoss,
    SparseTokenAlignLoss,
    fn_aware_infonce,
    fn_aware_infonce_chunked,
    sparse_token_align_loss,
)

B, D, L, P = 4, 6, 5, 7


def _features(batch=B):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, D, generator=g), torch.randn(batch, D, generator=g)


def _tokens(batch=B):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(batch, P, D, generator=g),
        torch.randn(batch, L, D, generator=g),
        torch.ones(batch, L).bool(),
    )


def _sim(value=0.5, batch=B):
    s = torch.full((batch, batch), value)
    return s.fill_diagonal_(1.0)


NAN = float("nan")
INF = float("inf")
# (id, call, error type, message fragment)
SIA_CASES = [
    ("B=0", lambda: fn_aware_infonce(*_features(0), 10.0), ValueError, "B=0"),
    ("sim>1", lambda: fn_aware_infonce(*_features(), 10.0, _sim(1.5)), ValueError, "report_similarity"),
    ("sim<-1", lambda: fn_aware_infonce(*_features(), 10.0, _sim(-2.0)), ValueError, "report_similarity"),
    ("sim NaN", lambda: fn_aware_infonce(*_features(), 10.0, _sim(NAN)), ValueError, "report_similarity"),
    ("sim shape", lambda: fn_aware_infonce(*_features(), 10.0, _sim(batch=3)), ValueError, r"\(4, 4\)"),
    ("scale 0", lambda: fn_aware_infonce(*_features(), 0.0), ValueError, "logit_scale"),
    ("scale <0", lambda: fn_aware_infonce(*_features(), -1.0), ValueError, "logit_scale"),
    ("scale NaN", lambda: fn_aware_infonce(*_features(), NAN), ValueError, "logit_scale"),
    ("scale inf", lambda: fn_aware_infonce(*_features(), INF), ValueError, "logit_scale"),
    ("scale t<0", lambda: fn_aware_infonce(*_features(), torch.tensor(-3.0)), ValueError, "logit_scale"),
    ("scale tNaN", lambda: fn_aware_infonce(*_features(), torch.tensor(NAN)), ValueError, "logit_scale"),
    (
        "scale (4,)",
        lambda: fn_aware_infonce(*_features(), torch.ones(4)),
        ValueError,
        "logit_scale must be a scalar",
    ),
    (
        "threshold NaN",
        lambda: fn_aware_infonce(*_features(), 10.0, _sim(), threshold=NAN),
        ValueError,
        "threshold",
    ),
    (
        "soft temp 0",
        lambda: fn_aware_infonce(*_features(), 10.0, _sim(), strategy="soft", soft_temperature=0.0),
        ValueError,
        "soft_temperature",
    ),
    (
        "features NaN",
        lambda: fn_aware_infonce(_features()[0] * NAN, _features()[1], 10.0),
        ValueError,
        "image_features contains NaN",
    ),
    ("chunked B=0", lambda: fn_aware_infonce_chunked(*_features(0), 10.0), ValueError, "B=0"),
    ("chunk 0", lambda: fn_aware_infonce_chunked(*_features(), 10.0, chunk_size=0), ValueError, "chunk_size"),
    ("chunked scale NaN", lambda: fn_aware_infonce_chunked(*_features(), NAN), ValueError, "logit_scale"),
    (
        "chunked sim 1.5",
        lambda: fn_aware_infonce_chunked(*_features(), 10.0, _sim(1.5)),
        ValueError,
        "report_similarity",
    ),
    (
        "chunked Z batch",
        lambda: fn_aware_infonce_chunked(*_features(), 10.0, report_embeddings=torch.ones(3, 2)),
        ValueError,
        "report_embeddings must be",
    ),
]
STA_CASES = [
    ("B=0", lambda: sparse_token_align_loss(*_tokens(0)), ValueError, "B=0"),
    (
        "temperature NaN",
        lambda: sparse_token_align_loss(*_tokens(), temperature=NAN),
        ValueError,
        "temperature",
    ),
    (
        "temperature 0",
        lambda: sparse_token_align_loss(*_tokens(), temperature=0.0),
        ValueError,
        "temperature",
    ),
    (
        "temperature inf",
        lambda: sparse_token_align_loss(*_tokens(), temperature=INF),
        ValueError,
        "temperature",
    ),
    ("threshold NaN", lambda: sparse_token_align_loss(*_tokens(), threshold=NAN), ValueError, "threshold"),
    ("threshold 2", lambda: sparse_token_align_loss(*_tokens(), threshold=2.0), ValueError, "threshold"),
    ("k 0", lambda: sparse_token_align_loss(*_tokens(), sparsify="topk", k=0), ValueError, "k must lie"),
    (
        "k > P",
        lambda: sparse_token_align_loss(*_tokens(), sparsify="topk", k=P + 1),
        ValueError,
        "k must lie",
    ),
    ("mask None", lambda: sparse_token_align_loss(*_tokens()[:2], None), ValueError, "text_mask is required"),
    ("mask float", lambda: sparse_token_align_loss(*_tokens()[:2], torch.ones(B, L)), TypeError, "text_mask"),
    (
        "mask empty",
        lambda: sparse_token_align_loss(*_tokens()[:2], torch.zeros(B, L).bool()),
        ValueError,
        "all False",
    ),
    (
        "tokens inf",
        lambda: sparse_token_align_loss(_tokens()[0] * INF, *_tokens()[1:]),
        ValueError,
        "image_tokens contains NaN or inf",
    ),
    ("P=0", lambda: sparse_token_align_loss(torch.ones(B, 0, D), *_tokens()[1:]), ValueError, "P=0"),
]


def _module_inputs(batch=B, **over):
    image, text = _features(batch)
    patches, words, mask = _tokens(batch)
    out = dict(
        image_features=image,
        text_features=text,
        logit_scale=10.0,
        image_tokens=patches,
        text_tokens=words,
        text_mask=mask,
        report_labels=torch.ones(batch, 3),
    )
    return {**out, **over}


MODULE_CASES = [
    ("SIA chunk 0", lambda: SemanticInstanceAlignLoss("labels", chunk_size=0), ValueError, "chunk_size"),
    ("SIA threshold 2", lambda: SemanticInstanceAlignLoss("labels", threshold=2.0), ValueError, "threshold"),
    (
        "SIA soft temp NaN",
        lambda: SemanticInstanceAlignLoss("labels", soft_temperature=NAN),
        ValueError,
        "soft_temperature",
    ),
    (
        "SIA labels batch",
        lambda: SemanticInstanceAlignLoss("labels")(**_module_inputs(report_labels=torch.ones(3, 3))),
        ValueError,
        "report_labels must have one row per pair",
    ),
    (
        "SIA embeddings batch",
        lambda: SemanticInstanceAlignLoss("encoder")(**_module_inputs(report_embeddings=torch.ones(3, 8))),
        ValueError,
        "report_embeddings must have one row",
    ),
    (
        "SIA scale (4,)",
        lambda: SemanticInstanceAlignLoss(None)(**_module_inputs(logit_scale=torch.ones(4))),
        ValueError,
        "logit_scale must be a scalar",
    ),
    ("STA temperature NaN", lambda: SparseTokenAlignLoss(temperature=NAN), ValueError, "temperature"),
    ("STA threshold -1", lambda: SparseTokenAlignLoss(threshold=-1.0), ValueError, "threshold"),
    ("SISTA lambda NaN", lambda: SISTALoss(similarity="labels", lambda_sia=NAN), ValueError, "lambda_sia"),
    ("SISTA lambda inf", lambda: SISTALoss(similarity="labels", lambda_sta=INF), ValueError, "lambda_sta"),
    ("SISTA lambda <0", lambda: SISTALoss(similarity="labels", lambda_sta=-1.0), ValueError, "lambda_sta"),
    (
        "SISTA both 0",
        lambda: SISTALoss(similarity="labels", lambda_sia=0, lambda_sta=0),
        ValueError,
        "not both 0",
    ),
    ("SISTA unknown kw", lambda: SISTALoss(similarity="labels", tau=0.1), TypeError, "tau"),
    ("SISTA sia option", lambda: SISTALoss(sia={"thresh": 0.5}), TypeError, "thresh"),
    (
        "SISTA token temp",
        lambda: SISTALoss(similarity="labels", token_temperature=0.0),
        ValueError,
        "temperature",
    ),
]

CASES = (
    [("sia", *c) for c in SIA_CASES]
    + [("sta", *c) for c in STA_CASES]
    + [("module", *c) for c in MODULE_CASES]
)


@pytest.mark.parametrize("area,case,call,error,match", CASES, ids=[f"{a}-{c}" for a, c, *_ in CASES])
def test_bad_input_is_a_named_error(area, case, call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_check_policy_off_skips_value_checks_only():
    image, text = _features()
    with check_inputs("off"):
        assert math.isnan(fn_aware_infonce(image * NAN, text, 10.0).item())
        with pytest.raises(ValueError, match="B=0"):  # cheap checks stay
            fn_aware_infonce(*_features(0), 10.0)
    with pytest.raises(InvalidValueError, match="image_features"):
        fn_aware_infonce(image * NAN, text, 10.0)


def test_check_policy_setting_and_environment(monkeypatch):
    image, text = _features()
    set_check_inputs("off")
    try:
        fn_aware_infonce(image * NAN, text, 10.0)
    finally:
        set_check_inputs(None)
    monkeypatch.setenv("SISTA_CHECK_INPUTS", "off")
    fn_aware_infonce(image * NAN, text, 10.0)
    monkeypatch.setenv("SISTA_CHECK_INPUTS", "sometimes")
    with pytest.raises(ValueError, match="SISTA_CHECK_INPUTS"):
        fn_aware_infonce(image * NAN, text, 10.0)
    with pytest.raises(ValueError, match="unknown check policy"):
        set_check_inputs("loud")


def test_invalid_value_error_is_value_and_runtime_error():
    assert issubclass(InvalidValueError, ValueError) and issubclass(InvalidValueError, RuntimeError)
