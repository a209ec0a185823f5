"""Tiled false-negative-aware InfoNCE kernel against the PyTorch reference (forward and gradients)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from kernel_testing import assert_close, grads

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from sista_kit.kernels import fn_aware_infonce_tiled  # noqa: E402
from sista_kit.losses import SemanticInstanceAlignLoss  # noqa: E402
from sista_kit.losses.functional import fn_aware_infonce  # noqa: E402

THRESHOLD = 0.5


def _features(batch, dim, device, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, dim, generator=gen).to(device, dtype).requires_grad_()
    text = torch.randn(batch, dim, generator=gen).to(device, dtype).requires_grad_()
    scale = torch.tensor(9.0, device=device, requires_grad=True)
    return image, text, scale


def _report_embeddings(batch, rank, device):
    """Z with groups of duplicated reports (true false negatives), no similarity within 1e-4 of the
    threshold or the band edge (so that rounding cannot flip a decision between the two paths)."""
    for seed in range(100):
        gen = torch.Generator().manual_seed(seed)
        z = F.normalize(torch.randn(batch, rank, generator=gen), dim=-1)
        z[5::7] = z[3]
        z[4::9] = z[1]
        sim = z @ z.T
        if ((sim - THRESHOLD).abs() > 1e-4).all() and ((sim - 0.2).abs() > 1e-4).all():
            return z.to(device)
    raise AssertionError("no fixture seed keeps away from the threshold")


def _compare(image, text, scale, atol, *, sim=None, embed=None, **options):
    out = fn_aware_infonce_tiled(image, text, scale, sim, report_embeddings=embed, **options)
    assert out.dim() == 0 and out.dtype == image.dtype
    got = grads(out, (image, text, scale))
    ref_inputs = (
        image.detach().float().requires_grad_(),
        text.detach().float().requires_grad_(),
        scale.detach().clone().requires_grad_(),
    )
    ref_sim = sim if sim is not None else (None if embed is None else embed @ embed.T)
    ref = fn_aware_infonce(*ref_inputs, ref_sim, **options)
    expected = grads(ref, ref_inputs)
    assert_close(out, ref, atol=atol, what="loss")
    for name, a, b in zip(("d image", "d text", "d logit_scale"), got, expected, strict=True):
        assert_close(a, b, atol=atol, what=name)
    return out


@pytest.mark.parametrize("strategy", ["eliminate", "positive"])
@pytest.mark.parametrize("source", ["none", "matrix", "embeddings", "matrix+band"])
def test_matches_reference(device, strategy, source):
    """B = 37 over 8 x 16 tiles (ragged edges), D = 24 over 16-wide chunks, R = 10 over 8-wide chunks."""
    image, text, scale = _features(37, 24, device)
    z = _report_embeddings(37, 10, device)
    options = dict(threshold=THRESHOLD, strategy=strategy)
    if source == "none":
        _compare(image, text, scale, 2e-6, **options)
    elif source == "embeddings":
        _compare(image, text, scale, 2e-6, embed=z, **options)
    else:
        if source == "matrix+band":
            options["neutral_band"] = (0.2, THRESHOLD)
        _compare(image, text, scale, 2e-6, sim=z @ z.T, **options)


@pytest.mark.parametrize("strategy", ["eliminate", "positive"])
def test_threshold_ties_and_asymmetric_matrix(device, strategy):
    """Entries exactly at the threshold are false negatives; S need not be symmetric (t2i reads S^T)."""
    image, text, scale = _features(19, 8, device, seed=2)
    gen = torch.Generator().manual_seed(3)
    sim = torch.tensor([0.1, 0.5, 0.9])[torch.randint(0, 3, (19, 19), generator=gen)].to(device)
    _compare(image, text, scale, 2e-6, sim=sim, threshold=0.5, strategy=strategy)


def test_no_false_negatives_is_clip(device):
    image, text, scale = _features(21, 12, device, seed=4)
    low = torch.full((21, 21), -0.3, device=device)
    out = fn_aware_infonce_tiled(image, text, scale, low)
    logits = scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    target = torch.arange(21, device=device)
    clip = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    assert_close(out, clip, atol=2e-6, what="loss without false negatives")
    assert_close(fn_aware_infonce_tiled(image, text, scale), clip, atol=2e-6, what="loss without similarity")


@pytest.mark.parametrize("shape", [(1, 5), (2, 3), (17, 33)], ids=["B1", "B2", "D33"])
def test_small_and_odd_shapes(device, shape):
    image, text, scale = _features(*shape, device, seed=5)
    _compare(image, text, scale, 2e-6, sim=torch.eye(shape[0], device=device), strategy="positive")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs(device, dtype):
    image, text, scale = _features(29, 16, device, dtype=dtype, seed=6)
    out = _compare(image, text, scale, 3e-2, embed=_report_embeddings(29, 6, device), threshold=THRESHOLD)
    assert out.dtype == dtype


def test_float_logit_scale_and_grad_flow(device):
    image, text, _ = _features(9, 8, device, seed=7)
    out = fn_aware_infonce_tiled(image, text, 5.0)
    ref = fn_aware_infonce(image, text, 5.0)
    assert_close(out, ref, atol=2e-6, what="loss with a float scale")
    g_image, g_text = grads(out, (image, text))
    r_image, r_text = grads(ref, (image, text))
    assert_close(g_image, r_image, atol=2e-6, what="d image")
    assert_close(g_text, r_text, atol=2e-6, what="d text")


def test_bad_inputs_raise_clear_errors(device):
    image, text, scale = _features(6, 4, device)
    with pytest.raises(ValueError, match="'soft'"):
        fn_aware_infonce_tiled(image, text, scale, strategy="soft")
    with pytest.raises(ValueError, match="not both"):
        fn_aware_infonce_tiled(
            image, text, scale, torch.eye(6, device=device), report_embeddings=image.detach()
        )
    with pytest.raises(ValueError, match=r"report_similarity must be \(6, 6\)"):
        fn_aware_infonce_tiled(image, text, scale, torch.eye(5, device=device))
    with pytest.raises(ValueError, match="report_embeddings must be"):
        fn_aware_infonce_tiled(image, text, scale, report_embeddings=torch.randn(5, 3, device=device))
    with pytest.raises(ValueError, match="batch size mismatch"):
        fn_aware_infonce_tiled(image, text[:5], scale)
    with pytest.raises(ValueError, match="threshold must lie"):
        fn_aware_infonce_tiled(image, text, scale, threshold=1.5)
    with pytest.raises(ValueError, match="neutral_band"):
        fn_aware_infonce_tiled(image, text, scale, neutral_band=(0.95, 0.9))
    with pytest.raises(ValueError, match="D <= 1024"):
        fn_aware_infonce_tiled(
            torch.randn(2, 1025, device=device), torch.randn(2, 1025, device=device), scale
        )


@pytest.mark.parametrize(
    "options",
    [dict(strategy="eliminate"), dict(strategy="positive", neutral_band=(0.3, 0.6))],
    ids=["eliminate", "positive+band"],
)
def test_loss_module_with_triton_backend(device, options):
    """SemanticInstanceAlignLoss(backend="triton") equals backend="torch" (online report similarity)."""
    gen = torch.Generator().manual_seed(8)
    image = torch.randn(23, 16, generator=gen).to(device)
    text = torch.randn(23, 16, generator=gen).to(device)
    text[7::5] = text[2] + 0.05 * torch.randn(16, generator=gen).to(device)  # near-duplicate reports
    results = []
    for backend in ("triton", "torch"):
        x, y = image.clone().requires_grad_(), text.clone().requires_grad_()
        scale = torch.tensor(11.0, device=device, requires_grad=True)
        module = SemanticInstanceAlignLoss("online", threshold=0.6, backend=backend, **options)
        loss = module(image_features=x, text_features=y, logit_scale=scale, output_dict=True)[
            "instance_align_loss"
        ]
        results.append((loss, *grads(loss, (x, y, scale))))
    for name, a, b in zip(("loss", "d image", "d text", "d scale"), *results, strict=True):
        assert_close(a, b, atol=2e-6, rtol=1e-5, what=name)


def test_loss_module_soft_strategy_stays_on_torch(device):
    """``soft`` has no tiled kernel: the module uses the reference even with backend="triton"."""
    image, text, scale = _features(7, 8, device, seed=9)
    module = SemanticInstanceAlignLoss("online", strategy="soft", backend="triton")
    out = module(image_features=image, text_features=text, logit_scale=scale)
    sim = F.normalize(text.detach(), dim=-1) @ F.normalize(text.detach(), dim=-1).T
    ref = fn_aware_infonce(image, text, scale, sim.clamp(-1, 1), strategy="soft")
    assert_close(out, ref, atol=1e-6, what="soft loss")


@pytest.mark.parametrize(
    "scale, sim_value, match",
    [(float("nan"), 0.2, "logit_scale"), (-1.0, 0.2, "logit_scale"), (10.0, 1.5, "report_similarity")],
    ids=["scale-nan", "scale-negative", "similarity-1.5"],
)
def test_bad_values_are_named(device, scale, sim_value, match):
    """The kernel entry point runs the shared value checks (policy ``full``: a Python error on CUDA
    too, rather than a device-side assertion that would end the CUDA context)."""
    from sista_kit.checks import InvalidValueError, check_inputs

    image, text, _ = _features(6, 8, device, seed=11)
    sim = torch.full((6, 6), sim_value, device=device).fill_diagonal_(1.0)
    with check_inputs("full"), pytest.raises((InvalidValueError, ValueError), match=match):
        fn_aware_infonce_tiled(image, text, scale, sim)
