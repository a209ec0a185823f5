"""Every bad input of a baseline loss entry point gives a clear error naming the argument."""

from __future__ import annotations

import pytest
import torch

from sista_kit.baselines import ConVIRTLoss, GLoRIALoss, MGCALoss, convirt_loss, gloria_loss, mgca_loss

B, D, L, P = 4, 6, 5, 7
NAN, INF = float("nan"), float("inf")


def _inputs(batch=B, **over):
    g = torch.Generator().manual_seed(0)
    out = dict(
        image_features=torch.randn(batch, D, generator=g),
        text_features=torch.randn(batch, D, generator=g),
        image_tokens=torch.randn(batch, P, D, generator=g),
        text_tokens=torch.randn(batch, L, D, generator=g),
        text_mask=torch.ones(batch, L, dtype=torch.bool),
        text_attention=torch.rand(batch, L, generator=g),
        image_attention=torch.rand(batch, P, generator=g),
    )
    return {**out, **over}


def _gloria(**over):
    x = _inputs(**over)
    return gloria_loss(
        x["image_features"], x["text_features"], x["image_tokens"], x["text_tokens"], x["text_mask"]
    )


def _mgca(batch=B, **kw):
    x = _inputs(batch)
    return mgca_loss(
        *(
            x[k]
            for k in (
                "image_features",
                "text_features",
                "image_tokens",
                "text_tokens",
                "text_mask",
                "text_attention",
                "image_attention",
            )
        ),
        torch.randn(9, D),
        **kw,
    )


CASES = [
    ("convirt B=0", lambda: convirt_loss(torch.ones(0, D), torch.ones(0, D)), ValueError, "B=0"),
    (
        "convirt temp NaN",
        lambda: convirt_loss(*list(_inputs().values())[:2], temperature=NAN),
        ValueError,
        "temperature",
    ),
    ("convirt temp 0", lambda: ConVIRTLoss(temperature=0.0), ValueError, "temperature"),
    ("convirt lambda NaN", lambda: ConVIRTLoss(lambda_=NAN), ValueError, "lambda_"),
    (
        "convirt NaN",
        lambda: ConVIRTLoss()(**_inputs(image_features=torch.full((B, D), NAN))),
        ValueError,
        "image_features contains NaN",
    ),
    ("gloria B=0", lambda: _gloria(batch=0), ValueError, "B=0"),
    ("gloria temp1 NaN", lambda: GLoRIALoss(temp1=NAN), ValueError, "temp1"),
    ("gloria temp3 0", lambda: GLoRIALoss(temp3=0.0), ValueError, "temp3"),
    ("gloria weight <0", lambda: GLoRIALoss(local_weight=-1.0), ValueError, "local_weight"),
    ("gloria chunk 0", lambda: GLoRIALoss(chunk_size=0), ValueError, "chunk_size"),
    (
        "gloria empty text",
        lambda: _gloria(text_mask=torch.zeros(B, L, dtype=torch.bool)),
        ValueError,
        "empty text",
    ),
    (
        "gloria tokens inf",
        lambda: _gloria(text_tokens=torch.full((B, L, D), INF)),
        ValueError,
        "text_tokens contains NaN",
    ),
    (
        "gloria cls shape",
        lambda: GLoRIALoss()(**_inputs(), text_cls_token=torch.ones(B, D + 1)),
        ValueError,
        "text_cls_token",
    ),
    ("mgca B=0", lambda: _mgca(batch=0), ValueError, "B=0"),
    (
        "mgca softmax temp NaN",
        lambda: MGCALoss(embed_dim=D, softmax_temperature=NAN),
        ValueError,
        "softmax_temperature",
    ),
    (
        "mgca local temp 0",
        lambda: MGCALoss(embed_dim=D, local_temperature=0.0),
        ValueError,
        "local_temperature",
    ),
    ("mgca proto temp inf", lambda: _mgca(proto_temperature=INF), ValueError, "proto_temperature"),
    ("mgca epsilon 0", lambda: _mgca(epsilon=0.0), ValueError, "epsilon"),
    ("mgca lambda NaN", lambda: _mgca(lambda_2=NAN), ValueError, "lambda_2"),
    ("mgca iterations", lambda: _mgca(sinkhorn_iterations=-1), ValueError, "sinkhorn_iterations"),
    ("mgca quantile", lambda: _mgca(quantile_low=0.9, quantile_high=0.1), ValueError, "quantile_low"),
    (
        "mgca attention shape",
        lambda: MGCALoss(embed_dim=D)(**_inputs(text_attention=torch.ones(B, L + 1))),
        ValueError,
        "text_attention",
    ),
]


@pytest.mark.parametrize("case,call,error,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_named_error(case, call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mgca_low_precision_runs(dtype):
    """torch.quantile has no float16 / bfloat16 kernel: the weights are clipped in float32."""
    loss_fn = MGCALoss(embed_dim=D, num_prototypes=9)
    loss_fn.set_epoch(1)
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in _inputs().items()}
    inputs["image_tokens"].requires_grad_()
    with torch.autocast("cpu", enabled=False):
        loss = loss_fn(**inputs)
    loss.backward()
    assert torch.isfinite(loss.float())
    assert torch.isfinite(inputs["image_tokens"].grad.float()).all()
