"""SIA reference and its chunked path: CLIP equality, hand-computed cases, gradients, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference_loops import sia_loop
from torch.autograd import gradcheck

from sista_kit.losses import fn_aware_infonce, fn_aware_infonce_chunked


def _features(b=6, d=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=dtype), torch.randn(b, d, generator=g, dtype=dtype)


def _similarity(b=6, seed=1, dtype=torch.float64):
    """A report similarity with some false negatives above 0.9 and some in a 0.5..0.9 band."""
    g = torch.Generator().manual_seed(seed)
    groups = torch.tensor([0, 1, 0, 2, 1, 3, 0, 2][:b])
    z = F.normalize(torch.randn(4, 5, generator=g, dtype=dtype), dim=-1)[groups]
    z = F.normalize(z + 0.05 * torch.randn(b, 5, generator=g, dtype=dtype), dim=-1)
    sim = z @ z.T
    sim[1, 3] = sim[3, 1] = 0.7  # neutral-band entries
    return sim, z


def _clip_reference(img, txt, scale):
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    target = torch.arange(img.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def test_equals_open_clip_clip_loss():
    from open_clip.loss import ClipLoss

    img, txt = _features()
    scale = torch.tensor(14.0, dtype=torch.float64)
    ours = fn_aware_infonce(img, txt, scale)
    theirs = ClipLoss()(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("strategy", ["eliminate", "positive"])
def test_no_false_negatives_equals_clip_exactly(strategy):
    img, txt = _features()
    sim = torch.full((6, 6), 0.2, dtype=torch.float64)
    sim.fill_diagonal_(1.0)
    ours = fn_aware_infonce(img, txt, 10.0, sim, strategy=strategy)
    clip = fn_aware_infonce(img, txt, 10.0)
    if strategy == "eliminate":  # same kernels as CLIP: bit-equal
        assert torch.equal(ours, clip)
    else:  # a target-weighted sum: equal up to the summation order of the batch mean
        torch.testing.assert_close(ours, clip, rtol=0, atol=1e-14)
    torch.testing.assert_close(ours, _clip_reference(img, txt, 10.0), rtol=0, atol=1e-14)


def test_eliminate_hand_computed():
    # 3 pairs, identity-like features; report 0 and 2 say the same thing.
    img = torch.eye(3, dtype=torch.float64)
    txt = torch.eye(3, dtype=torch.float64)
    sim = torch.tensor([[1.0, 0.0, 0.95], [0.0, 1.0, 0.0], [0.95, 0.0, 1.0]], dtype=torch.float64)
    s = 5.0
    row0 = -(s - torch.log(torch.exp(torch.tensor(s)) + 1.0))  # candidate 2 eliminated
    row1 = -(s - torch.log(torch.exp(torch.tensor(s)) + 2.0))
    expected = (2 * row0 + row1) / 3  # rows 0 and 2 alike; i2t == t2i by symmetry
    torch.testing.assert_close(fn_aware_infonce(img, txt, s, sim), expected.double())


@pytest.mark.parametrize("strategy", ["eliminate", "positive", "soft"])
@pytest.mark.parametrize("band", [None, (0.5, 0.9)])
def test_matches_row_loop(strategy, band):
    img, txt = _features()
    sim, _ = _similarity()
    got = fn_aware_infonce(img, txt, 7.0, sim, strategy=strategy, neutral_band=band)
    want = sia_loop(img, txt, 7.0, sim, strategy=strategy, neutral_band=band)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_asymmetric_similarity_uses_transpose_for_text_to_image():
    img, txt = _features()
    sim, _ = _similarity()
    sim = sim.clone()
    sim[0, 2], sim[2, 0] = 0.95, 0.1
    torch.testing.assert_close(fn_aware_infonce(img, txt, 7.0, sim), sia_loop(img, txt, 7.0, sim))


@pytest.mark.parametrize("strategy", ["eliminate", "positive", "soft"])
def test_gradcheck_float64(strategy):
    img, txt = _features(b=5, d=4)
    sim, _ = _similarity(b=5)
    img.requires_grad_(True)
    txt.requires_grad_(True)
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    fn = lambda a, b, s: fn_aware_infonce(a, b, s, sim, strategy=strategy, neutral_band=(0.5, 0.9))  # noqa: E731
    assert gradcheck(fn, (img, txt, scale), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("strategy", ["eliminate", "positive"])
@pytest.mark.parametrize("source", ["matrix", "embeddings", "none"])
@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_chunked_equals_dense(strategy, source, chunk):
    img, txt = _features(b=7)
    sim, z = _similarity(b=7)
    if source == "embeddings":
        sim = z @ z.T
    scale = torch.tensor(6.0, dtype=torch.float64, requires_grad=True)
    a, b = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    dense = fn_aware_infonce(
        a, b, scale, None if source == "none" else sim, strategy=strategy, neutral_band=(0.5, 0.9)
    )
    dense.backward()
    grads = (a.grad, b.grad, scale.grad)
    a2, b2 = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    scale2 = scale.detach().clone().requires_grad_(True)
    kw = dict(strategy=strategy, neutral_band=(0.5, 0.9), chunk_size=chunk)
    if source == "matrix":
        chunked = fn_aware_infonce_chunked(a2, b2, scale2, sim, **kw)
    elif source == "embeddings":
        chunked = fn_aware_infonce_chunked(a2, b2, scale2, report_embeddings=z, **kw)
    else:
        chunked = fn_aware_infonce_chunked(a2, b2, scale2, **kw)
    chunked.backward()
    torch.testing.assert_close(chunked, dense, rtol=1e-5, atol=1e-6)  # chunked accumulates in fp32
    for got, want in zip((a2.grad, b2.grad, scale2.grad), grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_batch_permutation_invariance():
    img, txt = _features()
    sim, _ = _similarity()
    perm = torch.tensor([2, 5, 0, 1, 4, 3])
    torch.testing.assert_close(
        fn_aware_infonce(img, txt, 5.0, sim), fn_aware_infonce(img[perm], txt[perm], 5.0, sim[perm][:, perm])
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_close_to_fp32(dtype):
    img, txt = _features(b=32, d=64, dtype=torch.float32)
    sim, _ = _similarity(b=8, dtype=torch.float32)
    sim = sim.repeat(4, 4)
    ref = fn_aware_infonce(img, txt, 10.0, sim)
    low = fn_aware_infonce(img.to(dtype), txt.to(dtype), 10.0, sim)
    assert torch.isfinite(low) and abs(low.float() - ref).item() < 0.03 * ref.item()


def test_errors():
    img, txt = _features()
    sim, _ = _similarity()
    with pytest.raises(ValueError, match="batch size"):
        fn_aware_infonce(img[:3], txt, 1.0)
    with pytest.raises(ValueError, match="feature size"):
        fn_aware_infonce(img[:, :3], txt, 1.0)
    with pytest.raises(ValueError, match="unknown strategy"):
        fn_aware_infonce(img, txt, 1.0, sim, strategy="drop")
    with pytest.raises(ValueError, match="threshold must lie"):
        fn_aware_infonce(img, txt, 1.0, sim, threshold=2.0)
    with pytest.raises(ValueError, match="report_similarity must be"):
        fn_aware_infonce(img, txt, 1.0, sim[:3])
    with pytest.raises(ValueError, match="neutral_band"):
        fn_aware_infonce(img, txt, 1.0, sim, neutral_band=(0.95, 0.9))
    bad = txt.clone()
    bad[1, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        fn_aware_infonce(img, bad, 1.0)
    with pytest.raises(ValueError, match="chunked path supports"):
        fn_aware_infonce_chunked(img, txt, 1.0, sim, strategy="soft")
    with pytest.raises(ValueError, match="chunk_size"):
        fn_aware_infonce_chunked(img, txt, 1.0, chunk_size=0)
